//! The remote protocol in one job: R hands over a serialized request and
//! gets the serialized answer back. Everything between lives here: the
//! bootstrap of a context (and again after it was lost), inline vs staged
//! requests, the generated Python call, the answer markers, re-staging a
//! vanished request, progress reports, fetching a staged answer and the
//! deferred clean-up.
//!
//! Targets: a request names what answers it in the context: `r` (the R
//! dispatcher) or one of dbrxr's Python modules (`dbrxr_<target>.py`: Spark
//! tables, MLflow, jobs, SQL). The one bootstrap installs them all, keyed by
//! the hash of their sources; everything else here is the same for every
//! target.
//!
//! Exactly once: every request carries a random request id; the bootstrap
//! module on the cluster keeps the answers of recent ids (bounded, per
//! context), so the `execute` of a protocol command may be sent again after
//! an ambiguous failure (a dropped connection) and never runs twice.
//!
//! Order: requests of one session are submitted in the order they were
//! started (chunked scoring starts chunk j+1 while chunk j runs, and the
//! cluster must see j first); each job holds a [`Ticket`] until it submitted.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use crate::api::dbfs;
use crate::control::{Control, Counts};
use crate::deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::http::Replay;
use crate::session::{RunOptions, Session};
use crate::staging::{self, Location};

pub const MARKER: &str = "DBRXR1";
/// Parallel 1 MiB part uploads of a staged request.
const UPLOAD_PARALLELISM: usize = 8;

/// The sources a context needs (the bootstrap module `dbrxr_bootstrap.py`,
/// the R dispatcher `dispatcher.R`, the Python targets), by file name, and
/// the bootstrap's options; handed over once per connection by R.
#[derive(Debug, Clone)]
pub struct Sources {
    pub files: Vec<(String, Bytes)>,
    pub install_rpy2: bool,
    /// sha256 of the names and contents: a context whose bootstrap holds
    /// other sources is bootstrapped again.
    pub hash: String,
}

impl Sources {
    pub fn new(mut files: Vec<(String, Bytes)>, install_rpy2: bool) -> Result<Sources> {
        use sha2::{Digest, Sha256};
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, _) in &files {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                return Err(Error::internal(format!("a bootstrap source has an invalid name: {name:?}")));
            }
        }
        for needed in ["dbrxr_bootstrap.py", "dispatcher.R"] {
            if !files.iter().any(|(n, _)| n == needed) {
                return Err(Error::internal(format!("the bootstrap sources lack {needed}")));
            }
        }
        let mut h = Sha256::new();
        for (name, data) in &files {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((data.len() as u64).to_le_bytes());
            h.update(data);
        }
        Ok(Sources { files, install_rpy2, hash: hex::encode(h.finalize()) })
    }
    fn file(&self, name: &str) -> &[u8] {
        self.files.iter().find(|(n, _)| n == name).map(|(_, d)| d.as_ref()).unwrap_or_default()
    }
}

/// What answers a request in the context: `r` or a Python target's name.
pub fn check_target(target: &str) -> Result<()> {
    if target.is_empty() || target.len() > 40 || !target.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(Error::input(format!("`{target}` is not a protocol target (lower-case letters, digits and _)")));
    }
    Ok(())
}

/// Limits of one request (R options, for tests and benchmarks).
#[derive(Debug, Clone)]
pub struct Limits {
    pub inline_request_max: usize,
    pub inline_answer_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Answers inline up to 30,000 bytes: 40,000 base64 characters stay
        // under the 50,000-character text output limit of Databricks runtimes.
        Limits { inline_request_max: 1 << 20, inline_answer_max: 30_000 }
    }
}

/// The protocol state of one connection (owned with its session by the R
/// connection's handle).
#[derive(Default)]
pub struct State {
    sources: Mutex<Option<Arc<Sources>>>,
    /// The context the bootstrap module was installed in.
    booted: tokio::sync::Mutex<Option<String>>,
    order: Arc<Order>,
}

