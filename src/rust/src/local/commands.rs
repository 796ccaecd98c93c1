//! Command Execution API 1.2: `contexts/create|status|destroy` and
//! `commands/execute|status|cancel`. camelCase parameters from the query, JSON,
//! form or multipart bodies; errors in the legacy `{"error": ...}` shape.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::json;

use super::clusters::{self, ClusterState};
use super::contexts::Context;
use super::params::Params;
use super::reply::{self, legacy, Reply};
use super::state::Local;

async fn params(req: Request) -> Result<Params, Response> {
    Params::parse(req).await.map_err(legacy)
}

fn required(p: &Params, name: &str) -> Result<String, Response> {
    p.nonempty(name).ok_or_else(|| legacy(format!("requirement failed: missing {name}")))
}

/// `clusterId` must name our cluster, and the cluster must be RUNNING.
fn running_cluster(local: &Local, p: &Params) -> Result<(), Response> {
    let id = required(p, "clusterId")?;
    if id != local.opts.cluster_id {
        return Err(legacy(format!("Cluster {id} does not exist")));
    }
    match clusters::current(local) {
        ClusterState::Running => Ok(()),
        s => Err(legacy(format!(
            "Cluster {id} is not running: its state is {}. Start it (clusters/start) and wait until it is RUNNING.",
            s.wire()
        ))),
    }
}

fn context(local: &Local, p: &Params) -> Result<Arc<Context>, Response> {
    let id = required(p, "contextId")?;
    local.contexts.get(&id).ok_or_else(|| {
        legacy(format!(
            "Execution context does not exist: context {id} is not on cluster {} (it was destroyed, evicted, or lost in a cluster restart).",
            local.opts.cluster_id
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

pub async fn context_create(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    running_cluster(&local, &p)?;
    python_only(&p)?;
    let id = local.contexts.create(&local).map_err(legacy)?;
    reply::ok(json!({"id": id}))
}

pub async fn context_status(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    running_cluster(&local, &p)?;
    let ctx = context(&local, &p)?;
    let (status, _) = ctx.status();
    reply::ok(json!({"id": ctx.id, "status": status.wire()}))
}

pub async fn context_destroy(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    running_cluster(&local, &p)?;
    let ctx = context(&local, &p)?;
    local.contexts.destroy(&ctx.id, &local.stats);
    reply::empty()
}

pub async fn execute(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    running_cluster(&local, &p)?;
    let ctx = context(&local, &p)?;
    let language = command_language(&p)?;
    let code = p.str("command").ok_or_else(|| legacy("requirement failed: missing command"))?;
    let id = ctx.submit(code, language, &local.stats).map_err(legacy)?;
    reply::ok(json!({"id": id}))
}

fn unknown_command(id: &str) -> Response {
    legacy(format!("Command {id} was not found (unknown command id)."))
}

pub async fn status(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    running_cluster(&local, &p)?;
    let ctx = context(&local, &p)?;
    let id = required(&p, "commandId")?;
    let (status, results) = ctx.command(&id).ok_or_else(|| unknown_command(&id))?;
    let mut v = json!({"id": id, "status": status.wire()});
    if let Some(r) = results {
        v["results"] = r;
    }
    reply::ok(v)
}

pub async fn cancel(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    running_cluster(&local, &p)?;
    let ctx = context(&local, &p)?;
    let id = required(&p, "commandId")?;
    ctx.cancel(&id, &local).map_err(|_| unknown_command(&id))?;
    reply::empty()
}
