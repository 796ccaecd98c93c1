//! Jobs API 2.2 (reference: mlflow-and-jobs §3): one-off runs
//! (`runs/submit`), their state, output and cancel, and jobs
//! (`create|get|list|run-now|reset|delete`). Bodies are the service's JSON.
//!
//! Retries: the transport resends a request after an ambiguous failure (a
//! dropped connection) only when that is safe. `runs/submit` and `run-now`
//! always carry an `idempotency_token` (one is made when the caller gave
//! none), so a resent submit returns the run the first one started, never a
//! second run; they are then safe to resend. `jobs/create` has no token and
//! is never resent after an ambiguous failure.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::control::Control;
use crate::error::{Error, Result};
use crate::http::{Replay, Request, Transport};
use crate::poll::PollSchedule;

const V: &str = "/api/2.2/jobs";

/// A fresh idempotency token (64 characters at most, as the service wants).
pub fn new_token() -> String {
    use rand::Rng;
    format!("dbrxr-{}", hex::encode(rand::thread_rng().gen::<[u8; 16]>()))
}

/// `body` with an idempotency token (the caller's, else a fresh one).
fn with_token(mut body: Value) -> Result<Value> {
    let Some(obj) = body.as_object_mut() else {
        return Err(Error::internal("a jobs request body must be a JSON object"));
    };
    match obj.get("idempotency_token") {
        Some(Value::String(t)) if !t.is_empty() => {
            if t.chars().count() > 64 {
                return Err(Error::input("idempotency_token must be at most 64 characters"));
            }
        }
        _ => {
            obj.insert("idempotency_token".into(), json!(new_token()));
        }
    }
    Ok(body)
}

/// Unknown ids are the caller's error; say which.
fn not_found(e: Error, what: &str, id: i64) -> Error {
    if e.status == Some(400) && e.message.contains("does not exist") || e.status == Some(404) {
        e.field("not_found", what)
            .hint(format!("no {what} has the id {id} in this workspace (runs are removed after 60 days)"))
    } else {
        e
    }
}

/// `runs/submit`: the run id. Safe to resend (see the module docs).
pub async fn submit(t: &Transport, body: Value) -> Result<(i64, String)> {
    let body = with_token(body)?;
    let token = body["idempotency_token"].as_str().unwrap_or_default().to_string();
    let req = Request::post(format!("{V}/runs/submit")).json(&body)?.replay(Replay::Safe);
    let v: Value = t.json(req).await?;
    let id = v["run_id"].as_i64().ok_or_else(|| Error::internal(format!("runs/submit answered without a run_id: {v}")))?;
    Ok((id, token))
}

pub async fn get_run(t: &Transport, run_id: i64) -> Result<Value> {
    let req = Request::get(format!("{V}/runs/get")).query("run_id", run_id.to_string());
    t.json(req).await.map_err(|e| not_found(e, "run", run_id))
}

/// `runs/get-output` of a task run (the service refuses a multi-task run's).
pub async fn get_output(t: &Transport, task_run_id: i64) -> Result<Value> {
    let req = Request::get(format!("{V}/runs/get-output")).query("run_id", task_run_id.to_string());
    t.json(req).await.map_err(|e| not_found(e, "run", task_run_id))
}

/// `runs/cancel`: asynchronous; a no-op on a run that has ended.
pub async fn cancel(t: &Transport, run_id: i64) -> Result<()> {
    let req = Request::post(format!("{V}/runs/cancel")).json(&json!({"run_id": run_id}))?.replay(Replay::Safe);
    t.send(req).await.map_err(|e| not_found(e, "run", run_id)).map(|_| ())
}

/// `runs/list` (newest first), every page up to `max` runs.
pub async fn list_runs(t: &Transport, job_id: Option<i64>, active_only: bool, max: usize) -> Result<Vec<Value>> {
    let mut out = vec![];
    let mut token: Option<String> = None;
    loop {
        let mut req = Request::get(format!("{V}/runs/list")).query("limit", "25");
        if let Some(j) = job_id {
            req = req.query("job_id", j.to_string());
        }
        if active_only {
            req = req.query("active_only", "true");
        }
        if let Some(p) = &token {
            req = req.query("page_token", p.clone());
        }
        let v: Value = t.json(req).await?;
        out.extend(v["runs"].as_array().cloned().unwrap_or_default());
        token = v["next_page_token"].as_str().map(str::to_string);
        if token.is_none() || v["has_more"] != true || out.len() >= max {
            out.truncate(max);
            return Ok(out);
        }
    }
}

