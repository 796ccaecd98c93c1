//! Running a run: its tasks one after another, each a `spark_python_task`
//! in a process group of its own (`launcher.py` runs the task's file as
//! `__main__`, with the local cluster's Spark helpers), its output in the
//! task's log. Cancel, the run's timeout, and losing its cluster (the local
//! cluster restarted or terminated under an `existing_cluster_id` task) stop
//! the process group: SIGTERM, then SIGKILL after a second.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::model::{Jobs, Life};
use crate::local::cluster::now_ms;
use crate::local::cluster::ClusterState;
use crate::local::store;

/// Most of a log `runs/get-output` returns (the service: the last 5 MB).
pub const LOGS_MAX: u64 = 5 << 20;
const KILL_GRACE: Duration = Duration::from_millis(1000);

pub fn start(jobs: Arc<Jobs>, run_id: i64) {
    tokio::spawn(execute(jobs, run_id));
}

enum Cluster {
    Existing(String),
    New(String),
}

/// Why a task stopped before its process ended by itself.
enum Stop {
    Cancel,
    Timeout,
    ClusterLost(String),
}

async fn execute(jobs: Arc<Jobs>, run_id: i64) {
    let Some((cancel, ntasks, job_id, timeout)) = ({
        let g = jobs.lock();
        g.runs.get(&run_id).map(|r| (r.cancel.clone(), r.tasks.len(), r.job_id, r.timeout_seconds))
    }) else {
        return;
    };
    // A job's runs wait (QUEUED) while the job has max_concurrent_runs active.
    loop {
        let admitted = {
            let mut g = jobs.lock();
            let max = g
                .jobs
                .get(&job_id)
                .and_then(|j| j.settings.get("max_concurrent_runs"))
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX) as usize;
            let active = g.active_runs(job_id);
            let Some(run) = g.runs.get_mut(&run_id) else { return };
            if cancel.is_cancelled() {
                let reason = run.cancel_reason.unwrap_or("cancel");
                finish_cancelled(run, reason);
                return;
            }
            // This run counts itself once it leaves the queue.
            let mine = usize::from(run.progress.life != Life::Queued);
            if active - mine < max.max(1) {
                run.progress.life = Life::Pending;
                true
            } else {
                run.progress.life = Life::Queued;
                false
            }
        };
        if admitted {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = cancel.cancelled() => {}
        }
    }
    let deadline = (timeout > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(timeout));
    for i in 0..ntasks {
        let upstream_failed = {
            let g = jobs.lock();
            let run = &g.runs[&run_id];
            run.tasks[..i].iter().any(|t| t.progress.result != Some("SUCCESS"))
        };
        if upstream_failed {
            let mut g = jobs.lock();
            if let Some(run) = g.runs.get_mut(&run_id) {
                let t = &mut run.tasks[i];
                t.progress.finish(Life::Skipped, "UPSTREAM_FAILED", "SKIPPED", "SUCCESS", "Upstream task failed.");
            }
            continue;
        }
        run_task(&jobs, run_id, i, &cancel, deadline).await;
    }
    let mut g = jobs.lock();
    if let Some(run) = g.runs.get_mut(&run_id) {
        conclude(run);
    }
}

/// The run's outcome from its tasks'.
fn conclude(run: &mut super::model::Run) {
    let results: Vec<Option<&str>> = run.tasks.iter().map(|t| t.progress.result).collect();
    let lost = run.tasks.iter().find(|t| t.progress.life == Life::InternalError);
    let first_bad = run.tasks.iter().find(|t| t.progress.result != Some("SUCCESS"));
    let msg = first_bad.map(|t| t.progress.message.clone()).unwrap_or_default();
    if let Some(t) = lost {
        let m = t.progress.message.clone();
        let (code, kind) = t.progress.termination.unwrap_or(("INTERNAL_ERROR", "INTERNAL_ERROR"));
        run.progress.finish(Life::InternalError, "FAILED", code, kind, m);
    } else if results.iter().all(|r| *r == Some("SUCCESS")) {
        run.progress.finish(Life::Terminated, "SUCCESS", "SUCCESS", "SUCCESS", "");
    } else if results.contains(&Some("TIMEDOUT")) {
        run.progress.user_cancelled_or_timedout = true;
        run.progress.finish(Life::Terminated, "TIMEDOUT", "CANCELED", "CLIENT_ERROR", msg);
    } else if results.contains(&Some("CANCELED")) {
        run.progress.user_cancelled_or_timedout = true;
        run.progress.finish(Life::Terminated, "CANCELED", "USER_CANCELED", "SUCCESS", msg);
    } else {
        run.progress.finish(Life::Terminated, "FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR", msg);
    }
}

