//! Control routes for tests, under `/_local/` (token required): counters,
//! fault injection, cluster restart/terminate, context eviction.

use std::sync::Arc;

use axum::extract::{Request, State};
use serde_json::json;

use super::clusters;
use super::faults::FaultConfig;
use super::params::Params;
use super::reply::{self, api, invalid, Reply};
use super::state::Local;

pub async fn stats(State(local): State<Arc<Local>>) -> Reply {
    reply::ok(local.stats_json())
}

pub async fn set_faults(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| invalid(format!("could not read the body: {e}")))?;
    let cfg: FaultConfig = if body.iter().all(u8::is_ascii_whitespace) {
        FaultConfig::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| invalid(format!("bad fault settings: {e}")))?
    };
    cfg.check().map_err(invalid)?;
    local.faults.set(cfg.clone());
    reply::ok(json!({
        "status_429_rate": cfg.status_429_rate, "status_503_rate": cfg.status_503_rate,
        "retry_after_s": cfg.retry_after_s, "drop_rate": cfg.drop_rate,
        "latency_ms": cfg.latency_ms, "seed": cfg.seed,
    }))
}

pub async fn restart(State(local): State<Arc<Local>>) -> Reply {
    clusters::restart_now(&local).map_err(|s| {
        api(400, "INVALID_STATE", format!("Cannot restart: the cluster is {}.", s.wire()))
    })?;
    reply::ok(json!({"state": clusters::current(&local).wire()}))
}

pub async fn terminate(State(local): State<Arc<Local>>) -> Reply {
    clusters::terminate_now(&local);
    reply::ok(json!({"state": "TERMINATED"}))
}

/// Evict idle contexts (all of them, or the one named by `context_id`).
pub async fn evict(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = Params::parse(req).await.map_err(invalid)?;
    let evicted = match p.nonempty("context_id") {
        Some(id) => {
            if !local.contexts.destroy(&id, &local.stats) {
                return Err(api(404, "RESOURCE_DOES_NOT_EXIST", format!("No context {id}.")));
            }
            vec![id]
        }
        None => local.contexts.evict_idle(&local.stats),
    };
    reply::ok(json!({"evicted": evicted}))
}