/// `jobs/create`: the job id. Never resent after an ambiguous failure.
pub async fn create(t: &Transport, settings: Value) -> Result<i64> {
    let req = Request::post(format!("{V}/create")).json(&settings)?.replay(Replay::Never);
    let v: Value = t.json(req).await?;
    v["job_id"].as_i64().ok_or_else(|| Error::internal(format!("jobs/create answered without a job_id: {v}")))
}

pub async fn get_job(t: &Transport, job_id: i64) -> Result<Value> {
    let req = Request::get(format!("{V}/get")).query("job_id", job_id.to_string());
    t.json(req).await.map_err(|e| not_found(e, "job", job_id))
}

/// `jobs/list`, every page (`name`: only jobs of that exact name).
pub async fn list_jobs(t: &Transport, name: Option<&str>) -> Result<Vec<Value>> {
    let mut out = vec![];
    let mut token: Option<String> = None;
    loop {
        let mut req = Request::get(format!("{V}/list")).query("limit", "100");
        if let Some(n) = name {
            req = req.query("name", n);
        }
        if let Some(p) = &token {
            req = req.query("page_token", p.clone());
        }
        let v: Value = t.json(req).await?;
        out.extend(v["jobs"].as_array().cloned().unwrap_or_default());
        token = v["next_page_token"].as_str().map(str::to_string);
        if token.is_none() || v["has_more"] != true {
            return Ok(out);
        }
    }
}

/// `jobs/run-now` with an idempotency token: the run id.
pub async fn run_now(t: &Transport, job_id: i64, body: Value) -> Result<i64> {
    let mut body = with_token(body)?;
    body["job_id"] = json!(job_id);
    let req = Request::post(format!("{V}/run-now")).json(&body)?.replay(Replay::Safe);
    let v: Value = t.json(req).await.map_err(|e| not_found(e, "job", job_id))?;
    v["run_id"].as_i64().ok_or_else(|| Error::internal(format!("jobs/run-now answered without a run_id: {v}")))
}

pub async fn reset(t: &Transport, job_id: i64, settings: Value) -> Result<()> {
    let body = json!({"job_id": job_id, "new_settings": settings});
    let req = Request::post(format!("{V}/reset")).json(&body)?.replay(Replay::Safe);
    t.send(req).await.map_err(|e| not_found(e, "job", job_id)).map(|_| ())
}

pub async fn delete(t: &Transport, job_id: i64) -> Result<()> {
    let req = Request::post(format!("{V}/delete")).json(&json!({"job_id": job_id}))?.replay(Replay::Safe);
    t.send(req).await.map_err(|e| not_found(e, "job", job_id)).map(|_| ())
}

/// Whether a run's life cycle has ended.
pub fn terminal(run: &Value) -> bool {
    matches!(
        run["state"]["life_cycle_state"].as_str(),
        Some("TERMINATED" | "SKIPPED" | "INTERNAL_ERROR")
    )
}

/// Poll `runs/get` until the run ends (first look at once, then every 0.1 s
/// growing to `poll_max`); the progress says where it is. Cancelling the
/// wait leaves the run alone.
pub async fn wait_run(t: &Transport, run_id: i64, poll_max: Duration, ctl: &Control) -> Result<Value> {
    let started = Instant::now();
    let mut sched = PollSchedule::immediate(Duration::from_millis(100), poll_max);
    loop {
        let run = ctl.run(get_run(t, run_id)).await?;
        if terminal(&run) {
            return Ok(run);
        }
        ctl.set_progress(format!(
            "Run {run_id} is {} ({:.0} s)",
            run["state"]["life_cycle_state"].as_str().unwrap_or("?"),
            started.elapsed().as_secs_f64()
        ));
        ctl.sleep(sched.next_delay()).await?;
    }
}

