//! The Jobs routes: request checks and answers in the service's shapes and
//! errors (400 `INVALID_PARAMETER_VALUE` "Run 1 does not exist." and the like).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::cron::Schedule;
use super::exec;
use super::model::{Jobs, Life};
use crate::local::cluster::now_ms;
use crate::local::extract::{Fields, Invalid, JsonBody, Shape};
use crate::local::params::Params;
use crate::local::reply::{self, invalid, Reply};

type Obj = Map<String, Value>;

/// How the Jobs API answers a body it cannot parse (`400 MALFORMED_REQUEST`).
pub struct Unparsable;
impl Shape for Unparsable {
    fn reject(message: String) -> Response {
        reply::api(400, "MALFORMED_REQUEST", format!("Could not parse request object: {message}"))
    }
}

/// A POST body: a JSON object (an empty body has no fields).
type Body = JsonBody<Obj, Unparsable>;
/// A GET's fields: the query string (or a form body).
type Query = Fields<Invalid>;

fn missing(name: &str) -> Response {
    invalid(format!("Missing required field: {name}"))
}

/// An integer field of a JSON body (numbers or numeric strings).
fn int_field(m: &Obj, name: &str) -> Result<Option<i64>, Response> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| invalid(format!("{name} must be an integer, not {n}"))),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid(format!("{name} must be an integer, not {s:?}"))),
        Some(v) => Err(invalid(format!("{name} must be an integer, not {v}"))),
    }
}

fn run_id_of(p: Result<Option<i64>, String>) -> Result<i64, Response> {
    p.map_err(invalid)?.ok_or_else(|| missing("run_id"))
}

fn no_run(id: i64) -> Response {
    invalid(format!("Run {id} does not exist."))
}

fn no_job(id: i64) -> Response {
    invalid(format!("Job {id} does not exist."))
}

fn idempotency_token(m: &Obj) -> Result<Option<String>, Response> {
    match m.get("idempotency_token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > 64 => {
            Err(invalid("idempotency_token must be at most 64 characters long."))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(format!("idempotency_token must be a string, not {v}"))),
    }
}

/// Check `tasks` (and `job_clusters`): what the local cluster can run.
fn check_tasks(m: &Obj, ours: &str) -> Result<(Vec<Obj>, Vec<Value>), Response> {
    let job_clusters = match m.get("job_clusters") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(invalid("job_clusters must be an array.")),
    };
    let tasks = match m.get("tasks") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None | Some(Value::Null) => return Err(missing("tasks")),
        Some(_) => return Err(invalid("tasks must be an array.")),
    };
    let mut out = Vec::with_capacity(tasks.len());
    let mut keys = std::collections::HashSet::new();
    for t in tasks {
        let Some(t) = t.as_object() else { return Err(invalid("Each task must be an object.")) };
        let key = t.get("task_key").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| missing("task_key"))?;
        if !keys.insert(key.to_string()) {
            return Err(invalid(format!("Task key {key} is used by more than one task.")));
        }
        let Some(spt) = t.get("spark_python_task") else {
            let kind = t.keys().find(|k| k.ends_with("_task")).cloned().unwrap_or_else(|| "no task".to_string());
            return Err(invalid(format!(
                "Task {key} has {kind}: the dbrxr local cluster runs spark_python_task tasks only."
            )));
        };
        let file = spt.get("python_file").and_then(Value::as_str).filter(|f| !f.is_empty());
        if file.is_none() {
            return Err(missing("python_file"));
        }
        if let Some(p) = spt.get("parameters") {
            if !p.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                return Err(invalid(format!("spark_python_task.parameters of task {key} must be an array of strings.")));
            }
        }
        let clusters = ["existing_cluster_id", "new_cluster", "job_cluster_key"];
        match clusters.iter().filter(|c| t.contains_key(**c)).count() {
            1 => {}
            0 => {
                return Err(invalid(format!(
                    "Task {key} needs compute: one of existing_cluster_id, new_cluster or job_cluster_key (serverless compute does not run R)."
                )))
            }
            _ => return Err(invalid(format!("Task {key} may name only one of existing_cluster_id, new_cluster and job_cluster_key."))),
        }
        if let Some(id) = t.get("existing_cluster_id") {
            if id.as_str() != Some(ours) {
                return Err(invalid(format!("Cluster {} does not exist", id.as_str().unwrap_or(&id.to_string()))));
            }
        }
        if let Some(k) = t.get("job_cluster_key").and_then(Value::as_str) {
            if !job_clusters.iter().any(|c| c["job_cluster_key"] == k) {
                return Err(invalid(format!("Job cluster key {k} of task {key} is not defined in job_clusters.")));
            }
        }
        out.push(t.clone());
    }
    Ok((out, job_clusters))
}

