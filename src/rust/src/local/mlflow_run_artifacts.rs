//! A run's artifacts as a workspace's tracking server hands them to MLflow
//! clients older than its Files API path (Databricks Runtime 15.4's
//! mlflow-skinny 2.11): one presigned URL per file
//! (`artifacts/credentials-for-write` / `-for-read`, type
//! `AWS_PRESIGNED_URL`) and listings (`artifacts/list`), over the same files
//! under `dbfs:/databricks/mlflow-tracking/` that newer clients reach through
//! the Files API (uc_artifacts.rs). These routes take precedence over the
//! proxy to the MLflow server, which serves no artifacts.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::reply::{api, invalid, ok, Reply};
use super::state::{Local, Shared};
use super::uc_artifacts::{clean, presigned_url, tracking_root};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/2.0/mlflow/artifacts/credentials-for-write", post(for_write))
        .route("/api/2.0/mlflow/artifacts/credentials-for-read", post(for_read))
        .route("/api/2.0/mlflow/artifacts/list", get(list))
}

/// The run's artifact directory in the store.
async fn run_root(local: &Arc<Local>, run_id: &str) -> Result<PathBuf, Response> {
    let v = super::mlflow::call(local, Method::GET, "runs/get", json!({"run_id": run_id})).await?;
    let uri = v["run"]["info"]["artifact_uri"].as_str().unwrap_or_default();
    let rel = uri.strip_prefix("dbfs:/databricks/mlflow-tracking/").ok_or_else(|| {
        invalid(format!("The artifacts of run {run_id} are not in this workspace's tracking store ({uri})."))
    })?;
    let mut dir = tracking_root(local);
    clean(rel)?.iter().for_each(|p| dir.push(p));
    Ok(dir)
}

/// `rel` (a path relative to the run's root, "" for the root) in `root`.
fn below(root: &PathBuf, rel: &str) -> Result<PathBuf, Response> {
    let mut file = root.clone();
    let rel = rel.trim_matches('/');
    if !rel.is_empty() {
        clean(rel)?.iter().for_each(|p| file.push(p));
    }
    Ok(file)
}

async fn credentials(local: Arc<Local>, body: Bytes, write: bool) -> Reply {
    let v: Value = serde_json::from_slice(&body).map_err(|_| invalid("The body is not a JSON object."))?;
    let run_id = v["run_id"].as_str().ok_or_else(|| invalid("Missing required field: run_id"))?;
    let paths: Vec<&str> = match &v["path"] {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => vec![s.as_str()],
        _ => return Err(invalid("Missing required field: path")),
    };
    let root = run_root(&local, run_id).await?;
    let mut infos = Vec::with_capacity(paths.len());
    for p in paths {
        let file = below(&root, p)?;
        if !write && !file.is_file() {
            return Err(api(404, "RESOURCE_DOES_NOT_EXIST", format!("No artifact {p} in run {run_id}.")));
        }
        infos.push(json!({
            "run_id": run_id,
            "path": p,
            "signed_uri": presigned_url(&local, file, write),
            "type": "AWS_PRESIGNED_URL",
            "headers": [],
        }));
    }
    ok(json!({"credential_infos": infos}))
}

async fn for_write(State(Shared(local)): State<Shared>, body: Bytes) -> Reply {
    credentials(local, body, true).await
}

async fn for_read(State(Shared(local)): State<Shared>, body: Bytes) -> Reply {
    credentials(local, body, false).await
}

/// The files and directories at `path` of the run (a file: itself).
async fn list(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery) -> Reply {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).map_err(|_| invalid("The query string is not valid."))?;
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let run_id = field("run_id").or_else(|| field("run_uuid")).ok_or_else(|| invalid("Missing required field: run_id"))?;
    let rel = field("path").unwrap_or_default();
    let root = run_root(&local, &run_id).await?;
    let at = below(&root, &rel)?;
    let rel = rel.trim_matches('/');
    let join = |name: &str| if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
    let mut files = Vec::new();
    if at.is_file() {
        let size = std::fs::metadata(&at).map(|m| m.len()).unwrap_or(0);
        files.push(json!({"path": rel, "is_dir": false, "file_size": size}));
    } else {
        let mut entries: Vec<_> = std::fs::read_dir(&at).into_iter().flatten().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".upload-") {
                continue;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => files.push(json!({"path": join(&name), "is_dir": true})),
                Ok(m) => files.push(json!({"path": join(&name), "is_dir": false, "file_size": m.len()})),
                Err(_) => {}
            }
        }
    }
    let root_uri = format!("dbfs:/databricks/mlflow-tracking/{}", root.strip_prefix(tracking_root(&local)).unwrap_or(&root).display());
    ok(json!({"root_uri": root_uri, "files": files}))
}
