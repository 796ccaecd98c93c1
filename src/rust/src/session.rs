//! A connection's session: cluster ensure-running, its execution context,
//! commands run/poll/cancel. Polling schedules live only here.
//!
//! The warm path of a command is two requests: `execute`, then `status` until
//! terminal, the first status check a few milliseconds after submitting and
//! the interval growing geometrically to `poll_max`. The cluster is only looked
//! at when a context has to be (re)created.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

use crate::api::clusters::{self, ClusterDetails, ClusterState};
use crate::api::commands::{self, CommandStatus, CommandStatusResponse};
use crate::api::contexts::{self, ContextStatus};
use crate::auth::Credentials;
use crate::config::Config;
use crate::control::Control;
use crate::deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Replay, RetryPolicy, Transport};
use crate::location::StagingState;
use crate::poll::{FinishEstimates, PollSchedule};

/// How long a cancel may take to be confirmed before we stop watching.
const CANCEL_CONFIRM: Duration = Duration::from_millis(1500);
/// Context creation: attempts, and how long one may stay Pending.
const CONTEXT_TIMEOUT: Duration = Duration::from_secs(300);
/// The poll kind under which a session learns how long its contexts take to start.
const CONTEXT_START_KIND: &str = "dbrxr context start";

/// Per-call options (they come from the R connection's options).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub language: String,
    pub timeout: Option<Duration>,
    pub poll_max: Duration,
    pub cluster_timeout: Duration,
    /// Poll at a fixed interval instead (benchmarks compare with peers).
    pub poll_fixed: Option<Duration>,
    /// With `poll_fixed`: sleep before the first check too, as loops that
    /// start from an assumed "Running" do (the prototype's).
    pub poll_fixed_sleep_first: bool,
    /// What kind of command this is (dbrxr's requests: operation, object,
    /// size), so its status is checked when such commands finish.
    pub poll_kind: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            language: "python".into(),
            timeout: None,
            poll_max: Duration::from_secs(1),
            cluster_timeout: Duration::from_secs(1200),
            poll_fixed: None,
            poll_fixed_sleep_first: false,
            poll_kind: None,
        }
    }
}

/// One connection to a workspace (or local cluster). Creating it does no I/O.
#[derive(Debug)]
pub struct Session {
    pub config: Config,
    pub credentials: Arc<Credentials>,
    pub transport: Transport,
    /// Random id naming this session's staging directory.
    pub id: String,
    pub staging: StagingState,
    context: tokio::sync::Mutex<Option<String>>,
    /// When this session's short commands of each kind finish.
    finish: FinishEstimates,
}

