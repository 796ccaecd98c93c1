//! Files API for Unity Catalog volumes: `PUT/GET/HEAD/DELETE
//! /api/2.0/fs/files{path}` (raw bytes, streamed both ways, `overwrite`,
//! `Range`, `If-Unmodified-Since`) and `PUT/GET/HEAD/DELETE
//! /api/2.0/fs/directories{path}`. PUT creates parent directories.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::Router;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::extract::{BodyLimit, Upload, VolPath, Q};
use super::reply::{api, invalid, Reply};
use super::state::Shared;
use super::store::{self, Located, Store};

pub fn router() -> Router<Shared> {
    // Uploads stream to disk: only their declared size is checked up front.
    let upload = BodyLimit { max: FILE_MAX as usize, too_large: |_, _, _| file_too_large() };
    Router::new()
        .route(
            "/api/2.0/fs/files/{*path}",
            put(put_file).layer(upload.layer()).get(get_file).delete(delete_file),
        )
        .route("/api/2.0/fs/directories/{*path}", put(put_dir).get(get_dir).delete(delete_dir))
        .layer(BodyLimit::SMALL.layer())
}

fn file_not_found() -> Response {
    api(404, "NOT_FOUND", "The file being accessed is not found.")
}

fn dir_not_found() -> Response {
    api(404, "NOT_FOUND", "The directory being accessed is not found.")
}

fn io_error(what: &str, e: std::io::Error) -> Response {
    super::reply::io("INTERNAL_ERROR", what, &e)
}

/// Largest file the Files API takes (5 GiB), enforced while streaming.
pub const FILE_MAX: u64 = 5 << 30;

fn file_too_large() -> Response {
    invalid(format!("The file exceeds the maximum size of {FILE_MAX} bytes for the Files API."))
}

fn no_content() -> Reply {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn locate(st: &Store, path: &str, min_depth: usize) -> Result<Located, Response> {
    st.volume(&format!("/{path}"), min_depth).map_err(invalid)
}

/// A volume path to write: refused under `readonly_staging` with the
/// service's Unity Catalog answer.
fn locate_writable(st: &Store, path: &str, min_depth: usize) -> Result<Located, Response> {
    let t = locate(st, path, min_depth)?;
    match &st.readonly {
        Some(ro) if ro.denies_volume(&t.api) => {
            let volume: Vec<&str> = t.api.split('/').skip(2).take(3).collect();
            Err(api(
                403,
                "PERMISSION_DENIED",
                format!("User does not have WRITE VOLUME on Volume '{}'.", volume.join(".")),
            ))
        }
        _ => Ok(t),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct PutQuery {
    overwrite: Option<String>,
}

async fn put_file(
    State(st): State<Arc<Store>>,
    VolPath(path): VolPath,
    Q(q): Q<PutQuery>,
    upload: Upload,
) -> Reply {
    let t = locate_writable(&st, &path, 4)?;
    let overwrite = match q.overwrite.as_deref() {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => return Err(invalid(format!("overwrite must be true or false, not {v:?}"))),
    };
    if let Ok(m) = std::fs::metadata(&t.file) {
        if m.is_dir() || !overwrite {
            return Err(api(409, "ALREADY_EXISTS", format!("The file {} already exists.", t.api)));
        }
    }
    if let Some(parent) = t.file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => {
                invalid(format!("Cannot create the parent directory of {}: a file is in the way.", t.api))
            }
            _ => io_error("could not create the parent directory", e),
        })?;
    }
    // Written aside and renamed: the target never holds a partial file, and
    // the guard removes the temporary file on any failure.
    let tmp = st.temp();
    let mut f = tokio::fs::File::create(&tmp.path).await.map_err(|e| io_error("could not store the upload", e))?;
    let max = upload.limit.max as u64;
    let mut body = upload.body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| api(400, "BAD_REQUEST", format!("the upload was interrupted: {e}")))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(file_too_large());
        }
        f.write_all(&chunk).await.map_err(|e| io_error("could not store the upload", e))?;
    }
    f.flush().await.map_err(|e| io_error("could not store the upload", e))?;
    drop(f);
    tmp.commit(&t.file).map_err(|e| io_error("could not store the upload", e))?;
    no_content()
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → (start, end inclusive). None: ignore.
fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole file, as servers may
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end: u64 = if b.is_empty() { len.saturating_sub(1) } else { b.parse().ok()? };
        if start >= len || end < start {
            return Some(Err(()));
        }
        (start, end.min(len - 1))
    };
    Some(Ok(range))
}