fn finish_cancelled(run: &mut super::model::Run, reason: &str) {
    let timeout = reason == "timeout";
    let msg = if timeout { "Run timed out." } else { "Run cancelled." };
    for t in &mut run.tasks {
        t.progress.user_cancelled_or_timedout = true;
        if timeout {
            t.progress.finish(Life::Terminated, "TIMEDOUT", "CANCELED", "CLIENT_ERROR", msg);
        } else {
            t.progress.finish(Life::Terminated, "CANCELED", "USER_CANCELED", "SUCCESS", msg);
        }
    }
    conclude(run);
}

async fn run_task(
    jobs: &Arc<Jobs>,
    run_id: i64,
    i: usize,
    cancel: &tokio_util::sync::CancellationToken,
    deadline: Option<tokio::time::Instant>,
) {
    let local = jobs.local.clone();
    let (spec, job_clusters, log, task_run_id, job_id) = {
        let mut g = jobs.lock();
        let Some(run) = g.runs.get_mut(&run_id) else { return };
        run.progress.life = Life::Pending;
        let t = &mut run.tasks[i];
        t.progress.life = Life::Pending;
        t.progress.start_time = now_ms();
        (t.spec.clone(), run.job_clusters.clone(), t.log.clone(), t.run_id, run.job_id)
    };
    let fail = |life: Life, result: &'static str, code: &'static str, kind: &'static str, msg: String, error: Option<String>| {
        let mut g = jobs.lock();
        if let Some(run) = g.runs.get_mut(&run_id) {
            let t = &mut run.tasks[i];
            if let Some(e) = error {
                t.error = Some(e);
            }
            t.progress.finish(life, result, code, kind, msg);
        }
    };
    // The cluster: ours, or a new job cluster of the run's own.
    let cluster = match cluster_of(&spec, &job_clusters, &local.opts.cluster_id, task_run_id) {
        Ok(c) => c,
        Err(m) => return fail(Life::InternalError, "FAILED", "INVALID_CLUSTER_REQUEST", "CLIENT_ERROR", m, None),
    };
    let delay = Duration::from_millis(local.opts.start_delay_ms);
    let (cluster_id, context_id, cwd) = match &cluster {
        Cluster::Existing(id) => {
            // A job on a terminated all-purpose cluster starts it.
            let _ = local.compute.cluster.lock().start(delay);
            loop {
                let state = local.compute.state();
                if state == ClusterState::Running {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = cancel.cancelled() => break,
                }
            }
            let ctx = spark_context_id(&local);
            (id.clone(), ctx, local.state_dir.join("driver"))
        }
        Cluster::New(id) => {
            // New compute takes start_delay_ms to come up, as the cluster does.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => {}
            }
            let dir = jobs.dir().join("clusters").join(id).join("driver");
            let _ = std::fs::create_dir_all(&dir);
            (id.clone(), rand::random::<u64>() >> 1, dir)
        }
    };
    {
        let mut g = jobs.lock();
        if let Some(run) = g.runs.get_mut(&run_id) {
            run.tasks[i].cluster_id = Some(cluster_id.clone());
            run.tasks[i].spark_context_id = Some(context_id);
        }
    }
    if cancel.is_cancelled() {
        let mut g = jobs.lock();
        if let Some(run) = g.runs.get_mut(&run_id) {
            let reason = run.cancel_reason.unwrap_or("cancel");
            finish_cancelled(run, reason);
        }
        return;
    }
    let Some(task) = spec.get("spark_python_task").and_then(Value::as_object) else {
        return fail(Life::InternalError, "FAILED", "INVALID_RUN_CONFIGURATION", "CLIENT_ERROR",
                    "The dbrxr local cluster runs spark_python_task tasks only.".to_string(), None);
    };
    let python_file = task.get("python_file").and_then(Value::as_str).unwrap_or("");
    let file = match map_file(&local.fs_root(), python_file) {
        Ok(f) => f,
        Err(m) => return fail(Life::InternalError, "FAILED", "RESOURCE_NOT_FOUND", "CLIENT_ERROR", m.clone(), Some(m)),
    };
    let params: Vec<String> = task
        .get("parameters")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string())).collect())
        .unwrap_or_default();
    let params: Vec<String> = params.iter().map(|p| dynamic_values(p, job_id, run_id, task_run_id)).collect();
    let child = spawn(jobs, &file, &params, &log, &cwd, task_run_id, &cluster_id);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let m = format!("Could not start the task's Python process: {e}");
            return fail(Life::InternalError, "FAILED", "DRIVER_ERROR", "INTERNAL_ERROR", m, None);
        }
    };
    let pid = child.id().map(|p| p as i32);
    {
        let mut g = jobs.lock();
        if let Some(run) = g.runs.get_mut(&run_id) {
            run.progress.life = Life::Running;
            let t = &mut run.tasks[i];
            t.pid = pid;
            t.progress.life = Life::Running;
            t.progress.setup_done = Some(now_ms());
        }
    }
    let stop = loop {
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break Ok(status),
            _ = cancel.cancelled() => {
                let reason = jobs.lock().runs.get(&run_id).and_then(|r| r.cancel_reason);
                break Err(if reason == Some("timeout") { Stop::Timeout } else { Stop::Cancel });
            }
            _ = timeout => break Err(Stop::Timeout),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Cluster::Existing(id) = &cluster {
                    let state = local.compute.state();
                    if state != ClusterState::Running || spark_context_id(&local) != context_id {
                        break Err(Stop::ClusterLost(format!(
                            "Cluster {id} was {} while the run was using it, so the run lost its driver.",
                            if state == ClusterState::Terminated { "terminated" } else { "restarted" }
                        )));
                    }
                }
            }
        }
    };
    // A task whose process ended by a signal as its cluster went away lost
    // the cluster (a terminate kills the driver's processes first).
    let by_signal = matches!(&stop, Ok(Ok(s)) if s.code().is_none());
    let stop = match &cluster {
        Cluster::Existing(id) if by_signal => {
            let state = local.compute.state();
            if state != ClusterState::Running || spark_context_id(&local) != context_id {
                Err(Stop::ClusterLost(format!(
                    "Cluster {id} was {} while the run was using it, so the run lost its driver.",
                    if state == ClusterState::Terminated { "terminated" } else { "restarted" }
                )))
            } else {
                stop
            }
        }
        _ => stop,
    };
    let exec_done = now_ms();
    let mut status = None;
    if let Err(stop) = &stop {
        {
            let mut g = jobs.lock();
            if let Some(run) = g.runs.get_mut(&run_id) {
                run.progress.life = Life::Terminating;
                run.tasks[i].progress.life = Life::Terminating;
                run.tasks[i].progress.exec_done = Some(exec_done);
            }
        }
        signal_group(pid, libc::SIGTERM);
        status = tokio::time::timeout(KILL_GRACE, child.wait()).await.ok().and_then(Result::ok);
        let _ = stop;
    }
    // The task's processes (Spark's JVM too) end with it: a new job
    // cluster is terminated after the run.
    signal_group(pid, libc::SIGKILL);
    if status.is_none() {
        let _ = child.wait().await;
    }
    let logs = read_tail(&log, 64 << 10);
    let (error, trace) = python_error(&logs);
    let mut g = jobs.lock();
    let Some(run) = g.runs.get_mut(&run_id) else { return };
    let t = &mut run.tasks[i];
    t.pid = None;
    t.progress.exec_done.get_or_insert(exec_done);
    match stop {
        Err(Stop::Cancel) => {
            t.progress.user_cancelled_or_timedout = true;
            t.progress.finish(Life::Terminated, "CANCELED", "USER_CANCELED", "SUCCESS", "Run cancelled.");
        }
        Err(Stop::Timeout) => {
            run.cancel_reason = Some("timeout");
            let t = &mut run.tasks[i];
            t.progress.user_cancelled_or_timedout = true;
            let m = format!("Run timed out after {} seconds.", run.timeout_seconds);
            t.progress.finish(Life::Terminated, "TIMEDOUT", "CANCELED", "CLIENT_ERROR", m);
        }
        Err(Stop::ClusterLost(m)) => {
            t.progress.finish(Life::InternalError, "FAILED", "CLUSTER_ERROR", "INTERNAL_ERROR", m);
        }
        Ok(Ok(s)) if s.success() => {
            t.progress.finish(Life::Terminated, "SUCCESS", "SUCCESS", "SUCCESS", "");
        }
        Ok(Ok(s)) if s.code().is_some() => {
            t.error = error.or_else(|| Some(format!("The task's process exited with status {}.", s.code().unwrap_or(-1))));
            t.error_trace = trace;
            t.progress.finish(Life::Terminated, "FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR",
                              "Workload failed, see run output for details");
        }
        Ok(Ok(s)) => {
            // Killed by a signal nobody here sent (the task's own code, e.g.
            // R's tools::pskill(Sys.getpid(), 9), or the OOM killer). The
            // cluster is still up (that is checked while the task runs): the
            // task failed, its cluster was not lost.
            use std::os::unix::process::ExitStatusExt;
            let sig = s.signal().unwrap_or(0);
            t.error = Some(format!("The task's process was killed by signal {sig}{}.", signal_name(sig)));
            t.error_trace = trace;
            t.progress.finish(Life::Terminated, "FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR",
                              "Workload failed, see run output for details");
        }
        Ok(Err(e)) => {
            let m = format!("The Spark driver of cluster {cluster_id} stopped unexpectedly ({e}).");
            t.error = Some(m.clone());
            t.progress.finish(Life::InternalError, "FAILED", "DRIVER_ERROR", "INTERNAL_ERROR", m);
        }
    }
}

