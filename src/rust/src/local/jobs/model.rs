//! Runs and jobs as the service reports them: life-cycle and result states
//! (`state`) and the 2.2 `status` object, task runs with their own ids, and
//! the idempotency tokens of submitted runs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::cron::Schedule;

/// The job process's launcher (runs the task's file with the cluster's Spark helpers).
const LAUNCHER_PY: &str = include_str!("launcher.py");
use crate::local::cluster::now_ms;
use crate::local::state::Local;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Queued,
    Pending,
    Running,
    Terminating,
    Terminated,
    Skipped,
    InternalError,
}

impl Life {
    pub fn wire(self) -> &'static str {
        match self {
            Life::Queued => "QUEUED",
            Life::Pending => "PENDING",
            Life::Running => "RUNNING",
            Life::Terminating => "TERMINATING",
            Life::Terminated => "TERMINATED",
            Life::Skipped => "SKIPPED",
            Life::InternalError => "INTERNAL_ERROR",
        }
    }
    pub fn terminal(self) -> bool {
        matches!(self, Life::Terminated | Life::Skipped | Life::InternalError)
    }
    /// The 2.2 `status.state` (terminal states are all TERMINATED there).
    fn v2(self) -> &'static str {
        match self {
            Life::Queued => "QUEUED",
            Life::Pending => "PENDING",
            Life::Running => "RUNNING",
            Life::Terminating => "TERMINATING",
            Life::Terminated | Life::Skipped | Life::InternalError => "TERMINATED",
        }
    }
}

/// Where a run stands, for a task or a whole run.
#[derive(Debug, Clone)]
pub struct Progress {
    pub life: Life,
    pub result: Option<&'static str>,
    pub message: String,
    /// `status.termination_details`: (code, type).
    pub termination: Option<(&'static str, &'static str)>,
    pub user_cancelled_or_timedout: bool,
    pub start_time: u64,
    pub setup_done: Option<u64>,
    pub exec_done: Option<u64>,
    pub end_time: Option<u64>,
}

impl Progress {
    fn new(life: Life) -> Progress {
        Progress {
            life,
            result: None,
            message: String::new(),
            termination: None,
            user_cancelled_or_timedout: false,
            start_time: now_ms(),
            setup_done: None,
            exec_done: None,
            end_time: None,
        }
    }

    pub fn finish(&mut self, life: Life, result: &'static str, code: &'static str, kind: &'static str, msg: impl Into<String>) {
        if self.life.terminal() {
            return;
        }
        let now = now_ms();
        self.life = life;
        self.result = Some(result);
        self.termination = Some((code, kind));
        self.message = msg.into();
        self.setup_done.get_or_insert(now);
        self.exec_done.get_or_insert(now);
        self.end_time = Some(now);
    }

    fn write(&self, v: &mut Map<String, Value>) {
        let mut state = json!({
            "life_cycle_state": self.life.wire(),
            "state_message": self.message,
            "user_cancelled_or_timedout": self.user_cancelled_or_timedout,
        });
        if let Some(r) = self.result {
            state["result_state"] = json!(r);
        }
        if self.life == Life::Queued {
            state["queue_reason"] = json!("The maximum number of concurrent runs of this job is reached.");
        }
        let mut status = json!({"state": self.life.v2()});
        if let Some((code, kind)) = self.termination {
            status["termination_details"] = json!({"code": code, "type": kind, "message": self.message});
        }
        let start = self.start_time;
        let setup = self.setup_done.map(|t| t.saturating_sub(start)).unwrap_or(0);
        let exec = match (self.setup_done, self.exec_done) {
            (Some(s), Some(e)) => e.saturating_sub(s),
            _ => 0,
        };
        let cleanup = match (self.exec_done, self.end_time) {
            (Some(e), Some(end)) => end.saturating_sub(e),
            _ => 0,
        };
        v.insert("state".into(), state);
        v.insert("status".into(), status);
        v.insert("start_time".into(), json!(start));
        v.insert("end_time".into(), json!(self.end_time.unwrap_or(0)));
        v.insert("setup_duration".into(), json!(setup));
        v.insert("execution_duration".into(), json!(exec));
        v.insert("cleanup_duration".into(), json!(cleanup));
    }
}