async fn get_file(
    State(st): State<Arc<Store>>,
    VolPath(path): VolPath,
    method: Method,
    headers: HeaderMap,
) -> Reply {
    let t = locate(&st, &path, 4)?;
    let meta = std::fs::metadata(&t.file).map_err(|_| file_not_found())?;
    if meta.is_dir() {
        return Err(file_not_found());
    }
    let len = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    // Compare at whole seconds, as HTTP dates do.
    let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    if let Some(since) = headers
        .get(header::IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        if secs(modified) > secs(since) {
            return Err(api(412, "PRECONDITION_FAILED", "The file was modified after If-Unmodified-Since."));
        }
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, len));
    let (status, start, count) = match range {
        None => (StatusCode::OK, 0, len),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Some(Err(())) => {
            let mut r = api(416, "INVALID_PARAMETER_VALUE", format!("The range is not satisfiable for a file of {len} bytes."));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Err(r);
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let mut f = tokio::fs::File::open(&t.file).await.map_err(|_| file_not_found())?;
        f.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| io_error("could not seek", e))?;
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f.take(count), 256 * 1024))
    };
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, count)
        .header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified))
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        r = r.header(header::CONTENT_RANGE, format!("bytes {}-{}/{len}", start, start + count - 1));
    }
    r.body(body).map_err(|e| api(500, "INTERNAL_ERROR", e.to_string()))
}

async fn delete_file(State(st): State<Arc<Store>>, VolPath(path): VolPath) -> Reply {
    let t = locate_writable(&st, &path, 4)?;
    match std::fs::metadata(&t.file) {
        Ok(m) if m.is_file() => {
            std::fs::remove_file(&t.file).map_err(|e| io_error("could not delete", e))?;
            no_content()
        }
        _ => Err(file_not_found()),
    }
}

async fn put_dir(State(st): State<Arc<Store>>, VolPath(path): VolPath) -> Reply {
    let t = locate_writable(&st, &path, 3)?;
    std::fs::create_dir_all(&t.file).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => {
            api(409, "ALREADY_EXISTS", format!("A file already exists at {} or one of its parents.", t.api))
        }
        _ => io_error("could not create the directory", e),
    })?;
    no_content()
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    page_size: Option<usize>,
    page_token: Option<String>,
}

async fn get_dir(
    State(st): State<Arc<Store>>,
    VolPath(path): VolPath,
    method: Method,
    Q(q): Q<ListQuery>,
) -> Reply {
    let t = locate(&st, &path, 3)?;
    let meta = std::fs::metadata(&t.file).map_err(|_| dir_not_found())?;
    if !meta.is_dir() {
        return Err(invalid(format!("{} is a file, not a directory.", t.api)));
    }
    if method == Method::HEAD {
        return Ok(StatusCode::OK.into_response());
    }
    let page_size = q.page_size.unwrap_or(1000).clamp(1, 1000);
    let skip: usize = match q.page_token.as_deref() {
        None | Some("") => 0,
        Some(tok) => tok.parse().map_err(|_| invalid("page_token is not valid"))?,
    };
    let mut entries: Vec<(String, std::fs::Metadata)> = std::fs::read_dir(&t.file)
        .map_err(|e| io_error("could not list", e))?
        .flatten()
        .filter(|e| store::inside(&st.root, &e.path())) // no links out of the store
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.metadata().ok()?)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let page: Vec<serde_json::Value> = entries
        .iter()
        .skip(skip)
        .take(page_size)
        .map(|(name, m)| {
            let mut e = json!({
                "path": format!("{}/{name}", t.api),
                "name": name,
                "is_directory": m.is_dir(),
                "last_modified": store::mtime_ms(m),
            });
            if !m.is_dir() {
                e["file_size"] = json!(m.len());
            }
            e
        })
        .collect();
    let mut v = json!({"contents": page});
    if skip + page_size < entries.len() {
        v["next_page_token"] = json!((skip + page_size).to_string());
    }
    Ok(axum::Json(v).into_response())
}

async fn delete_dir(State(st): State<Arc<Store>>, VolPath(path): VolPath) -> Reply {
    let t = locate_writable(&st, &path, 3)?;
    let meta = std::fs::metadata(&t.file).map_err(|_| dir_not_found())?;
    if !meta.is_dir() {
        return Err(invalid(format!("{} is a file, not a directory.", t.api)));
    }
    std::fs::remove_dir(&t.file).map_err(|_| {
        api(400, "DIRECTORY_NOT_EMPTY", format!("The directory {} is not empty.", t.api))
    })?;
    no_content()
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("items=1-2", 100), None);
    }
}