fn timeout_field(m: &Obj) -> Result<u64, Response> {
    let t = int_field(m, "timeout_seconds")?.unwrap_or(0);
    if t < 0 {
        return Err(invalid("timeout_seconds must not be negative."));
    }
    Ok(t as u64)
}

pub async fn runs_submit(State(jobs): State<Arc<Jobs>>, JsonBody(m, ..): Body) -> Reply {
    let token = idempotency_token(&m)?;
    let (tasks, job_clusters) = check_tasks(&m, &jobs.local.opts.cluster_id)?;
    let timeout = timeout_field(&m)?;
    let name = m.get("run_name").and_then(Value::as_str).unwrap_or("Untitled").to_string();
    let mut g = jobs.lock();
    if let Some(id) = token.as_ref().and_then(|t| g.tokens.get(t)) {
        // The same submit again (a retry): the run it started.
        return reply::ok(json!({"run_id": id}));
    }
    let run_id = jobs.new_run(&mut g, None, name, "SUBMIT_RUN", "ONE_TIME", tasks, job_clusters, timeout, None, None);
    if let Some(t) = token {
        g.tokens.insert(t, run_id);
    }
    drop(g);
    exec::start(jobs.clone(), run_id);
    reply::ok(json!({"run_id": run_id}))
}

pub async fn runs_get(State(jobs): State<Arc<Jobs>>, Fields(p, ..): Query) -> Reply {
    let id = run_id_of(p.int("run_id"))?;
    let g = jobs.lock();
    if let Some(run) = g.runs.get(&id) {
        return reply::ok(jobs.run_json(run, true));
    }
    let (run_id, i) = *g.task_of.get(&id).ok_or_else(|| no_run(id))?;
    let run = &g.runs[&run_id];
    reply::ok(task_as_run(&jobs, run, i))
}

/// A task run as `runs/get` and `get-output`'s `metadata` show it.
fn task_as_run(jobs: &Jobs, run: &super::model::Run, i: usize) -> Value {
    let mut v = jobs.task_json(run, &run.tasks[i]);
    v["job_id"] = json!(run.job_id);
    v["run_name"] = json!(run.run_name);
    v["run_type"] = json!(run.run_type);
    v["trigger"] = json!(run.trigger);
    v["number_in_job"] = json!(run.tasks[i].run_id);
    v["creator_user_name"] = json!(super::model::CREATOR);
    v["parent_run_id"] = json!(run.run_id);
    v
}

pub async fn runs_get_output(State(jobs): State<Arc<Jobs>>, Fields(p, ..): Query) -> Reply {
    let id = run_id_of(p.int("run_id"))?;
    let g = jobs.lock();
    if g.runs.contains_key(&id) {
        return Err(invalid(
            "Retrieving the output of runs with multiple tasks is not supported. Please retrieve the output of each individual task run instead.",
        ));
    }
    let (run_id, i) = *g.task_of.get(&id).ok_or_else(|| no_run(id))?;
    let run = &g.runs[&run_id];
    let t = &run.tasks[i];
    let metadata = task_as_run(&jobs, run, i);
    let log = t.log.clone();
    let (error, trace) = (t.error.clone(), t.error_trace.clone());
    drop(g);
    let (logs, cut) = exec::read_tail_cut(&log, exec::LOGS_MAX);
    let mut v = json!({"metadata": metadata, "logs": logs, "logs_truncated": cut});
    if let Some(e) = error {
        v["error"] = json!(e);
    }
    if let Some(t) = trace {
        v["error_trace"] = json!(t);
    }
    reply::ok(v)
}

pub async fn runs_cancel(State(jobs): State<Arc<Jobs>>, JsonBody(m, ..): Body) -> Reply {
    let id = int_field(&m, "run_id")?.ok_or_else(|| missing("run_id"))?;
    let mut g = jobs.lock();
    let run_id = if g.runs.contains_key(&id) {
        id
    } else {
        g.task_of.get(&id).map(|(r, _)| *r).ok_or_else(|| no_run(id))?
    };
    let run = g.runs.get_mut(&run_id).ok_or_else(|| no_run(id))?;
    // Asynchronous, and a no-op on a run that has ended.
    if !run.progress.life.terminal() {
        run.cancel_reason.get_or_insert("cancel");
        run.cancel.cancel();
    }
    reply::empty()
}

fn flag(p: &Params, name: &str) -> Result<bool, Response> {
    Ok(p.bool(name).map_err(invalid)?.unwrap_or(false))
}

