//! Execution contexts: one Python process each, running `worker.py`.
//!
//! A context is `Pending` until its process says it is ready, then `Running`;
//! it ends in `Error` when the process dies or is killed. Its commands queue
//! (`Queued`) and run one at a time; a driver task per context feeds them to
//! the process over stdin and reads replies from its stdout (JSON lines).
//! Cancel is a message naming the command (the worker interrupts it, or drops
//! it if it has not started); a process that ignores it for the grace period
//! is killed and its context marked `Error`. Processes are group leaders (so a
//! kill takes their children too) and die with the server's process.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::stats::Stats;

pub const WORKER_PY: &str = include_str!("worker.py");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxStatus {
    Pending,
    Running,
    Error,
}

impl CtxStatus {
    pub fn wire(self) -> &'static str {
        match self {
            CtxStatus::Pending => "Pending",
            CtxStatus::Running => "Running",
            CtxStatus::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdStatus {
    Queued,
    Running,
    Cancelling,
    Cancelled,
    Finished,
    Error,
}

impl CmdStatus {
    pub fn wire(self) -> &'static str {
        match self {
            CmdStatus::Queued => "Queued",
            CmdStatus::Running => "Running",
            CmdStatus::Cancelling => "Cancelling",
            CmdStatus::Cancelled => "Cancelled",
            CmdStatus::Finished => "Finished",
            CmdStatus::Error => "Error",
        }
    }
    pub fn terminal(self) -> bool {
        matches!(self, CmdStatus::Cancelled | CmdStatus::Finished | CmdStatus::Error)
    }
}

struct Command {
    status: CmdStatus,
    code: String,
    /// "python", "sql" or "r".
    language: &'static str,
    results: Option<Value>,
}

struct Inner {
    status: CtxStatus,
    error: Option<String>,
    pid: Option<i32>,
    /// Lines for the worker's stdin (commands and cancels).
    input: Option<mpsc::UnboundedSender<String>>,
    commands: HashMap<String, Command>,
    queue: VecDeque<String>,
    running: Option<String>,
    exec_count: u64,
    last_used: Instant,
    /// Removed from the table (destroyed, evicted, restart): the driver stops.
    gone: bool,
    /// Told whenever a command ends (status checks wait on it).
    ended: Arc<Notify>,
    /// The process has started its Spark session (its replies say so).
    spark: bool,
}

impl Inner {
    /// Running with nothing to do: what a workspace evicts. A context still
    /// starting is not idle (it was just asked for).
    fn idle(&self) -> bool {
        self.status != CtxStatus::Pending && self.running.is_none() && self.queue.is_empty()
    }

    /// Move a command to a terminal status once, counting it.
    fn finish(&mut self, id: &str, status: CmdStatus, results: Option<Value>, stats: &Stats) {
        if let Some(c) = self.commands.get_mut(id) {
            if c.status.terminal() {
                return;
            }
            c.status = status;
            c.results = results;
            c.code = String::new();
            stats.command_done(status.wire());
            self.ended.notify_waiters();
        }
        if self.running.as_deref() == Some(id) {
            self.running = None;
        }
        self.last_used = Instant::now();
    }

    /// The process is gone: fail what is left and mark the context.
    fn lost(&mut self, why: &str, stats: &Stats) {
        let ids: Vec<String> = self.running.iter().cloned().chain(self.queue.drain(..)).collect();
        for id in ids {
            let cancelling =
                self.commands.get(&id).map(|c| c.status == CmdStatus::Cancelling).unwrap_or(false);
            if cancelling {
                self.finish(&id, CmdStatus::Cancelled, Some(cancelled_results()), stats);
            } else {
                self.finish(&id, CmdStatus::Error, Some(infra_error(why)), stats);
            }
        }
        self.pid = None;
        self.input = None;
        if self.status != CtxStatus::Error {
            self.status = CtxStatus::Error;
            self.error = Some(why.to_string());
        }
    }
}

pub struct Context {
    pub id: String,
    /// The context's language ("python", "sql" or "r"): its commands' unless
    /// they name another.
    pub language: &'static str,
    inner: Mutex<Inner>,
    wake: Notify,
    stop: CancellationToken,
}

fn cancelled_results() -> Value {
    json!({"resultType": "error", "summary": "Cancelled",
           "cause": "The command was cancelled by a commands/cancel request."})
}

fn infra_error(why: &str) -> Value {
    json!({"resultType": "error", "summary": why, "cause": why, "data": why})
}

impl Context {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> (CtxStatus, Option<String>) {
        let g = self.lock();
        (g.status, g.error.clone())
    }

