//! Where MLflow's Databricks client puts model and run artifacts, served from
//! the cluster's own storage:
//!
//! * Unity Catalog model versions in default-storage mode: the client asks
//!   `POST /api/2.0/fs/create-upload-url` / `create-download-url` for a
//!   presigned URL of `/Models/<catalog>/<schema>/<model>/<version>/<file>`
//!   and lists with `GET /api/2.0/fs/directories/Models/...`
//!   (`PresignedUrlArtifactRepository`). The URLs are this server's
//!   `/presigned/<nonce>`: one random nonce per grant, bound to one file, one
//!   direction and this cluster, valid 15 minutes, needing no token (as a
//!   cloud store's presigned URL).
//! * Run and logged-model artifacts under `dbfs:/databricks/mlflow-tracking/`
//!   (the local MLflow server's artifact root): the client moves them through
//!   the Files API at `/WorkspaceInternal/Mlflow/Artifacts/<exp>/Runs/...`
//!   and `.../LoggedModels/...`, stored at that `dbfs:/` path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::reply::{api, invalid, Reply};
use super::state::{Local, Shared};

/// Largest artifact file taken (as the Files API: 5 GiB).
const FILE_MAX: u64 = 5 << 30;
/// How long a presigned URL stays valid.
const GRANT_TTL: Duration = Duration::from_secs(15 * 60);

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/2.0/fs/create-upload-url", post(create_upload_url))
        .route("/api/2.0/fs/create-download-url", post(create_download_url))
        .route("/api/2.0/fs/files/WorkspaceInternal/{*path}", put(put_tracking).get(get_tracking))
        .route("/api/2.0/fs/directories/WorkspaceInternal/{*path}", get(list_tracking))
        .route("/api/2.0/fs/directories/Models/{*path}", get(list_models))
        .route("/presigned/{nonce}", put(put_presigned).get(get_presigned))
}

/// The directory of a model version's files.
pub fn version_dir(local: &Local, name: &str, version: &str) -> PathBuf {
    let mut d = model_dir(local, name);
    d.push(version);
    d
}

/// The marker of a version that awaits its files (created, not yet finalized).
pub fn pending_marker(local: &Local, name: &str, version: &str) -> PathBuf {
    local.state_dir.join("uc-registry").join("pending").join(format!("{name}@{version}"))
}

/// Whether the version awaits its files (created, not yet finalized).
pub fn is_pending(local: &Local, name: &str, version: &str) -> bool {
    pending_marker(local, name, version).exists()
}

/// The directory of a registered model's versions.
pub fn model_dir(local: &Local, name: &str) -> PathBuf {
    let mut d = local.state_dir.join("uc-models");
    for part in name.split('.') {
        d.push(part);
    }
    d
}

/// Remove a version's or model's files, or a pending marker, and the
/// directories that held only it (up to the state directory): a deleted
/// model leaves no trace in the cluster's storage.
pub fn forget(local: &Local, path: &Path) {
    let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    let mut dir = path.parent();
    while let Some(d) = dir {
        // Only below the state directory, and only while empty.
        if !d.starts_with(&local.state_dir) || d == local.state_dir || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Forget the pending markers of every version of a deleted model.
pub fn forget_pending(local: &Local, name: &str) {
    let probe = pending_marker(local, name, "");
    let (Some(dir), Some(prefix)) = (probe.parent(), probe.file_name().and_then(|f| f.to_str())) else { return };
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_str().is_some_and(|f| f.starts_with(prefix)) {
            forget(local, &entry.path());
        }
    }
}

/// Path segments that stay inside their root: no `..`, `.`, empty or NUL.
pub(super) fn clean(rel: &str) -> Result<Vec<&str>, Response> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == ".." || *p == "." || p.contains('\0')) {
        return Err(invalid(format!("The path {rel} is not valid.")));
    }
    Ok(parts)
}

/// `/Models/<c>/<s>/<m>/<v>/<file...>` → (model name, version, file on disk).
fn models_file(local: &Local, path: &str) -> Result<(String, String, PathBuf), Response> {
    let parts = clean(path.strip_prefix("/Models/").unwrap_or(path))?;
    if parts.len() < 4 || !parts[3].chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(format!("{path} is not a model version path (/Models/<catalog>/<schema>/<model>/<version>/...).")));
    }
    let name = parts[..3].join(".");
    let mut file = version_dir(local, &name, parts[3]);
    for p in &parts[4..] {
        file.push(p);
    }
    Ok((name, parts[3].to_string(), file))
}

/// Where `dbfs:/databricks/mlflow-tracking/` (runs' artifacts) is stored.
pub(super) fn tracking_root(local: &Local) -> PathBuf {
    local.fs_root().join("dbfs/databricks/mlflow-tracking")
}

