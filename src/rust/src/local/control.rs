//! Control routes for tests, under `/_local/` (token required): counters,
//! fault injection, cluster restart/terminate, context eviction.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use axum::response::Response;

use super::extract::{BodyLimit, Fields, Invalid, JsonBody, Shape};
use super::faults::FaultConfig;
use super::reply::{self, api, invalid, Reply};
use super::state::{Control, Shared};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/_local/stats", get(stats))
        .route("/_local/status", get(status))
        .route("/_local/faults", post(set_faults))
        .route("/_local/cluster/restart", post(restart))
        .route("/_local/cluster/terminate", post(terminate))
        .route("/_local/contexts/evict", post(evict))
        .layer(BodyLimit::SMALL.layer())
}

async fn stats(State(c): State<Control>) -> Reply {
    reply::ok(c.stats_json())
}

/// What a first call would wait for: the MLflow server, a context's Spark.
async fn status(State(Shared(local)): State<Shared>) -> Reply {
    reply::ok(json!({
        "mlflow_server": local.mlflow.running(),
        "spark_contexts": local.compute.contexts.with_spark(),
    }))
}

/// Fault settings that do not parse.
struct BadFaults;
impl Shape for BadFaults {
    fn reject(message: String) -> Response {
        invalid(format!("bad fault settings: {message}"))
    }
}

async fn set_faults(State(c): State<Control>, JsonBody(cfg, ..): JsonBody<FaultConfig, BadFaults>) -> Reply {
    cfg.check().map_err(invalid)?;
    c.faults.set(cfg.clone());
    reply::ok(json!({
        "status_429_rate": cfg.status_429_rate, "status_503_rate": cfg.status_503_rate,
        "retry_after_s": cfg.retry_after_s, "drop_rate": cfg.drop_rate,
        "latency_ms": cfg.latency_ms, "seed": cfg.seed,
    }))
}

async fn restart(State(c): State<Control>) -> Reply {
    c.compute.restart().map_err(|s| {
        api(400, "INVALID_STATE", format!("Cannot restart: the cluster is {}.", s.wire()))
    })?;
    reply::ok(json!({"state": c.compute.state().wire()}))
}

async fn terminate(State(c): State<Control>) -> Reply {
    c.compute.terminate();
    reply::ok(json!({"state": "TERMINATED"}))
}

/// Evict idle contexts (all of them, or the one named by `context_id`).
async fn evict(State(c): State<Control>, Fields(p, ..): Fields<Invalid>) -> Reply {
    let evicted = match p.nonempty("context_id") {
        Some(id) => {
            if !c.compute.contexts.destroy(&id) {
                return Err(api(404, "RESOURCE_DOES_NOT_EXIST", format!("No context {id}.")));
            }
            vec![id]
        }
        None => c.compute.contexts.evict_idle(),
    };
    reply::ok(json!({"evicted": evicted}))
}
