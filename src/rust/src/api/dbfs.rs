//! DBFS API 2.0 (reference §3.1). Paths are absolute DBFS paths (`/tmp/x`).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, ErrorKind, Result};
use crate::http::{Request, Transport};

/// The largest block `add-block` and `read` accept (decoded bytes).
pub const BLOCK: usize = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
pub struct FileInfo {
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default)]
    pub file_size: u64,
}

#[derive(Deserialize)]
struct Handle {
    handle: i64,
}

#[derive(Deserialize)]
struct ReadResponse {
    #[serde(default)]
    bytes_read: u64,
    #[serde(default)]
    data: String,
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    files: Vec<FileInfo>,
}


pub fn is_not_found(e: &Error) -> bool {
    e.error_code.as_deref() == Some("RESOURCE_DOES_NOT_EXIST") || e.status == Some(404)
}

/// `None` when nothing is at `path`.
pub async fn get_status(t: &Transport, path: &str) -> Result<Option<FileInfo>> {
    match t.json(Request::get("/api/2.0/dbfs/get-status").query("path", path)).await {
        Ok(info) => Ok(Some(info)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write a whole small file (at most [`BLOCK`] bytes) in one request. With
/// `overwrite` it is idempotent, so a dropped one is simply sent again.
pub async fn put(t: &Transport, path: &str, data: &[u8], overwrite: bool) -> Result<()> {
    let req = Request::post("/api/2.0/dbfs/put").body(crate::http::Body::Json(put_body(path, data, overwrite)));
    t.send(req).await.map(|_| ())
}

/// The JSON body of a put, the base64 written directly.
fn put_body(path: &str, data: &[u8], overwrite: bool) -> Bytes {
    let mut body = String::with_capacity(data.len().div_ceil(3) * 4 + path.len() + 64);
    body.push_str(&json!({ "path": path, "overwrite": overwrite }).to_string());
    body.pop(); // the closing brace
    body.push_str(",\"contents\":\"");
    crate::b64::encode_into(data, &mut body);
    body.push_str("\"}");
    Bytes::from(body)
}

pub async fn create(t: &Transport, path: &str, overwrite: bool) -> Result<i64> {
    let req = Request::post("/api/2.0/dbfs/create").json(&json!({ "path": path, "overwrite": overwrite }))?;
    Ok(t.json::<Handle>(req).await?.handle)
}

/// Append one block (at most [`BLOCK`] bytes). A block whose answer was lost
/// is sent again: if it had arrived, the file ends up too long, which the
/// uploader checks after `close` (and then uploads again).
pub async fn add_block(t: &Transport, handle: i64, data: &[u8]) -> Result<()> {
    add_block_encoded(t, add_block_body(handle, data)).await
}

/// The JSON body of an add-block request, written directly (base64 needs no
/// escaping), so uploaders can encode the next block while one is in flight.
pub fn add_block_body(handle: i64, data: &[u8]) -> Bytes {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4 + 48);
    s.push_str("{\"handle\":");
    s.push_str(&handle.to_string());
    s.push_str(",\"data\":\"");
    crate::b64::encode_into(data, &mut s);
    s.push_str("\"}");
    Bytes::from(s)
}

/// Send a body made by [`add_block_body`].
pub async fn add_block_encoded(t: &Transport, body: Bytes) -> Result<()> {
    let req = Request::post("/api/2.0/dbfs/add-block")
        .body(crate::http::Body::Json(body));
    t.send(req).await.map(|_| ())
}

pub async fn close(t: &Transport, handle: i64) -> Result<()> {
    let req = Request::post("/api/2.0/dbfs/close").json(&json!({ "handle": handle }))?;
    t.send(req).await.map(|_| ())
}

/// Read up to `length` (≤ [`BLOCK`]) bytes at `offset`.
pub async fn read(t: &Transport, path: &str, offset: u64, length: usize) -> Result<Vec<u8>> {
    let req = Request::get("/api/2.0/dbfs/read")
        .query("path", path)
        .query("offset", offset.to_string())
        .query("length", length.to_string());
    let r: ReadResponse = t.json(req).await?;
    let bytes = crate::b64::decode(&r.data).map_err(|e| {
        Error::new(ErrorKind::Http, format!("DBFS read of {path} returned invalid base64 ({e})"))
    })?;
    if bytes.len() as u64 != r.bytes_read {
        return Err(Error::new(
            ErrorKind::Http,
            format!("DBFS read of {path} at {offset}: bytes_read {} but {} bytes of data", r.bytes_read, bytes.len()),
        ));
    }
    Ok(bytes)
}

pub async fn mkdirs(t: &Transport, path: &str) -> Result<()> {
    let req = Request::post("/api/2.0/dbfs/mkdirs").json(&json!({ "path": path }))?;
    t.send(req).await.map(|_| ())
}

/// Delete a file or directory; a missing path is not an error.
pub async fn delete(t: &Transport, path: &str, recursive: bool) -> Result<()> {
    let req = Request::post("/api/2.0/dbfs/delete").json(&json!({ "path": path, "recursive": recursive }))?;
    match t.send(req).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn list(t: &Transport, path: &str) -> Result<Vec<FileInfo>> {
    Ok(t.json::<ListResponse>(Request::get("/api/2.0/dbfs/list").query("path", path)).await?.files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_body_is_json() {
        let v: serde_json::Value = serde_json::from_slice(&put_body("/a\"b", b"hi", true)).unwrap();
        assert_eq!(v, json!({"path": "/a\"b", "overwrite": true, "contents": "aGk="}));
    }

    #[test]
    fn add_block_body_is_the_json_the_api_expects() {
        let body = add_block_body(7, b"hello world");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"handle": 7, "data": "aGVsbG8gd29ybGQ="}));
    }
}
