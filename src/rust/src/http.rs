//! The transport: pooled HTTP client, auth header, retries, error body parsing.
//!
//! This is the only place that retries (design: one place per concern). What is
//! retried (reference §4.5): 429 and 503 (an integer `Retry-After` is honoured,
//! capped), connection failures, and the transient messages the SDKs know,
//! with capped exponential backoff and full jitter inside a budget of attempts
//! and time. A request marked [`Replay::Never`] (`commands/execute`) is resent
//! only when the server surely did not run it: it answered with an error, or the
//! connection was never made. Every error body shape of §4.1 becomes one
//! [`Error`] with status, code, message and request id, secrets scrubbed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::auth::Credentials;
use crate::deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::redact::{scrub, Secret};

pub const USER_AGENT: &str = concat!("dbrxr/", env!("CARGO_PKG_VERSION"));

/// Messages that mean "try again" whatever the status (SDKs, reference §4.5).
const TRANSIENT_MESSAGES: &[&str] = &[
    "com.databricks.backend.manager.util.UnknownWorkerEnvironmentException",
    "does not have any associated worker environments",
    "There is no worker environment with id",
    "Unknown worker environment",
    "ClusterNotReadyException",
    "Unexpected error",
    "Please try again later or try a faster operation.",
    "RPC token bucket limit has been exceeded",
    "REQUEST_LIMIT_EXCEEDED",
];

/// How hard the transport tries before giving up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total (first try included).
    pub max_attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
    /// First backoff ceiling; doubles each retry up to `cap`.
    pub base: Duration,
    pub cap: Duration,
    /// Longest `Retry-After` we honour.
    pub retry_after_cap: Duration,
    /// Attempts when the connection cannot be made: a host that refuses
    /// connections should fail in seconds, not after the whole time budget.
    /// (A connection dropped mid-request counts against `max_attempts`.)
    pub max_network_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 30,
            max_elapsed: Duration::from_secs(300),
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
            retry_after_cap: Duration::from_secs(60),
            max_network_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The policy of auth endpoints (token, discovery): same backoff, three
    /// attempts, as a login that fails should say so quickly.
    pub fn auth() -> Self {
        RetryPolicy { max_attempts: 3, ..Default::default() }
    }

    /// The policy of creating an execution context that ended in `Error`
    /// (an overloaded driver): four attempts, slower backoff.
    pub fn context() -> Self {
        RetryPolicy { max_attempts: 4, base: Duration::from_millis(500), ..Default::default() }
    }

    /// Statuses that mean "try again later".
    pub fn retryable_status(status: u16) -> bool {
        status == 429 || status == 503
    }

    /// Full-jitter backoff before retry number `retry` (1-based):
    /// uniform in `[0, min(cap, base * 2^(retry-1))]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(if ms == 0 { 0 } else { rand::thread_rng().gen_range(0..=ms) })
    }

    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
        std::cmp::min(self.cap, self.base.saturating_mul(factor))
    }

    /// The wait a `Retry-After` asks for (integer seconds only, as the SDKs),
    /// capped, plus up to 50 ms of jitter so clients don't stampede.
    pub fn retry_after(&self, header: Option<&str>) -> Option<Duration> {
        let secs: u64 = header?.trim().parse().ok()?;
        let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..=50));
        Some(std::cmp::min(Duration::from_secs(secs), self.retry_after_cap) + jitter)
    }
}

/// Whether a request may be sent again after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Reads, and writes that are idempotent (status, put with overwrite...).
    Safe,
    /// Resend only if the server surely did not act on it (`commands/execute`).
    Never,
}

/// A request body. Bytes are reference-counted, so retries do not copy.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Json(Bytes),
    Raw(Bytes),
    /// Streamed from a file (reopened on each attempt).
    File(PathBuf),
}

