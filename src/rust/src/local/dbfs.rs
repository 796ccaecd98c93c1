//! DBFS API 2.0: `put`, `create`/`add-block`/`close` (streaming handles that
//! expire after idling), `read`, `get-status`, `list`, `mkdirs`, `delete`,
//! `move`. 1 MiB limits on inline data; error codes and messages as the
//! service sends them. Uploads appear atomically (written aside, then renamed).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Multipart, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::extract::{BodyLimit, Fields, FieldsOrMultipart, Malformed};
use super::params::Params;
use super::reply::{self, api, invalid, Reply};
use super::state::Shared;
use super::store::{self, Handle, Located, Store};

type Input = Fields<Malformed>;

pub fn router() -> Router<Shared> {
    // Inline data (`put` as JSON, `add-block`) is a 1 MiB block in base64;
    // a multipart `put` streams to disk under its own limit.
    let block = BodyLimit { max: INLINE_BODY_MAX, too_large: |_, n, _| block_too_large(n) };
    Router::new()
        .route("/api/2.0/dbfs/put", post(put).layer(block.layer()))
        .route("/api/2.0/dbfs/add-block", post(add_block).layer(block.layer()))
        .route("/api/2.0/dbfs/create", post(create))
        .route("/api/2.0/dbfs/close", post(close))
        .route("/api/2.0/dbfs/read", get(read))
        .route("/api/2.0/dbfs/get-status", get(get_status))
        .route("/api/2.0/dbfs/list", get(list))
        .route("/api/2.0/dbfs/mkdirs", post(mkdirs))
        .route("/api/2.0/dbfs/delete", post(delete))
        .route("/api/2.0/dbfs/move", post(move_))
        .layer(BodyLimit::SMALL.layer())
}

/// 1 MiB: the most `put`, `add-block` and `read` move inline.
pub const MAX_BLOCK: usize = 1 << 20;

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

fn path(st: &Store, p: &Params, name: &str) -> Result<Located, Response> {
    let raw = p.nonempty(name).ok_or_else(|| invalid(format!("Missing required field: {name}")))?;
    st.dbfs(&raw).map_err(invalid)
}

/// Refuse a write under `readonly_staging`, as the service refuses a path
/// the caller may read but not write.
fn writable(st: &Store, t: &Located) -> Result<(), Response> {
    match &st.readonly {
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

async fn put(State(st): State<Arc<Store>>, body: FieldsOrMultipart<Malformed>) -> Reply {
    let p = match body {
        FieldsOrMultipart::Multipart(mp) => return put_multipart(st, mp).await,
        FieldsOrMultipart::Fields(Fields(p, ..)) => p,
    };
    let t = path(&st, &p, "path")?;
    writable(&st, &t)?;
    let overwrite = flag(&p, "overwrite")?;
    let data = decode(&p, "contents")?;
    check_target(&t, overwrite)?;
    let tmp = st.temp();
    std::fs::write(&tmp.path, &data).map_err(|e| io_error("could not write the upload", e))?;
    commit(tmp, &t)?;
    reply::empty()
}

/// Multipart `put` (brickster): a `contents` file part is streamed to a
/// temporary file (up to [`MULTIPART_MAX`]), never held in memory; a text
/// `contents` is base64 as in JSON; other fields are short strings.
async fn put_multipart(st: Arc<Store>, mut mp: Multipart) -> Reply {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        api(400, "MALFORMED_REQUEST", format!("malformed multipart body: {}", e.body_text()))
    };
    let tmp = st.temp();
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
    let t = path(&st, &p, "path")?;
    writable(&st, &t)?;
    let overwrite = flag(&p, "overwrite")?;
    if !have_file {
        let data = decode(&p, "contents")?;
        std::fs::write(&tmp.path, &data).map_err(|e| io_error("could not write the upload", e))?;
    }
    check_target(&t, overwrite)?;
    commit(tmp, &t)?;
    reply::empty()
}

async fn create(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let t = path(&st, &p, "path")?;
    writable(&st, &t)?;
    let overwrite = flag(&p, "overwrite")?;
    check_target(&t, overwrite)?;
    st.handles.expire(st.handle_ttl);
    let tmp = st.temp();
    std::fs::File::create(&tmp.path).map_err(|e| io_error("could not open the upload", e))?;
    let id = st.handles.next.fetch_add(1, Ordering::Relaxed);
    st.handles.lock().insert(id, Handle { target: t, tmp, overwrite, last: Instant::now() });
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

async fn add_block(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let id = handle_id(&p)?;
    let data = decode(&p, "data")?;
    st.handles.expire(st.handle_ttl);
    let tmp = {
        let mut map = st.handles.lock();
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

async fn close(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let id = handle_id(&p)?;
    st.handles.expire(st.handle_ttl);
    let h = st.handles.lock().remove(&id).ok_or_else(|| no_handle(id))?;
    check_target(&h.target, h.overwrite)?;
    commit(h.tmp, &h.target)?;
    reply::empty()
}

async fn read(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let t = path(&st, &p, "path")?;
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

async fn get_status(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let t = path(&st, &p, "path")?;
    let meta = std::fs::metadata(&t.file).map_err(|_| not_found(&t.api))?;
    reply::ok(file_info(&t.api, &meta))
}

async fn list(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let t = path(&st, &p, "path")?;
    let meta = std::fs::metadata(&t.file).map_err(|_| not_found(&t.api))?;
    if !meta.is_dir() {
        return reply::ok(json!({"files": [file_info(&t.api, &meta)]}));
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&t.file).map_err(|e| io_error("could not list", e))?;
    let root = &st.root;
    for entry in entries.flatten() {
        if !store::inside(root, &entry.path()) {
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

async fn mkdirs(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let t = path(&st, &p, "path")?;
    writable(&st, &t)?;
    std::fs::create_dir_all(&t.file).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => exists(&t.api),
        _ => io_error("could not create the directory", e),
    })?;
    reply::empty()
}

async fn delete(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let t = path(&st, &p, "path")?;
    let recursive = flag(&p, "recursive")?;
    writable(&st, &t)?;
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

async fn move_(State(st): State<Arc<Store>>, Fields(p, ..): Input) -> Reply {
    let src = path(&st, &p, "source_path")?;
    let dst = path(&st, &p, "destination_path")?;
    writable(&st, &src)?;
    writable(&st, &dst)?;
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
