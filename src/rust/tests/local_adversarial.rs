//! Hostile and malformed requests against the local cluster, sent as raw
//! HTTP/1.1 (so no client normalises them first). Each one must get the exact
//! Databricks-shaped status and body; after each the server must still answer,
//! and when all have run nothing may have been written outside the state
//! directory (symbolic links out of the store point at a sentinel directory).

mod local_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use local_support::start;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a response must be.
enum Want {
    /// This status and exactly this JSON body.
    Exact(u16, Value),
    /// This status, a 2.x body with this `error_code` and a message starting so.
    Code(u16, &'static str, &'static str),
    /// A 1.2 body `{"error": ...}` (status 400) whose message starts so.
    Legacy(&'static str),
}

struct Raw {
    status: u16,
    body: Vec<u8>,
}

/// Send raw bytes on a fresh connection; read the response to its end.
async fn raw(addr: &str, request: &[u8]) -> Raw {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("server accepts connections");
    // The server may answer before reading a body it refuses.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..head_end]).to_ascii_lowercase();
    let mut body = out[head_end..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Raw { status, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
    out
}

/// A request with a bearer token (or `auth` as the whole header value).
fn req(method: &str, target: &str, auth: Option<&str>, ctype: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(a) = auth {
        r.push_str(&format!("Authorization: {a}\r\n"));
    }
    if let Some(c) = ctype {
        r.push_str(&format!("Content-Type: {c}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const AUTH: Option<&str> = Some("Bearer tok");
const JSON: Option<&str> = Some("application/json");

fn get(target: &str) -> Vec<u8> {
    req("GET", target, AUTH, None, b"")
}
fn post(target: &str, body: &str) -> Vec<u8> {
    req("POST", target, AUTH, JSON, body.as_bytes())
}
fn put(target: &str, body: &[u8]) -> Vec<u8> {
    req("PUT", target, AUTH, Some("application/octet-stream"), body)
}

fn check(name: &str, got: &Raw, want: &Want) {
    let body: Value = serde_json::from_slice(&got.body).unwrap_or_else(|_| {
        panic!("{name}: body is not JSON: {:?} (status {})", String::from_utf8_lossy(&got.body), got.status)
    });
    match want {
        Want::Exact(status, v) => {
            assert_eq!((got.status, &body), (*status, v), "{name}");
        }
        Want::Code(status, code, prefix) => {
            assert_eq!(got.status, *status, "{name}: {body}");
            assert_eq!(body["error_code"], *code, "{name}: {body}");
            let msg = body["message"].as_str().unwrap_or_else(|| panic!("{name}: no message: {body}"));
            assert!(msg.starts_with(prefix), "{name}: message {msg:?} does not start with {prefix:?}");
            assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{name}: extra fields: {body}");
        }
        Want::Legacy(prefix) => {
            assert_eq!(got.status, 400, "{name}: {body}");
            let msg = body["error"].as_str().unwrap_or_else(|| panic!("{name}: not a 1.2 error: {body}"));
            assert!(msg.starts_with(prefix), "{name}: message {msg:?} does not start with {prefix:?}");
            assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{name}: extra fields: {body}");
        }
    }
}

/// Every file under `dir`, with its contents (links not followed).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), std::fs::read(e.path()).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_service_errors_and_never_escape_the_state_dir() {
    let base = std::env::temp_dir().join(format!("dbrxr-adversarial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (state, outside) = (base.join("state"), base.join("outside"));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    let api = start(|o| o.state_dir = Some(state.clone()));
    let fs = api.c.fs_root();
    std::fs::create_dir_all(fs.join("dbfs/ok")).unwrap();
    std::fs::create_dir_all(fs.join("Volumes/c/s/v/ok")).unwrap();
    std::fs::write(fs.join("dbfs/ok/f.txt"), "0123456789").unwrap();
    std::fs::write(fs.join("Volumes/c/s/v/ok/f.txt"), "0123456789").unwrap();
    std::os::unix::fs::symlink(&outside, fs.join("dbfs/out")).unwrap();
    std::os::unix::fs::symlink(&outside, fs.join("Volumes/c/s/v/out")).unwrap();
    std::os::unix::fs::symlink("/etc", fs.join("Volumes/c/s/v/etc")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), fs.join("dbfs/secret")).unwrap();
    std::os::unix::fs::symlink(outside.join("new.txt"), fs.join("dbfs/dangling")).unwrap();
    let before_outside = snapshot(&outside);
    let addr = api.base.trim_start_matches("http://").to_string();

    let b64k = B64.encode(b"hi");
    let huge_declared = |target: &str| {
        format!("POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: 314572800\r\n\r\n{{\"path\": \"/big\", \"contents\": \"").into_bytes()
    };
    let chunked_huge = {
        let mut r = b"POST /api/2.0/dbfs/add-block HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let chunk = vec![b'A'; 512 * 1024];
        for _ in 0..4 {
            r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            r.extend_from_slice(&chunk);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    };
    let long_name = "n".repeat(300);
    let c = "clusterId=local-cluster";
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        // --- malformed JSON and wrong types
        ("dbfs put: invalid JSON", post("/api/2.0/dbfs/put", "{\"path\": "), Want::Code(400, "MALFORMED_REQUEST", "malformed JSON in the request body")),
        ("dbfs put: JSON array", post("/api/2.0/dbfs/put", "[1,2]"), Want::Code(400, "MALFORMED_REQUEST", "the request body must be a JSON object")),
        ("dbfs put: path is a number", post("/api/2.0/dbfs/put", "{\"path\": 5, \"contents\": \"\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must be absolute: 5")),
        ("dbfs put: path is an object", post("/api/2.0/dbfs/put", "{\"path\": {}, \"contents\": \"\"}"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Missing required field: path"}))),
        ("dbfs put: overwrite is a string", post("/api/2.0/dbfs/put", &format!("{{\"path\": \"/a\", \"contents\": \"{b64k}\", \"overwrite\": \"yes\"}}")), Want::Code(400, "INVALID_PARAMETER_VALUE", "overwrite must be true or false")),
        ("dbfs put: contents not base64", post("/api/2.0/dbfs/put", "{\"path\": \"/a\", \"contents\": \"!!!\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "contents is not valid base64")),
        ("dbfs read: offset not a number", get("/api/2.0/dbfs/read?path=/ok/f.txt&offset=abc"), Want::Code(400, "INVALID_PARAMETER_VALUE", "offset must be an integer")),
        ("dbfs read: length is a float", post("/api/2.0/dbfs/add-block", "{\"handle\": 1.5, \"data\": \"\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "handle must be an integer")),
        ("dbfs read: malformed query", get("/api/2.0/dbfs/read?path=%ZZ"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Path must be absolute: %ZZ"}))),
        ("contexts/create: invalid JSON", post("/api/1.2/contexts/create", "{clusterId"), Want::Legacy("malformed JSON in the request body")),
        ("commands/execute: command is an array", post("/api/1.2/commands/execute", "{\"clusterId\": \"local-cluster\", \"contextId\": \"1\", \"command\": [1]}"), Want::Legacy("Execution context does not exist")),
        ("clusters/start: invalid JSON", post("/api/2.0/clusters/start", "{"), Want::Code(400, "MALFORMED_REQUEST", "")),
        ("oauth token: OAuth not enabled", req("POST", "/oidc/v1/token", None, Some("application/x-www-form-urlencoded"), b"grant_type=client_credentials"), Want::Exact(400, json!({"error": "invalid_client", "error_description": "OAuth M2M is not enabled on this local cluster (start it with client_id and client_secret)"}))),
        ("oauth token: invalid JSON", req("POST", "/oidc/v1/token", None, JSON, b"{\"grant"), Want::Exact(400, json!({"error": "invalid_request", "error_description": "malformed JSON in the request body: EOF while parsing a string at line 1 column 7"}))),
        ("faults: wrong type", post("/_local/faults", "{\"status_429_rate\": \"lots\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "bad fault settings: invalid type: string")),
        ("faults: rate over 1", post("/_local/faults", "{\"status_503_rate\": 7}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "")),
        // --- missing fields
        ("dbfs put: no path", post("/api/2.0/dbfs/put", "{}"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Missing required field: path"}))),
        ("dbfs create: empty path", post("/api/2.0/dbfs/create", "{\"path\": \"\"}"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Missing required field: path"}))),
        ("dbfs add-block: no handle", post("/api/2.0/dbfs/add-block", "{\"data\": \"\"}"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Missing required field: handle"}))),
        ("dbfs close: unknown handle", post("/api/2.0/dbfs/close", "{\"handle\": 42}"), Want::Exact(404, json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "There is no handle 42: it was closed, or it expired after idling."}))),
        ("dbfs move: no destination", post("/api/2.0/dbfs/move", "{\"source_path\": \"/ok/f.txt\"}"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Missing required field: destination_path"}))),
        ("contexts/create: no clusterId", post("/api/1.2/contexts/create", "{\"language\": \"python\"}"), Want::Legacy("requirement failed: missing clusterId")),
        ("commands/status: no commandId", get(&format!("/api/1.2/commands/status?{c}&contextId=1")), Want::Legacy("Execution context does not exist")),
        ("commands/execute: wrong cluster", post("/api/1.2/commands/execute", "{\"clusterId\": \"other\", \"contextId\": \"1\", \"command\": \"1\"}"), Want::Legacy("Cluster other does not exist")),
        ("contexts/status: unknown context", get(&format!("/api/1.2/contexts/status?{c}&contextId=999")), Want::Legacy("Execution context does not exist: context 999")),
        ("clusters/get: no cluster_id", get("/api/2.0/clusters/get"), Want::Code(400, "INVALID_PARAMETER_VALUE", "")),
        // --- NUL bytes
        ("dbfs put: NUL in path", post("/api/2.0/dbfs/put", "{\"path\": \"/a\\u0000b\", \"contents\": \"\"}"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Path must not contain NUL characters"}))),
        ("dbfs get-status: %00 in path", get("/api/2.0/dbfs/get-status?path=/ok/f.txt%00.rds"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Path must not contain NUL characters"}))),
        ("files GET: %00 in path", get("/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt%00"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Path must not contain NUL characters"}))),
        // --- path traversal in every encoding
        ("dbfs read: ../ in path", get("/api/2.0/dbfs/read?path=/ok/../../../etc/passwd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("dbfs read: %2e%2e", get("/api/2.0/dbfs/read?path=/ok/%2e%2e/%2e%2e/%2e%2e/etc/passwd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("dbfs read: %2E%2E%2F", get("/api/2.0/dbfs/read?path=%2Fok%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("dbfs read: double-encoded is a name, not a parent", get("/api/2.0/dbfs/read?path=/ok/%252e%252e/%252e%252e/etc/passwd"), Want::Exact(404, json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No file or directory exists on path /ok/%2e%2e/%2e%2e/etc/passwd."}))),
        ("dbfs read: relative path", get("/api/2.0/dbfs/read?path=etc/passwd"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Path must be absolute: etc/passwd"}))),
        ("dbfs read: dbfs:/.. prefix", get("/api/2.0/dbfs/read?path=dbfs:/../etc/passwd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("dbfs put: ../ in JSON path", post("/api/2.0/dbfs/put", &format!("{{\"path\": \"/../../escape-put\", \"contents\": \"{b64k}\"}}")), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("dbfs move: .. destination", post("/api/2.0/dbfs/move", "{\"source_path\": \"/ok/f.txt\", \"destination_path\": \"/../../escape-move\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("dbfs delete: .. path", post("/api/2.0/dbfs/delete", "{\"path\": \"/ok/../..\", \"recursive\": true}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("dbfs mkdirs: .. path", post("/api/2.0/dbfs/mkdirs", "{\"path\": \"/../escape-dir\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("files GET: raw ../", get("/api/2.0/fs/files/Volumes/c/s/v/../../../../../etc/passwd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("files GET: %2e%2e", get("/api/2.0/fs/files/Volumes/c/s/v/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("files GET: %2f-encoded slashes", get("/api/2.0/fs/files/Volumes%2fc%2fs%2fv%2f..%2f..%2f..%2f..%2fetc%2fpasswd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("files GET: overlong UTF-8 dot", get("/api/2.0/fs/files/Volumes/c/s/v/%c0%ae%c0%ae/etc/passwd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "The path is not valid: Invalid URL")),
        ("directories GET: page_size not a number", get("/api/2.0/fs/directories/Volumes/c/s/v/ok?page_size=lots"), Want::Code(400, "INVALID_PARAMETER_VALUE", "The query string is not valid")),
        ("files GET: backslashes are names", get("/api/2.0/fs/files/Volumes/c/s/v/..%5c..%5c..%5cetc%5cpasswd"), Want::Exact(404, json!({"error_code": "NOT_FOUND", "message": "The file being accessed is not found."}))),
        ("files PUT: ../ escape", put("/api/2.0/fs/files/Volumes/c/s/v/%2e%2e/%2e%2e/%2e%2e/%2e%2e/escape-files", b"x"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("files PUT: not under a volume", put("/api/2.0/fs/files/tmp/escape-files", b"x"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path /tmp/escape-files is not a Unity Catalog volume path")),
        ("directories PUT: .. escape", req("PUT", "/api/2.0/fs/directories/Volumes/c/s/v/%2e%2e/%2e%2e/%2e%2e/escape-dir", AUTH, None, b""), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path must not contain '..' segments")),
        ("directories GET: root of volumes", get("/api/2.0/fs/directories/Volumes/c"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path /Volumes/c is not a Unity Catalog volume path")),
        // --- symbolic links out of the store
        ("files GET: link to /etc", get("/api/2.0/fs/files/Volumes/c/s/v/etc/passwd"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path /Volumes/c/s/v/etc/passwd resolves outside the store")),
        ("files HEAD via GET: link to outside", get("/api/2.0/fs/files/Volumes/c/s/v/out/secret.txt"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path /Volumes/c/s/v/out/secret.txt resolves outside the store")),
        ("files PUT: through link", put("/api/2.0/fs/files/Volumes/c/s/v/out/new.txt", b"escaped"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path /Volumes/c/s/v/out/new.txt resolves outside the store")),
        ("files DELETE: through link", req("DELETE", "/api/2.0/fs/files/Volumes/c/s/v/out/secret.txt", AUTH, None, b""), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path /Volumes/c/s/v/out/secret.txt resolves outside")),
        ("directories GET: link dir", get("/api/2.0/fs/directories/Volumes/c/s/v/out"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path /Volumes/c/s/v/out resolves outside")),
        ("dbfs put: through link", post("/api/2.0/dbfs/put", &format!("{{\"path\": \"/out/new.txt\", \"contents\": \"{b64k}\"}}")), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/out/new.txt resolves outside the store")),
        ("dbfs read: file link", get("/api/2.0/dbfs/read?path=/secret"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/secret resolves outside the store")),
        ("dbfs put: dangling link", post("/api/2.0/dbfs/put", &format!("{{\"path\": \"/dangling\", \"contents\": \"{b64k}\", \"overwrite\": true}}")), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/dangling resolves outside")),
        ("dbfs create: through link", post("/api/2.0/dbfs/create", "{\"path\": \"/out/streamed.bin\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/out/streamed.bin resolves outside")),
        ("dbfs mkdirs: through link", post("/api/2.0/dbfs/mkdirs", "{\"path\": \"/out/sub/dir\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/out/sub/dir resolves outside")),
        ("dbfs move: into link", post("/api/2.0/dbfs/move", "{\"source_path\": \"/ok/f.txt\", \"destination_path\": \"/out/moved.txt\"}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/out/moved.txt resolves outside")),
        ("dbfs delete: through link", post("/api/2.0/dbfs/delete", "{\"path\": \"/out\", \"recursive\": true}"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/out resolves outside")),
        ("dbfs list: link dir", get("/api/2.0/dbfs/list?path=/out"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/out resolves outside")),
        ("dbfs get-status: link", get("/api/2.0/dbfs/get-status?path=/secret"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path dbfs:/secret resolves outside")),
        // --- oversized bodies and URLs
        ("dbfs put: 300 MB declared", huge_declared("/api/2.0/dbfs/put"), Want::Code(400, "MAX_BLOCK_SIZE_EXCEEDED", "The request body of 314572800 bytes exceeds the maximum")),
        ("dbfs add-block: 300 MB declared", huge_declared("/api/2.0/dbfs/add-block"), Want::Code(400, "MAX_BLOCK_SIZE_EXCEEDED", "The request body of 314572800 bytes exceeds")),
        ("dbfs add-block: 2 MiB chunked", chunked_huge, Want::Code(400, "MAX_BLOCK_SIZE_EXCEEDED", "The request body exceeds the maximum")),
        ("commands/execute: 300 MB declared", huge_declared("/api/1.2/commands/execute"), Want::Legacy("The request body of 314572800 bytes exceeds the maximum of 8388608 bytes.")),
        ("clusters/start: 2 MiB body", post("/api/2.0/clusters/start", &format!("{{\"cluster_id\": \"{}\"}}", "x".repeat(2 * MIB))), Want::Code(400, "INVALID_PARAMETER_VALUE", "The request body of 2097170 bytes exceeds the maximum of 1048576 bytes")),
        ("files PUT: 6 GiB declared", format!("PUT /api/2.0/fs/files/Volumes/c/s/v/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer tok\r\nContent-Length: {}\r\n\r\nxx", 6u64 << 30).into_bytes(), Want::Code(400, "INVALID_PARAMETER_VALUE", "The file exceeds the maximum size of 5368709120 bytes")),
        ("dbfs read: 20 KB URL", get(&format!("/api/2.0/dbfs/read?path=/{}", "a/".repeat(10_000))), Want::Code(414, "INVALID_PARAMETER_VALUE", "The request URL is 20025 bytes long; at most 16384")),
        ("dbfs put: 300-character name", post("/api/2.0/dbfs/put", &format!("{{\"path\": \"/ok/{long_name}\", \"contents\": \"{b64k}\"}}")), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path component is too long: 300 bytes")),
        ("files PUT: 300-character name", put(&format!("/api/2.0/fs/files/Volumes/c/s/v/{long_name}"), b"x"), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path component is too long: 300 bytes")),
        ("dbfs put: 5000-byte path", post("/api/2.0/dbfs/put", &format!("{{\"path\": \"/{}\", \"contents\": \"\"}}", "d/".repeat(2500))), Want::Code(400, "INVALID_PARAMETER_VALUE", "Path is too long: 5001 bytes")),
        // --- unknown routes and methods
        ("unknown route", get("/api/2.0/jobs/list"), Want::Exact(404, json!({"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for 'GET /api/2.0/jobs/list'"}))),
        ("unknown version", get("/api/9.9/clusters/get?cluster_id=local-cluster"), Want::Exact(404, json!({"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for 'GET /api/9.9/clusters/get'"}))),
        ("wrong method on dbfs/put", get("/api/2.0/dbfs/put"), Want::Code(405, "", "")),
        ("DELETE on contexts/create", req("DELETE", "/api/1.2/contexts/create", AUTH, None, b""), Want::Code(405, "", "")),
        ("PATCH on files", req("PATCH", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt", AUTH, None, b""), Want::Code(405, "", "")),
        ("unknown /_local/ route", post("/_local/shutdown", "{}"), Want::Exact(404, json!({"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for 'POST /_local/shutdown'"}))),
        // --- Range and offset edge cases
        ("dbfs read: offset 2^63-1", get("/api/2.0/dbfs/read?path=/ok/f.txt&offset=9223372036854775807"), Want::Exact(200, json!({"bytes_read": 0, "data": ""}))),
        ("dbfs read: offset 2^64", get("/api/2.0/dbfs/read?path=/ok/f.txt&offset=18446744073709551616"), Want::Code(400, "INVALID_PARAMETER_VALUE", "offset must be an integer")),
        ("dbfs read: negative length", get("/api/2.0/dbfs/read?path=/ok/f.txt&length=-5"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "offset and length must not be negative"}))),
        ("dbfs read: length over 1 MiB", get("/api/2.0/dbfs/read?path=/ok/f.txt&length=1048577"), Want::Exact(400, json!({"error_code": "MAX_READ_SIZE_EXCEEDED", "message": "Cannot read more than 1048576 bytes at once; asked for 1048577."}))),
        ("dbfs read: length 2^63-1", get("/api/2.0/dbfs/read?path=/ok/f.txt&length=9223372036854775807"), Want::Code(400, "MAX_READ_SIZE_EXCEEDED", "Cannot read more than 1048576 bytes")),
        ("dbfs read: at EOF", get("/api/2.0/dbfs/read?path=/ok/f.txt&offset=10"), Want::Exact(200, json!({"bytes_read": 0, "data": ""}))),
        ("dbfs read: last byte", get("/api/2.0/dbfs/read?path=/ok/f.txt&offset=9&length=100"), Want::Exact(200, json!({"bytes_read": 1, "data": B64.encode(b"9")}))),
        ("files GET: range past end", req("GET", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt", AUTH, None, b"").replace_head("Range: bytes=10-20\r\n"), Want::Exact(416, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "The range is not satisfiable for a file of 10 bytes."}))),
        ("files GET: huge range start", req("GET", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt", AUTH, None, b"").replace_head("Range: bytes=18446744073709551615-\r\n"), Want::Exact(416, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "The range is not satisfiable for a file of 10 bytes."}))),
        ("files GET: suffix range of 0", req("GET", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt", AUTH, None, b"").replace_head("Range: bytes=-0\r\n"), Want::Exact(416, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "The range is not satisfiable for a file of 10 bytes."}))),
        ("files GET: reversed range", req("GET", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt", AUTH, None, b"").replace_head("Range: bytes=5-2\r\n"), Want::Exact(416, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "The range is not satisfiable for a file of 10 bytes."}))),
        ("directories GET: bad page token", get("/api/2.0/fs/directories/Volumes/c/s/v/ok?page_token=zz"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "page_token is not valid"}))),
        ("files PUT: overwrite=maybe", put("/api/2.0/fs/files/Volumes/c/s/v/ok/g.txt?overwrite=maybe", b"x"), Want::Exact(400, json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "overwrite must be true or false, not \"maybe\""}))),
        // --- auth edge cases
        ("Basic auth on dbfs", req("GET", "/api/2.0/dbfs/list?path=/", Some("Basic dG9rOg=="), None, b""), Want::Code(401, "", "")),
        ("empty bearer on files", req("GET", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt", Some("Bearer "), None, b""), Want::Code(401, "", "")),
        ("token with a NUL-like suffix", req("GET", "/_local/stats", Some("Bearer tok%00"), None, b""), Want::Exact(403, json!({"error_code": 403, "message": "Invalid access token."}))),
    ];
    let mut sent = 0;
    let mut failed = Vec::new();
    for (name, bytes, want) in &cases {
        let got = raw(&addr, bytes).await;
        let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match want {
            // Auth failures and 405s: the gateway's bodies (numeric codes, or none).
            Want::Code(401, "", "") => {
                let body: Value = serde_json::from_slice(&got.body).unwrap();
                assert_eq!(got.status, 401, "{name}");
                assert_eq!(body["error_code"], 401, "{name}");
                assert!(body["message"].as_str().unwrap().starts_with("Credential was not sent or was of an unsupported type for this API. [ReqId: "), "{name}");
            }
            Want::Code(405, "", "") => assert_eq!(got.status, 405, "{name}"),
            Want::Code(status, "", "") => {
                let body: Value = serde_json::from_slice(&got.body).unwrap_or(Value::Null);
                assert_eq!(got.status, *status, "{name}: {body}");
                assert!(body["error_code"].is_string() && body["message"].is_string(), "{name}: {body}");
            }
            Want::Code(status, code, "") => {
                let body: Value = serde_json::from_slice(&got.body).unwrap_or(Value::Null);
                assert_eq!((got.status, body["error_code"].as_str()), (*status, Some(*code)), "{name}: {body}");
                assert!(body["message"].is_string(), "{name}: {body}");
            }
            _ => check(name, &got, want),
        }));
        if verdict.is_err() {
            failed.push(*name);
        }
        // Still answering.
        let alive = raw(&addr, &get("/api/2.0/clusters/get?cluster_id=local-cluster")).await;
        assert_eq!(alive.status, 200, "server stopped answering after {name}");
        sent += 1;
    }

    assert!(failed.is_empty(), "cases that got the wrong answer: {failed:?}");

    // No credential, and a wrong one, on every route (including /_local/).
    let routes: &[(&str, &str)] = &[
        ("GET", "/api/2.0/clusters/get"), ("GET", "/api/2.1/clusters/list"), ("POST", "/api/2.0/clusters/start"),
        ("POST", "/api/2.0/clusters/restart"), ("POST", "/api/2.1/clusters/delete"),
        ("POST", "/api/1.2/contexts/create"), ("GET", "/api/1.2/contexts/status"), ("POST", "/api/1.2/contexts/destroy"),
        ("POST", "/api/1.2/commands/execute"), ("GET", "/api/1.2/commands/status"), ("POST", "/api/1.2/commands/cancel"),
        ("POST", "/api/2.0/dbfs/put"), ("POST", "/api/2.0/dbfs/create"), ("POST", "/api/2.0/dbfs/add-block"),
        ("POST", "/api/2.0/dbfs/close"), ("GET", "/api/2.0/dbfs/read"), ("GET", "/api/2.0/dbfs/get-status"),
        ("GET", "/api/2.0/dbfs/list"), ("POST", "/api/2.0/dbfs/mkdirs"), ("POST", "/api/2.0/dbfs/delete"),
        ("POST", "/api/2.0/dbfs/move"), ("PUT", "/api/2.0/fs/files/Volumes/c/s/v/x"), ("GET", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt"),
        ("HEAD", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt"), ("DELETE", "/api/2.0/fs/files/Volumes/c/s/v/ok/f.txt"),
        ("PUT", "/api/2.0/fs/directories/Volumes/c/s/v/d"), ("GET", "/api/2.0/fs/directories/Volumes/c/s/v/ok"),
        ("DELETE", "/api/2.0/fs/directories/Volumes/c/s/v/ok"), ("GET", "/_local/stats"), ("POST", "/_local/faults"),
        ("POST", "/_local/cluster/restart"), ("POST", "/_local/cluster/terminate"), ("POST", "/_local/contexts/evict"),
        ("GET", "/api/2.0/no/such/route"),
    ];
    for (method, path) in routes {
        let none = raw(&addr, &req(method, path, None, None, b"")).await;
        assert_eq!(none.status, 401, "{method} {path} without a token");
        if *method != "HEAD" {
            let body: Value = serde_json::from_slice(&none.body).unwrap();
            assert_eq!(body["error_code"], 401, "{method} {path}");
        }
        let wrong = raw(&addr, &req(method, path, Some("Bearer not-the-token"), None, b"")).await;
        assert_eq!(wrong.status, 403, "{method} {path} with a wrong token");
        if *method != "HEAD" {
            let body: Value = serde_json::from_slice(&wrong.body).unwrap();
            assert_eq!(body, json!({"error_code": 403, "message": "Invalid access token."}), "{method} {path}");
        }
        sent += 2;
    }
    // The stores were not touched by any refused request.
    assert_eq!(std::fs::read(fs.join("dbfs/ok/f.txt")).unwrap(), b"0123456789");
    assert!(!fs.join("dbfs/ok").join(&long_name).exists());

    // Concurrent writes to one DBFS handle: every block lands whole (order is
    // the server's arrival order), the file appears only at close.
    let h = raw(&addr, &post("/api/2.0/dbfs/create", "{\"path\": \"/conc/file.bin\"}")).await;
    let h: i64 = serde_json::from_slice::<Value>(&h.body).unwrap()["handle"].as_i64().unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("{{\"handle\": {h}, \"data\": \"{}\"}}", B64.encode(vec![b'a' + i; 64 * 1024]));
            raw(&addr, &post("/api/2.0/dbfs/add-block", &body)).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(raw(&addr, &get("/api/2.0/dbfs/get-status?path=/conc/file.bin")).await.status, 404);
    assert_eq!(raw(&addr, &post("/api/2.0/dbfs/close", &format!("{{\"handle\": {h}}}"))).await.status, 200);
    let data = std::fs::read(fs.join("dbfs/conc/file.bin")).unwrap();
    assert_eq!(data.len(), 16 * 64 * 1024);
    let mut seen: Vec<u8> = data.chunks(64 * 1024).map(|c| {
        assert!(c.iter().all(|b| *b == c[0]), "a block was interleaved with another");
        c[0]
    }).collect();
    seen.sort();
    assert_eq!(seen, (0..16u8).map(|i| b'a' + i).collect::<Vec<_>>());
    let closed_again = raw(&addr, &post("/api/2.0/dbfs/close", &format!("{{\"handle\": {h}}}"))).await;
    check("close twice", &closed_again, &Want::Code(404, "RESOURCE_DOES_NOT_EXIST", "There is no handle"));
    sent += 19;

    // Listings leave links out of the store out.
    let l: Value = serde_json::from_slice(&raw(&addr, &get("/api/2.0/dbfs/list?path=/")).await.body).unwrap();
    let paths: Vec<&str> = l["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/conc", "/ok"]);
    sent += 1;

    assert!(sent >= 150, "{sent} requests");
    assert!(cases.len() >= 60, "{} hostile cases", cases.len());
    // Nothing written outside the state directory.
    assert_eq!(snapshot(&outside), before_outside, "the sentinel outside the store changed");
    let mut top: Vec<String> = std::fs::read_dir(&base).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    top.sort();
    assert_eq!(top, ["outside", "state"]);
    for name in ["escape-put", "escape-move", "escape-dir", "escape-files"] {
        assert!(!Path::new("/").join(name).exists() && !std::env::temp_dir().join(name).exists(), "{name} escaped");
    }
    // No temporary uploads left behind by the refused ones.
    assert_eq!(std::fs::read_dir(state.join("tmp")).unwrap().count(), 0);
    drop(api);
    std::fs::remove_dir_all(&base).unwrap();
}

trait ReplaceHead {
    fn replace_head(self, extra: &str) -> Vec<u8>;
}

impl ReplaceHead for Vec<u8> {
    /// Add a header line to a raw request.
    fn replace_head(self, extra: &str) -> Vec<u8> {
        let at = self.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
        let mut out = self[..at].to_vec();
        out.extend_from_slice(extra.as_bytes());
        out.extend_from_slice(&self[at..]);
        out
    }
}