/// One task of a run.
pub struct TaskRun {
    pub run_id: i64,
    /// The task as submitted (or as the job's settings define it).
    pub spec: Map<String, Value>,
    pub progress: Progress,
    pub cluster_id: Option<String>,
    pub spark_context_id: Option<u64>,
    pub log: PathBuf,
    pub error: Option<String>,
    pub error_trace: Option<String>,
    pub pid: Option<i32>,
}

pub struct Run {
    pub run_id: i64,
    pub job_id: i64,
    pub run_name: String,
    /// SUBMIT_RUN or JOB_RUN.
    pub run_type: &'static str,
    /// ONE_TIME or PERIODIC.
    pub trigger: &'static str,
    pub timeout_seconds: u64,
    pub job_clusters: Vec<Value>,
    pub schedule: Option<Value>,
    pub job_parameters: Option<Value>,
    pub progress: Progress,
    pub tasks: Vec<TaskRun>,
    /// Cancelled by `runs/cancel`, a timeout or a deleted job.
    pub cancel: CancellationToken,
    pub cancel_reason: Option<&'static str>,
}

pub struct Job {
    pub job_id: i64,
    pub created_time: u64,
    pub settings: Map<String, Value>,
    pub schedule: Option<Schedule>,
    /// The next time its schedule fires (ms), when it has an unpaused one.
    pub next_fire: Option<i64>,
}

#[derive(Default)]
pub struct Inner {
    next_id: i64,
    pub jobs: BTreeMap<i64, Job>,
    pub runs: BTreeMap<i64, Run>,
    /// Task run id -> (run id, task index).
    pub task_of: HashMap<i64, (i64, usize)>,
    /// Idempotency token -> run id (a retried submit gets the same run).
    pub tokens: HashMap<String, i64>,
}

impl Inner {
    pub fn new_id(&mut self) -> i64 {
        if self.next_id == 0 {
            // Ids look like the service's (large, not 1, 2, 3) and differ
            // between server starts, so a stale id is unknown, not reused.
            self.next_id = 100_000_000_000 + (rand::random::<u32>() as i64) * 1000;
        }
        self.next_id += 1 + (rand::random::<u8>() % 7) as i64;
        self.next_id
    }

    pub fn active_runs(&self, job_id: i64) -> usize {
        self.runs.values().filter(|r| r.job_id == job_id && !r.progress.life.terminal() && r.progress.life != Life::Queued).count()
    }
}

pub const CREATOR: &str = "local@dbrxr.invalid";

pub struct Jobs {
    pub local: Arc<Local>,
    inner: Mutex<Inner>,
}

