//! Files API (reference §3.3) for `/Volumes/<catalog>/<schema>/<volume>/...`:
//! raw bytes in one PUT, one GET.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::http::{encode_path, next_chunk, stalled, Body, BodyError, Request, Transport};

/// Big transfers get more time than the default request timeout.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
pub struct DirectoryEntry {
    pub path: String,
    #[serde(default)]
    pub is_directory: bool,
    #[serde(default)]
    pub file_size: Option<u64>,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    contents: Vec<DirectoryEntry>,
    #[serde(default)]
    next_page_token: Option<String>,
}

fn file_url(path: &str) -> String {
    format!("/api/2.0/fs/files{}", encode_path(path))
}

fn dir_url(path: &str) -> String {
    format!("/api/2.0/fs/directories{}", encode_path(path))
}

pub fn is_not_found(e: &Error) -> bool {
    e.status == Some(404)
}

/// Upload `body` (bytes or a streamed file) in one PUT.
pub async fn upload(t: &Transport, path: &str, body: Body, overwrite: bool) -> Result<()> {
    let req = Request::new(Method::PUT, file_url(path))
        .query("overwrite", if overwrite { "true" } else { "false" })
        .body(body)
        .timeout(TRANSFER_TIMEOUT);
    t.send(req).await.map(|_| ())
}

pub async fn download(t: &Transport, path: &str) -> Result<Bytes> {
    let req = Request::get(file_url(path))
        .header("Accept", "application/octet-stream")
        .timeout(TRANSFER_TIMEOUT);
    Ok(t.send(req).await?.body)
}

/// Stream a file into `out` chunk by chunk (no full copy in memory);
/// returns the number of bytes written.
pub async fn download_to<W: tokio::io::AsyncWrite + Unpin>(t: &Transport, path: &str, out: &mut W) -> Result<u64> {
    use tokio::io::AsyncWriteExt;
    let req = Request::get(file_url(path))
        .header("Accept", "application/octet-stream")
        .timeout(TRANSFER_TIMEOUT)
        .streamed();
    let mut resp = t
        .send(req)
        .await?
        .stream
        .ok_or_else(|| Error::internal("a streamed download came back without its body"))?;
    let mut written = 0u64;
    loop {
        // Each chunk within the transport's idle bound: a stalled download
        // ends in a timeout, not a hang.
        let chunk = match next_chunk(&mut resp, t.idle_timeout()).await {
            Ok(c) => c,
            Err(BodyError::Cut(e)) if !e.is_timeout() => {
                return Err(Error::new(ErrorKind::Network, format!("the download of {path} was cut: {e}")).hint("try again"))
            }
            Err(BodyError::Stalled) => return Err(stalled(&format!("the download of {path}"), t.idle_timeout(), "it arrived")),
            Err(BodyError::Cut(_)) => return Err(stalled(&format!("the download of {path}"), TRANSFER_TIMEOUT, "it arrived")),
        };
        let Some(chunk) = chunk else { return Ok(written) };
        out.write_all(&chunk).await.map_err(|e| Error::io(format!("cannot write the download of {path}: {e}")))?;
        written += chunk.len() as u64;
    }
}

/// The size of the file at `path`, `None` when there is none.
pub async fn head(t: &Transport, path: &str) -> Result<Option<u64>> {
    match t.send(Request::new(Method::HEAD, file_url(path))).await {
        Ok(r) => Ok(Some(r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn delete(t: &Transport, path: &str) -> Result<()> {
    match t.send(Request::new(Method::DELETE, file_url(path))).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create a directory and its parents (idempotent).
pub async fn mkdirs(t: &Transport, path: &str) -> Result<()> {
    t.send(Request::new(Method::PUT, dir_url(path))).await.map(|_| ())
}

/// All entries of a directory (every page); empty when it does not exist.
pub async fn list(t: &Transport, path: &str) -> Result<Vec<DirectoryEntry>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = Request::get(dir_url(path)).query("page_size", "1000");
        if let Some(tok) = &token {
            req = req.query("page_token", tok.clone());
        }
        let page: Listing = match t.json(req).await {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => return Ok(out),
            Err(e) => return Err(e),
        };
        out.extend(page.contents);
        match page.next_page_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

pub async fn delete_dir(t: &Transport, path: &str) -> Result<()> {
    match t.send(Request::new(Method::DELETE, dir_url(path))).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}
