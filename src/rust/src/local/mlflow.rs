//! MLflow on the local cluster: a real `mlflow server` (the `mlflow` package of
//! the cluster's Python; SQLite backend under the state directory), started on
//! the first MLflow request and stopped with the cluster. The workspace
//! answers MLflow's REST routes (`/api/2.0/mlflow/...`, `/api/3.0/mlflow/...`;
//! a workspace has no `mlflow-artifacts` proxy) by forwarding them to it, so
//! the official Python client configured with the local host and token works.
//! Artifacts live under `dbfs:/databricks/mlflow-tracking/` and the Unity
//! Catalog registry routes are `uc_registry.rs`'s.
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
use serde_json::{json, Value};

use super::reply;
use super::mlflow_state::{Mlflow, Running, SocketDir};
use super::state::{Local, Shared};

/// `mlflow server` runs its web server (uvicorn) as a child process, which
/// would outlive a server killed with SIGKILL (and so would anything else it
/// starts). So the CLI runs in a launcher that gives every child it starts a
/// parent-death signal: whatever kills the CLI (the cluster stopping, the
/// cluster's own death through the launcher's parent-death signal, or a
/// `kill -9`), its children die with it.
const LAUNCHER: &str = "import ctypes, os, runpy, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
launcher = os.getpid()
def die_with_launcher():
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != launcher:
        os._exit(1)
class Popen(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault('preexec_fn', die_with_launcher)
        super().__init__(*args, **kwargs)
subprocess.Popen = Popen
sys.argv[0] = 'mlflow'
runpy.run_module('mlflow', run_name='__main__', alter_sys=True)";

/// How long the server may take to answer `/health` after it is spawned
/// (importing MLflow's server takes seconds; tens of seconds on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(240);


/// The MLflow routes, forwarded to the cluster's MLflow server (streamed:
/// no body limit, a model's bytes can be large).
pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/2.0/mlflow/{*path}", any(proxy))
        .route("/api/3.0/mlflow/{*path}", any(proxy))
        .route("/ajax-api/2.0/mlflow/{*path}", any(proxy))
}

impl Mlflow {
    /// A client of the server (its Unix socket; URLs start with
    /// [`SERVER_BASE`]), starting it if needed (once; concurrent callers wait).
    pub(super) async fn client(&self, local: &Arc<Local>) -> Result<reqwest::Client, Response> {
        let mut g = self.server.lock().await;
        if let Some(r) = g.as_mut() {
            if matches!(r.child.try_wait(), Ok(None)) {
                return Ok(r.client.clone());
            }
            *g = None; // it died: start another on the same store
        }
        let running = start(local).await?;
        let client = running.client.clone();
        *g = Some(running);
        Ok(client)
    }

    /// Kill the server (its process group). Idempotent.
    fn stop(&self) {
        if let Ok(mut g) = self.server.try_lock() {
            // Dropping the server kills its process group.
            drop(g.take());
        }
    }
}

/// Call the cluster's MLflow server (`/api/2.0/mlflow/<route>`): its answer,
/// or its error as the response to send back.
pub(super) async fn call(local: &Arc<Local>, method: Method, route: &str, body: Value) -> Result<Value, Response> {
    let client = local.mlflow.client(local).await?;
    let url = format!("{SERVER_BASE}/api/2.0/mlflow/{route}");
    let req = if method == Method::GET {
        let pairs: Vec<(String, String)> = body
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or(v.to_string()))).collect())
            .unwrap_or_default();
        client.get(url).query(&pairs)
    } else {
        client.request(method, url).json(&body)
    };
    let resp = req
        .send()
        .await
        .map_err(|e| unavailable(format!("the local MLflow server did not answer: {e}")))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(json!({}));
    if (200..300).contains(&status) {
        Ok(v)
    } else {
        let code = v["error_code"].as_str().unwrap_or("INTERNAL_ERROR").to_string();
        let message = v["message"].as_str().unwrap_or("the MLflow server refused the request").to_string();
        Err(reply::api(status, &code, message))
    }
}

fn unavailable(message: String) -> Response {
    reply::api(503, "TEMPORARILY_UNAVAILABLE", message)
}

/// The base URL of requests to the server: its Unix socket is the address,
/// and `localhost` is a host its own host check accepts.
pub(super) const SERVER_BASE: &str = "http://localhost";

async fn start(local: &Arc<Local>) -> Result<Running, Response> {
    let dir = local.state_dir.join("mlflow");
    std::fs::create_dir_all(&dir)
        .map_err(|e| unavailable(format!("could not create {}: {e}", dir.display())))?;
    let socket = SocketDir::create(&dir).map_err(|e| unavailable(format!("no place for MLflow's socket: {e}")))?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| unavailable(format!("could not create {}: {e}", log_path.display())))?;
    let log_err = log.try_clone().map_err(|e| unavailable(format!("could not open the log: {e}")))?;
    let mut cmd = super::child_env::command(&local.tools_python, &[]);
    // MLflow listens on a Unix socket in a directory only this user can
    // enter, never on a port: the workspace's routes, which check the
    // token, are the only way in.
    cmd.args(["-c", LAUNCHER, "server", "--uvicorn-opts"])
        .arg(format!("--uds {}", socket.path().display()))
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        // Artifacts where a workspace's tracking server puts them: the
        // client moves them through this server's Files API (uc_artifacts.rs).
        .args(["--default-artifact-root", "dbfs:/databricks/mlflow-tracking"])
        .args(["--no-serve-artifacts", "--workers", "1"])
        .current_dir(&dir)
        // Job execution (a huey consumer and its workers) is off: ~2 GB less.
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true);
    super::util::own_group_dying_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        unavailable(format!("could not start the MLflow server with {}: {e}", local.tools_python))
    })?;
    let client = proxy_client(&socket.path());
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
            .get(format!("{SERVER_BASE}/health"))
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
    Ok(Running { client, child, _socket: socket })
}

fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// A client whose every connection goes to the server's socket.
fn proxy_client(socket: &std::path::Path) -> reqwest::Client {
    reqwest::Client::builder()
        .unix_socket(socket)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
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
    let client = match local.mlflow.client(&local).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let target = format!("{SERVER_BASE}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let method_of_request = method.clone();
    let mut out = client.request(method, target);
    for (name, value) in headers.iter() {
        if name == AUTHORIZATION || name == HOST || name == CONNECTION || name == TRANSFER_ENCODING {
            continue;
        }
        out = out.header(name, value);
    }
    // Unity Catalog's rules on what creates a model or a version (uc_names).
    if let Some(what) = super::mlflow_rules::checked(&method_of_request, uri.path()) {
        let bytes = match axum::body::to_bytes(body, super::mlflow_rules::MAX_CHECKED_BODY).await {
            Ok(b) => b,
            Err(e) => return reply::api(400, "INVALID_PARAMETER_VALUE", format!("could not read the request: {e}")),
        };
        if let Err(refused) = super::mlflow_rules::check(&local, &client, SERVER_BASE, what, &bytes).await {
            return refused;
        }
        out = out.body(bytes);
    } else {
        let stream = body.into_data_stream().map_err(std::io::Error::other);
        out = out.body(reqwest::Body::wrap_stream(stream));
    }
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