/// " (SIGKILL)" for 9: the name people know a signal by.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    }
}

/// Dynamic value references in task parameters, as the service fills them.
fn dynamic_values(p: &str, job_id: i64, run_id: i64, task_run_id: i64) -> String {
    if !p.contains("{{") {
        return p.to_string();
    }
    let mut out = p.to_string();
    for (names, v) in [
        (&["{{job.run_id}}", "{{parent_run_id}}"][..], run_id),
        (&["{{task.run_id}}", "{{run_id}}"][..], task_run_id),
        (&["{{job.id}}", "{{job_id}}"][..], job_id),
    ] {
        for n in names {
            out = out.replace(n, &v.to_string());
        }
    }
    out
}

fn spark_context_id(local: &crate::local::state::Local) -> u64 {
    local.compute.cluster.details()["spark_context_id"].as_u64().unwrap_or(0)
}

fn cluster_of(spec: &Map<String, Value>, job_clusters: &[Value], ours: &str, task_run_id: i64) -> Result<Cluster, String> {
    if let Some(id) = spec.get("existing_cluster_id").and_then(Value::as_str) {
        if id != ours {
            return Err(format!("Cluster {id} does not exist"));
        }
        return Ok(Cluster::Existing(id.to_string()));
    }
    let new_id = || {
        let now = now_ms() / 1000;
        let (_, m, d) = super::cron::civil_from_days((now / 86_400) as i64);
        let s = now % 86_400;
        format!("{m:02}{d:02}-{:02}{:02}{:02}-job-{task_run_id}", s / 3600, s / 60 % 60, s % 60)
    };
    if spec.get("new_cluster").is_some_and(Value::is_object) {
        return Ok(Cluster::New(new_id()));
    }
    if let Some(key) = spec.get("job_cluster_key").and_then(Value::as_str) {
        if job_clusters.iter().any(|c| c["job_cluster_key"] == key) {
            return Ok(Cluster::New(new_id()));
        }
        return Err(format!("Job cluster key {key} is not defined in job_clusters"));
    }
    Err("The task has no cluster: give existing_cluster_id, new_cluster or job_cluster_key.".to_string())
}