/// `page_token` is an offset here (opaque to clients, as on the service).
fn page(p: &Params, default: i64, max: i64) -> Result<(usize, usize), Response> {
    let limit = p.int("limit").map_err(invalid)?.unwrap_or(default);
    if limit < 1 || limit > max {
        return Err(invalid(format!("limit must be between 1 and {max}, not {limit}.")));
    }
    let offset = match p.nonempty("page_token") {
        Some(t) => t.parse::<usize>().map_err(|_| invalid(format!("Invalid page_token {t:?}.")))?,
        None => p.int("offset").map_err(invalid)?.unwrap_or(0).max(0) as usize,
    };
    Ok((offset, limit as usize))
}

fn paged(key: &str, items: Vec<Value>, offset: usize, limit: usize) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let has_more = offset + page.len() < total;
    let mut v = json!({"has_more": has_more});
    if !page.is_empty() {
        v[key] = Value::Array(page);
    }
    if has_more {
        v["next_page_token"] = json!((offset + limit).to_string());
    }
    if offset > 0 {
        v["prev_page_token"] = json!(offset.saturating_sub(limit).to_string());
    }
    v
}

pub async fn runs_list(State(jobs): State<Arc<Jobs>>, Fields(p, ..): Query) -> Reply {
    let job_id = p.int("job_id").map_err(invalid)?;
    let (active, completed) = (flag(&p, "active_only")?, flag(&p, "completed_only")?);
    if active && completed {
        return Err(invalid("active_only and completed_only cannot both be true."));
    }
    let run_type = p.nonempty("run_type");
    let expand = flag(&p, "expand_tasks")?;
    let (offset, limit) = page(&p, 25, 25)?;
    let g = jobs.lock();
    let runs: Vec<Value> = g
        .runs
        .values()
        .rev()
        .filter(|r| job_id.is_none_or(|j| r.job_id == j))
        .filter(|r| !active || !r.progress.life.terminal())
        .filter(|r| !completed || r.progress.life.terminal())
        .filter(|r| run_type.as_deref().is_none_or(|t| r.run_type == t))
        .map(|r| jobs.run_json(r, expand))
        .collect();
    reply::ok(paged("runs", runs, offset, limit))
}

/// Settings with the service's defaults, the schedule checked.
fn settings(m: &Obj, ours: &str) -> Result<(Obj, Option<Schedule>), Response> {
    check_tasks(m, ours)?;
    let mut s = m.clone();
    s.remove("idempotency_token");
    s.remove("access_control_list");
    s.entry("name").or_insert(json!("Untitled"));
    s.entry("max_concurrent_runs").or_insert(json!(1));
    s.entry("timeout_seconds").or_insert(json!(0));
    s.entry("email_notifications").or_insert(json!({}));
    s.insert("format".into(), json!("MULTI_TASK"));
    let max = int_field(&s, "max_concurrent_runs")?.unwrap_or(1);
    if !(0..=1000).contains(&max) {
        return Err(invalid("max_concurrent_runs must be between 0 and 1000."));
    }
    timeout_field(&s)?;
    let schedule = match s.get_mut("schedule") {
        None | Some(Value::Null) => None,
        Some(Value::Object(sch)) => {
            let expr = sch.get("quartz_cron_expression").and_then(Value::as_str).ok_or_else(|| missing("quartz_cron_expression"))?;
            let tz = sch.get("timezone_id").and_then(Value::as_str).ok_or_else(|| missing("timezone_id"))?;
            let parsed = Schedule::new(expr, tz).map_err(|e| invalid(format!("Invalid schedule ({expr} in {tz}): {e}.")))?;
            match sch.get("pause_status").and_then(Value::as_str) {
                None => {
                    sch.insert("pause_status".into(), json!("UNPAUSED"));
                }
                Some("PAUSED" | "UNPAUSED") => {}
                Some(o) => return Err(invalid(format!("pause_status must be PAUSED or UNPAUSED, not {o}."))),
            }
            Some(parsed)
        }
        Some(_) => return Err(invalid("schedule must be an object.")),
    };
    Ok((s, schedule))
}

fn next_fire(settings: &Obj, schedule: &Option<Schedule>) -> Option<i64> {
    let paused = settings["schedule"]["pause_status"] == "PAUSED";
    schedule.as_ref().filter(|_| !paused).and_then(|s| s.next_after(now_ms() as i64))
}

pub async fn jobs_create(State(jobs): State<Arc<Jobs>>, JsonBody(m, ..): Body) -> Reply {
    let (settings, schedule) = settings(&m, &jobs.local.opts.cluster_id)?;
    let mut g = jobs.lock();
    let job_id = g.new_id();
    let next = next_fire(&settings, &schedule);
    g.jobs.insert(
        job_id,
        super::model::Job { job_id, created_time: now_ms(), settings, schedule, next_fire: next },
    );
    reply::ok(json!({"job_id": job_id}))
}

fn job_id_query(p: &Params) -> Result<i64, Response> {
    p.int("job_id").map_err(invalid)?.ok_or_else(|| missing("job_id"))
}