/// `<exp>/Runs/<rest>` or `<exp>/LoggedModels/<id>/<rest>` (below
/// `/WorkspaceInternal/Mlflow/Artifacts/`) → its `dbfs:/databricks/mlflow-tracking/` file.
fn tracking_file(local: &Local, rel: &str) -> Result<PathBuf, Response> {
    let parts = clean(rel.strip_prefix("Mlflow/Artifacts/").ok_or_else(|| not_found())?)?;
    let mut file = tracking_root(local);
    match parts.as_slice() {
        [exp, "Runs", rest @ ..] => {
            file.push(exp);
            rest.iter().for_each(|p| file.push(p));
        }
        [exp, "LoggedModels", rest @ ..] => {
            file.push(exp);
            file.push("logged_models");
            rest.iter().for_each(|p| file.push(p));
        }
        _ => return Err(not_found()),
    }
    Ok(file)
}

fn not_found() -> Response {
    api(404, "NOT_FOUND", "The file being accessed is not found.")
}

fn io_error(what: &str, e: std::io::Error) -> Response {
    super::reply::io("INTERNAL_ERROR", what, &e)
}

// ---- presigned URLs ---------------------------------------------------------------

struct Grant {
    cluster: PathBuf,
    file: PathBuf,
    write: bool,
    until: Instant,
}

fn grants() -> &'static Mutex<HashMap<String, Grant>> {
    static G: std::sync::OnceLock<Mutex<HashMap<String, Grant>>> = std::sync::OnceLock::new();
    G.get_or_init(Mutex::default)
}

fn grant(local: &Local, file: PathBuf, write: bool) -> Value {
    json!({"url": presigned_url(local, file, write), "headers": []})
}

/// A presigned URL of one file, read or written.
pub(super) fn presigned_url(local: &Local, file: PathBuf, write: bool) -> String {
    format!("{}/presigned/{}", local.access.url(), new_grant(local, file, write))
}

/// A new grant's nonce: `path` (a file, or a directory for the S3 store's
/// session tokens) for 15 minutes, written if `write`.
pub(super) fn new_grant(local: &Local, path: PathBuf, write: bool) -> String {
    let nonce = super::util::random_hex(24);
    let mut g = grants().lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    g.retain(|_, v| v.until > now);
    g.insert(nonce.clone(), Grant { cluster: local.state_dir.clone(), file: path, write, until: now + GRANT_TTL });
    nonce
}

/// A live grant of this cluster: what it covers, and whether it writes.
fn live_grant(local: &Local, nonce: &str) -> Option<(PathBuf, bool)> {
    let g = grants().lock().unwrap_or_else(|e| e.into_inner());
    g.get(nonce)
        .filter(|v| v.cluster == local.state_dir && v.until > Instant::now())
        .map(|v| (v.file.clone(), v.write))
}

/// A presigned URL's file: its grant is bound to one direction.
fn redeem(local: &Local, nonce: &str, write: bool) -> Result<PathBuf, Response> {
    live_grant(local, nonce)
        .filter(|(_, w)| *w == write)
        .map(|(file, _)| file)
        .ok_or_else(|| api(403, "PERMISSION_DENIED", "The presigned URL is not valid here, or has expired."))
}

/// The directory a live grant of this cluster covers, if `nonce` is one
/// that allows `write` (a read-write grant also reads).
pub(super) fn granted_dir(local: &Local, nonce: &str, write: bool) -> Option<PathBuf> {
    live_grant(local, nonce).filter(|(_, w)| *w || !write).map(|(dir, _)| dir)
}

/// The `/Models/...` path asked for. Other paths (volumes) get the answer
/// they got before these routes existed, so the SDK's Files API client
/// keeps falling back to plain Files API transfers for them.
fn path_of(body: &[u8], route: &str) -> Result<String, Response> {
    let v: Value = serde_json::from_slice(body).map_err(|_| invalid("The body is not a JSON object."))?;
    match v.get("path").and_then(Value::as_str) {
        Some(p) if p.starts_with("/Models/") => Ok(p.to_string()),
        _ => Err(api(404, "ENDPOINT_NOT_FOUND", format!("No API found for 'POST {route}'"))),
    }
}

async fn create_upload_url(State(Shared(local)): State<Shared>, body: axum::body::Bytes) -> Reply {
    let path = path_of(&body, "/api/2.0/fs/create-upload-url")?;
    let (name, version, file) = models_file(&local, &path)?;
    // Unity Catalog takes writes only while the version awaits its files.
    if !is_pending(&local, &name, &version) {
        return Err(api(
            403,
            "PERMISSION_DENIED",
            format!("Version {version} of {name} is not PENDING_REGISTRATION: its files cannot be written."),
        ));
    }
    super::reply::ok(grant(&local, file, true))
}

async fn create_download_url(State(Shared(local)): State<Shared>, body: axum::body::Bytes) -> Reply {
    let path = path_of(&body, "/api/2.0/fs/create-download-url")?;
    let (_, _, file) = models_file(&local, &path)?;
    if !file.is_file() {
        return Err(not_found());
    }
    super::reply::ok(grant(&local, file, false))
}

async fn put_presigned(State(Shared(local)): State<Shared>, UrlPath(nonce): UrlPath<String>, body: Body) -> Reply {
    let file = redeem(&local, &nonce, true)?;
    write_file(&file, body).await?;
    Ok(StatusCode::OK.into_response())
}

