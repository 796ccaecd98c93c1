//! The session against a small fake of the Clusters and 1.2 APIs: cluster
//! start, lazy context, adaptive polling, cancel, timeout, lost contexts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dbrxr::config::{AuthSpec, Config};
use dbrxr::redact::Secret;
use dbrxr::control::Control;
use dbrxr::session::{RunOptions, Session};
use dbrxr::ErrorKind;
use serde_json::{json, Value};

struct Cmd {
    started: Instant,
    run_for: Duration,
    cancelled: bool,
}

#[derive(Default)]
struct Fake {
    cluster: String,
    pending_since: Option<Instant>,
    starts: u32,
    contexts: HashMap<String, u32>,
    created: u32,
    destroyed: u32,
    commands: HashMap<String, Cmd>,
    executes: Vec<Instant>,
    first_status: Vec<Instant>,
    cancels: u32,
    lose_context_once: bool,
    /// The first context created ends in `Error` (an overloaded driver).
    fail_first_context: bool,
}

type S = Arc<Mutex<Fake>>;
type Q = Query<HashMap<String, String>>;

fn legacy_error(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response()
}

fn app(s: S) -> Router {
    Router::new()
        .route("/api/2.1/clusters/get", get(|State(s): State<S>| async move {
            let mut f = s.lock().unwrap();
            if f.cluster == "PENDING" && f.pending_since.is_some_and(|t| t.elapsed() > Duration::from_millis(150)) {
                f.cluster = "RUNNING".into();
            }
            Json(json!({"cluster_id": "c1", "state": f.cluster, "state_message": "warming up"}))
        }))
        .route("/api/2.1/clusters/start", post(|State(s): State<S>| async move {
            let mut f = s.lock().unwrap();
            f.starts += 1;
            f.cluster = "PENDING".into();
            f.pending_since = Some(Instant::now());
            Json(json!({}))
        }))
        .route("/api/1.2/contexts/create", post(|State(s): State<S>| async move {
            let mut f = s.lock().unwrap();
            f.created += 1;
            let id = format!("{}", 1000 + f.created);
            f.contexts.insert(id.clone(), 0);
            Json(json!({ "id": id }))
        }))
        .route("/api/1.2/contexts/status", get(|State(s): State<S>, Query(q): Q| async move {
            let mut f = s.lock().unwrap();
            let id = q.get("contextId").cloned().unwrap_or_default();
            match f.contexts.get_mut(&id) {
                Some(polls) => {
                    *polls += 1;
                    let polls = *polls;
                    let st = if f.fail_first_context && id == "1001" && polls > 1 {
                        "Error"
                    } else if polls > 1 {
                        "Running"
                    } else {
                        "Pending"
                    };
                    Json(json!({"id": id, "status": st})).into_response()
                }
                None => legacy_error(format!("Context {id} does not exist")),
            }
        }))
        .route("/api/1.2/contexts/destroy", post(|State(s): State<S>, Json(b): Json<Value>| async move {
            let mut f = s.lock().unwrap();
            f.destroyed += 1;
            f.contexts.remove(b["contextId"].as_str().unwrap_or(""));
            Json(json!({}))
        }))
        .route("/api/1.2/commands/execute", post(|State(s): State<S>, Json(b): Json<Value>| async move {
            let mut f = s.lock().unwrap();
            let ctx = b["contextId"].as_str().unwrap_or("").to_string();
            if f.lose_context_once {
                f.lose_context_once = false;
                f.contexts.remove(&ctx);
            }
            if !f.contexts.contains_key(&ctx) {
                return legacy_error(format!("Context {ctx} does not exist"));
            }
            let code = b["command"].as_str().unwrap_or("");
            let ms = code.strip_prefix("sleep:").and_then(|m| m.parse().ok()).unwrap_or(0);
            let id = format!("cmd{}", f.executes.len());
            f.executes.push(Instant::now());
            f.commands.insert(id.clone(), Cmd { started: Instant::now(), run_for: Duration::from_millis(ms), cancelled: false });
            Json(json!({ "id": id })).into_response()
        }))
        .route("/api/1.2/commands/status", get(|State(s): State<S>, Query(q): Q| async move {
            let mut f = s.lock().unwrap();
            let id = q.get("commandId").cloned().unwrap_or_default();
            let n = f.first_status.len();
            if n < f.executes.len() {
                f.first_status.push(Instant::now());
            }
            let Some(c) = f.commands.get(&id) else { return legacy_error(format!("Command {id} does not exist")) };
            let body = if c.cancelled {
                json!({"id": id, "status": "Cancelled"})
            } else if c.started.elapsed() >= c.run_for {
                json!({"id": id, "status": "Finished", "results": {"resultType": "text", "data": "Out[3]: 42"}})
            } else {
                json!({"id": id, "status": "Running"})
            };
            Json(body).into_response()
        }))
        .route("/api/1.2/commands/cancel", post(|State(s): State<S>, Json(b): Json<Value>| async move {
            let mut f = s.lock().unwrap();
            f.cancels += 1;
            if let Some(c) = f.commands.get_mut(b["commandId"].as_str().unwrap_or("")) {
                c.cancelled = true;
            }
            Json(json!({}))
        }))
        .with_state(s)
}