/// One API request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path under the host, already percent-encoded where needed.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub replay: Replay,
    /// Overrides the transport's default request timeout (big transfers).
    pub timeout: Option<Duration>,
    /// Hand a successful body over unread, as [`Response::stream`].
    pub stream: bool,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            replay: Replay::Safe,
            timeout: None,
            stream: false,
        }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }
    pub fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    pub fn json<T: serde::Serialize>(mut self, body: &T) -> Result<Self> {
        let v = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("could not encode a request body: {e}")))?;
        self.body = Body::Json(Bytes::from(v));
        Ok(self)
    }
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Stream the body of a success instead of reading it (downloads to disk).
    pub fn streamed(mut self) -> Self {
        self.stream = true;
        self
    }
}

/// A successful response, body read (or, for a streamed request, left in
/// `stream` and `body` empty).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub stream: Option<reqwest::Response>,
}

impl Response {
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        // Empty successful bodies are `{}` on the wire, but tolerate nothing at all.
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        serde_json::from_slice(body).map_err(|e| {
            Error::new(ErrorKind::Http, format!("{what}: the response is not the expected JSON ({e})"))
                .hint("the host may not be a Databricks workspace, or a proxy rewrote the answer")
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The HTTP client of one connection: host, credentials, pool and policy.
pub struct Transport {
    client: reqwest::Client,
    host: String,
    credentials: Arc<Credentials>,
    policy: RetryPolicy,
    /// Where the credential came from, for auth hints (`config.sources`).
    auth_source: Option<String>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transport({})", self.host)
    }
}

/// The process-wide connection pool: one reqwest client shared by every
/// transport (design: one HTTP connection pool per process).
fn shared_client() -> Result<reqwest::Client> {
    use std::sync::OnceLock;
    static CLIENT: OnceLock<std::result::Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::internal(format!("could not build the HTTP client: {e}")))
}

/// Default per-request timeout (the SDKs use 60 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How one attempt ended.
enum Attempt {
    Done(Response),
    /// Retry after the given wait (or the policy's backoff when `None`).
    Retry(Error, Option<Duration>),
    Fail(Error),
}

impl Transport {
    pub fn new(host: &str, credentials: Arc<Credentials>, auth_source: Option<String>) -> Result<Self> {
        Ok(Transport {
            client: shared_client()?,
            host: host.trim_end_matches('/').to_string(),
            credentials,
            policy: RetryPolicy::default(),
            auth_source,
        })
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send with retries; the body of a success is read in full. The task's
    /// deadline (see [`crate::deadline`]) bounds every attempt and every wait:
    /// when it passes, the error is a timeout saying what was being sent.
    pub async fn send(&self, req: Request) -> Result<Response> {
        let what = format!("{} {}", req.method, req.path);
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut refreshed = false;
        loop {
            if deadline::remaining().is_some_and(|r| r.is_zero()) {
                return Err(deadline::expired(&format!("sending {what}")).attempts(attempts));
            }
            attempts += 1;
            let outcome = match deadline::bound(&format!("waiting for {what}"), async {
                Ok(self.attempt(&req, &mut refreshed).await)
            })
            .await
            {
                Ok(o) => o,
                Err(e) => return Err(e.attempts(attempts)),
            };
            let (err, wait) = match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fail(e) => return Err(e.attempts(attempts)),
                Attempt::Retry(e, wait) => (e, wait),
            };
            let wait = wait.unwrap_or_else(|| self.policy.backoff(attempts));
            let limit = if err.kind == ErrorKind::Network && err.get_field("never_sent").is_some() {
                self.policy.max_network_attempts.min(self.policy.max_attempts)
            } else {
                self.policy.max_attempts
            };
            if deadline::would_pass(wait) {
                let e = deadline::expired(&format!("{what} was retried {attempts} times; last: {}", err.message));
                return Err(e.attempts(attempts));
            }
            if attempts >= limit || started.elapsed() + wait > self.policy.max_elapsed {
                let e = err.hint(format!(
                    "gave up after {attempts} attempts in {:.1} s; the workspace may be overloaded: try again later",
                    started.elapsed().as_secs_f64()
                ));
                return Err(e.attempts(attempts));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Send and parse a JSON answer.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T> {
        let what = format!("{} {}", req.method, req.path);
        self.send(req).await?.json(&what)
    }

    async fn attempt(&self, req: &Request, refreshed: &mut bool) -> Attempt {
        let what = format!("{} {}", req.method, req.path);
        let auth = match self.credentials.authorization(&self.client).await {
            Ok(a) => a,
            Err(e) => return Attempt::Fail(e),
        };
        let token = Secret::new(auth.strip_prefix("Bearer ").unwrap_or(&auth));
        let mut secrets = self.credentials.secrets();
        secrets.push(&token);

        let url = format!("{}{}", self.host, req.path);
        let mut rb = self
            .client
            .request(req.method.clone(), &url)
            .timeout(deadline::cap(req.timeout.unwrap_or(REQUEST_TIMEOUT)).max(Duration::from_millis(1)))
            .header("Authorization", auth.as_str());
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        for (k, v) in &req.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        rb = match &req.body {
            Body::Empty => rb,
            Body::Json(b) => rb
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .body(b.clone()),
            Body::Raw(b) => rb.header("Content-Type", "application/octet-stream").body(b.clone()),
            Body::File(p) => match file_body(p).await {
                Ok((body, len)) => rb
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", len.to_string())
                    .body(body),
                Err(e) => return Attempt::Fail(e),
            },
        };

        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return self.network_failure(&what, req.replay, &e, &secrets),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if req.stream && (200..300).contains(&status) {
            return Attempt::Done(Response { status, headers, body: Bytes::new(), stream: Some(resp) });
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            // The answer was cut: the request arrived, so only safe requests are resent.
            Err(e) => return self.network_failure(&what, req.replay, &e, &secrets),
        };
        if (200..300).contains(&status) {
            return Attempt::Done(Response { status, headers, body, stream: None });
        }

        let mut err = parse_error(status, &headers, &body);
        err.message = scrub(&format!("{what} failed: {}", err.message), &secrets);
        if status == 401 || status == 403 {
            if self.credentials.can_refresh() && !*refreshed {
                // OAuth tokens can be revoked or expire early: one fresh try.
                *refreshed = true;
                self.credentials.invalidate().await;
                return Attempt::Retry(err, Some(Duration::ZERO));
            }
            return Attempt::Fail(self.auth_error(err));
        }
        // The server answered with an error, so it did not run the request:
        // retrying is safe even for `Replay::Never`.
        if RetryPolicy::retryable_status(status) {
            let wait = self.policy.retry_after(headers.get("retry-after").and_then(|v| v.to_str().ok()));
            return Attempt::Retry(err, wait);
        }
        if is_transient_message(&err.message) || err.error_code.as_deref().is_some_and(is_throttle_code) {
            return Attempt::Retry(err, None);
        }
        Attempt::Fail(err)
    }

    fn network_failure(&self, what: &str, replay: Replay, e: &reqwest::Error, secrets: &[&Secret]) -> Attempt {
        let detail = scrub(&error_chain(e), secrets);
        if e.is_timeout() && deadline::remaining().is_some_and(|r| r.is_zero()) {
            return Attempt::Fail(deadline::expired(&format!("waiting for {what}")));
        }
        let never_sent = e.is_connect();
        let mut err = Error::new(ErrorKind::Network, format!("{what} failed: {detail}"));
        if never_sent {
            err = err.field("never_sent", "true");
        }
        if never_sent || replay == Replay::Safe {
            let err = err
                .hint(format!("check that {} is reachable from this machine (VPN, proxy, firewall)", self.host));
            return Attempt::Retry(err, None);
        }
        Attempt::Fail(
            err.hint("the request may have reached the workspace, so it was not sent again (it may have run)")
                .hint("check the outcome on the cluster before running it again"),
        )
    }

    fn auth_error(&self, mut err: Error) -> Error {
        err.kind = ErrorKind::Auth;
        let from = self.auth_source.as_deref().map(|s| format!(" (from {s})")).unwrap_or_default();
        let hint = match self.credentials.auth_type() {
            "pat" => format!(
                "the personal access token{from} was rejected: create a new one (workspace User Settings > Developer > Access tokens) and pass it as `token` or set DATABRICKS_TOKEN"
            ),
            "oauth-m2m" => format!(
                "the service principal's OAuth token{from} was rejected: check that it may use this workspace and cluster (CAN ATTACH TO / CAN RESTART)"
            ),
            _ => format!("the token of `databricks auth token`{from} was rejected: run `databricks auth login` again"),
        };
        err.hint(hint)
    }
}

/// A streamed body over a file, with its length.
async fn file_body(path: &std::path::Path) -> Result<(reqwest::Body, u64)> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?
        .len();
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20);
    Ok((reqwest::Body::wrap_stream(stream), len))
}

/// The error and its causes, one line (reqwest hides the useful part in sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

pub fn is_transient_message(msg: &str) -> bool {
    TRANSIENT_MESSAGES.iter().any(|m| msg.contains(m))
}

fn is_throttle_code(code: &str) -> bool {
    matches!(code, "RESOURCE_EXHAUSTED" | "REQUEST_LIMIT_EXCEEDED" | "TOO_MANY_REQUESTS")
}

/// Turn an error answer into an [`Error`] (reference §4.1, in the SDKs' order).
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let reason = headers
        .get("x-databricks-reason-phrase")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| reason_phrase(status).to_string());
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    let (code, message, mut request_id) = if trimmed.is_empty() {
        (None, reason.clone(), None)
    } else if let Some(parsed) = parse_json_error(trimmed) {
        parsed
    } else if let Some((code, msg)) = parse_plain_error(trimmed) {
        (Some(code), msg, None)
    } else if let Some(msg) = parse_html_error(trimmed) {
        (Some(reason.to_uppercase().replace(' ', "_")), msg, None)
    } else {
        let snippet: String = trimmed.chars().take(200).collect();
        (Some("UNKNOWN".into()), format!("unable to parse the response: {snippet}"), None)
    };
    if request_id.is_none() {
        request_id = req_id_in_message(&message);
    }
    let kind = if status == 401 || status == 403 { ErrorKind::Auth } else { ErrorKind::Http };
    let mut e = Error::new(kind, message);
    e.status = Some(status);
    e.error_code = code;
    e.request_id = request_id;
    e
}