async fn get_presigned(State(Shared(local)): State<Shared>, UrlPath(nonce): UrlPath<String>) -> Reply {
    let file = redeem(&local, &nonce, false)?;
    read_file(&file, false).await
}

// ---- files ------------------------------------------------------------------------

/// Streamed to a temporary file beside the target, then renamed: never a partial file.
pub(super) async fn write_file(file: &Path, body: Body) -> Result<(), Response> {
    let parent = file.parent().ok_or_else(|| invalid("The path has no parent directory."))?;
    tokio::fs::create_dir_all(parent).await.map_err(|e| io_error("could not create the directory", e))?;
    let tmp = parent.join(format!(".upload-{}", super::util::random_hex(8)));
    let result = async {
        let mut f = tokio::fs::File::create(&tmp).await.map_err(|e| io_error("could not store the upload", e))?;
        let mut stream = body.into_data_stream();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| api(400, "BAD_REQUEST", format!("the upload was interrupted: {e}")))?;
            size += chunk.len() as u64;
            if size > FILE_MAX {
                return Err(invalid(format!("The file exceeds the maximum size of {FILE_MAX} bytes.")));
            }
            f.write_all(&chunk).await.map_err(|e| io_error("could not store the upload", e))?;
        }
        f.flush().await.map_err(|e| io_error("could not store the upload", e))?;
        tokio::fs::rename(&tmp, file).await.map_err(|e| io_error("could not store the upload", e))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

pub(super) async fn read_file(file: &Path, head: bool) -> Reply {
    let meta = tokio::fs::metadata(file).await.map_err(|_| not_found())?;
    if meta.is_dir() {
        return Err(not_found());
    }
    let body = if head {
        Body::empty()
    } else {
        let f = tokio::fs::File::open(file).await.map_err(|_| not_found())?;
        Body::from_stream(tokio_util::io::ReaderStream::new(f))
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    if let Ok(m) = meta.modified() {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(m)) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }
    Ok(r)
}

/// A directory listing in the Files API's shape, entries named by `api_dir`.
fn listing(dir: &Path, api_dir: &str, head: bool) -> Reply {
    let meta = std::fs::metadata(dir).map_err(|_| api(404, "NOT_FOUND", "The directory being accessed is not found."))?;
    // A file is no directory: NOT_FOUND, which MLflow's Databricks clients
    // take as "a file, not a directory" when they list before downloading.
    if !meta.is_dir() {
        return Err(api(404, "NOT_FOUND", format!("The directory {api_dir} is not found: it is a file.")));
    }
    if head {
        return Ok(StatusCode::OK.into_response());
    }
    let mut entries: Vec<(String, std::fs::Metadata)> = std::fs::read_dir(dir)
        .map_err(|e| io_error("could not list", e))?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.metadata().ok()?)))
        .filter(|(n, _)| !n.starts_with(".upload-"))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let contents: Vec<Value> = entries
        .iter()
        .map(|(name, m)| {
            let modified = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
            let mut e = json!({"path": format!("{}/{name}", api_dir.trim_end_matches('/')), "name": name,
                               "is_directory": m.is_dir(),
                               "last_modified": modified.map(|d| d.as_millis() as u64).unwrap_or(0)});
            if !m.is_dir() {
                e["file_size"] = json!(m.len());
            }
            e
        })
        .collect();
    super::reply::ok(json!({"contents": contents}))
}

async fn list_models(State(Shared(local)): State<Shared>, method: Method, UrlPath(rel): UrlPath<String>) -> Reply {
    let api_dir = format!("/Models/{}", rel.trim_end_matches('/'));
    let (_, _, dir) = models_file(&local, &api_dir)?;
    listing(&dir, &api_dir, method == Method::HEAD)
}

async fn list_tracking(State(Shared(local)): State<Shared>, method: Method, UrlPath(rel): UrlPath<String>) -> Reply {
    let dir = tracking_file(&local, &rel)?;
    listing(&dir, &format!("/WorkspaceInternal/{}", rel.trim_end_matches('/')), method == Method::HEAD)
}

async fn put_tracking(
    State(Shared(local)): State<Shared>,
    UrlPath(rel): UrlPath<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Reply {
    let file = tracking_file(&local, &rel)?;
    let overwrite = !q.unwrap_or_default().contains("overwrite=false");
    if !overwrite && file.exists() {
        return Err(api(409, "ALREADY_EXISTS", format!("The file /WorkspaceInternal/{rel} already exists.")));
    }
    write_file(&file, body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_tracking(State(Shared(local)): State<Shared>, method: Method, UrlPath(rel): UrlPath<String>) -> Reply {
    let file = tracking_file(&local, &rel)?;
    read_file(&file, method == Method::HEAD).await
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn paths_stay_inside_their_root() {
        assert_eq!(clean("a/b//c/").ok(), Some(vec!["a", "b", "c"]));
        assert!(clean("a/../b").is_err());
        assert!(clean("./a").is_err());
    }
}