async fn setup(cluster: &str) -> (Session, S) {
    let s: S = Arc::new(Mutex::new(Fake { cluster: cluster.into(), ..Default::default() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let app = app(s.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = Config {
        host,
        cluster_id: "c1".into(),
        auth: AuthSpec::Pat { token: Secret::new("dapi-test-token-000000") },
        profile: None,
        config_file: None,
        staging: None,
        sources: BTreeMap::new(),
        warnings: Vec::new(),
    };
    (Session::new(config).unwrap(), s)
}

fn opts() -> RunOptions {
    RunOptions { poll_max: Duration::from_millis(200), ..Default::default() }
}

#[tokio::test]
async fn terminated_cluster_is_started_then_commands_reuse_one_context() {
    let (session, s) = setup("TERMINATED").await;
    let ctl = Control::default();
    let r = session.run_command("1", &opts(), &ctl).await.unwrap();
    assert_eq!(r["data"], "42");
    assert_eq!(r["resultType"], "text");
    let r2 = session.run_command("2", &opts(), &ctl).await.unwrap();
    assert_eq!(r2["context_id"], r["context_id"]);
    {
        let f = s.lock().unwrap();
        assert_eq!(f.starts, 1);
        assert_eq!(f.created, 1);
    }
    session.close().await;
    let f = s.lock().unwrap();
    assert_eq!(f.destroyed, 1);
    assert!(f.contexts.is_empty());
}

#[tokio::test]
async fn first_status_check_comes_within_milliseconds() {
    let (session, s) = setup("RUNNING").await;
    let ctl = Control::default();
    session.run_command("warm", &opts(), &ctl).await.unwrap();
    let t = Instant::now();
    session.run_command("pass", &opts(), &ctl).await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(100), "warm round trip {:?}", t.elapsed());
    let f = s.lock().unwrap();
    let gap = f.first_status[1] - f.executes[1];
    assert!(gap < Duration::from_millis(30), "first status after {gap:?}");
}

#[tokio::test]
async fn cancel_stops_the_remote_command_quickly() {
    let (session, s) = setup("RUNNING").await;
    let ctl = Control::default();
    let c2 = ctl.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel.cancel();
    });
    let t = Instant::now();
    let e = session.run_command("sleep:60000", &opts(), &ctl).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled);
    assert_eq!(e.get_field("final_status"), Some("Cancelled"));
    assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
    assert_eq!(s.lock().unwrap().cancels, 1);
    // The context is still usable.
    let r = session.run_command("1", &opts(), &Control::default()).await.unwrap();
    assert_eq!(r["data"], "42");
}

#[tokio::test]
async fn timeout_cancels_and_reports_the_last_status() {
    let (session, s) = setup("RUNNING").await;
    let o = RunOptions { timeout: Some(Duration::from_millis(250)), ..opts() };
    let t = Instant::now();
    let e = session.run_command("sleep:60000", &o, &Control::default()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert_eq!(e.get_field("last_status"), Some("Running"));
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!(s.lock().unwrap().cancels, 1);
}

#[tokio::test]
async fn a_lost_context_is_recreated_and_the_command_resubmitted_once() {
    let (session, s) = setup("RUNNING").await;
    let ctl = Control::default();
    let first = session.run_command("1", &opts(), &ctl).await.unwrap();
    s.lock().unwrap().lose_context_once = true;
    let second = session.run_command("2", &opts(), &ctl).await.unwrap();
    assert_eq!(second["data"], "42");
    assert_ne!(second["context_id"], first["context_id"]);
    let f = s.lock().unwrap();
    assert_eq!(f.created, 2);
    assert_eq!(f.executes.len(), 2, "the rejected execute did not run, the retry did");
}

#[tokio::test]
async fn an_error_cluster_fails_with_its_state_message() {
    let (session, _s) = setup("ERROR").await;
    let e = session.run_command("1", &opts(), &Control::default()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cluster);
    assert!(e.message.contains("warming up"));
}

#[tokio::test]
async fn cluster_timeout_is_a_timeout_error() {
    let (session, _s) = setup("RESTARTING").await;
    let o = RunOptions { cluster_timeout: Duration::from_millis(300), ..opts() };
    let e = session.run_command("1", &o, &Control::default()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert_eq!(e.get_field("last_status"), Some("RESTARTING"));
}

#[tokio::test]
async fn a_context_that_ends_in_error_is_destroyed_and_created_again() {
    let (session, s) = setup("RUNNING").await;
    s.lock().unwrap().fail_first_context = true;
    let r = session.run_command("1", &opts(), &Control::default()).await.unwrap();
    assert_eq!(r["context_id"], "1002");
    let f = s.lock().unwrap();
    assert_eq!(f.created, 2);
    assert_eq!(f.destroyed, 1, "the failed context was destroyed");
}
