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

/// A language of the service: `python`, `sql` or `r` (any case), as a
/// context's or a command's; `None` when the request names none. Scala is
/// refused: the local cluster has no JVM REPL.
fn language(p: &Params) -> Result<Option<&'static str>, Response> {
    match p.str("language") {
        None => Ok(None),
        Some(l) if l.eq_ignore_ascii_case("python") => Ok(Some("python")),
        Some(l) if l.eq_ignore_ascii_case("sql") => Ok(Some("sql")),
        Some(l) if l.eq_ignore_ascii_case("r") => Ok(Some("r")),
        Some(l) if l.eq_ignore_ascii_case("scala") => Err(legacy(
            "Language \"scala\" is not supported by the dbrxr local cluster: its contexts run Python, SQL (on the context's Spark session) and R, and it has no Scala REPL. Use one of python, sql or r.",
        )),
        Some(l) => Err(legacy(format!(
            "Language {l:?} is not supported: the languages of execution contexts are python, sql, r and scala (scala is not supported by the dbrxr local cluster)."
        ))),
    }
}

async fn context_create(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    running_cluster(&c, &p)?;
    let language = language(&p)?.unwrap_or("python");
    let id = c.contexts.create(language).map_err(legacy)?;
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
    // A command runs in the language it names (as a notebook's %sql or %r
    // cell does), else in its context's.
    let language = language(&p)?.unwrap_or(ctx.language);
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
