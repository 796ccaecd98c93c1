//! Clusters API 2.1 (reference §2): get and start.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, ErrorKind, Result};
use crate::http::{Request, Transport};

/// `state` of a cluster; anything new maps to `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClusterState {
    Pending,
    Running,
    Restarting,
    Resizing,
    Terminating,
    Terminated,
    Error,
    #[default]
    #[serde(other)]
    Unknown,
}

impl ClusterState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Pending => "PENDING",
            ClusterState::Running => "RUNNING",
            ClusterState::Restarting => "RESTARTING",
            ClusterState::Resizing => "RESIZING",
            ClusterState::Terminating => "TERMINATING",
            ClusterState::Terminated => "TERMINATED",
            ClusterState::Error => "ERROR",
            ClusterState::Unknown => "UNKNOWN",
        }
    }
    /// Commands can run (the Go SDK accepts RESIZING too).
    pub fn usable(self) -> bool {
        matches!(self, ClusterState::Running | ClusterState::Resizing)
    }
}

/// The part of `ClusterDetails` we use.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
// Every field is optional on the wire: missing ones take their default.
#[serde(default)]
pub struct ClusterDetails {
    pub cluster_id: String,
    pub cluster_name: Option<String>,
    pub spark_version: Option<String>,
    pub state: ClusterState,
    pub state_message: Option<String>,
    pub data_security_mode: Option<String>,
    /// Whom a dedicated (single user) cluster is assigned to: a user or a group.
    pub single_user_name: Option<String>,
    pub num_workers: Option<i64>,
    pub node_type_id: Option<String>,
    pub start_time: Option<i64>,
    pub last_restarted_time: Option<i64>,
    pub termination_reason: Option<serde_json::Value>,
}

pub async fn get(t: &Transport, cluster_id: &str) -> Result<ClusterDetails> {
    let req = Request::get("/api/2.1/clusters/get").query("cluster_id", cluster_id);
    t.json(req).await.map_err(|e| {
        if e.status == Some(400) && e.message.contains("does not exist") {
            e.with_kind(ErrorKind::Cluster)
                .hint(format!("no cluster has the id `{cluster_id}` in this workspace: check `cluster_id` (or DATABRICKS_CLUSTER_ID)"))
        } else {
            e
        }
    })
}

/// Start a TERMINATED cluster. `Ok(false)` when it was not TERMINATED (400
/// INVALID_STATE), which callers treat as "look again".
pub async fn start(t: &Transport, cluster_id: &str) -> Result<bool> {
    let req = Request::post("/api/2.1/clusters/start").json(&json!({ "cluster_id": cluster_id }))?;
    match t.send(req).await {
        Ok(_) => Ok(true),
        Err(e) if e.error_code.as_deref() == Some("INVALID_STATE") => Ok(false),
        Err(e) => Err(e),
    }
}

/// An error for a cluster in a state we cannot use or wait out.
pub fn unusable(d: &ClusterDetails) -> Error {
    let msg = d.state_message.as_deref().filter(|m| !m.is_empty()).unwrap_or("no state message");
    Error::new(ErrorKind::Cluster, format!("cluster {} is {}: {msg}", d.cluster_id, d.state.as_str()))
        .field("state", d.state.as_str())
        .field("state_message", msg)
        .hint("look at the cluster's event log in the workspace, fix the cause, and start it again")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_states_and_fields_are_tolerated() {
        let d: ClusterDetails =
            serde_json::from_str(r#"{"cluster_id":"c","state":"SOMETHING_NEW","extra":1}"#).unwrap();
        assert_eq!(d.state, ClusterState::Unknown);
        let d: ClusterDetails = serde_json::from_str(r#"{"cluster_id":"c","state":"RESIZING"}"#).unwrap();
        assert!(d.state.usable());
    }
}
