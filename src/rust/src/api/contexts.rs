//! Command Execution API 1.2, execution contexts (reference §1.3–§1.5).
//! Field names are camelCase on this API.

use serde::Deserialize;
use serde_json::json;

use crate::error::Result;
use crate::http::{Replay, Request, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ContextStatus {
    Pending,
    Running,
    Error,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

#[derive(Debug, Deserialize)]
pub struct ContextStatusResponse {
    #[serde(default)]
    pub id: Option<String>,
    pub status: ContextStatus,
}

pub async fn create(t: &Transport, cluster_id: &str, language: &str) -> Result<String> {
    let req = Request::post("/api/1.2/contexts/create")
        .json(&json!({ "clusterId": cluster_id, "language": language }))?;
    // Not resent after an ambiguous failure: a second create would leave the
    // first context orphaned on the cluster.
    Ok(t.json::<Created>(req.replay(Replay::Never)).await?.id)
}

pub async fn status(t: &Transport, cluster_id: &str, context_id: &str) -> Result<ContextStatusResponse> {
    let req = Request::get("/api/1.2/contexts/status")
        .query("clusterId", cluster_id)
        .query("contextId", context_id);
    t.json(req).await
}

pub async fn destroy(t: &Transport, cluster_id: &str, context_id: &str) -> Result<()> {
    let req = Request::post("/api/1.2/contexts/destroy")
        .json(&json!({ "clusterId": cluster_id, "contextId": context_id }))?;
    t.send(req).await.map(|_| ())
}

/// Whether an error says the context is gone (evicted, destroyed, cluster
/// restarted). The pattern is the one jupyter-databricks-kernel matches
/// (reference §1.1): `context\s*(not\s*found|does\s*not\s*exist|is\s*invalid|expired)|invalid\s*context|execution\s*context`.
pub fn is_context_gone(message: &str) -> bool {
    let squashed: String = message
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("");
    let kernel_pattern = ["contextnotfound", "contextdoesnotexist", "contextisinvalid", "contextexpired", "invalidcontext", "executioncontext"]
        .iter()
        .any(|p| squashed.contains(p));
    // Also `Context 123 does not exist` / `... was evicted` (an id in between).
    let with_id = squashed.contains("context")
        && ["doesnotexist", "notfound", "nolongerexists", "evicted", "expired"].iter().any(|p| squashed.contains(p));
    kernel_pattern || with_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_gone_messages() {
        assert!(is_context_gone("Context 123 does not exist"));
        assert!(is_context_gone("ContextNotFound"));
        assert!(is_context_gone("invalid   context id"));
        assert!(is_context_gone("Execution context 5 was evicted"));
        assert!(!is_context_gone("Cluster x does not exist"));
    }

    #[test]
    fn statuses() {
        let s: ContextStatusResponse = serde_json::from_str(r#"{"id":"1","status":"Running"}"#).unwrap();
        assert_eq!(s.status, ContextStatus::Running);
        let s: ContextStatusResponse = serde_json::from_str(r#"{"status":"CONTEXT_NEW"}"#).unwrap();
        assert_eq!(s.status, ContextStatus::Unknown);
    }
}
