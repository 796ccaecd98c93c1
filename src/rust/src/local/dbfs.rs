//! DBFS API 2.0: `put`, `create`/`add-block`/`close` (streaming handles that
//! expire after idling), `read`, `get-status`, `list`, `mkdirs`, `delete`,
//! `move`. 1 MiB limits on inline data; error codes and messages as the
//! service sends them. Uploads appear atomically (written aside, then renamed).

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::params::Params;
use super::reply::{self, api, invalid, Reply};
use super::state::Local;
use super::store::{self, Located};

/// 1 MiB: the most `put`, `add-block` and `read` move inline.
pub const MAX_BLOCK: usize = 1 << 20;

struct Handle {
    target: Located,
    tmp: store::TempUpload,
    overwrite: bool,
    last: Instant,
}

pub struct Handles {
    map: Mutex<HashMap<i64, Handle>>,
    next: AtomicI64,
}

impl Default for Handles {
    fn default() -> Self {
        Handles { map: Mutex::new(HashMap::new()), next: AtomicI64::new(7_904_256) }
    }
}

impl Handles {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Handle>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget handles idle longer than `ttl` (their partial data goes too).
    fn expire(&self, ttl: Duration) {
        self.lock().retain(|_, h| {
            h.last.elapsed() < ttl // a dropped handle removes its partial data
        });
    }
}

fn not_found(api_path: &str) -> Response {
    api(404, "RESOURCE_DOES_NOT_EXIST", format!("No file or directory exists on path {api_path}."))
}

fn exists(api_path: &str) -> Response {
    api(
        400,
        "RESOURCE_ALREADY_EXISTS",
        format!("A file or directory already exists at the input path dbfs:{api_path}."),
    )
}

fn io_error(what: &str, e: std::io::Error) -> Response {
    reply::io("IO_ERROR", what, &e)
}

/// Largest body of `put` (inline) and `add-block`: a 1 MiB block in base64
/// plus room for the other fields. Larger bodies are refused while arriving.
pub const INLINE_BODY_MAX: usize = MAX_BLOCK / 3 * 4 + 64 * 1024;

/// Largest multipart `put` (brickster documents 2 GB), streamed to disk.
pub const MULTIPART_MAX: u64 = 2 << 30;

pub fn block_too_large(declared: Option<u64>) -> Response {
    let size = declared.map(|n| format!(" of {n} bytes")).unwrap_or_default();
    api(
        400,
        "MAX_BLOCK_SIZE_EXCEEDED",
        format!("The request body{size} exceeds the maximum of {INLINE_BODY_MAX} bytes: a block holds at most {MAX_BLOCK} bytes, base64-encoded."),
    )
}

async fn params(req: Request) -> Result<Params, Response> {
    Params::parse(req).await.map_err(|m| api(400, "MALFORMED_REQUEST", m))
}

fn path(local: &Local, p: &Params, name: &str) -> Result<Located, Response> {
    let raw = p.nonempty(name).ok_or_else(|| invalid(format!("Missing required field: {name}")))?;
    store::dbfs(&local.fs_root(), &raw).map_err(invalid)
}

/// Refuse a write under `readonly_staging`, as the service refuses a path
/// the caller may read but not write.
fn writable(local: &Local, t: &Located) -> Result<(), Response> {
    match &local.readonly {
        Some(ro) if ro.denies_dbfs(&t.api) => Err(api(
            403,
            "PERMISSION_DENIED",
            format!("User does not have permission to write to dbfs:{}.", t.api),
        )),
        _ => Ok(()),
    }
}

fn flag(p: &Params, name: &str) -> Result<bool, Response> {
    p.bool(name).map(|b| b.unwrap_or(false)).map_err(invalid)
}

fn decode(p: &Params, name: &str) -> Result<Vec<u8>, Response> {
    let data = crate::b64::decode(p.text(name).unwrap_or_default())
        .map_err(|e| invalid(format!("{name} is not valid base64: {e}")))?;
    if data.len() > MAX_BLOCK {
        return Err(api(
            400,
            "MAX_BLOCK_SIZE_EXCEEDED",
            format!("The block of {} bytes exceeds the maximum of {MAX_BLOCK} bytes.", data.len()),
        ));
    }
    Ok(data)
}

/// Refuse to write over something unless `overwrite`; never over a directory.
fn check_target(t: &Located, overwrite: bool) -> Result<(), Response> {
    match std::fs::metadata(&t.file) {
        Ok(m) if m.is_dir() || !overwrite => Err(exists(&t.api)),
        _ => Ok(()),
    }
}

/// Move a finished upload into place, creating parents.
fn commit(tmp: store::TempUpload, t: &Located) -> Result<(), Response> {
    if let Some(parent) = t.file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => exists(&t.api),
            _ => io_error("could not create the parent directory", e),
        })?;
    }
    tmp.commit(&t.file).map_err(|e| io_error("could not store the file", e))
}