impl Session {
    pub fn new(config: Config) -> Result<Session> {
        let credentials = Arc::new(Credentials::new(&config.host, config.auth.clone()));
        let cred_attr = match config.auth.auth_type() {
            "pat" => "token",
            "oauth-m2m" => "client_secret",
            _ => "profile",
        };
        let auth_source = config.sources.get(cred_attr).cloned();
        let transport = Transport::new(&config.host, credentials.clone(), auth_source)?;
        let staging = StagingState::new(config.staging.as_deref())?;
        let id = hex::encode(rand::thread_rng().gen::<[u8; 8]>());
        Ok(Session {
            config,
            credentials,
            transport,
            id,
            staging,
            context: tokio::sync::Mutex::new(None),
            finish: FinishEstimates::default(),
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.config.cluster_id
    }

    /// The current context id, if one has been created.
    pub fn context_id(&self) -> Option<String> {
        self.context.try_lock().ok().and_then(|c| c.clone())
    }

    pub async fn cluster_details(&self) -> Result<ClusterDetails> {
        clusters::get(&self.transport, self.cluster_id()).await
    }

    /// Make sure the cluster can run commands (reference §2.3): start it when
    /// TERMINATED, wait through PENDING/RESTARTING/RESIZING, wait out
    /// TERMINATING then start, fail on ERROR/UNKNOWN with the state message.
    pub async fn ensure_cluster(&self, opts: &RunOptions, ctl: &Control) -> Result<ClusterDetails> {
        let started = Instant::now();
        let mut sched = PollSchedule::new(Duration::from_millis(50), opts.poll_max.mul_f64(5.0));
        let mut started_it = false;
        loop {
            let d = ctl.run(self.cluster_details()).await?;
            let msg = d.state_message.clone().filter(|m| !m.is_empty());
            match d.state {
                s if s.usable() => return Ok(d),
                ClusterState::Terminated => {
                    ctl.set_progress(format!("Starting cluster {}", self.cluster_id()));
                    started_it |= ctl.run(clusters::start(&self.transport, self.cluster_id())).await?;
                }
                ClusterState::Pending
                | ClusterState::Restarting
                | ClusterState::Resizing
                | ClusterState::Terminating => {
                    ctl.set_progress(format!(
                        "Cluster {} is {}{}",
                        self.cluster_id(),
                        d.state.as_str(),
                        msg.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
                    ));
                }
                _ => return Err(clusters::unusable(&d)),
            }
            let delay = sched.next_delay();
            if started.elapsed() + delay > opts.cluster_timeout {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "cluster {} did not become RUNNING within {:.0} s (last state {}{})",
                        self.cluster_id(),
                        opts.cluster_timeout.as_secs_f64(),
                        d.state.as_str(),
                        if started_it { ", start requested" } else { "" }
                    ),
                )
                .field("last_status", d.state.as_str())
                .hint("clusters take minutes to start; raise `cluster_timeout` in dbx_connect(...), or start the cluster first"));
            }
            ctl.sleep(delay).await?;
        }
    }

    /// The session's context, created (and the cluster started) on first use.
    pub async fn context(&self, opts: &RunOptions, ctl: &Control) -> Result<String> {
        let mut current = self.context.lock().await;
        if let Some(c) = current.as_ref() {
            return Ok(c.clone());
        }
        self.ensure_cluster(opts, ctl).await?;
        let id = self.create_context(opts, ctl).await?;
        *current = Some(id.clone());
        Ok(id)
    }

    /// Create a context and wait for `Running`; one that ends in `Error`
    /// (an overloaded cluster) is destroyed and created again with backoff.
    async fn create_context(&self, opts: &RunOptions, ctl: &Control) -> Result<String> {
        let cluster = self.cluster_id();
        let mut last_err = None;
        let attempts = RetryPolicy::context().max_attempts;
        // Contexts evicted while they started do not use up attempts (each
        // costs a create); the call's deadline bounds them.
        let mut gone = 0u32;
        let mut attempt = 0u32;
        while attempt < attempts {
            attempt += 1;
            ctl.set_progress(format!("Creating an execution context on cluster {cluster}"));
            let id = match contexts::create(&self.transport, cluster, "python").await {
                Ok(id) => id,
                Err(e) if e.status.is_some() && e.kind != ErrorKind::Auth && attempt < attempts => {
                    // The cluster may have left RUNNING between our check and the create.
                    last_err = Some(e);
                    self.ensure_cluster(opts, ctl).await?;
                    continue;
                }
                Err(e) => return Err(context_error(e, cluster)),
            };
            let started = Instant::now();
            // When a context turns Running is learned like a command's finish:
            // a context is idle (and may be evicted) from then until the
            // first command arrives, so the check that sees it comes soon after.
            let mut sched = self.finish.schedule(Some(CONTEXT_START_KIND), opts.poll_max);
            let mut seen_pending = None;
            let ok = loop {
                if let Err(e) = ctl.sleep(sched.next_delay_at(started.elapsed())).await {
                    let _ = contexts::destroy(&self.transport, cluster, &id).await;
                    return Err(e);
                }
                let sent = started.elapsed();
                let status = match contexts::status(&self.transport, cluster, &id).await {
                    Ok(s) => s.status,
                    // Gone while it started (evicted, or a restart): make another.
                    Err(e) if contexts::is_context_gone(&e.message) && gone < 50 => {
                        gone += 1;
                        attempt -= 1;
                        ContextStatus::Error
                    }
                    Err(e) => return Err(e),
                };
                match status {
                    ContextStatus::Running => {
                        self.finish.learn(CONTEXT_START_KIND, seen_pending, sent, sched.last_was_target());
                        break true;
                    }
                    ContextStatus::Error => break false,
                    _ if started.elapsed() > CONTEXT_TIMEOUT => {
                        let _ = contexts::destroy(&self.transport, cluster, &id).await;
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!("the execution context on cluster {cluster} stayed Pending for {} s", CONTEXT_TIMEOUT.as_secs()),
                        )
                        .field("last_status", "Pending")
                        .hint("the cluster's driver may be overloaded; try again or restart the cluster"));
                    }
                    _ => seen_pending = Some(sent),
                }
            };
            if ok {
                return Ok(id);
            }
            let _ = contexts::destroy(&self.transport, cluster, &id).await;
            last_err = Some(Error::new(ErrorKind::Context, format!("execution context {id} ended in status Error")));
            ctl.sleep(RetryPolicy::context().backoff(attempt)).await?;
        }
        let why = last_err.map(|e| e.message).unwrap_or_default();
        Err(Error::new(
            ErrorKind::Context,
            format!("could not create an execution context on cluster {cluster} after {attempts} attempts: {why}"),
        )
        .hint("a cluster holds at most 145 notebooks and contexts: detach idle notebooks, or restart the cluster"))
    }

    /// Drop `ctx` as the session's context (if it still is) and destroy it,
    /// ignoring errors: it is usually gone already.
    async fn forget_context(&self, ctx: &str) {
        let mut current = self.context.lock().await;
        if current.as_deref() == Some(ctx) {
            *current = None;
        }
        drop(current);
        let _ = contexts::destroy(&self.transport, self.cluster_id(), ctx).await;
    }

    /// Drop `ctx` as the session's context because the cluster says it is
    /// gone (the next command creates another).
    pub async fn context_gone(&self, ctx: &str) {
        self.forget_context(ctx).await;
    }

    /// Whether `execute` was refused because the context is gone. Only an
    /// answer from the server counts: then the command surely did not run.
    async fn lost_context(&self, e: &Error, ctx: &str) -> bool {
        let Some(status) = e.status else { return false };
        if e.kind == ErrorKind::Auth || !(400..500).contains(&status) || status == 429 {
            return false;
        }
        if contexts::is_context_gone(&e.message) {
            return true;
        }
        match contexts::status(&self.transport, self.cluster_id(), ctx).await {
            Ok(s) => s.status != ContextStatus::Running,
            Err(_) => true,
        }
    }

    /// Submit `code`; when the context turns out to be lost, recreate it (and
    /// wait for the cluster) and submit once more.
    async fn submit(&self, code: &str, opts: &RunOptions, ctl: &Control, replay: Replay) -> Result<(String, String)> {
        let ctx = self.context(opts, ctl).await?;
        let cluster = self.cluster_id();
        match commands::execute(&self.transport, cluster, &ctx, &opts.language, code, replay).await {
            Ok(cmd) => Ok((ctx, cmd)),
            Err(e) if self.lost_context(&e, &ctx).await => {
                ctl.set_progress("The execution context was lost (cluster restart or eviction): recreating it");
                self.forget_context(&ctx).await;
                let ctx = self.context(opts, ctl).await?;
                let cmd = commands::execute(&self.transport, cluster, &ctx, &opts.language, code, replay).await?;
                Ok((ctx, cmd))
            }
            Err(e) => Err(e),
        }
    }

    /// Run one command and return its result (see [`outcome`]). Cancelling
    /// `ctl` cancels the command on the cluster; so does the deadline
    /// (`opts.timeout`, or the enclosing call's), which bounds the submit too.
    pub async fn run_command(&self, code: &str, opts: &RunOptions, ctl: &Control) -> Result<Value> {
        self.run_command_as(code, opts, ctl, Replay::Never).await
    }

    /// [`Self::run_command`] for a command that may be submitted again after
    /// an ambiguous failure (`Replay::Safe`: dbrxr's own protocol requests,
    /// which the cluster answers from its cache when they already ran).
    pub async fn run_command_as(&self, code: &str, opts: &RunOptions, ctl: &Control, replay: Replay) -> Result<Value> {
        deadline::scope(opts.timeout, self.run_command_inner(code, opts, ctl, replay)).await
    }

    async fn run_command_inner(&self, code: &str, opts: &RunOptions, ctl: &Control, replay: Replay) -> Result<Value> {
        let (ctx, cmd) = self.submit_command(code, opts, ctl, replay).await?;
        self.wait_command(&ctx, &cmd, opts, ctl).await
    }

    /// Submit a command to the session's context (created on first use);
    /// returns (context id, command id).
    pub async fn submit_command(&self, code: &str, opts: &RunOptions, ctl: &Control, replay: Replay) -> Result<(String, String)> {
        ctl.set_progress("Submitting the command");
        self.submit(code, opts, ctl, replay).await
    }

    /// Poll a submitted command until it ends; the deadline or `ctl`
    /// cancels it on the cluster.
    pub async fn wait_command(&self, ctx: &str, cmd: &str, opts: &RunOptions, ctl: &Control) -> Result<Value> {
        let (ctx, cmd) = (ctx.to_string(), cmd.to_string());
        let cluster = self.cluster_id();
        let started = Instant::now();
        let mut sched = match opts.poll_fixed {
            Some(every) if opts.poll_fixed_sleep_first => PollSchedule::fixed_sleep_first(every),
            Some(every) => PollSchedule::fixed(every),
            None => self.finish.schedule(opts.poll_kind.as_deref(), opts.poll_max),
        };
        let kind = opts.poll_kind.as_deref().filter(|_| opts.poll_fixed.is_none());
        let mut last = CommandStatus::Queued;
        // When the last check that saw the command running was sent (for the
        // finish estimate).
        let mut seen_running = None;
        ctl.set_progress("Running command");
        loop {
            let delay = sched.next_delay_at(started.elapsed());
            let mut sent = started.elapsed();
            let polled = match ctl.sleep(delay).await {
                Ok(()) => {
                    sent = started.elapsed();
                    ctl.run(commands::status(&self.transport, cluster, &ctx, &cmd)).await
                }
                Err(e) => Err(e),
            };
            let st = match polled {
                Ok(st) => st,
                Err(e) if e.kind == ErrorKind::Timeout => {
                    let status = deadline::replace(CANCEL_CONFIRM * 2, self.cancel_command(&ctx, &cmd)).await;
                    let t = deadline::total_text();
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!("the command did not finish within {t} s and was cancelled on the cluster"),
                    )
                    .field("last_status", last.as_str())
                    .field("final_status", status.map(|s| s.as_str()).unwrap_or("unknown"))
                    .field("command_id", cmd.as_str())
                    .field("context_id", ctx.as_str())
                    .hint(format!("while: {}", e.message))
                    .hint("raise `timeout`, or make the command faster"));
                }
                Err(e) if e.kind == ErrorKind::Cancelled => {
                    let status = self.cancel_command(&ctx, &cmd).await;
                    return Err(Error::new(ErrorKind::Cancelled, "the command was interrupted and cancelled on the cluster")
                        .field("last_status", last.as_str())
                        .field("final_status", status.map(|s| s.as_str()).unwrap_or("unknown"))
                        .field("command_id", cmd.as_str())
                        .field("context_id", ctx.as_str()));
                }
                Err(e) if e.status.is_some_and(|s| (400..500).contains(&s) && s != 429) && e.kind != ErrorKind::Auth => {
                    // The context went away (usually evicted once idle, i.e. after
                    // the command ended): the end lies between the last check that
                    // saw it running and this one. Learned, so that the next
                    // command of the kind is checked close to its end; otherwise a
                    // cluster that evicts contexts the moment they are idle is
                    // never seen to finish one, and nothing is ever learned.
                    if let Some(k) = kind {
                        self.finish.learn(k, seen_running, sent, false);
                    }
                    return Err(self.lost_while_running(e, &ctx, last).await);
                }
                Err(e) => return Err(e),
            };
            last = st.status;
            if st.status.is_terminal() {
                if let Some(k) = kind {
                    self.finish.learn(k, seen_running, sent, sched.last_was_target());
                }
                return outcome(st, &ctx, &cmd);
            }
            seen_running = Some(sent);
            if st.status == CommandStatus::Running || st.status == CommandStatus::Queued {
                ctl.set_progress(format!("Command {} ({:.0} s)", st.status.as_str(), started.elapsed().as_secs_f64()));
            }
        }
    }

    /// The error for a status check the cluster refused while a command ran:
    /// a cluster that is terminated or restarting says so (`Cluster`), a lost
    /// context (eviction) is a `Context` error; anything else stays as it is.
    async fn lost_while_running(&self, e: Error, ctx: &str, last: CommandStatus) -> Error {
        let state = deadline::replace(Duration::from_secs(5), self.cluster_details()).await.ok();
        let hint = "the command did not finish; the next call starts the cluster if needed and creates a new context, so run it again";
        match state {
            Some(d) if !d.state.usable() => {
                self.forget_context(ctx).await;
                Error::new(
                    ErrorKind::Cluster,
                    format!(
                        "cluster {} is {} and the command running on it was lost{}",
                        self.cluster_id(),
                        d.state.as_str(),
                        d.state_message.filter(|m| !m.is_empty()).map(|m| format!(" ({m})")).unwrap_or_default()
                    ),
                )
                .field("state", d.state.as_str())
                .field("last_status", last.as_str())
                .hint(hint)
            }
            _ if contexts::is_context_gone(&e.message) => {
                self.forget_context(ctx).await;
                Error::new(
                    ErrorKind::Context,
                    "the execution context was lost while the command ran (cluster restart or eviction)",
                )
                .field("last_status", last.as_str())
                .hint(hint)
            }
            _ => e,
        }
    }

    /// Cancel a command and watch it reach a terminal status, briefly.
    async fn cancel_command(&self, ctx: &str, cmd: &str) -> Option<CommandStatus> {
        let cluster = self.cluster_id();
        let deadline = Instant::now() + CANCEL_CONFIRM;
        let work = async {
            commands::cancel(&self.transport, cluster, ctx, cmd).await.ok()?;
            let mut sched = PollSchedule::new(Duration::from_millis(5), Duration::from_millis(100));
            let mut last = None;
            while Instant::now() < deadline {
                tokio::time::sleep(sched.next_delay()).await;
                if let Ok(st) = commands::status(&self.transport, cluster, ctx, cmd).await {
                    last = Some(st.status);
                    if st.status.is_terminal() {
                        break;
                    }
                }
            }
            last
        };
        tokio::time::timeout(CANCEL_CONFIRM + Duration::from_millis(200), work).await.ok().flatten()
    }

    /// Destroy the context. Errors are ignored (the cluster may be gone);
    /// bounded in time. [`crate::protocol::close`] also removes the
    /// session's staged files.
    pub async fn close(&self) {
        let work = async {
            let ctx = self.context.lock().await.take();
            if let Some(ctx) = ctx {
                let _ = contexts::destroy(&self.transport, self.cluster_id(), &ctx).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
    }
}

fn context_error(e: Error, cluster: &str) -> Error {
    if e.kind == ErrorKind::Auth {
        return e;
    }
    let mut out = e.with_kind(ErrorKind::Context);
    out.message = format!("could not create an execution context on cluster {cluster}: {}", out.message);
    out
}

/// The result of a terminal command as JSON for the caller: `status`,
/// `resultType`, `data` (text with `Out[n]:` stripped), `schema`, `truncated`,
/// `fileName(s)`, `context_id`, `command_id`. Python errors become
/// [`ErrorKind::RemotePython`] with `summary` and `cause` cleaned of HTML and ANSI.
pub fn outcome(st: CommandStatusResponse, ctx: &str, cmd: &str) -> Result<Value> {
    let r = st.results.unwrap_or_default();
    let rtype = r.result_type.clone().unwrap_or_else(|| "text".into());
    if st.status == CommandStatus::Cancelled {
        return Err(Error::new(ErrorKind::Cancelled, "the command was cancelled on the cluster")
            .field("last_status", "Cancelled")
            .field("command_id", cmd)
            .field("context_id", ctx));
    }
    if rtype == "error" || st.status == CommandStatus::Error {
        let data_text = r.data.as_str().map(str::to_string);
        let summary = clean_markup(r.summary.as_deref().or(data_text.as_deref()).unwrap_or("unknown error"));
        let cause = clean_markup(r.cause.as_deref().or(data_text.as_deref()).unwrap_or(""));
        let first = summary.lines().find(|l| !l.trim().is_empty()).unwrap_or("unknown error").trim().to_string();
        return Err(Error::new(ErrorKind::RemotePython, format!("Python failed on the cluster: {first}"))
            .field("summary", summary)
            .field("cause", cause)
            .field("command_status", st.status.as_str())
            .field("command_id", cmd)
            .field("context_id", ctx));
    }
    let data = match (&rtype[..], &r.data) {
        ("text", Value::String(s)) => Value::String(strip_out_prompt(s)),
        (_, d) => d.clone(),
    };
    Ok(json!({
        "status": st.status.as_str(),
        "resultType": rtype,
        "data": data,
        "schema": r.schema,
        "isJsonSchema": r.is_json_schema,
        "truncated": r.truncated.unwrap_or(false),
        "fileName": r.file_name,
        "fileNames": r.file_names,
        "context_id": ctx,
        "command_id": cmd,
    }))
}

/// Remove IPython's `Out[n]: ` prompt (the Go SDK strips `Out\[[\d\s]+\]:\s`).
pub fn strip_out_prompt(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(strip_prompt_line(line));
    }
    out
}