impl Jobs {
    pub fn new(local: Arc<Local>) -> Arc<Jobs> {
        let dir = local.state_dir.join("jobs");
        let _ = std::fs::create_dir_all(dir.join("logs"));
        let _ = std::fs::write(dir.join("launcher.py"), LAUNCHER_PY);
        Arc::new(Jobs { local, inner: Mutex::new(Inner::default()) })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn dir(&self) -> PathBuf {
        self.local.state_dir.join("jobs")
    }

    pub fn run_page_url(&self, job_id: i64, run_id: i64) -> String {
        format!("{}/?o=0#job/{job_id}/run/{run_id}", self.local.url())
    }

    /// Record a new run of `tasks` and return its id (not started yet).
    #[allow(clippy::too_many_arguments)]
    pub fn new_run(
        &self,
        g: &mut Inner,
        job_id: Option<i64>,
        run_name: String,
        run_type: &'static str,
        trigger: &'static str,
        tasks: Vec<Map<String, Value>>,
        job_clusters: Vec<Value>,
        timeout_seconds: u64,
        schedule: Option<Value>,
        job_parameters: Option<Value>,
    ) -> i64 {
        let run_id = g.new_id();
        let job_id = job_id.unwrap_or_else(|| g.new_id());
        let mut task_runs = Vec::with_capacity(tasks.len());
        for (i, spec) in tasks.into_iter().enumerate() {
            let id = g.new_id();
            g.task_of.insert(id, (run_id, i));
            task_runs.push(TaskRun {
                run_id: id,
                spec,
                progress: Progress::new(Life::Pending),
                cluster_id: None,
                spark_context_id: None,
                log: self.dir().join("logs").join(format!("{id}.log")),
                error: None,
                error_trace: None,
                pid: None,
            });
        }
        g.runs.insert(
            run_id,
            Run {
                run_id,
                job_id,
                run_name,
                run_type,
                trigger,
                timeout_seconds,
                job_clusters,
                schedule,
                job_parameters,
                progress: Progress::new(Life::Pending),
                tasks: task_runs,
                cancel: self.local.shutdown.child_token(),
                cancel_reason: None,
            },
        );
        run_id
    }

    /// A task run's JSON (also the `metadata` of `runs/get-output`).
    pub fn task_json(&self, run: &Run, t: &TaskRun) -> Value {
        let mut v = t.spec.clone();
        v.insert("run_id".into(), json!(t.run_id));
        v.insert("attempt_number".into(), json!(0));
        t.progress.write(&mut v);
        if let Some(c) = &t.cluster_id {
            let mut ci = json!({"cluster_id": c});
            if let Some(s) = t.spark_context_id {
                ci["spark_context_id"] = json!(s.to_string());
            }
            v.insert("cluster_instance".into(), ci);
        }
        v.insert("run_page_url".into(), json!(self.run_page_url(run.job_id, t.run_id)));
        Value::Object(v)
    }

    /// A run's JSON as `runs/get` returns it (`tasks` when `with_tasks`).
    pub fn run_json(&self, run: &Run, with_tasks: bool) -> Value {
        let mut v = Map::new();
        v.insert("job_id".into(), json!(run.job_id));
        v.insert("run_id".into(), json!(run.run_id));
        v.insert("number_in_job".into(), json!(run.run_id));
        v.insert("original_attempt_run_id".into(), json!(run.run_id));
        v.insert("creator_user_name".into(), json!(CREATOR));
        v.insert("run_name".into(), json!(run.run_name));
        v.insert("run_type".into(), json!(run.run_type));
        v.insert("trigger".into(), json!(run.trigger));
        v.insert("format".into(), json!("MULTI_TASK"));
        v.insert("attempt_number".into(), json!(0));
        v.insert("run_page_url".into(), json!(self.run_page_url(run.job_id, run.run_id)));
        run.progress.write(&mut v);
        let dur = match run.progress.end_time {
            Some(e) => e.saturating_sub(run.progress.start_time),
            None => now_ms().saturating_sub(run.progress.start_time),
        };
        v.insert("run_duration".into(), json!(dur));
        // Multi-task runs report their length in run_duration only.
        for k in ["setup_duration", "execution_duration", "cleanup_duration"] {
            v.insert(k.into(), json!(0));
        }
        if let Some(t) = run.tasks.first().filter(|_| run.tasks.len() == 1) {
            if let Some(c) = &t.cluster_id {
                v.insert("cluster_instance".into(), json!({"cluster_id": c}));
            }
        }
        if !run.job_clusters.is_empty() {
            v.insert("job_clusters".into(), Value::Array(run.job_clusters.clone()));
        }
        if let Some(s) = &run.schedule {
            v.insert("schedule".into(), s.clone());
        }
        if let Some(p) = &run.job_parameters {
            v.insert("job_parameters".into(), p.clone());
        }
        if with_tasks {
            let tasks: Vec<Value> = run.tasks.iter().map(|t| self.task_json(run, t)).collect();
            v.insert("tasks".into(), Value::Array(tasks));
            v.insert("has_more".into(), json!(false));
        }
        Value::Object(v)
    }

    pub fn job_json(&self, job: &Job, with_tasks: bool) -> Value {
        let mut settings = job.settings.clone();
        if !with_tasks {
            settings.remove("tasks");
            settings.remove("job_clusters");
        }
        json!({
            "job_id": job.job_id,
            "creator_user_name": CREATOR,
            "run_as_user_name": CREATOR,
            "created_time": job.created_time,
            "settings": settings,
            "has_more": false,
        })
    }
}