pub async fn jobs_get(State(jobs): State<Arc<Jobs>>, Fields(p, ..): Query) -> Reply {
    let id = job_id_query(&p)?;
    let g = jobs.lock();
    let job = g.jobs.get(&id).ok_or_else(|| no_job(id))?;
    reply::ok(jobs.job_json(job, true))
}

pub async fn jobs_list(State(jobs): State<Arc<Jobs>>, Fields(p, ..): Query) -> Reply {
    let expand = flag(&p, "expand_tasks")?;
    let name = p.nonempty("name");
    let (offset, limit) = page(&p, 20, 100)?;
    let g = jobs.lock();
    let list: Vec<Value> = g
        .jobs
        .values()
        .filter(|j| name.as_deref().is_none_or(|n| j.settings.get("name").and_then(Value::as_str) == Some(n)))
        .map(|j| {
            let mut v = jobs.job_json(j, expand);
            if let Some(o) = v.as_object_mut() {
                o.remove("has_more");
            }
            v
        })
        .collect();
    reply::ok(paged("jobs", list, offset, limit))
}

/// Start a run of a job (run-now, or its schedule firing).
pub fn trigger(jobs: &Arc<Jobs>, job_id: i64, trigger: &'static str, python_params: Option<Vec<Value>>,
               job_parameters: Option<Value>, token: Option<String>) -> Result<i64, Response> {
    let mut g = jobs.lock();
    if let Some(id) = token.as_ref().and_then(|t| g.tokens.get(t)) {
        return Ok(*id);
    }
    let job = g.jobs.get(&job_id).ok_or_else(|| no_job(job_id))?;
    let s = &job.settings;
    let mut tasks: Vec<Obj> = s["tasks"].as_array().map(|a| a.iter().filter_map(|t| t.as_object().cloned()).collect()).unwrap_or_default();
    if let Some(pp) = &python_params {
        for t in &mut tasks {
            if let Some(Value::Object(spt)) = t.get_mut("spark_python_task") {
                spt.insert("parameters".into(), Value::Array(pp.clone()));
            }
        }
    }
    let name = s.get("name").and_then(Value::as_str).unwrap_or("Untitled").to_string();
    let clusters = s.get("job_clusters").and_then(Value::as_array).cloned().unwrap_or_default();
    let timeout = s.get("timeout_seconds").and_then(Value::as_u64).unwrap_or(0);
    let schedule = (trigger == "PERIODIC").then(|| s.get("schedule").cloned()).flatten();
    let run_id = jobs.new_run(&mut g, Some(job_id), name, "JOB_RUN", trigger, tasks, clusters, timeout, schedule, job_parameters);
    if let Some(t) = token {
        g.tokens.insert(t, run_id);
    }
    if let Some(r) = g.runs.get_mut(&run_id) {
        r.progress.life = Life::Queued;
    }
    drop(g);
    exec::start(jobs.clone(), run_id);
    Ok(run_id)
}

pub async fn jobs_run_now(State(jobs): State<Arc<Jobs>>, JsonBody(m, ..): Body) -> Reply {
    let job_id = int_field(&m, "job_id")?.ok_or_else(|| missing("job_id"))?;
    let token = idempotency_token(&m)?;
    let python_params = match m.get("python_params") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Some(a.clone()),
        Some(_) => return Err(invalid("python_params must be an array of strings.")),
    };
    let job_parameters = m.get("job_parameters").filter(|v| !v.is_null()).cloned();
    let run_id = trigger(&jobs, job_id, "ONE_TIME", python_params, job_parameters, token)?;
    reply::ok(json!({"run_id": run_id, "number_in_job": run_id}))
}

pub async fn jobs_reset(State(jobs): State<Arc<Jobs>>, JsonBody(m, ..): Body) -> Reply {
    let job_id = int_field(&m, "job_id")?.ok_or_else(|| missing("job_id"))?;
    let new = match m.get("new_settings") {
        Some(Value::Object(o)) => o.clone(),
        _ => return Err(missing("new_settings")),
    };
    let (settings, schedule) = settings(&new, &jobs.local.opts.cluster_id)?;
    let mut g = jobs.lock();
    let job = g.jobs.get_mut(&job_id).ok_or_else(|| no_job(job_id))?;
    job.next_fire = next_fire(&settings, &schedule);
    job.settings = settings;
    job.schedule = schedule;
    reply::empty()
}

pub async fn jobs_delete(State(jobs): State<Arc<Jobs>>, JsonBody(m, ..): Body) -> Reply {
    let job_id = int_field(&m, "job_id")?.ok_or_else(|| missing("job_id"))?;
    let mut g = jobs.lock();
    g.jobs.remove(&job_id).ok_or_else(|| no_job(job_id))?;
    reply::empty()
}