fn file_info(api_path: &str, meta: &std::fs::Metadata) -> Value {
    json!({
        "path": api_path,
        "is_dir": meta.is_dir(),
        "file_size": if meta.is_dir() { 0 } else { meta.len() },
        "modification_time": store::mtime_ms(meta),
    })
}

pub async fn put(State(local): State<Arc<Local>>, req: Request) -> Reply {
    if is_multipart(&req) {
        return put_multipart(local, req).await;
    }
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    writable(&local, &t)?;
    let overwrite = flag(&p, "overwrite")?;
    let data = decode(&p, "contents")?;
    check_target(&t, overwrite)?;
    let tmp = store::TempUpload::new(&local.state_dir);
    std::fs::write(&tmp.path, &data).map_err(|e| io_error("could not write the upload", e))?;
    commit(tmp, &t)?;
    reply::empty()
}

pub fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Multipart `put` (brickster): a `contents` file part is streamed to a
/// temporary file (up to [`MULTIPART_MAX`]), never held in memory; a text
/// `contents` is base64 as in JSON; other fields are short strings.
async fn put_multipart(local: Arc<Local>, req: Request) -> Reply {
    use axum::extract::{FromRequest, Multipart};
    let malformed = |e: axum::extract::multipart::MultipartError| {
        api(400, "MALFORMED_REQUEST", format!("malformed multipart body: {}", e.body_text()))
    };
    let mut mp = Multipart::from_request(req, &()).await.map_err(|e| {
        api(400, "MALFORMED_REQUEST", format!("malformed multipart body: {}", e.body_text()))
    })?;
    let tmp = store::TempUpload::new(&local.state_dir);
    let mut fields: serde_json::Map<String, Value> = serde_json::Map::new();
    let mut have_file = false;
    while let Some(mut field) = mp.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "contents" && field.file_name().is_some() {
            let mut f = std::fs::File::create(&tmp.path).map_err(|e| io_error("could not write the upload", e))?;
            let mut size: u64 = 0;
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                size += chunk.len() as u64;
                if size > MULTIPART_MAX {
                    return Err(api(
                        400,
                        "MAX_BLOCK_SIZE_EXCEEDED",
                        format!("The uploaded file exceeds the maximum of {MULTIPART_MAX} bytes for dbfs/put; use dbfs/create, add-block and close."),
                    ));
                }
                f.write_all(&chunk).map_err(|e| io_error("could not write the upload", e))?;
            }
            have_file = true;
            continue;
        }
        let mut text = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            text.extend_from_slice(&chunk);
            if text.len() > INLINE_BODY_MAX {
                return Err(block_too_large(None));
            }
        }
        fields.insert(name, Value::String(String::from_utf8_lossy(&text).into_owned()));
    }
    let p = Params::from_fields(fields);
    let t = path(&local, &p, "path")?;
    writable(&local, &t)?;
    let overwrite = flag(&p, "overwrite")?;
    if !have_file {
        let data = decode(&p, "contents")?;
        std::fs::write(&tmp.path, &data).map_err(|e| io_error("could not write the upload", e))?;
    }
    check_target(&t, overwrite)?;
    commit(tmp, &t)?;
    reply::empty()
}

pub async fn create(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    writable(&local, &t)?;
    let overwrite = flag(&p, "overwrite")?;
    check_target(&t, overwrite)?;
    let ttl = Duration::from_secs(local.opts.dbfs_handle_ttl_s);
    local.dbfs.expire(ttl);
    let tmp = store::TempUpload::new(&local.state_dir);
    std::fs::File::create(&tmp.path).map_err(|e| io_error("could not open the upload", e))?;
    let id = local.dbfs.next.fetch_add(1, Ordering::Relaxed);
    local.dbfs.lock().insert(id, Handle { target: t, tmp, overwrite, last: Instant::now() });
    reply::ok(json!({"handle": id}))
}

fn handle_id(p: &Params) -> Result<i64, Response> {
    p.int("handle")
        .map_err(invalid)?
        .ok_or_else(|| invalid("Missing required field: handle"))
}

fn no_handle(id: i64) -> Response {
    api(404, "RESOURCE_DOES_NOT_EXIST", format!("There is no handle {id}: it was closed, or it expired after idling."))
}

pub async fn add_block(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let id = handle_id(&p)?;
    let data = decode(&p, "data")?;
    local.dbfs.expire(Duration::from_secs(local.opts.dbfs_handle_ttl_s));
    let tmp = {
        let mut map = local.dbfs.lock();
        let h = map.get_mut(&id).ok_or_else(|| no_handle(id))?;
        h.last = Instant::now();
        h.tmp.path.clone()
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&tmp)
        .map_err(|_| no_handle(id))?;
    f.write_all(&data).map_err(|e| io_error("could not append the block", e))?;
    reply::empty()
}