    /// Queue a command; its id. Err: why the context cannot take it.
    pub fn submit(&self, code: String, language: &'static str, stats: &Stats) -> Result<String, String> {
        let mut g = self.lock();
        // The driver notices a dead idle process from its closed stdout, but a
        // command may arrive first (kill, then call at once): check now, so the
        // command is refused (and the client makes a new context) instead of
        // being accepted and then failing.
        if g.status == CtxStatus::Running && g.pid.is_some_and(process_gone) {
            let why = format!("The Python process of execution context {} died while idle", self.id);
            g.lost(&why, stats);
        }
        if g.status == CtxStatus::Error {
            return Err(format!(
                "Execution context {} is in state Error and cannot run commands ({}). Destroy it and create a new context.",
                self.id,
                g.error.as_deref().unwrap_or("its process failed")
            ));
        }
        let id = super::util::random_hex(16);
        g.commands.insert(id.clone(), Command { status: CmdStatus::Queued, code, language, results: None });
        g.queue.push_back(id.clone());
        g.last_used = Instant::now();
        stats.commands_executed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        drop(g);
        self.wake.notify_one();
        Ok(id)
    }

    pub fn command(&self, id: &str) -> Option<(CmdStatus, Option<Value>)> {
        let g = self.lock();
        g.commands.get(id).map(|c| (c.status, c.results.clone()))
    }

    /// A command's status once it ends or `hold` has passed, whichever is
    /// first: a check that comes just before the end is answered at the end,
    /// not at the client's next check.
    pub async fn command_within(&self, id: &str, hold: Duration) -> Option<(CmdStatus, Option<Value>)> {
        let deadline = tokio::time::Instant::now() + hold;
        let ended = self.lock().ended.clone();
        loop {
            // Made before the look, so an end in between still wakes it.
            let told = ended.notified();
            let got = self.command(id)?;
            if got.0.terminal() {
                return Some(got);
            }
            if tokio::time::timeout_at(deadline, told).await.is_err() {
                return self.command(id);
            }
        }
    }