fn strip_prompt_line(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("Out[") else { return line };
    let Some(close) = rest.find("]:") else { return line };
    if close == 0 || !rest[..close].chars().all(|c| c.is_ascii_digit() || c.is_whitespace()) {
        return line;
    }
    let after = &rest[close + 2..];
    after.strip_prefix(char::is_whitespace).unwrap_or(after)
}

/// Strip HTML tags, unescape entities and drop ANSI escape sequences.
pub fn clean_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if d.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '<' if is_html_tag(chars.clone()) => {
                for d in chars.by_ref() {
                    if d == '>' {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Whether the text after a `<` is an HTML tag (not `<module>` or `a < b`
/// of a Python traceback).
fn is_html_tag(rest: std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    const TAGS: &[&str] = &[
        "a", "b", "i", "u", "p", "br", "hr", "em", "strong", "span", "div", "pre", "code", "font", "html", "head",
        "body", "title", "table", "tr", "td", "th", "ul", "li", "h1", "h2", "h3", "style", "script",
    ];
    let name: String = rest
        .skip_while(|c| *c == '/')
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    TAGS.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_prompt_is_stripped() {
        assert_eq!(strip_out_prompt("Out[1]: 42"), "42");
        assert_eq!(strip_out_prompt("hello\nOut[12]: 'x'"), "hello\n'x'");
        assert_eq!(strip_out_prompt("Out[x]: no"), "Out[x]: no");
    }

    #[test]
    fn markup_is_cleaned() {
        let s = "<span class=\"ansi-red-fg\">ZeroDivisionError</span>: division by zero";
        assert_eq!(clean_markup(s), "ZeroDivisionError: division by zero");
        assert_eq!(clean_markup("\u{1b}[0;31mKeyError\u{1b}[0m: &#39;a&#39; &lt; b"), "KeyError: 'a' < b");
        assert_eq!(clean_markup("1 < 2"), "1 < 2");
        assert_eq!(clean_markup("File <command-1>:1, in <module>"), "File <command-1>:1, in <module>");
        assert_eq!(clean_markup("<b>x</b><br/>y"), "xy");
    }

    #[test]
    fn error_results_become_remote_python_errors() {
        let st: CommandStatusResponse = serde_json::from_value(json!({
            "id": "c", "status": "Finished",
            "results": {"resultType": "error", "summary": "<b>ValueError</b>: bad", "cause": "\u{1b}[31mTraceback\u{1b}[0m"}
        }))
        .unwrap();
        let e = outcome(st, "ctx", "c").unwrap_err();
        assert_eq!(e.kind, ErrorKind::RemotePython);
        assert_eq!(e.get_field("summary"), Some("ValueError: bad"));
        assert_eq!(e.get_field("cause"), Some("Traceback"));
    }
}