/// Close a session: destroy its context and remove its staged temporary
/// files (bounded in time, errors ignored).
pub async fn close(s: &Session) {
    s.close().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), staging::remove_session_dir(s)).await;
}

impl State {
    pub fn set_sources(&self, sources: Sources) {
        *self.sources.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(sources));
    }
    pub fn has_sources(&self) -> bool {
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
    fn sources(&self) -> Result<Arc<Sources>> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::internal("the remote protocol has no bootstrap sources"))
    }
    /// A place in the submit order, taken when the request starts.
    pub fn ticket(&self) -> Ticket {
        self.order.ticket()
    }
}

/// Submit order of a session's requests.
#[derive(Default)]
struct Order {
    next: Mutex<u64>,
    submitted: tokio::sync::watch::Sender<u64>,
}

impl Order {
    fn ticket(self: &Arc<Self>) -> Ticket {
        let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let t = Ticket { n: *n, order: self.clone() };
        *n += 1;
        t
    }
}

/// A place in the submit order: wait for the previous one, release after
/// submitting (or on drop, when the job fails first).
pub struct Ticket {
    n: u64,
    order: Arc<Order>,
}

impl Ticket {
    async fn turn(&self) {
        let mut rx = self.order.submitted.subscribe();
        let _ = rx.wait_for(|s| *s >= self.n).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let n = self.n + 1;
        self.order.submitted.send_modify(|s| *s = (*s).max(n));
    }
}

/// What a request returned: the answer bytes, plus facts for R (a bootstrap
/// that happened on the way, bytes moved).
#[derive(Debug)]
pub struct Answer {
    pub bytes: Vec<u8>,
    pub meta: Value,
}

/// How a request reaches the cluster.
enum Carrier {
    Inline(String),
    /// Staged parts (cluster paths), concatenated by the bootstrap module.
    Staged(Vec<Location>),
}

fn b64(x: &[u8]) -> String {
    crate::b64::encode(x)
}

/// A Python string literal of arbitrary bytes: base64 in quotes, so nothing
/// passed here changes the meaning of the generated source.
fn py_b64(x: &[u8]) -> String {
    format!("\"{}\"", b64(x))
}

/// The bootstrap command: the module itself, then `setup()` with the
/// marker, the sources' hash and every source file.
pub fn bootstrap_code(src: &Sources) -> String {
    let files: Vec<String> = src.files.iter().map(|(name, data)| format!("\"{name}\": {}", py_b64(data))).collect();
    format!(
        "import sys, types, base64\n\
         _dbrxr_m = types.ModuleType(\"dbrxr_bootstrap\")\n\
         exec(compile(base64.b64decode({}).decode(\"utf-8\"), \"dbrxr_bootstrap.py\", \"exec\"), _dbrxr_m.__dict__)\n\
         sys.modules[\"dbrxr_bootstrap\"] = _dbrxr_m\n\
         del _dbrxr_m\n\
         sys.modules[\"dbrxr_bootstrap\"].setup(\"{MARKER}\", \"{}\", {{{}}}, install_rpy2={})\n",
        py_b64(src.file("dbrxr_bootstrap.py")),
        src.hash,
        files.join(", "),
        if src.install_rpy2 { "True" } else { "False" }
    )
}

/// One request's command: NOBOOT unless the context's bootstrap holds these
/// sources, else one call of the bootstrap with only base64 and our own
/// names in it.
struct Call<'a> {
    rid: &'a str,
    target: &'a str,
    sources_hash: &'a str,
    result_path: &'a str,
    progress_path: &'a str,
    staging_root: &'a str,
    inline_max: usize,
}

