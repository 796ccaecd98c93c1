//! Response bodies as real workspaces send them: the 2.x shape
//! `{"error_code", "message"}`, the legacy 1.2 shape `{"error"}`, and the
//! exact 401/403 bodies of the gateway.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Handlers return `Reply`; both arms are complete HTTP responses.
pub type Reply = Result<Response, Response>;

pub fn ok(v: Value) -> Reply {
    Ok(Json(v).into_response())
}

pub fn empty() -> Reply {
    ok(json!({}))
}

/// A 2.x API error.
pub fn api(status: u16, code: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(json!({"error_code": code, "message": message.into()}))).into_response()
}

pub fn invalid(message: impl Into<String>) -> Response {
    api(400, "INVALID_PARAMETER_VALUE", message)
}

/// A 1.2 API error: HTTP 400 with `{"error": message}`.
pub fn legacy(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message.into()}))).into_response()
}

pub fn request_id() -> String {
    let h = super::util::random_hex(16);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// No credential, or not a bearer one.
pub fn unauthenticated() -> Response {
    let msg = format!(
        "Credential was not sent or was of an unsupported type for this API. [ReqId: {}]",
        request_id()
    );
    (StatusCode::UNAUTHORIZED, Json(json!({"error_code": 401, "message": msg}))).into_response()
}

/// A bearer token that is not valid here.
pub fn invalid_token() -> Response {
    let mut r = (
        StatusCode::FORBIDDEN,
        Json(json!({"error_code": 403, "message": "Invalid access token."})),
    )
        .into_response();
    r.headers_mut()
        .insert("x-databricks-reason-phrase", HeaderValue::from_static("Invalid access token."));
    r
}

/// A failed file operation in the store, as the service would put it: a name
/// the filesystem refuses is the caller's error (400); a full or read-only
/// state directory is the server's (500 with `code`), said plainly so that
/// the user knows what to fix.
pub fn io(code: &str, what: &str, e: &std::io::Error) -> Response {
    match e.raw_os_error() {
        Some(libc::ENAMETOOLONG) => invalid(format!("{what}: the file name is too long.")),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => api(
            500,
            code,
            format!("{what}: no space left on device (the local cluster's state directory is full; free space there and retry)."),
        ),
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => api(
            500,
            code,
            format!("{what}: the local cluster's state directory is not writable ({e})."),
        ),
        _ => api(500, code, format!("{what}: {e}")),
    }
}

/// An OAuth token endpoint error (RFC 6749 shape).
pub fn oauth(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}
