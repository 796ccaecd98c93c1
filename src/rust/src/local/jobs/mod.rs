//! Jobs API 2.2, the subset dbrxr's job verbs and the SDKs' jobs calls use:
//! `runs/submit|get|get-output|cancel|list` and `create|get|list|run-now|
//! reset|delete`, under `/api/2.1` and `/api/2.2`.
//!
//! A run's task is a `spark_python_task`: its `python_file` (a `dbfs:/` or
//! `/Volumes/` path, mapped into the state directory) runs with its
//! `parameters` in a process of its own, on the local cluster
//! (`existing_cluster_id`, which must be RUNNING or is started) or on a new
//! local job cluster (`new_cluster` / `job_cluster_key`: its own process
//! group, terminated after the run). stdout and stderr go to the task's log,
//! which `runs/get-output` returns (`logs`, and `error`/`error_trace` from a
//! Python traceback). Quartz schedules fire while the server runs.
//!
//! Modules: `api` (routes and shapes), `exec` (running tasks), `scheduler`
//! (cron firing), `cron` (Quartz expressions and time zones), `model` (runs,
//! jobs and their states). State is ours (`Jobs`), held by the router.

pub mod cron;
mod api;
mod exec;
mod model;
mod scheduler;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::state::Local;
pub use model::Jobs;

pub use super::cluster::now_ms;

/// The Jobs routes with their own state, mergeable into the server's router
/// (whatever its state type). Starts the scheduler, which ends with the server.
pub fn router<S: Clone + Send + Sync + 'static>(local: Arc<Local>) -> Router<S> {
    let jobs = Jobs::new(local);
    scheduler::start(jobs.clone());
    let mut r = Router::new();
    for v in ["2.1", "2.2"] {
        r = r
            .route(&format!("/api/{v}/jobs/runs/submit"), post(api::runs_submit))
            .route(&format!("/api/{v}/jobs/runs/get"), get(api::runs_get))
            .route(&format!("/api/{v}/jobs/runs/get-output"), get(api::runs_get_output))
            .route(&format!("/api/{v}/jobs/runs/cancel"), post(api::runs_cancel))
            .route(&format!("/api/{v}/jobs/runs/list"), get(api::runs_list))
            .route(&format!("/api/{v}/jobs/create"), post(api::jobs_create))
            .route(&format!("/api/{v}/jobs/get"), get(api::jobs_get))
            .route(&format!("/api/{v}/jobs/list"), get(api::jobs_list))
            .route(&format!("/api/{v}/jobs/run-now"), post(api::jobs_run_now))
            .route(&format!("/api/{v}/jobs/reset"), post(api::jobs_reset))
            .route(&format!("/api/{v}/jobs/delete"), post(api::jobs_delete));
    }
    r.with_state(jobs)
}

/// Validate a schedule as the local cluster would (the client calls this
/// before any request): `Err` says what is wrong.
pub fn check_schedule(expr: &str, timezone_id: &str) -> Result<(), String> {
    cron::check(expr, timezone_id)
}