fn call_code(c: &Call, carrier: &Carrier) -> String {
    let (inline, paths) = match carrier {
        Carrier::Inline(b) => (b.as_str(), String::new()),
        Carrier::Staged(parts) => ("", parts.iter().map(|l| l.api_path()).collect::<Vec<_>>().join("\n")),
    };
    format!(
        "import sys\n\
         if getattr(sys.modules.get(\"dbrxr_bootstrap\"), \"SOURCES_HASH\", None) != \"{hash}\":\n    \
             print(\"{MARKER}:NOBOOT\")\n\
         else:\n    \
             sys.modules[\"dbrxr_bootstrap\"].call_once(\"{rid}\", \"{target}\", \"{inline}\", {}, {}, {inline_max}, {}, {})\n",
        py_b64(paths.as_bytes()),
        py_b64(c.result_path.as_bytes()),
        py_b64(c.progress_path.as_bytes()),
        py_b64(c.staging_root.as_bytes()),
        hash = c.sources_hash,
        rid = c.rid,
        target = c.target,
        inline_max = c.inline_max,
    )
}

/// [`call_code`] from plain parts (tests of the bootstrap run it directly).
pub fn call_code_for(
    rid: &str,
    target: &str,
    sources: &Sources,
    inline: &[u8],
    paths: &[String],
    result_path: &str,
    inline_max: usize,
) -> Result<String> {
    if rid.is_empty() || !rid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::input("a request id is letters and digits only"));
    }
    check_target(target)?;
    let carrier = if paths.is_empty() {
        Carrier::Inline(b64(inline))
    } else {
        Carrier::Staged(paths.iter().map(|p| Location::parse(p)).collect::<Result<_>>()?)
    };
    let call = Call { rid, target, sources_hash: &sources.hash, result_path, progress_path: "", staging_root: "", inline_max };
    Ok(call_code(&call, &carrier))
}

/// The marker line of a command's output: (kind, payload).
pub fn parse_marker(text: &str) -> Result<(String, String)> {
    let prefix = format!("{MARKER}:");
    let line = text.lines().filter(|l| l.starts_with(&prefix)).last().ok_or_else(|| {
        let snippet: String = text.chars().take(500).collect();
        Error::internal("the cluster's answer to a dbrxr command has no dbrxr result in it")
            .hint(format!("output: {snippet}"))
            .hint("the bootstrap module may have been replaced; disconnect and reconnect")
    })?;
    let body = &line[prefix.len()..];
    Ok(match body.split_once(' ') {
        Some((k, p)) => (k.to_string(), p.to_string()),
        None => (body.to_string(), String::new()),
    })
}

