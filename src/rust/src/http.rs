//! The transport: pooled HTTP client, auth header, error body parsing.
//!
//! Each request is sent through the one retry loop of [`crate::retry`]: this
//! module makes one attempt and says how it ended (answered, unanswered,
//! rejected credentials). Every attempt is bounded: in total (the request's
//! timeout, else the policy's, never past the call's deadline) and while its
//! body arrives ([`IDLE_TIMEOUT`] of silence ends it), so a server that stalls
//! ends in a retry or a `Timeout` error, never a hang. Every error body shape
//! of §4.1 becomes one [`Error`] with status, code, message and request id,
//! secrets scrubbed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::auth::Credentials;
use crate::deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::redact::{scrub, Secret};
pub use crate::retry::{Replay, RetryPolicy, REQUEST_TIMEOUT};
use crate::retry::Attempt;

pub const USER_AGENT: &str = concat!("dbrxr/", env!("CARGO_PKG_VERSION"));

/// Longest silence while an answer's body arrives, whatever the request's
/// own timeout (big transfers have an hour): a server that stalls mid-body
/// ends the attempt instead of hanging it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Longest silence while a body arrives ([`IDLE_TIMEOUT`]).
    idle_timeout: Duration,
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

impl Transport {
    pub fn new(host: &str, credentials: Arc<Credentials>, auth_source: Option<String>) -> Result<Self> {
        Ok(Transport {
            client: shared_client()?,
            host: host.trim_end_matches('/').to_string(),
            credentials,
            policy: RetryPolicy::default(),
            idle_timeout: IDLE_TIMEOUT,
            auth_source,
        })
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Change the idle bound of body reads (tests of stalling servers).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Send with retries ([`RetryPolicy::run`]); the body of a success is
    /// read in full. The task's deadline (see [`crate::deadline`]) bounds
    /// every attempt and every wait: when it passes, the error is a timeout
    /// saying what was being sent.
    pub async fn send(&self, req: Request) -> Result<Response> {
        let what = format!("{} {}", req.method, req.path);
        // OAuth tokens can be revoked or expire early: one fresh try per call.
        let refreshed = AtomicBool::new(false);
        self.policy.run(&what, || self.attempt(&req, &what, &refreshed)).await
    }

    /// Send and parse a JSON answer.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T> {
        let what = format!("{} {}", req.method, req.path);
        self.send(req).await?.json(&what)
    }

    async fn attempt(&self, req: &Request, what: &str, refreshed: &AtomicBool) -> Attempt<Response> {
        let auth = match self.credentials.authorization(&self.client).await {
            Ok(a) => a,
            Err(e) => return Attempt::Fail(e),
        };
        let token = Secret::new(auth.strip_prefix("Bearer ").unwrap_or(&auth));
        let mut secrets = self.credentials.secrets();
        secrets.push(&token);

        let url = format!("{}{}", self.host, req.path);
        let limit = self.policy.attempt_limit(req.timeout);
        let mut rb = self.client.request(req.method.clone(), &url).timeout(limit).header("Authorization", auth.as_str());
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

        let mut resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return self.unanswered(what, req.replay, &e, &secrets),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if req.stream && (200..300).contains(&status) {
            return Attempt::Done(Response { status, headers, body: Bytes::new(), stream: Some(resp) });
        }
        // The answer was cut or stalled: the request arrived, so only safe
        // requests are resent.
        let body = match read_body(&mut resp, self.idle_timeout).await {
            Ok(b) => b,
            Err(BodyError::Cut(e)) if !e.is_timeout() => return self.unanswered(what, req.replay, &e, &secrets),
            // A body that stops arriving is a timeout (`dbrxr_timeout_error`
            // when it is not retried), whichever bound ended it.
            Err(stall) => {
                if deadline::remaining().is_some_and(|r| r.is_zero()) {
                    return Attempt::Fail(deadline::expired(&format!("waiting for {what}")));
                }
                let bound = if matches!(stall, BodyError::Stalled) { self.idle_timeout } else { limit };
                let err = stalled(what, bound, "its answer arrived");
                return self.policy.unanswered(err, false, req.replay);
            }
        };
        if (200..300).contains(&status) {
            return Attempt::Done(Response { status, headers, body, stream: None });
        }

        let mut err = parse_error(status, &headers, &body);
        err.message = scrub(&format!("{what} failed: {}", err.message), &secrets);
        if status == 401 || status == 403 {
            if self.credentials.can_refresh() && !refreshed.swap(true, Ordering::SeqCst) {
                self.credentials.invalidate().await;
                return Attempt::Retry(err, Some(Duration::ZERO));
            }
            return Attempt::Fail(self.auth_error(err));
        }
        self.policy.answered(err, status, headers.get("retry-after").and_then(|v| v.to_str().ok()))
    }

    /// No (whole) answer: a connection never made, one cut, or no answer
    /// within the attempt's time.
    fn unanswered(&self, what: &str, replay: Replay, e: &reqwest::Error, secrets: &[&Secret]) -> Attempt<Response> {
        if e.is_timeout() && deadline::remaining().is_some_and(|r| r.is_zero()) {
            return Attempt::Fail(deadline::expired(&format!("waiting for {what}")));
        }
        let never_sent = e.is_connect();
        let detail = scrub(&error_chain(e), secrets);
        let mut err = Error::new(ErrorKind::Network, format!("{what} failed: {detail}"));
        if never_sent || replay == Replay::Safe {
            err = err.hint(format!("check that {} is reachable from this machine (VPN, proxy, firewall)", self.host));
        }
        self.policy.unanswered(err, never_sent, replay)
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

/// The error for an attempt that made no progress for `limit`.
pub fn stalled(what: &str, limit: Duration, while_doing: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("{what} failed: nothing arrived for {} s while {while_doing}", limit.as_secs_f64()),
    )
    .field("timeout", format!("{}", limit.as_secs_f64()))
    .hint("the server or the network stalled; dbrxr retries what is safe to send again")
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Nothing arrived for the idle bound.
    Stalled,
    /// The connection failed (reset, closed early, the attempt's timeout).
    Cut(reqwest::Error),
}

/// The next chunk of a body, within `idle` of silence.
pub async fn next_chunk(resp: &mut reqwest::Response, idle: Duration) -> std::result::Result<Option<Bytes>, BodyError> {
    match tokio::time::timeout(idle, resp.chunk()).await {
        Err(_) => Err(BodyError::Stalled),
        Ok(r) => r.map_err(BodyError::Cut),
    }
}

/// Read a whole body chunk by chunk, each within `idle`.
async fn read_body(resp: &mut reqwest::Response, idle: Duration) -> std::result::Result<Bytes, BodyError> {
    let Some(first) = next_chunk(resp, idle).await? else { return Ok(Bytes::new()) };
    let Some(second) = next_chunk(resp, idle).await? else { return Ok(first) };
    // More than one chunk: gather them (a body of one chunk is not copied).
    let mut buf = bytes::BytesMut::with_capacity(resp.content_length().unwrap_or(0) as usize + first.len() + second.len());
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    while let Some(chunk) = next_chunk(resp, idle).await? {
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
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
    fn path_encoding_keeps_slashes() {
        assert_eq!(encode_path("/Volumes/c/s/v/a b?#.rds"), "/Volumes/c/s/v/a%20b%3F%23.rds");
    }
}
