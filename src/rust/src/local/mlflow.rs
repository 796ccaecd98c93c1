//! MLflow on the local cluster: a real `mlflow server` (the `mlflow` package of
//! the cluster's Python; SQLite backend and artifacts under the state
//! directory), started on the first MLflow request and stopped with the
//! cluster. The workspace answers MLflow's REST routes (`/api/2.0/mlflow/...`,
//! the `mlflow-artifacts` proxy, `/api/3.0/mlflow/...`) by forwarding them to
//! it, so the official Python client configured with the local host and token
//! works. Artifacts live under `dbfs:/databricks/mlflow-tracking/` and the
//! Unity Catalog registry routes are `uc_registry.rs`'s.
//!
//! Wiring: `.merge(mlflow::routes())` in the router, [`Mlflow`] in the shared
//! state.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONNECTION, HOST, TRANSFER_ENCODING};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use futures_util::TryStreamExt;

use super::reply;
use super::mlflow_state::{Mlflow, Running};
use super::state::{Local, Shared};

/// `mlflow server` runs its web server (uvicorn) as a child process, which
/// would outlive a server killed with SIGKILL. So a supervisor leads the
/// process group: told of the server's death (SIGTERM, see `start`), it kills
/// the whole group, itself included.
const SUPERVISOR: &str = "import os, signal, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
sys.exit(subprocess.call([sys.executable, '-m', 'mlflow'] + sys.argv[1:]))";

/// How long the server may take to answer `/health` after it is spawned
/// (importing MLflow's server takes seconds; tens of seconds on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(240);


/// The MLflow routes, forwarded to the cluster's MLflow server (streamed:
/// no body limit, a model's bytes can be large).
pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/2.0/mlflow/{*path}", any(proxy))
        .route("/api/2.0/mlflow-artifacts/{*path}", any(proxy))
        .route("/api/3.0/mlflow/{*path}", any(proxy))
        .route("/ajax-api/2.0/mlflow/{*path}", any(proxy))
}

impl Mlflow {
    /// The server's base URL, starting it if needed (once; concurrent callers wait).
    pub(super) async fn url(&self, local: &Arc<Local>) -> Result<String, Response> {
        let mut g = self.server.lock().await;
        if let Some(r) = g.as_mut() {
            if matches!(r.child.try_wait(), Ok(None)) {
                return Ok(r.url.clone());
            }
            *g = None; // it died: start another on the same store
        }
        let running = start(local).await?;
        let url = running.url.clone();
        *g = Some(running);
        Ok(url)
    }

    /// Kill the server (its process group). Idempotent.
    fn stop(&self) {
        if let Ok(mut g) = self.server.try_lock() {
            // Dropping the server kills its process group.
            drop(g.take());
        }
    }
}

fn unavailable(message: String) -> Response {
    reply::api(503, "TEMPORARILY_UNAVAILABLE", message)
}

async fn start(local: &Arc<Local>) -> Result<Running, Response> {
    let dir = local.state_dir.join("mlflow");
    std::fs::create_dir_all(dir.join("artifacts"))
        .map_err(|e| unavailable(format!("could not create {}: {e}", dir.display())))?;
    let port = free_port().map_err(|e| unavailable(format!("no free port for the MLflow server: {e}")))?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| unavailable(format!("could not create {}: {e}", log_path.display())))?;
    let log_err = log.try_clone().map_err(|e| unavailable(format!("could not open the log: {e}")))?;
    let mut cmd = tokio::process::Command::new(&local.tools_python);
    cmd.args(["-c", SUPERVISOR, "server", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        // Artifacts where a workspace's tracking server puts them: the
        // client moves them through this server's Files API (uc_artifacts.rs).
        .args(["--default-artifact-root", "dbfs:/databricks/mlflow-tracking"])
        .args(["--no-serve-artifacts", "--workers", "1"])
        .current_dir(&dir)
        // Job execution (a huey consumer and its workers) is off: ~2 GB less.
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_REGISTRY_URI")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true);
    super::util::own_group_told_of_parent_death(&mut cmd, libc::SIGTERM);
    let mut child = cmd.spawn().map_err(|e| {
        unavailable(format!("could not start the MLflow server with {}: {e}", local.tools_python))
    })?;
    let url = format!("http://127.0.0.1:{port}");
    let client = proxy_client();
    let began = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = log_tail(&log_path);
            let missing = tail.contains("No module named mlflow");
            let hint = if missing {
                format!(
                    "MLflow is not installed in the local cluster's Python ({}): install it with `{} -m pip install mlflow`.",
                    local.tools_python, local.tools_python
                )
            } else {
                format!("The MLflow server exited ({status}); its log ends with: {tail}")
            };
            return Err(reply::api(501, "FEATURE_DISABLED", hint));
        }
        let healthy = client
            .get(format!("{url}/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if healthy {
            break;
        }
        if began.elapsed() > START_TIMEOUT {
            super::util::kill_group(child.id().map(|p| p as i32));
            return Err(unavailable(format!(
                "The local MLflow server did not answer within {} s; see {}.",
                START_TIMEOUT.as_secs(),
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Stopped with the cluster.
    let shutdown = local.shutdown.clone();
    let weak = Arc::downgrade(local);
    tokio::spawn(async move {
        shutdown.cancelled().await;
        if let Some(local) = weak.upgrade() {
            local.mlflow.stop();
        }
    });
    Ok(Running { url, child })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

fn proxy_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default()
        })
        .clone()
}

/// Forward the request (method, path, query, headers but the workspace's
/// Authorization, body streamed) and stream the answer back. Nothing of it
/// is parsed here: MLflow's server answers, errors included.
async fn proxy(
    State(Shared(local)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let base = match local.mlflow.url(&local).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let target = format!("{base}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut out = proxy_client().request(method, target);
    for (name, value) in headers.iter() {
        if name == AUTHORIZATION || name == HOST || name == CONNECTION || name == TRANSFER_ENCODING {
            continue;
        }
        out = out.header(name, value);
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    out = out.body(reqwest::Body::wrap_stream(stream));
    match out.send().await {
        Ok(resp) => {
            let mut builder = Response::builder().status(resp.status().as_u16());
            for (name, value) in resp.headers().iter() {
                if name == CONNECTION || name == TRANSFER_ENCODING {
                    continue;
                }
                builder = builder.header(name, value);
            }
            builder
                .body(Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|e| unavailable(format!("could not relay MLflow's answer: {e}")))
        }
        Err(e) => unavailable(format!("the local MLflow server did not answer: {e}")),
    }
}
