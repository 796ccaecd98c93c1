//! Unity Catalog's rules on the MLflow registry routes the workspace
//! forwards: a request that creates or renames a registered model, or adds a
//! version, is checked here before MLflow's server sees it (the rules
//! themselves: `uc_names`). Every other request passes through untouched.

use std::path::PathBuf;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::reply;
use super::state::Local;
use super::uc_names;

/// Largest body of a checked route (a name, a source, tags).
pub const MAX_CHECKED_BODY: usize = 1 << 20;

/// What a route creates, if it is one of the checked ones.
pub enum Checked {
    Model,
    Rename,
    Version,
}

/// The checked route `path` is (under any MLflow prefix), for a POST.
pub fn checked(method: &axum::http::Method, path: &str) -> Option<Checked> {
    if method != axum::http::Method::POST {
        return None;
    }
    let tail = path.trim_end_matches('/');
    if tail.ends_with("/mlflow/registered-models/create") {
        Some(Checked::Model)
    } else if tail.ends_with("/mlflow/registered-models/rename") {
        Some(Checked::Rename)
    } else if tail.ends_with("/mlflow/model-versions/create") {
        Some(Checked::Version)
    } else {
        None
    }
}

fn invalid(message: String) -> Response {
    reply::api(400, "INVALID_PARAMETER_VALUE", message)
}

/// Check the body of a `what` request; `Err` is the answer to send instead.
/// `server` asks MLflow's own server where a version's source lies.
pub async fn check(local: &Local, server: &reqwest::Client, base: &str, what: Checked, body: &Bytes) -> Result<(), Response> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let name_key = match what {
        Checked::Rename => "new_name",
        _ => "name",
    };
    // A missing name is MLflow's own error to give.
    if let Some(name) = field(name_key) {
        if let Some(problem) = uc_names::name_problem(&name) {
            return Err(invalid(problem));
        }
    }
    if let Checked::Version = what {
        let source = field("source").unwrap_or_default();
        let Some(dir) = model_dir(local, server, base, &source, field("run_id")).await else {
            return Err(invalid(format!(
                "Cannot read the model at source '{source}': Unity Catalog needs its MLmodel (with a signature) to register a version."
            )));
        };
        let mlmodel = std::fs::read_to_string(dir.join("MLmodel")).map_err(|_| {
            invalid(format!("The source '{source}' holds no MLmodel file: log the model with MLflow first."))
        })?;
        if let Some(problem) = uc_names::signature_problem(&mlmodel) {
            return Err(invalid(problem));
        }
    }
    Ok(())
}

/// The directory on this machine that a version's `source` names:
/// `dbfs:/...` (the tracking server's artifact root is
/// `dbfs:/databricks/mlflow-tracking`), a logged model
/// (`models:/m-...`), another version (`models:/NAME/VERSION`), a run's
/// artifact (`runs:/ID/path`), or a local path.
async fn model_dir(local: &Local, server: &reqwest::Client, base: &str, source: &str, run_id: Option<String>) -> Option<PathBuf> {
    let uri = if let Some(id) = source.strip_prefix("models:/m-") {
        let v = get(server, &format!("{base}/api/2.0/mlflow/logged-models/m-{id}")).await?;
        v["model"]["info"]["artifact_uri"].as_str()?.to_string()
    } else if let Some(rest) = source.strip_prefix("models:/") {
        let (name, version) = rest.rsplit_once('/')?;
        let q = serde_urlencoded::to_string([("name", name), ("version", version)]).ok()?;
        let v = get(server, &format!("{base}/api/2.0/mlflow/model-versions/get-download-uri?{q}")).await?;
        v["artifact_uri"].as_str()?.to_string()
    } else if let Some(rest) = source.strip_prefix("runs:/") {
        let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let id = if id.is_empty() { run_id? } else { id.to_string() };
        let q = serde_urlencoded::to_string([("run_id", id.as_str())]).ok()?;
        let v = get(server, &format!("{base}/api/2.0/mlflow/runs/get?{q}")).await?;
        format!("{}/{path}", v["run"]["info"]["artifact_uri"].as_str()?)
    } else {
        source.to_string()
    };
    let path = if let Some(rest) = uri.strip_prefix("dbfs:") {
        let rest = rest.trim_start_matches('/');
        // Within DBFS only.
        if rest.split('/').any(|p| p == "..") {
            return None;
        }
        local.fs_root().join("dbfs").join(rest)
    } else if let Some(rest) = uri.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if uri.starts_with('/') {
        PathBuf::from(uri)
    } else {
        return None;
    };
    path.is_dir().then_some(path)
}

async fn get(server: &reqwest::Client, url: &str) -> Option<Value> {
    let r = server.get(url).timeout(Duration::from_secs(30)).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}