/// A run or job id: a whole number, or a string of digits (R keeps ids as
/// text, since doubles print them with exponents and lose digits past 2^53).
fn id_arg(args: &Value, name: &str) -> Result<i64> {
    let v = &args[name];
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .or_else(|| v.as_str().filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).and_then(|s| s.parse().ok()))
        .ok_or_else(|| Error::input(format!("`{name}` must be a whole number")))
}

/// One Jobs operation by name, with its arguments as JSON (the R verbs'
/// single entry point; `poll_max` in seconds for `wait_run`).
pub async fn call(t: &Transport, op: &str, args: Value, ctl: &Control) -> Result<Value> {
    match op {
        "submit" => {
            let (id, token) = ctl.run(submit(t, args["body"].clone())).await?;
            Ok(json!({"run_id": id, "idempotency_token": token}))
        }
        "get_run" => ctl.run(get_run(t, id_arg(&args, "run_id")?)).await,
        "get_output" => ctl.run(get_output(t, id_arg(&args, "run_id")?)).await,
        "cancel" => ctl.run(cancel(t, id_arg(&args, "run_id")?)).await.map(|_| json!(true)),
        "list_runs" => {
            let job = args.get("job_id").filter(|v| !v.is_null()).map(|_| id_arg(&args, "job_id")).transpose()?;
            let max = args["max"].as_f64().unwrap_or(25.0).max(1.0) as usize;
            ctl.run(list_runs(t, job, args["active_only"] == true, max)).await.map(Value::Array)
        }
        "create" => ctl.run(create(t, args["settings"].clone())).await.map(|id| json!(id)),
        "get_job" => ctl.run(get_job(t, id_arg(&args, "job_id")?)).await,
        "list_jobs" => ctl.run(list_jobs(t, args["name"].as_str())).await.map(Value::Array),
        "run_now" => {
            let body = if args["body"].is_object() { args["body"].clone() } else { json!({}) };
            ctl.run(run_now(t, id_arg(&args, "job_id")?, body)).await.map(|id| json!(id))
        }
        "reset" => ctl.run(reset(t, id_arg(&args, "job_id")?, args["settings"].clone())).await.map(|_| json!(true)),
        "delete" => ctl.run(delete(t, id_arg(&args, "job_id")?)).await.map(|_| json!(true)),
        "wait_run" => {
            let cap = Duration::from_secs_f64(args["poll_max"].as_f64().unwrap_or(5.0).clamp(0.1, 60.0));
            wait_run(t, id_arg(&args, "run_id")?, cap, ctl).await
        }
        _ => Err(Error::internal(format!("unknown jobs operation {op:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submits_always_carry_a_token_and_keep_the_callers() {
        let b = with_token(json!({"run_name": "x"})).unwrap();
        let t = b["idempotency_token"].as_str().unwrap();
        assert!(t.starts_with("dbrxr-") && t.len() <= 64, "{t}");
        let b = with_token(json!({"idempotency_token": "mine"})).unwrap();
        assert_eq!(b["idempotency_token"], "mine");
        assert!(with_token(json!({"idempotency_token": "x".repeat(65)})).is_err());
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn ids_are_numbers_or_strings_of_digits() {
        assert_eq!(id_arg(&json!({"run_id": 3574646899253i64}), "run_id").unwrap(), 3574646899253);
        assert_eq!(id_arg(&json!({"run_id": 3574646899253.0}), "run_id").unwrap(), 3574646899253);
        assert_eq!(id_arg(&json!({"run_id": "9007199254740993"}), "run_id").unwrap(), 9007199254740993);
        for bad in [json!("12a"), json!(""), json!(1.5), json!(null), json!("99999999999999999999")] {
            assert!(id_arg(&json!({"run_id": bad}), "run_id").is_err(), "{bad}");
        }
    }

    #[test]
    fn terminal_states() {
        for (s, t) in [("TERMINATED", true), ("SKIPPED", true), ("INTERNAL_ERROR", true), ("RUNNING", false), ("QUEUED", false)] {
            assert_eq!(terminal(&json!({"state": {"life_cycle_state": s}})), t, "{s}");
        }
    }
}