/// The task's file as the cluster's processes see it.
pub fn map_file(root: &std::path::Path, raw: &str) -> Result<std::path::PathBuf, String> {
    let located = if raw.starts_with("dbfs:/") {
        store::dbfs(root, raw)
    } else if let Some(rest) = raw.strip_prefix("/dbfs/") {
        store::dbfs(root, &format!("/{rest}"))
    } else if raw.starts_with("/Volumes/") {
        store::volume(root, raw, 4)
    } else {
        Err(format!(
            "python_file {raw:?} cannot be read by the dbrxr local cluster: use a dbfs:/ or /Volumes/ path (workspace files and repositories are not emulated)."
        ))
    }?;
    if !located.file.is_file() {
        return Err(format!("File {raw} does not exist."));
    }
    Ok(located.file)
}

fn spawn(
    jobs: &Jobs,
    file: &std::path::Path,
    params: &[String],
    log: &std::path::Path,
    cwd: &std::path::Path,
    task_run_id: i64,
    cluster_id: &str,
) -> std::io::Result<tokio::process::Child> {
    let local = &jobs.local;
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    // The allow-listed environment and what the cluster gives every process
    // (as to contexts: its MLflow server).
    let cluster = local.worker_env.get().map(Vec::as_slice).unwrap_or_default();
    let mut cmd = crate::local::child_env::command(&local.python.path, cluster);
    cmd.arg("-u")
        .arg(jobs.dir().join("launcher.py"))
        .arg(file)
        .args(params)
        .current_dir(cwd)
        .env("DBRXR_LOCAL_FS_ROOT", local.fs_root())
        .env("DBRXR_LOCAL_WORKER", local.state_dir.join("worker.py"))
        .env("DBRXR_LOCAL_JOB_RUN_ID", task_run_id.to_string())
        .env("DBRXR_LOCAL_CLUSTER_ID", cluster_id)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // As in contexts: the machine's system libraries and the cluster's
        // own site library, never the user's.
        .env("R_LIBS", local.state_dir.join("r-site-library"))
        .env("R_LIBS_USER", local.state_dir.join("r-site-library"))
        .env_remove("R_LIBS_SITE")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    crate::local::util::own_group_dying_with_parent(&mut cmd);
    local.mounts.apply(&mut cmd, cwd);
    cmd.spawn()
}