type Parsed = (Option<String>, String, Option<String>);

fn parse_json_error(text: &str) -> Option<Parsed> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object()?;
    let as_text = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let request_id = obj.get("details").and_then(|d| d.as_array()).and_then(|details| {
        details.iter().find_map(|d| {
            let t = d.get("@type")?.as_str()?;
            if t.ends_with("google.rpc.RequestInfo") {
                d.get("request_id")?.as_str().map(str::to_string)
            } else {
                None
            }
        })
    });
    if let Some(detail) = obj.get("detail").and_then(as_text) {
        // SCIM: {"detail", "status", "scimType"}
        let code = obj.get("status").and_then(as_text).map(|s| format!("SCIM_{s}"));
        return Some((code, detail, request_id));
    }
    let code = obj.get("error_code").and_then(as_text);
    let message = obj
        .get("message")
        .and_then(as_text)
        .or_else(|| obj.get("error").and_then(as_text))
        .or_else(|| code.clone())?;
    Some((code, message, request_id))
}

/// `ERROR_CODE: message`.
fn parse_plain_error(text: &str) -> Option<(String, String)> {
    let line = text.lines().next()?;
    let (code, _) = line.split_once(": ")?;
    if !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        Some((code.to_string(), text[code.len() + 2..].trim().to_string()))
    } else {
        None
    }
}

