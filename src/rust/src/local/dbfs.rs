//! DBFS API 2.0: `put`, `create`/`add-block`/`close` (streaming handles that
//! expire after idling), `read`, `get-status`, `list`, `mkdirs`, `delete`,
//! `move`. 1 MiB limits on inline data; error codes and messages as the
//! service sends them. Uploads appear atomically (written aside, then renamed).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use super::params::Params;
use super::reply::{self, api, invalid, Reply};
use super::state::Local;
use super::store::{self, Located};

/// 1 MiB: the most `put`, `add-block` and `read` move inline.
pub const MAX_BLOCK: usize = 1 << 20;

struct Handle {
    target: Located,
    tmp: std::path::PathBuf,
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
            let keep = h.last.elapsed() < ttl;
            if !keep {
                let _ = std::fs::remove_file(&h.tmp);
            }
            keep
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
    api(500, "IO_ERROR", format!("{what}: {e}"))
}

async fn params(req: Request) -> Result<Params, Response> {
    Params::parse(req).await.map_err(|m| api(400, "MALFORMED_REQUEST", m))
}

fn path(local: &Local, p: &Params, name: &str) -> Result<Located, Response> {
    let raw = p.nonempty(name).ok_or_else(|| invalid(format!("Missing required field: {name}")))?;
    store::dbfs(&local.fs_root(), &raw).map_err(invalid)
}

fn flag(p: &Params, name: &str) -> Result<bool, Response> {
    p.bool(name).map(|b| b.unwrap_or(false)).map_err(invalid)
}

fn decode(p: &Params, name: &str) -> Result<Vec<u8>, Response> {
    let text = p.str(name).unwrap_or_default();
    let data = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
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
fn commit(tmp: &Path, t: &Located) -> Result<(), Response> {
    if let Some(parent) = t.file.parent() {
        std::fs::create_dir_all(parent).map_err(|_| exists(&t.api))?;
    }
    std::fs::rename(tmp, &t.file).map_err(|e| io_error("could not store the file", e))
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
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    let overwrite = flag(&p, "overwrite")?;
    // Multipart file parts may be large; inline base64 is limited to 1 MiB.
    let data = match p.part("contents") {
        Some(part) if p.str("contents").is_none() => part.to_vec(),
        _ => decode(&p, "contents")?,
    };
    check_target(&t, overwrite)?;
    let tmp = store::temp_file(&local.state_dir);
    std::fs::write(&tmp, &data).map_err(|e| io_error("could not write the upload", e))?;
    commit(&tmp, &t)?;
    reply::empty()
}

pub async fn create(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    let overwrite = flag(&p, "overwrite")?;
    check_target(&t, overwrite)?;
    let ttl = Duration::from_secs(local.opts.dbfs_handle_ttl_s);
    local.dbfs.expire(ttl);
    let tmp = store::temp_file(&local.state_dir);
    std::fs::File::create(&tmp).map_err(|e| io_error("could not open the upload", e))?;
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
        h.tmp.clone()
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
    if let Err(e) = check_target(&h.target, h.overwrite) {
        let _ = std::fs::remove_file(&h.tmp);
        return Err(e);
    }
    commit(&h.tmp, &h.target)?;
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
    let mut f = std::fs::File::open(&t.file).map_err(|_| not_found(&t.api))?;
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset as u64)).map_err(|e| io_error("could not seek", e))?;
    let mut buf = Vec::with_capacity(length as usize);
    f.take(length as u64).read_to_end(&mut buf).map_err(|e| io_error("could not read", e))?;
    let data = base64::engine::general_purpose::STANDARD.encode(&buf);
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
    for entry in entries.flatten() {
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
    std::fs::create_dir_all(&t.file).map_err(|_| exists(&t.api))?;
    reply::empty()
}

pub async fn delete(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let p = params(req).await?;
    let t = path(&local, &p, "path")?;
    let recursive = flag(&p, "recursive")?;
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