fn signal_group(pid: Option<i32>, sig: i32) {
    if let Some(pid) = pid {
        // SAFETY: plain syscall; the task's process leads its own group.
        unsafe { libc::kill(-pid, sig) };
    }
}

/// The last `max` bytes of a log (lossy UTF-8), and whether it was cut.
pub fn read_tail_cut(path: &std::path::Path, max: u64) -> (String, bool) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return (String::new(), false) };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let cut = len > max;
    if cut {
        let _ = f.seek(SeekFrom::Start(len - max));
    }
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    (String::from_utf8_lossy(&buf).into_owned(), cut)
}

fn read_tail(path: &std::path::Path, max: u64) -> String {
    read_tail_cut(path, max).0
}

/// `error` and `error_trace` from a Python traceback at the end of a log.
pub fn python_error(logs: &str) -> (Option<String>, Option<String>) {
    let Some(at) = logs.rfind("Traceback (most recent call last):") else {
        return (None, None);
    };
    let trace = logs[at..].trim_end().to_string();
    let last = trace.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with(' ')).map(str::to_string);
    (last, Some(trace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_values_are_filled() {
        assert_eq!(dynamic_values("a/{{job.run_id}}-{{task.run_id}}.bin", 1, 2, 3), "a/2-3.bin");
        assert_eq!(dynamic_values("{{job_id}}", 1, 2, 3), "1");
        assert_eq!(dynamic_values("plain", 1, 2, 3), "plain");
    }

    #[test]
    fn the_last_traceback_gives_error_and_trace() {
        let logs = "hello\nTraceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    1/0\nZeroDivisionError: division by zero\n";
        let (e, t) = python_error(logs);
        assert_eq!(e.as_deref(), Some("ZeroDivisionError: division by zero"));
        assert!(t.unwrap().starts_with("Traceback"));
        assert_eq!(python_error("all good\n"), (None, None));
    }
}
