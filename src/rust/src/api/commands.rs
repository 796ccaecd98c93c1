//! Command Execution API 1.2, commands (reference §1.6–§1.8).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Result;
use crate::http::{Replay, Request, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandStatus {
    Queued,
    Running,
    Cancelling,
    Cancelled,
    Finished,
    Error,
    #[serde(other)]
    Unknown,
}

impl CommandStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, CommandStatus::Finished | CommandStatus::Error | CommandStatus::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Queued => "Queued",
            CommandStatus::Running => "Running",
            CommandStatus::Cancelling => "Cancelling",
            CommandStatus::Cancelled => "Cancelled",
            CommandStatus::Finished => "Finished",
            CommandStatus::Error => "Error",
            CommandStatus::Unknown => "Unknown",
        }
    }
}

/// `results` of a command status.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
// Every field is optional on the wire: missing ones take their default.
#[serde(default)]
pub struct Results {
    pub result_type: Option<String>,
    pub data: serde_json::Value,
    pub schema: Option<serde_json::Value>,
    pub is_json_schema: Option<bool>,
    pub truncated: Option<bool>,
    pub summary: Option<String>,
    pub cause: Option<String>,
    pub file_name: Option<String>,
    pub file_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommandStatusResponse {
    #[serde(default)]
    pub id: Option<String>,
    pub status: CommandStatus,
    #[serde(default)]
    pub results: Option<Results>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// Submit a command. With `Replay::Never` (user code) it is never resent
/// after an ambiguous failure, as it may have run; `Replay::Safe` is for
/// commands that are idempotent on the cluster (dbrxr's request-id cache).
pub async fn execute(
    t: &Transport,
    cluster_id: &str,
    context_id: &str,
    language: &str,
    command: &str,
    replay: Replay,
) -> Result<String> {
    let req = Request::post("/api/1.2/commands/execute")
        .json(&json!({
            "clusterId": cluster_id,
            "contextId": context_id,
            "language": language,
            "command": command,
        }))?
        .replay(replay);
    Ok(t.json::<Created>(req).await?.id)
}

pub async fn status(t: &Transport, cluster_id: &str, context_id: &str, command_id: &str) -> Result<CommandStatusResponse> {
    let req = Request::get("/api/1.2/commands/status")
        .query("clusterId", cluster_id)
        .query("contextId", context_id)
        .query("commandId", command_id);
    t.json(req).await
}

pub async fn cancel(t: &Transport, cluster_id: &str, context_id: &str, command_id: &str) -> Result<()> {
    let req = Request::post("/api/1.2/commands/cancel")
        .json(&json!({ "clusterId": cluster_id, "contextId": context_id, "commandId": command_id }))?;
    t.send(req).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_result_parses() {
        let s: CommandStatusResponse = serde_json::from_str(
            r#"{"id":"c","status":"Finished","results":{"resultType":"error","summary":"<b>x</b>","cause":"tb"}}"#,
        )
        .unwrap();
        assert!(s.status.is_terminal());
        let r = s.results.unwrap();
        assert_eq!(r.result_type.as_deref(), Some("error"));
        assert_eq!(r.cause.as_deref(), Some("tb"));
    }
}
