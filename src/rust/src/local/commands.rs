//! Command Execution API 1.2: `contexts/create|status|destroy` and
//! `commands/execute|status|cancel`. camelCase parameters from the query, JSON,
//! form or multipart bodies; errors in the legacy `{"error": ...}` shape.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::cluster::ClusterState;
use super::contexts::Context;
use super::extract::{size_note, BodyLimit, Fields, Legacy};
use super::params::Params;
use super::reply::{self, legacy, Reply};
use super::state::{Compute, Shared};

type Input = Fields<Legacy>;

/// Command Execution bodies carry the command text (notebook cells take 6 MB).
const COMMAND_BODY_MAX: usize = 8 << 20;

pub fn router() -> Router<Shared> {
    let limit = BodyLimit {
        max: COMMAND_BODY_MAX,
        too_large: |_, n, max| legacy(format!("The request body{} exceeds the maximum of {max} bytes.", size_note(n))),
    };
    Router::new()
        .route("/api/1.2/contexts/create", post(context_create))
        .route("/api/1.2/contexts/status", get(context_status))
        .route("/api/1.2/contexts/destroy", post(context_destroy))
        .route("/api/1.2/commands/execute", post(execute))
        .route("/api/1.2/commands/status", get(status))
        .route("/api/1.2/commands/cancel", post(cancel))
        .layer(limit.layer())
}

fn required(p: &Params, name: &str) -> Result<String, Response> {
    p.nonempty(name).ok_or_else(|| legacy(format!("requirement failed: missing {name}")))
}

/// `clusterId` must name our cluster, and the cluster must be RUNNING.
fn running_cluster(c: &Compute, p: &Params) -> Result<(), Response> {
    let id = required(p, "clusterId")?;
    if id != c.cluster.spec.id {
        return Err(legacy(format!("Cluster {id} does not exist")));
    }
    match c.state() {
        ClusterState::Running => Ok(()),
        s => Err(legacy(format!(
            "Cluster {id} is not running: its state is {}. Start it (clusters/start) and wait until it is RUNNING.",
            s.wire()
        ))),
    }
}

fn context(c: &Compute, p: &Params) -> Result<Arc<Context>, Response> {
    let id = required(p, "contextId")?;
    c.contexts.get(&id).ok_or_else(|| {
        legacy(format!(
            "Execution context does not exist: context {id} is not on cluster {} (it was destroyed, evicted, or lost in a cluster restart).",
            c.cluster.spec.id
        ))
    })
}

fn python_only(p: &Params) -> Result<(), Response> {
    match p.str("language") {
        None => Ok(()),
        Some(l) if l.eq_ignore_ascii_case("python") => Ok(()),
        Some(l) => Err(legacy(format!(
            "Language {l:?} is not supported by the dbrxr local cluster: its contexts run Python only (run R through rpy2)."
        ))),
    }
}

/// A command's language: Python, or SQL (run by the context's `spark.sql`,
/// answered as a table as on Databricks). Contexts stay Python.
fn command_language(p: &Params) -> Result<&'static str, Response> {
    match p.str("language") {
        None => Ok("python"),
        Some(l) if l.eq_ignore_ascii_case("python") => Ok("python"),
        Some(l) if l.eq_ignore_ascii_case("sql") => Ok("sql"),
        Some(l) => Err(legacy(format!(
            "Language {l:?} is not supported by the dbrxr local cluster: its commands run Python, or SQL through Spark (run R through rpy2)."
        ))),
    }
}

async fn context_create(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    running_cluster(&c, &p)?;
    python_only(&p)?;
    let id = c.contexts.create().map_err(legacy)?;
    reply::ok(json!({"id": id}))
}

async fn context_status(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    running_cluster(&c, &p)?;
    let ctx = context(&c, &p)?;
    let (status, _) = ctx.status();
    reply::ok(json!({"id": ctx.id, "status": status.wire()}))
}

async fn context_destroy(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    running_cluster(&c, &p)?;
    let ctx = context(&c, &p)?;
    c.contexts.destroy(&ctx.id);
    reply::empty()
}

async fn execute(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    running_cluster(&c, &p)?;
    let ctx = context(&c, &p)?;
    let language = command_language(&p)?;
    let code = p.str("command").ok_or_else(|| legacy("requirement failed: missing command"))?;
    let id = ctx.submit(code, language, &c.contexts.stats).map_err(legacy)?;
    reply::ok(json!({"id": id}))
}

fn unknown_command(id: &str) -> Response {
    legacy(format!("Command {id} was not found (unknown command id)."))
}

async fn status(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    running_cluster(&c, &p)?;
    let ctx = context(&c, &p)?;
    let id = required(&p, "commandId")?;
    // A workspace answers at once; a check that comes just before the end is
    // answered at the end here (`status_hold_ms`, 1 ms), so a short command
    // needs no second check. A check of a long command takes that much more.
    let (status, results) =
        ctx.command_within(&id, c.contexts.spec.status_hold).await.ok_or_else(|| unknown_command(&id))?;
    let mut v = json!({"id": id, "status": status.wire()});
    if let Some(r) = results {
        v["results"] = r;
    }
    reply::ok(v)
}

async fn cancel(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    running_cluster(&c, &p)?;
    let ctx = context(&c, &p)?;
    let id = required(&p, "commandId")?;
    ctx.cancel(&id, &c.contexts).map_err(|_| unknown_command(&id))?;
    reply::empty()
}