    /// Cancel: a queued command is dropped at once; a running one is
    /// interrupted and, if it ignores that for `grace`, its process is killed.
    /// Err: unknown id.
    pub fn cancel(self: &Arc<Self>, id: &str, pool: &Contexts) -> Result<(), ()> {
        let mut g = self.lock();
        let status = g.commands.get(id).map(|c| c.status).ok_or(())?;
        match status {
            CmdStatus::Queued => {
                g.queue.retain(|q| q != id);
                g.finish(id, CmdStatus::Cancelled, Some(cancelled_results()), &pool.stats);
            }
            CmdStatus::Running => {
                if let Some(c) = g.commands.get_mut(id) {
                    c.status = CmdStatus::Cancelling;
                }
                if let Some(input) = &g.input {
                    let _ = input.send(format!("{}\n", json!({"cancel": id})));
                }
                let (ctx, stats, id) = (self.clone(), pool.stats.clone(), id.to_string());
                let grace = pool.spec.cancel_grace;
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    let mut g = ctx.lock();
                    let still = g.commands.get(&id).map(|c| c.status == CmdStatus::Cancelling);
                    if still == Some(true) && !g.gone {
                        let why = format!(
                            "The command ignored the interrupt for {} ms, so the context's Python process was killed",
                            grace.as_millis()
                        );
                        g.finish(&id, CmdStatus::Cancelled, Some(cancelled_results()), &stats);
                        super::util::kill_group(g.pid);
                        g.lost(&why, &stats);
                    }
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn kill(&self) {
        self.end(self.lock());
    }

    /// Kill the process and stop the driver, with the context's lock held.
    fn end(&self, mut g: MutexGuard<'_, Inner>) {
        g.gone = true;
        super::util::kill_group(g.pid.take());
        drop(g);
        self.stop.cancel();
    }

    /// Kill the context if it is idle, checked and marked in one hold of its
    /// lock: a command submitted a moment later is refused (the client makes
    /// a new context and sends it there) instead of being accepted by a
    /// context about to die and lost while it runs.
    fn kill_if_idle(&self) -> bool {
        let mut g = self.lock();
        if !g.idle() {
            return false;
        }
        g.status = CtxStatus::Error;
        g.error = Some("the context was evicted".to_string());
        self.end(g);
        true
    }
}

/// Whether `pid` has exited or is about to: reaped, a zombie, exiting, or
/// with SIGKILL pending (Linux `/proc`; elsewhere only "reaped" is seen).
fn process_gone(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        // SAFETY: signal 0 only checks that the process exists.
        return unsafe { libc::kill(pid, 0) } != 0;
    };
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("")
    };
    let sigkill_pending = |mask: &str| {
        u64::from_str_radix(mask, 16).map(|m| m & (1 << (libc::SIGKILL - 1)) != 0).unwrap_or(false)
    };
    field("State:").starts_with(['Z', 'X'])
        || sigkill_pending(field("SigPnd:"))
        || sigkill_pending(field("ShdPnd:"))
}


/// How context processes are run.
pub struct WorkerSpec {
    /// The Python interpreter.
    pub python: String,
    /// The state directory: `worker.py`, `driver/`, `logs/`, `r-site-library/`.
    pub state_dir: PathBuf,
    /// The file-view root the workers see as `DBRXR_LOCAL_FS_ROOT`.
    pub fs_root: PathBuf,
    pub max_contexts: usize,
    pub max_output_chars: usize,
    /// How long a cancelled command may ignore the interrupt.
    pub cancel_grace: Duration,
    /// How long a status check of a running command waits for its end.
    pub status_hold: Duration,
    /// Environment for every worker, known once the server listens (the
    /// cluster's MLflow tracking URI and token).
    pub extra_env: Arc<std::sync::OnceLock<Vec<(String, String)>>>,
    /// `/dbfs` and `/Volumes` in the worker's own mount namespace.
    pub mounts: Arc<super::mounts::Mounts>,
}

/// The table of live contexts.
pub struct Contexts {
    map: Mutex<HashMap<String, Arc<Context>>>,
    pub spec: WorkerSpec,
    pub stats: Arc<Stats>,
    /// Cancelled when the server stops: every driver ends.
    shutdown: CancellationToken,
}

impl Contexts {
    pub fn new(spec: WorkerSpec, stats: Arc<Stats>, shutdown: CancellationToken) -> Contexts {
        Contexts { map: Mutex::default(), spec, stats, shutdown }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Context>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn alive(&self) -> usize {
        self.lock().len()
    }

    /// The contexts whose Spark session has started.
    pub fn with_spark(&self) -> Vec<String> {
        self.lock().iter().filter(|(_, c)| c.lock().spark).map(|(id, _)| id.clone()).collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Context>> {
        self.lock().get(id).cloned()
    }

    /// Create a context and start its process. When the cap is reached the
    /// least recently used idle context is evicted; Err when none is idle.
    pub fn create(self: &Arc<Self>, language: &'static str) -> Result<String, String> {
        let mut map = self.lock();
        if map.len() >= self.spec.max_contexts {
            let lru = map
                .values()
                .filter_map(|c| {
                    let g = c.lock();
                    g.idle().then(|| (g.last_used, c.id.clone()))
                })
                .min();
            match lru {
                Some((_, id)) => {
                    if let Some(c) = map.remove(&id) {
                        c.kill();
                        self.stats.contexts_destroyed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                None => {
                    return Err(format!(
                        "Too many execution contexts are running commands on this cluster (the limit is {}); none is idle, so none could be evicted. Destroy contexts you no longer need, or wait for running commands to finish.",
                        self.spec.max_contexts
                    ))
                }
            }
        }
        let id = loop {
            let n: u64 = rand::random::<u64>() % 8_000_000_000_000_000_000 + 1_000_000_000_000_000_000;
            let id = n.to_string();
            if !map.contains_key(&id) {
                break id;
            }
        };
        let ctx = Arc::new(Context {
            id: id.clone(),
            language,
            inner: Mutex::new(Inner {
                status: CtxStatus::Pending,
                error: None,
                pid: None,
                input: None,
                commands: HashMap::new(),
                queue: VecDeque::new(),
                running: None,
                exec_count: 0,
                last_used: Instant::now(),
                gone: false,
                ended: Arc::new(Notify::new()),
                spark: false,
            }),
            wake: Notify::new(),
            stop: self.shutdown.child_token(),
        });
        map.insert(id.clone(), ctx.clone());
        self.stats.contexts_created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(drive(ctx, self.clone()));
        Ok(id)
    }

    /// Remove and kill one context. False when it does not exist.
    pub fn destroy(&self, id: &str) -> bool {
        let c = self.lock().remove(id);
        match c {
            Some(c) => {
                c.kill();
                self.stats.contexts_destroyed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Evict every idle context (as a busy cluster does); their ids.
    pub fn evict_idle(&self) -> Vec<String> {
        let all: Vec<Arc<Context>> = self.lock().values().cloned().collect();
        let mut evicted = Vec::new();
        for c in all {
            if c.kill_if_idle() {
                self.lock().remove(&c.id);
                self.stats.contexts_destroyed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                evicted.push(c.id.clone());
            }
        }
        evicted
    }

    /// Drop every context (restart, terminate, shutdown).
    pub fn kill_all(&self) {
        let all: Vec<Arc<Context>> = self.lock().drain().map(|(_, c)| c).collect();
        for c in all {
            c.kill();
            self.stats.contexts_destroyed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Start the process, feed it commands until the context goes away, then
/// make sure its process group is gone and reap the process: an evicted or
/// killed context must not stay behind as a zombie of the server (a test run
/// with evictions every 0.05 s left thousands).
async fn drive(ctx: Arc<Context>, pool: Arc<Contexts>) {
    let log = pool.spec.state_dir.join("logs").join(format!("context-{}.log", ctx.id));
    let mut child = match spawn(&pool.spec, &ctx.id, &log) {
        Ok(c) => c,
        Err(e) => {
            ctx.lock().lost(&format!("could not start the context's Python process: {e}"), &pool.stats);
            return;
        }
    };
    let pid = child.id().map(|p| p as i32);
    serve(&ctx, &pool, &mut child, pid, &log).await;
    // Not reaped yet, so the group id is still this process's own.
    super::util::kill_group(pid);
    let _ = child.wait().await;
}

/// Feed the context's process its commands until the context goes away.
async fn serve(ctx: &Arc<Context>, pool: &Arc<Contexts>, child: &mut tokio::process::Child, pid: Option<i32>,
               log: &std::path::Path) {
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        ctx.lock().lost("the context's Python process has no pipes", &pool.stats);
        return;
    };
    // One writer owns stdin, so cancels can be sent while a command runs.
    let (input, mut lines_in) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = lines_in.recv().await {
            if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                break;
            }
        }
    });
    {
        let mut g = ctx.lock();
        if g.gone {
            super::util::kill_group(pid);
            return;
        }
        g.pid = pid;
        g.input = Some(input.clone());
    }
    let mut lines = BufReader::new(stdout).lines();
    let died = |ctx: &Context| {
        let why = format!(
            "The Python process of execution context {} exited unexpectedly; its log is {}",
            ctx.id,
            log.display()
        );
        ctx.lock().lost(&why, &pool.stats);
    };
    // Ready line.
    let ready = tokio::select! {
        _ = ctx.stop.cancelled() => return,
        l = lines.next_line() => l,
    };
    match ready.ok().flatten().and_then(|l| serde_json::from_str::<Value>(&l).ok()) {
        Some(v) if v["ready"] == true => {
            let mut g = ctx.lock();
            if g.status == CtxStatus::Pending {
                g.status = CtxStatus::Running;
            }
        }
        _ => return died(ctx),
    }
    loop {
        let next = {
            let mut g = ctx.lock();
            if g.gone {
                return;
            }
            let mut picked = None;
            while let Some(id) = g.queue.pop_front() {
                let queued = g.commands.get(&id).map(|c| c.status == CmdStatus::Queued);
                if queued == Some(true) {
                    picked = Some(id);
                    break;
                }
            }
            picked.map(|id| {
                g.exec_count += 1;
                let n = g.exec_count;
                g.running = Some(id.clone());
                let c = g.commands.get_mut(&id).map(|c| {
                    c.status = CmdStatus::Running;
                    (std::mem::take(&mut c.code), c.language)
                });
                let (code, language) = c.unwrap_or((String::new(), "python"));
                (id, n, code, language)
            })
        };
        let Some((id, n, code, language)) = next else {
            // Idle: a closed stdout means the process died (killed, OOM), and
            // the context turns `Error` at once, as on a workspace.
            tokio::select! {
                _ = ctx.stop.cancelled() => return,
                _ = ctx.wake.notified() => continue,
                l = lines.next_line() => match l {
                    Ok(Some(_)) => continue, // stray output between commands
                    _ => return died(ctx),
                },
            }
        };
        let mut line = json!({"id": id, "n": n, "code": code, "language": language}).to_string();
        line.push('\n');
        if input.send(line).is_err() {
            return died(ctx);
        }
        let reply = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            l = lines.next_line() => l,
        };
        let Some(v) = reply.ok().flatten().and_then(|l| serde_json::from_str::<Value>(&l).ok()) else {
            return died(ctx);
        };
        let mut g = ctx.lock();
        g.spark |= v["spark"] == true;
        let cancelling = g.commands.get(&id).map(|c| c.status == CmdStatus::Cancelling) == Some(true);
        let (status, results) = match v["status"].as_str() {
            _ if cancelling => (CmdStatus::Cancelled, cancelled_results()),
            Some("cancelled") => (CmdStatus::Cancelled, cancelled_results()),
            Some("error") => (
                CmdStatus::Finished,
                json!({"resultType": "error",
                       "summary": v["summary"].as_str().unwrap_or("error"),
                       "cause": v["cause"].as_str().unwrap_or("")}),
            ),
            // A SQL command's table, already cut by the worker (rows, bytes).
            _ if v["table"].is_object() => (CmdStatus::Finished, table_result(&v["table"])),
            _ => (CmdStatus::Finished, text_result(v["data"].as_str().unwrap_or(""), pool.spec.max_output_chars)),
        };
        g.finish(&id, status, Some(results), &pool.stats);
    }
}

/// A text result, cut at `max` characters.
fn text_result(data: &str, max: usize) -> Value {
    match data.char_indices().nth(max) {
        Some((cut, _)) => json!({"resultType": "text", "data": &data[..cut], "truncated": true}),
        None => json!({"resultType": "text", "data": data}),
    }
}

/// A table result in the service's shape: rows of values and the schema.
fn table_result(t: &Value) -> Value {
    json!({"resultType": "table", "data": t["data"], "schema": t["schema"],
           "isJsonSchema": true, "truncated": t["truncated"].as_bool().unwrap_or(false)})
}

fn spawn(spec: &WorkerSpec, id: &str, log: &std::path::Path) -> std::io::Result<tokio::process::Child> {
    let log = std::fs::File::create(log)?;
    // The allow-listed environment and what the cluster adds (e.g. its MLflow server).
    let cluster = spec.extra_env.get().map(Vec::as_slice).unwrap_or_default();
    let mut cmd = super::child_env::command(&spec.python, cluster);
    cmd.arg("-u")
        .arg(spec.state_dir.join("worker.py"))
        .current_dir(spec.state_dir.join("driver"))
        .env("DBRXR_LOCAL_FS_ROOT", &spec.fs_root)
        .env("DBRXR_LOCAL_CONTEXT_ID", id)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // R in the context sees what a cluster's R sees: the machine's system
        // libraries plus a site library of its own (in the state directory),
        // never the user's R_LIBS or user library, so "missing on the cluster"
        // is real. R_LIBS_SITE is dropped so R's Renviron sets the system default.
        .env("R_LIBS", spec.state_dir.join("r-site-library"))
        .env("R_LIBS_USER", spec.state_dir.join("r-site-library"))
        .env_remove("R_LIBS_SITE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    super::util::own_group_dying_with_parent(&mut cmd);
    spec.mounts.apply(&mut cmd, &spec.state_dir.join("driver"));
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_are_secret_names() {
        for n in ["DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_PASSWORD", "DBRXR_LOCAL_TOKEN",
                  "ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET", "GOOGLE_CREDENTIALS", "AWS_SECRET_ACCESS_KEY",
                  "DATABRICKS_GOOGLE_SERVICE_ACCOUNT_KEY", "databricks_token"] {
            assert!(super::super::child_env::is_secret_name(n), "{n}");
        }
        for n in ["DATABRICKS_HOST", "DATABRICKS_CLUSTER_ID", "DBRXR_PYTHON", "DBRXR_LOCAL_FS_ROOT", "PATH",
                  "R_LIBS", "TOKENIZERS_PARALLELISM", "DATABRICKS_AUTH_TYPE", "DBRXR_PATH_X"] {
            assert!(!super::super::child_env::is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn text_is_cut_at_max_chars() {
        let v = text_result("héllo world", 5);
        assert_eq!(v["data"], "héllo");
        assert_eq!(v["truncated"], true);
        let v = text_result("short", 5);
        assert_eq!(v["data"], "short");
        assert!(v.get("truncated").is_none());
    }
}
