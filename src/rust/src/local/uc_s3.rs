//! Unity Catalog's classic storage mode, for MLflow clients older than default
//! storage (Databricks Runtime 15.4's mlflow-skinny 2.11): a model version's
//! files live at `s3://dbrxr-uc/models/<catalog>/<schema>/<model>/<version>/`
//! and the registry hands out temporary AWS credentials for them
//! (`uc_registry::credentials`). This is that bucket: the S3 API subset boto3
//! uses for them (path style under `/s3/`, which contexts and tasks reach
//! through `MLFLOW_S3_ENDPOINT_URL`), over the same files the presigned URLs
//! of default storage serve.
//!
//! Authorization is the credential's session token (`X-Amz-Security-Token`):
//! a grant of one version's directory, read or read-write, 15 minutes, this
//! cluster only. The request signature is not checked: the token is already
//! as secret as the signing key it travels with.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::reply::Reply;
use super::state::{Local, Shared};
use super::uc_artifacts::{clean, granted_dir, write_file};

/// The one bucket, and the routes' prefix (exempt from the bearer token).
pub const BUCKET: &str = "dbrxr-uc";
pub const PREFIX: &str = "/s3/";

pub fn router() -> Router<Shared> {
    Router::new().route("/s3/{bucket}", get(list).head(head_bucket)).route(
        "/s3/{bucket}/{*key}",
        get(get_object).head(head_object).put(put_object).post(post_object).delete(abort_upload),
    )
}

/// A version's storage location, as the registry reports it.
pub fn storage_location(name: &str, version: &str) -> String {
    format!("s3://{BUCKET}/models/{}/{version}", name.replace('.', "/"))
}

// ---- answers ------------------------------------------------------------------------

fn s3_error(status: u16, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
        xml(message)
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn denied() -> Response {
    s3_error(403, "AccessDenied", "The credentials are not valid for this object, or have expired.")
}

fn no_key() -> Response {
    s3_error(404, "NoSuchKey", "The specified key does not exist.")
}

fn xml_ok(body: String) -> Reply {
    Ok(([(header::CONTENT_TYPE, "application/xml")], body).into_response())
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Percent-encoding of a key for `encoding-type=url` listings (`/` kept).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- keys and credentials ---------------------------------------------------------

/// The one bucket there is.
fn check_bucket(bucket: &str) -> Result<(), Response> {
    if bucket != BUCKET {
        return Err(s3_error(404, "NoSuchBucket", "The specified bucket does not exist."));
    }
    Ok(())
}

/// The file of `key` (`models/<c>/<s>/<m>/<v>/<rel>`), if it is one.
fn key_file(local: &Local, bucket: &str, key: &str) -> Result<PathBuf, Response> {
    check_bucket(bucket)?;
    let rest = key.strip_prefix("models/").ok_or_else(no_key)?;
    let parts = clean(rest).map_err(|_| no_key())?;
    let mut file = local.state_dir.join("uc-models");
    parts.iter().for_each(|p| file.push(p));
    Ok(file)
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-amz-security-token").and_then(|v| v.to_str().ok())
}

/// The directory the request's credentials cover, when they allow `write`.
fn authorized(local: &Local, headers: &HeaderMap, write: bool) -> Result<PathBuf, Response> {
    session_token(headers).and_then(|t| granted_dir(local, t, write)).ok_or_else(denied)
}

/// `key`'s file, when the credentials cover it.
fn authorized_file(local: &Local, headers: &HeaderMap, bucket: &str, key: &str, write: bool) -> Result<PathBuf, Response> {
    let root = authorized(local, headers, write)?;
    let file = key_file(local, bucket, key)?;
    if file.starts_with(&root) && file != root {
        Ok(file)
    } else {
        Err(denied())
    }
}

// ---- bucket -----------------------------------------------------------------------

async fn head_bucket(State(Shared(local)): State<Shared>, UrlPath(bucket): UrlPath<String>, headers: HeaderMap) -> Reply {
    authorized(&local, &headers, false)?;
    check_bucket(&bucket)?;
    Ok(([("x-amz-bucket-region", "us-east-1")], "").into_response())
}

/// ListObjectsV2 of what the credentials cover, below `prefix`, grouped at
/// `delimiter`. One page: a version holds few files.
async fn list(
    State(Shared(local)): State<Shared>,
    UrlPath(bucket): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Reply {
    let root = authorized(&local, &headers, false)?;
    check_bucket(&bucket)?;
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().unwrap_or_default();
    let encode = |k: &str| if q.get("encoding-type").is_some_and(|e| e == "url") { url_encode(k) } else { xml(k) };
    let models = local.state_dir.join("uc-models");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let (mut contents, mut common) = (String::new(), std::collections::BTreeSet::new());
    for (path, size) in files {
        let Ok(rel) = path.strip_prefix(&models) else { continue };
        let key = format!("models/{}", rel.to_string_lossy());
        let Some(after) = key.strip_prefix(prefix.as_str()) else { continue };
        if let Some(i) = (!delimiter.is_empty()).then(|| after.find(delimiter.as_str())).flatten() {
            common.insert(format!("{prefix}{}", &after[..i + delimiter.len()]));
            continue;
        }
        contents.push_str(&format!(
            "<Contents><Key>{}</Key><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            encode(&key)
        ));
    }
    let prefixes: String =
        common.iter().map(|p| format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", encode(p))).collect();
    xml_ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Name>{BUCKET}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>1000</MaxKeys>\
         <IsTruncated>false</IsTruncated>{contents}{prefixes}</ListBucketResult>",
        encode(&prefix),
        contents.matches("<Contents>").count() + common.len()
    ))
}

/// Every file below `dir` with its size (uploads in progress left out).
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => walk(&path, out),
            Ok(m) if !e.file_name().to_string_lossy().starts_with(".upload-") => out.push((path, m.len())),
            _ => {}
        }
    }
}