/// The bootstrap's form-encoded reports (`key=value&...`).
pub fn parse_fields(text: &str) -> Map<String, Value> {
    url_pairs(text).into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

fn url_pairs(text: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s).decode_utf8_lossy().to_string()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

fn output_text(v: &Value) -> String {
    match v.get("data") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Install the bootstrap module in the session's context (if not already
/// there) and return what it reported.
pub async fn bootstrap(s: &Session, st: &State, opts: &RunOptions, ctl: &Control) -> Result<Map<String, Value>> {
    let src = st.sources()?;
    ctl.set_progress("Installing the dbrxr bootstrap in the execution context");
    let out = output_text(&s.run_command_as(&bootstrap_code(&src), opts, ctl, Replay::Safe).await?);
    let (kind, payload) = parse_marker(&out)?;
    let fields = parse_fields(&payload);
    let get = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match kind.as_str() {
        "READY" => {
            *st.booted.lock().await = s.context_id();
            Ok(fields)
        }
        "NORPY2" => Err(Error::new(ErrorKind::Context, "The cluster's Python has no rpy2, so dbrxr cannot run R there")
            .field("problem", get("problem"))
            .field("python", get("python"))
            .hint(format!("import failed: {}", get("problem")))
            .hint("add rpy2 as a cluster library: {\"pypi\": {\"package\": \"rpy2\"}} (Libraries API or the cluster's Libraries tab), then reconnect")
            .hint("or install it from a cluster init script (pip install rpy2)")
            .hint("or connect with `install_rpy2 = TRUE` to pip-install it in the execution context")),
        _ => Err(Error::new(ErrorKind::Context, "the dbrxr bootstrap did not complete on the cluster")
            .hint(out.chars().take(500).collect::<String>())),
    }
}

/// Stage a request too large to go inline: 1 MiB parts put in parallel
/// (each `dbfs/put` is idempotent, so a dropped one is simply sent again),
/// or one Files API PUT for a Volume.
async fn stage_request(s: &Session, bytes: &Bytes, rid: &str, ctl: &Control) -> Result<Vec<Location>> {
    let dir = staging::session_dir(s).join(&format!("req-{rid}"));
    ctl.set_progress(format!("Uploading the request ({:.1} MB)", bytes.len() as f64 / 1e6));
    match &dir {
        Location::Volume(_) => {
            let loc = dir.join("0");
            staging::put_bytes(s, &loc, bytes.clone(), ctl).await?;
            Ok(vec![loc])
        }
        Location::Dbfs(p) => {
            ctl.run(dbfs::mkdirs(&s.transport, p)).await?;
            let parts: Vec<Location> = (0..bytes.len().div_ceil(dbfs::BLOCK)).map(|i| dir.join(&format!("{i:05}"))).collect();
            let paths: Vec<String> = (0..parts.len()).map(|i| format!("{p}/{i:05}")).collect();
            let uploads = paths.into_iter().enumerate().map(|(i, path)| {
                let chunk = bytes.slice(i * dbfs::BLOCK..((i + 1) * dbfs::BLOCK).min(bytes.len()));
                async move { dbfs::put(&s.transport, &path, &chunk, true).await }
            });
            let mut stream = futures_util::stream::iter(uploads).buffer_unordered(UPLOAD_PARALLELISM);
            while let Some(r) = ctl.run(async { Ok(stream.next().await) }).await? {
                r?;
            }
            drop(stream);
            Ok(parts)
        }
    }
}

/// Remove staged files later, off the critical path (errors ignored: the
/// session directory goes when the session closes anyway).
fn remove_later(s: &Arc<Session>, locs: Vec<Location>) {
    if locs.is_empty() {
        return;
    }
    let s = s.clone();
    if let Ok(rt) = crate::runtime::runtime() {
        rt.spawn(async move {
            for loc in locs {
                let _ = staging::remove_tree(&s, &loc).await;
            }
        });
    }
}

/// One request: R's serialize() of the request list, for `target`.
pub struct Request {
    pub target: String,
    pub bytes: Bytes,
    pub limits: Limits,
    /// Poll the target's progress reports and publish them as counts.
    pub progress: bool,
}

/// How often a request's progress file is read while it runs.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(400);

/// Read the target's progress file (`done total text`) until dropped.
async fn follow_progress(s: &Session, path: &str, ctl: &Control) {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        // A quiet control: fetching must not show as what the request does.
        let quiet = Control::default();
        let Ok(bytes) = staging::fetch(s, path, &quiet).await else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let mut parts = text.splitn(3, ' ');
        let done = parts.next().and_then(|x| x.parse::<f64>().ok());
        let total = parts.next().and_then(|x| x.parse::<f64>().ok());
        if let (Some(done), Some(total)) = (done, total) {
            ctl.set_counts(Counts { done, total, text: parts.next().unwrap_or("").trim().to_string() });
        }
    }
}

/// Attempts of a request whose contexts keep going away (evictions): each
/// is asked again of a new context, which answers from its record. With a
/// deadline, attempts go on until it passes (a busy cluster that evicts
/// often can take many, each losing the context it just made); without
/// one, this many.
const LOST_TRIES: u32 = 30;
/// Attempts with a deadline: a bound on a loop that no timer bounds yet.
const LOST_TRIES_WITH_DEADLINE: u32 = 1000;

/// Whether a request whose context went away may be asked again.
fn may_ask_again(tries: u32) -> bool {
    match deadline::remaining() {
        Some(left) => !left.is_zero() && tries < LOST_TRIES_WITH_DEADLINE,
        None => tries < LOST_TRIES,
    }
}

/// The bootstrap's finish is learned like a request's: the check that sees
/// it done comes soon after it ends, so a context is idle (and could be
/// evicted) for as short a time as possible before the request follows.
const BOOT_POLL_KIND: &str = "dbrxr bootstrap";

/// An error saying the context went away (evicted, killed, restarted).
fn context_lost(e: &Error) -> bool {
    (e.kind == ErrorKind::Context && e.get_field("last_status").is_some())
        || (e.status.is_some_and(|s| (400..500).contains(&s) && s != 429)
            && crate::api::contexts::is_context_gone(&e.message))
}

/// Run one request on session `s` with its protocol state `st`.
pub async fn request(s: Arc<Session>, st: Arc<State>, ticket: Ticket, req: Request, opts: RunOptions, ctl: Control) -> Result<Answer> {
    check_target(&req.target)?;
    let src = st.sources()?;
    let Request { target, bytes, limits, progress } = req;
    let rid = hex::encode(rand::random::<[u8; 12]>());
    let mut meta = Map::new();
    let mut staged: Vec<Location> = Vec::new();
    let mut carrier = if bytes.len() <= limits.inline_request_max {
        Carrier::Inline(b64(&bytes))
    } else {
        staged = stage_request(&s, &bytes, &rid, &ctl).await?;
        Carrier::Staged(staged.clone())
    };
    let dir = staging::session_dir(&s);
    let result_loc = dir.join(&format!("result-{rid}.bin"));
    let progress_loc = progress.then(|| dir.join(&format!("progress-{rid}")));
    let progress_path = progress_loc.as_ref().map(Location::api_path).unwrap_or_default();
    let staging_root = s.staging.root.api_path();
    let mut ticket = Some(ticket);
    let mut tries = 0;
    let answer = loop {
        tries += 1;
        if let Some(t) = &ticket {
            t.turn().await;
        }
        let booted = st.booted.lock().await.clone();
        if booted.is_none() || booted != s.context_id() {
            let boot_opts = RunOptions { poll_kind: Some(BOOT_POLL_KIND.to_string()), ..opts.clone() };
            match bootstrap(&s, &st, &boot_opts, &ctl).await {
                Ok(info) => {
                    meta.insert("bootstrap".into(), Value::Object(info));
                }
                // Evicted between commands: the bootstrap is safe to repeat.
                Err(e) if context_lost(&e) && may_ask_again(tries) => continue,
                Err(e) => return Err(e),
            }
        }
        let call = Call {
            rid: &rid,
            target: &target,
            sources_hash: &src.hash,
            result_path: &result_loc.api_path(),
            progress_path: &progress_path,
            staging_root: &staging_root,
            inline_max: limits.inline_answer_max,
        };
        let code = call_code(&call, &carrier);
        ctl.set_progress("Running the request");
        let (ctx, cmd) = match s.submit_command(&code, &opts, &ctl, Replay::Safe).await {
            Ok(submitted) => submitted,
            // Refused because the context is gone (evicted again after the
            // session made a new one): nothing ran; ask a new context.
            Err(e) if context_lost(&e) && may_ask_again(tries) => {
                if let Some(ctx) = s.context_id() {
                    s.context_gone(&ctx).await;
                }
                *st.booted.lock().await = None;
                continue;
            }
            Err(e) => return Err(e),
        };
        drop(ticket.take());
        let waited = match &progress_loc {
            None => s.wait_command(&ctx, &cmd, &opts, &ctl).await,
            Some(loc) => {
                let path = loc.api_path();
                tokio::select! {
                    r = s.wait_command(&ctx, &cmd, &opts, &ctl) => r,
                    _ = follow_progress(&s, &path, &ctl) => unreachable!("follow_progress never ends"),
                }
            }
        };
        let out = match waited {
            // The context was lost while the request ran: a new context
            // answers it from the driver's record of it (never running it
            // twice), or says that it may have run.
            Err(e) if e.kind == ErrorKind::Context && e.get_field("last_status").is_some() && may_ask_again(tries) => {
                ctl.set_progress("The execution context was lost while the request ran: asking a new one");
                *st.booted.lock().await = None;
                continue;
            }
            r => output_text(&r?),
        };
        let (kind, payload) = parse_marker(&out)?;
        match kind.as_str() {
            "NOBOOT" if may_ask_again(tries) => *st.booted.lock().await = None,
            "MAYRAN" => {
                return Err(Error::new(
                    ErrorKind::Context,
                    "the execution context was lost while this request ran on it: it may have run, in part or in full",
                )
                .field("may_have_run", "true")
                .hint("dbrxr did not run it again; check what it changes before you run it again"))
            }
            "NOFILE" if tries < 3 => {
                staged = stage_request(&s, &bytes, &rid, &ctl).await?;
                carrier = Carrier::Staged(staged.clone());
            }
            "INLINE" => {
                break crate::b64::decode(&payload)
                    .map_err(|e| Error::internal(format!("the cluster's inline answer is not base64 ({e})")))?
            }
            "FILE" => {
                let path = parse_fields(&payload).get("path").and_then(Value::as_str).unwrap_or("").to_string();
                let got = staging::fetch(&s, &path, &ctl).await;
                remove_later(&s, vec![Location::parse(&path)?]);
                break got?;
            }
            _ => {
                return Err(Error::internal("the cluster gave an unexpected dbrxr answer")
                    .hint(format!("{kind} {}", payload.chars().take(300).collect::<String>())))
            }
        }
    };
    if let Some(dir) = staged.first().and_then(Location::parent) {
        remove_later(&s, vec![dir]);
    }
    if let Some(loc) = progress_loc {
        remove_later(&s, vec![loc]);
    }
    meta.insert("bytes_sent".into(), json!(bytes.len() as f64));
    meta.insert("bytes_received".into(), json!(answer.len() as f64));
    meta.insert("request_id".into(), json!(rid));
    Ok(Answer { bytes: answer, meta: Value::Object(meta) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_lost_context_is_asked_again_until_the_deadline_or_30_times_without_one() {
        assert!(may_ask_again(29));
        assert!(!may_ask_again(30));
        deadline::scope(Some(Duration::from_secs(60)), async {
            assert!(may_ask_again(30));
            assert!(may_ask_again(500));
            assert!(!may_ask_again(LOST_TRIES_WITH_DEADLINE));
        })
        .await;
        deadline::scope(Some(Duration::from_millis(1)), async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(!may_ask_again(2));
        })
        .await;
    }

    #[test]
    fn markers_and_fields_parse() {
        let (k, p) = parse_marker("noise\nDBRXR1:READY r_version=4.2.2&pid=12\n").unwrap();
        assert_eq!(k, "READY");
        let f = parse_fields(&p);
        assert_eq!(f["r_version"], "4.2.2");
        assert_eq!(parse_marker("DBRXR1:NOBOOT").unwrap(), ("NOBOOT".into(), String::new()));
        assert!(parse_marker("nothing").is_err());
        assert_eq!(parse_fields("problem=No+module%20named&x=")["problem"], "No module named");
    }

    #[test]
    fn generated_code_holds_no_caller_text() {
        let call = Call { rid: "abc", target: "spark", sources_hash: "h", result_path: "dbfs:/r", progress_path: "", staging_root: "", inline_max: 10 };
        let c = call_code(&call, &Carrier::Staged(vec![Location::Dbfs("/x\"; import os".into())]));
        assert!(!c.contains("import os"));
        assert!(c.contains("call_once(\"abc\", \"spark\""));
        assert!(check_target("spark").is_ok());
        assert!(check_target("x\"; import os").is_err());
    }

    #[tokio::test]
    async fn tickets_keep_the_submit_order() {
        let order = Arc::new(Order::default());
        let (a, b) = (order.ticket(), order.ticket());
        let waiter = tokio::spawn(async move {
            b.turn().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        a.turn().await;
        drop(a);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
    }
}