fn parse_html_error(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("<html") && !lower.contains("<pre") && !lower.contains("<title") {
        return None;
    }
    let between = |open: &str, close: &str| -> Option<String> {
        let start = lower.find(open)? + open.len();
        let start = start + lower[start..].find('>')? + 1;
        let end = start + lower[start..].find(close)?;
        let t = text[start..end].trim();
        (!t.is_empty()).then(|| t.to_string())
    };
    between("<pre", "</pre>").or_else(|| between("<title", "</title>"))
}

fn req_id_in_message(msg: &str) -> Option<String> {
    let start = msg.find("[ReqId: ")? + "[ReqId: ".len();
    let end = start + msg[start..].find(']')?;
    Some(msg[start..end].trim().to_string())
}

fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown status")
}

/// Percent-encode a path per segment (`/` kept), like Python's `quote`.
pub fn encode_path(path: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(path, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> HeaderMap {
        HeaderMap::new()
    }

    #[test]
    fn standard_body_with_request_info() {
        let body = br#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Cluster x does not exist",
            "details":[{"@type":"type.googleapis.com/google.rpc.RequestInfo","request_id":"abc-1","serving_data":""}]}"#;
        let e = parse_error(400, &h(), body);
        assert_eq!(e.error_code.as_deref(), Some("INVALID_PARAMETER_VALUE"));
        assert_eq!(e.message, "Cluster x does not exist");
        assert_eq!(e.request_id.as_deref(), Some("abc-1"));
        assert_eq!(e.kind, ErrorKind::Http);
    }

    #[test]
    fn numeric_code_and_reqid_in_message() {
        let body = br#"{"error_code":401,"message":"Credential was not sent. [ReqId: 9f-2]"}"#;
        let e = parse_error(401, &h(), body);
        assert_eq!(e.error_code.as_deref(), Some("401"));
        assert_eq!(e.request_id.as_deref(), Some("9f-2"));
        assert_eq!(e.kind, ErrorKind::Auth);
    }

    #[test]
    fn legacy_scim_plain_html_empty_and_garbage() {
        let e = parse_error(400, &h(), br#"{"error": "requirement failed: missing contextId"}"#);
        assert_eq!(e.message, "requirement failed: missing contextId");
        assert_eq!(e.error_code, None);

        let e = parse_error(404, &h(), br#"{"detail":"User not found","status":"404","scimType":"x"}"#);
        assert_eq!(e.error_code.as_deref(), Some("SCIM_404"));

        let e = parse_error(400, &h(), b"INVALID_STATE: cluster is starting");
        assert_eq!(e.error_code.as_deref(), Some("INVALID_STATE"));
        assert_eq!(e.message, "cluster is starting");

        let html = b"<html><head><title>Error 403 Invalid access token.</title></head><body><pre>    Invalid access token.</pre></body></html>";
        let e = parse_error(403, &h(), html);
        assert_eq!(e.message, "Invalid access token.");
        assert_eq!(e.error_code.as_deref(), Some("FORBIDDEN"));

        let mut hm = h();
        hm.insert("x-databricks-reason-phrase", "Invalid access token.".parse().unwrap());
        let e = parse_error(403, &hm, b"");
        assert_eq!(e.message, "Invalid access token.");

        let e = parse_error(502, &h(), b"upstream went away");
        assert_eq!(e.error_code.as_deref(), Some("UNKNOWN"));
        assert!(e.message.contains("upstream went away"));
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(2), ..Default::default() };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(400));
        assert_eq!(p.ceiling(30), Duration::from_secs(2));
        for r in 1..40 {
            assert!(p.backoff(r) <= p.ceiling(r));
        }
    }

    #[test]
    fn retry_after_integer_only_and_capped() {
        let p = RetryPolicy { retry_after_cap: Duration::from_secs(5), ..Default::default() };
        let w = p.retry_after(Some("2")).unwrap();
        assert!(w >= Duration::from_secs(2) && w <= Duration::from_millis(2050));
        assert!(p.retry_after(Some("3600")).unwrap() <= Duration::from_millis(5050));
        assert!(p.retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")).is_none());
        assert!(p.retry_after(None).is_none());
    }

    #[test]
    fn transient_messages() {
        assert!(is_transient_message("x ClusterNotReadyException y"));
        assert!(!is_transient_message("Cluster x does not exist"));
    }

    #[test]
    fn path_encoding_keeps_slashes() {
        assert_eq!(encode_path("/Volumes/c/s/v/a b?#.rds"), "/Volumes/c/s/v/a%20b%3F%23.rds");
    }
}