// ---- objects ----------------------------------------------------------------------

fn object_headers(r: &mut Response, meta: &std::fs::Metadata) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(m) = meta.modified() {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(m)) {
            h.insert(header::LAST_MODIFIED, v);
        }
        let stamp = m.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        if let Ok(v) = HeaderValue::from_str(&format!("\"{:x}-{:x}\"", meta.len(), stamp)) {
            h.insert(header::ETAG, v);
        }
    }
}

async fn head_object(
    State(Shared(local)): State<Shared>,
    UrlPath((bucket, key)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let file = authorized_file(&local, &headers, &bucket, &key, false)?;
    let meta = std::fs::metadata(&file).ok().filter(|m| m.is_file()).ok_or_else(|| StatusCode::NOT_FOUND.into_response())?;
    let mut r = Response::new(Body::empty());
    object_headers(&mut r, &meta);
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    Ok(r)
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` of a file of `len` bytes.
fn byte_range(headers: &HeaderMap, len: u64) -> Option<(u64, u64)> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => (len.saturating_sub(n.parse().ok()?), len.checked_sub(1)?),
        (a, "") => (a.parse().ok()?, len.checked_sub(1)?),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(len.checked_sub(1)?)),
    };
    (start <= end).then_some((start, end))
}

async fn get_object(
    State(Shared(local)): State<Shared>,
    UrlPath((bucket, key)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let file = authorized_file(&local, &headers, &bucket, &key, false)?;
    let meta = std::fs::metadata(&file).ok().filter(|m| m.is_file()).ok_or_else(no_key)?;
    let mut f = tokio::fs::File::open(&file).await.map_err(|_| no_key())?;
    let (status, start, len) = match byte_range(&headers, meta.len()) {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None if headers.contains_key(header::RANGE) && meta.len() > 0 => {
            return Err(s3_error(416, "InvalidRange", "The requested range is not satisfiable."))
        }
        None => (StatusCode::OK, 0, meta.len()),
    };
    f.seek(SeekFrom::Start(start)).await.map_err(|_| no_key())?;
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(f.take(len))));
    *r.status_mut() = status;
    object_headers(&mut r, &meta);
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{}", start + len - 1, meta.len());
        r.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("")));
    }
    Ok(r)
}

/// Bodies in aws-chunked encoding (newer SDKs' default checksums) are not
/// taken: they would be stored with their chunk framing.
fn plain_body(headers: &HeaderMap) -> Result<(), Response> {
    let chunked = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("aws-chunked"))
        || headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("STREAMING-"));
    if chunked {
        return Err(s3_error(501, "NotImplemented", "aws-chunked uploads are not supported: send a plain body."));
    }
    Ok(())
}

async fn put_object(
    State(Shared(local)): State<Shared>,
    UrlPath((bucket, key)): UrlPath<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let file = authorized_file(&local, &headers, &bucket, &key, true)?;
    plain_body(&headers)?;
    if headers.contains_key("x-amz-copy-source") {
        return Err(s3_error(501, "NotImplemented", "Copying objects is not supported."));
    }
    let target = match (q.get("uploadId"), q.get("partNumber").and_then(|n| n.parse::<u32>().ok())) {
        (Some(id), Some(n)) => upload_dir(&local, id, &file)?.join(format!("{n:05}")),
        (None, None) => file,
        _ => return Err(s3_error(400, "InvalidArgument", "A part needs both uploadId and partNumber.")),
    };
    write_file(&target, body).await.map_err(|_| s3_error(500, "InternalError", "The object could not be stored."))?;
    let meta = std::fs::metadata(&target).map_err(|_| s3_error(500, "InternalError", "The object was not stored."))?;
    let mut r = Response::new(Body::empty());
    object_headers(&mut r, &meta);
    Ok(r)
}

// ---- multipart uploads ------------------------------------------------------------

/// Uploads in progress: id → the object's file (parts under `uploads/<id>/`).
fn uploads() -> &'static Mutex<HashMap<String, PathBuf>> {
    static U: std::sync::OnceLock<Mutex<HashMap<String, PathBuf>>> = std::sync::OnceLock::new();
    U.get_or_init(Mutex::default)
}

fn upload_dir(local: &Local, id: &str, file: &Path) -> Result<PathBuf, Response> {
    let u = uploads().lock().unwrap_or_else(|e| e.into_inner());
    match u.get(id) {
        Some(f) if f == file => Ok(local.state_dir.join("uc-registry").join("uploads").join(id)),
        _ => Err(s3_error(404, "NoSuchUpload", "The specified multipart upload does not exist.")),
    }
}

/// `?uploads` starts a multipart upload; `?uploadId=` completes one.
async fn post_object(
    State(Shared(local)): State<Shared>,
    UrlPath((bucket, key)): UrlPath<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Reply {
    let file = authorized_file(&local, &headers, &bucket, &key, true)?;
    let head = format!("<Bucket>{BUCKET}</Bucket><Key>{}</Key>", xml(&key));
    if q.contains_key("uploads") {
        let id = super::util::random_hex(16);
        uploads().lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), file);
        return xml_ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>{head}<UploadId>{id}</UploadId></InitiateMultipartUploadResult>"
        ));
    }
    let Some(id) = q.get("uploadId") else {
        return Err(s3_error(400, "InvalidRequest", "POST on an object takes ?uploads or ?uploadId=."));
    };
    let dir = upload_dir(&local, id, &file)?;
    // Parts in number order (their file names are zero-padded numbers).
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    parts.sort();
    let joined = async {
        if let Some(parent) = file.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let tmp = file.with_file_name(format!(".upload-{}", super::util::random_hex(8)));
        let mut out = tokio::fs::File::create(&tmp).await?;
        for p in &parts {
            let mut f = tokio::fs::File::open(p).await?;
            tokio::io::copy(&mut f, &mut out).await?;
        }
        out.flush().await?;
        tokio::fs::rename(&tmp, &file).await
    }
    .await;
    finish_upload(&local, id);
    joined.map_err(|_| s3_error(500, "InternalError", "The parts could not be joined."))?;
    xml_ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>{head}<ETag>\"{id}\"</ETag></CompleteMultipartUploadResult>"
    ))
}

async fn abort_upload(
    State(Shared(local)): State<Shared>,
    UrlPath((bucket, key)): UrlPath<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Reply {
    let file = authorized_file(&local, &headers, &bucket, &key, true)?;
    let id = q.get("uploadId").ok_or_else(|| s3_error(501, "NotImplemented", "Objects are deleted with their version."))?;
    upload_dir(&local, id, &file)?;
    finish_upload(&local, id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn finish_upload(local: &Local, id: &str) {
    uploads().lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    super::uc_artifacts::forget(local, &local.state_dir.join("uc-registry").join("uploads").join(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_s3_reads_them() {
        let mut h = HeaderMap::new();
        let mut with = |v: &str| {
            h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            byte_range(&h, 100)
        };
        assert_eq!(with("bytes=0-9"), Some((0, 9)));
        assert_eq!(with("bytes=90-"), Some((90, 99)));
        assert_eq!(with("bytes=-10"), Some((90, 99)));
        assert_eq!(with("bytes=50-500"), Some((50, 99)));
        assert_eq!(with("bytes=60-50"), None);
    }

    #[test]
    fn listed_keys_are_url_encoded_but_their_slashes() {
        assert_eq!(url_encode("models/a b/c&d.txt"), "models/a%20b/c%26d.txt");
    }
}