pub async fn close(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let id = handle_id(&p)?;
    local.dbfs.expire(Duration::from_secs(local.opts.dbfs_handle_ttl_s));
    let h = local.dbfs.lock().remove(&id).ok_or_else(|| no_handle(id))?;
    check_target(&h.target, h.overwrite)?;
    commit(h.tmp, &h.target)?;
    reply::empty()
}

pub async fn read(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    let offset = p.int("offset").map_err(invalid)?.unwrap_or(0);
    let length = p.int("length").map_err(invalid)?.unwrap_or(512 * 1024);
    if offset < 0 || length < 0 {
        return Err(invalid("offset and length must not be negative"));
    }
    if length as usize > MAX_BLOCK {
        return Err(api(
            400,
            "MAX_READ_SIZE_EXCEEDED",
            format!("Cannot read more than {MAX_BLOCK} bytes at once; asked for {length}."),
        ));
    }
    let meta = std::fs::metadata(&t.file).map_err(|_| not_found(&t.api))?;
    if meta.is_dir() {
        return Err(invalid(format!("Cannot read dbfs:{}: it is a directory.", t.api)));
    }
    // At or past the end there is nothing to read (and no seek to fail).
    if offset as u64 >= meta.len() {
        return reply::ok(json!({"bytes_read": 0, "data": ""}));
    }
    let mut f = std::fs::File::open(&t.file).map_err(|_| not_found(&t.api))?;
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset as u64))
        .map_err(|e| invalid(format!("Cannot read dbfs:{} at offset {offset}: {e}", t.api)))?;
    let mut buf = Vec::with_capacity(length as usize);
    f.take(length as u64).read_to_end(&mut buf).map_err(|e| io_error("could not read", e))?;
    let data = crate::b64::encode(&buf);
    reply::ok(json!({"bytes_read": buf.len(), "data": data}))
}

pub async fn get_status(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    let meta = std::fs::metadata(&t.file).map_err(|_| not_found(&t.api))?;
    reply::ok(file_info(&t.api, &meta))
}

pub async fn list(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    let meta = std::fs::metadata(&t.file).map_err(|_| not_found(&t.api))?;
    if !meta.is_dir() {
        return reply::ok(json!({"files": [file_info(&t.api, &meta)]}));
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&t.file).map_err(|e| io_error("could not list", e))?;
    let root = local.fs_root();
    for entry in entries.flatten() {
        if !store::inside(&root, &entry.path()) {
            continue; // a link out of the store
        }
        if let (Ok(m), Some(name)) = (entry.metadata(), entry.file_name().to_str()) {
            let child = if t.api == "/" { format!("/{name}") } else { format!("{}/{name}", t.api) };
            files.push(file_info(&child, &m));
        }
    }
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    if files.is_empty() {
        return reply::ok(json!({}));
    }
    reply::ok(json!({"files": files}))
}

pub async fn mkdirs(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    writable(&local, &t)?;
    std::fs::create_dir_all(&t.file).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => exists(&t.api),
        _ => io_error("could not create the directory", e),
    })?;
    reply::empty()
}

pub async fn delete(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    let recursive = flag(&p, "recursive")?;
    writable(&local, &t)?;
    if t.api == "/" {
        return Err(invalid("Cannot delete the DBFS root."));
    }
    let Ok(meta) = std::fs::symlink_metadata(&t.file) else {
        return reply::empty(); // deleting nothing succeeds, as on DBFS
    };
    let res = if meta.is_dir() {
        if recursive {
            std::fs::remove_dir_all(&t.file)
        } else {
            std::fs::remove_dir(&t.file)
        }
    } else {
        std::fs::remove_file(&t.file)
    };
    res.map_err(|_| {
        api(
            400,
            "IO_ERROR",
            format!("Could not delete dbfs:{}: the directory is not empty; pass recursive = true.", t.api),
        )
    })?;
    reply::empty()
}

pub async fn move_(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let src = path(&local, &p, "source_path")?;
    let dst = path(&local, &p, "destination_path")?;
    writable(&local, &src)?;
    writable(&local, &dst)?;
    if !src.file.exists() {
        return Err(not_found(&src.api));
    }
    if dst.file.exists() {
        return Err(exists(&dst.api));
    }
    if dst.file.starts_with(&src.file) {
        return Err(invalid(format!("Cannot move dbfs:{} into itself.", src.api)));
    }
    if let Some(parent) = dst.file.parent() {
        std::fs::create_dir_all(parent).map_err(|_| exists(&dst.api))?;
    }
    std::fs::rename(&src.file, &dst.file).map_err(|e| io_error("could not move", e))?;
    reply::empty()
}
