//! The remote R protocol in one job: R hands over a serialized request and
//! gets the serialized answer back. Everything between lives here: the
//! bootstrap of a context (and again after it was lost), inline vs staged
//! requests, the generated Python call, the answer markers, re-staging a
//! vanished request, fetching a staged answer and the deferred clean-up.
//!
//! Exactly once: every request carries a random request id; the bootstrap
//! module on the cluster keeps the answers of recent ids (bounded, per
//! context), so the `execute` of a protocol command may be sent again after
//! an ambiguous failure (a dropped connection) and never runs twice.
//!
//! Order: requests of one session are submitted in the order they were
//! started (chunked scoring starts chunk j+1 while chunk j runs, and the
//! cluster must see j first); each job holds a [`Ticket`] until it submitted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use crate::api::dbfs;
use crate::control::Control;
use crate::error::{Error, ErrorKind, Result};
use crate::http::Replay;
use crate::session::{RunOptions, Session};
use crate::staging::{self, Location};

pub const MARKER: &str = "DBRXR1";
/// Parallel 1 MiB part uploads of a staged request.
const UPLOAD_PARALLELISM: usize = 8;

/// The bootstrap sources (Python module and R dispatcher) and its options,
/// handed over once per connection by R.
#[derive(Debug, Clone)]
pub struct Sources {
    pub module: Bytes,
    pub dispatcher: Bytes,
    pub install_rpy2: bool,
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

/// The protocol state of one session.
#[derive(Default)]
pub struct State {
    sources: Mutex<Option<Arc<Sources>>>,
    /// The context the bootstrap module was installed in.
    booted: tokio::sync::Mutex<Option<String>>,
    order: Arc<Order>,
}

fn states() -> &'static Mutex<HashMap<String, Arc<State>>> {
    static STATES: OnceLock<Mutex<HashMap<String, Arc<State>>>> = OnceLock::new();
    STATES.get_or_init(Default::default)
}

/// The protocol state of session `s`.
pub fn state(s: &Session) -> Arc<State> {
    states().lock().unwrap_or_else(|p| p.into_inner()).entry(s.id.clone()).or_default().clone()
}

/// Close a session: destroy its context, remove its staged temporary files
/// (bounded in time, errors ignored) and forget its protocol state.
pub async fn close(s: &Session) {
    s.close().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), staging::remove_session_dir(s)).await;
    states().lock().unwrap_or_else(|p| p.into_inner()).remove(&s.id);
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

pub fn bootstrap_code(src: &Sources) -> String {
    format!(
        "import sys, types, base64\n\
         _dbrxr_m = types.ModuleType(\"dbrxr_bootstrap\")\n\
         exec(compile(base64.b64decode({}).decode(\"utf-8\"), \"dbrxr_bootstrap.py\", \"exec\"), _dbrxr_m.__dict__)\n\
         sys.modules[\"dbrxr_bootstrap\"] = _dbrxr_m\n\
         del _dbrxr_m\n\
         sys.modules[\"dbrxr_bootstrap\"].setup({}, install_rpy2={})\n",
        py_b64(&src.module),
        py_b64(&src.dispatcher),
        if src.install_rpy2 { "True" } else { "False" }
    )
}

fn call_code(rid: &str, carrier: &Carrier, result_path: &str, inline_max: usize) -> String {
    let (inline, paths) = match carrier {
        Carrier::Inline(b) => (b.as_str(), String::new()),
        Carrier::Staged(parts) => ("", parts.iter().map(|l| l.api_path()).collect::<Vec<_>>().join("\n")),
    };
    format!(
        "import sys\n\
         if \"dbrxr_bootstrap\" not in sys.modules or not hasattr(sys.modules[\"dbrxr_bootstrap\"], \"call_once\"):\n    \
             print(\"{MARKER}:NOBOOT\")\n\
         else:\n    \
             sys.modules[\"dbrxr_bootstrap\"].call_once(\"{rid}\", \"{inline}\", {}, {}, {inline_max})\n",
        py_b64(paths.as_bytes()),
        py_b64(result_path.as_bytes()),
    )
}

/// [`call_code`] from plain parts (tests of the bootstrap run it directly).
pub fn call_code_for(rid: &str, inline: &[u8], paths: &[String], result_path: &str, inline_max: usize) -> Result<String> {
    if rid.is_empty() || !rid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::input("a request id is letters and digits only"));
    }
    let carrier = if paths.is_empty() {
        Carrier::Inline(b64(inline))
    } else {
        Carrier::Staged(paths.iter().map(|p| Location::parse(p)).collect::<Result<_>>()?)
    };
    Ok(call_code(rid, &carrier, result_path, inline_max))
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
        "NORPY2" => Err(Error::new(ErrorKind::Context, "rpy2 is not available in the cluster's Python, so dbrxr cannot run R there")
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

/// Run one request: `bytes` is R's serialize() of the request list.
pub async fn request(
    s: Arc<Session>,
    ticket: Ticket,
    bytes: Bytes,
    limits: Limits,
    opts: RunOptions,
    ctl: Control,
) -> Result<Answer> {
    let st = state(&s);
    let rid = hex::encode(rand::random::<[u8; 12]>());
    let mut meta = Map::new();
    let mut staged: Vec<Location> = Vec::new();
    let mut carrier = if bytes.len() <= limits.inline_request_max {
        Carrier::Inline(b64(&bytes))
    } else {
        staged = stage_request(&s, &bytes, &rid, &ctl).await?;
        Carrier::Staged(staged.clone())
    };
    let result_loc = staging::session_dir(&s).join(&format!("result-{rid}.bin"));
    let mut ticket = Some(ticket);
    let mut tries = 0;
    let answer = loop {
        tries += 1;
        if let Some(t) = &ticket {
            t.turn().await;
        }
        let booted = st.booted.lock().await.clone();
        if booted.is_none() || booted != s.context_id() {
            let boot_opts = RunOptions { poll_kind: None, ..opts.clone() };
            let info = bootstrap(&s, &st, &boot_opts, &ctl).await?;
            meta.insert("bootstrap".into(), Value::Object(info));
        }
        let code = call_code(&rid, &carrier, &result_loc.api_path(), limits.inline_answer_max);
        ctl.set_progress("Running the request");
        let (ctx, cmd) = s.submit_command(&code, &opts, &ctl, Replay::Safe).await?;
        drop(ticket.take());
        let out = output_text(&s.wait_command(&ctx, &cmd, &opts, &ctl).await?);
        let (kind, payload) = parse_marker(&out)?;
        match kind.as_str() {
            "NOBOOT" if tries < 3 => *st.booted.lock().await = None,
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
    meta.insert("bytes_sent".into(), json!(bytes.len() as f64));
    meta.insert("bytes_received".into(), json!(answer.len() as f64));
    meta.insert("request_id".into(), json!(rid));
    Ok(Answer { bytes: answer, meta: Value::Object(meta) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let c = call_code("abc", &Carrier::Staged(vec![Location::Dbfs("/x\"; import os".into())]), "dbfs:/r", 10);
        assert!(!c.contains("import os"));
        assert!(c.contains("call_once(\"abc\""));
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
