//! Staging: bytes to and from DBFS or a UC Volume under content hashes.
//!
//! Layout under the staging root (`dbfs:/tmp/dbrxr` unless the connection
//! says otherwise): `cache/<sha256>` persists and is shared by sessions
//! (content-addressed, so an existing file of the right size is never sent
//! again); `sessions/<session id>/` holds a session's temporary files and is
//! removed when the session closes. Volumes go through the Files API (one
//! streamed PUT, one GET); DBFS through create / add-block (1 MiB) / close and
//! parallel 1 MiB ranged reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::{dbfs, files};
use crate::control::Control;
use crate::error::{Error, ErrorKind, Result};
use crate::http::Body;
use crate::retry::{Attempt, RetryPolicy};
use crate::session::Session;
pub use crate::location::{Location, StagingState, DEFAULT_ROOT};

/// Parallel ranged reads for DBFS downloads.
const READ_PARALLELISM: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Removed when the session closes.
    Session,
    /// Persistent, shared, content-addressed.
    Cache,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope> {
        match s {
            "session" => Ok(Scope::Session),
            "cache" => Ok(Scope::Cache),
            _ => Err(Error::input(format!("unknown staging scope `{s}`")).hint("use \"session\" or \"cache\"")),
        }
    }
}

/// Bytes to upload: in memory, or a local file streamed from disk.
#[derive(Debug, Clone)]
pub enum Source {
    Bytes(Bytes),
    File(PathBuf),
}

impl Source {
    async fn len(&self) -> Result<u64> {
        match self {
            Source::Bytes(b) => Ok(b.len() as u64),
            Source::File(p) => Ok(tokio::fs::metadata(p).await.map_err(|e| io_err(p, e))?.len()),
        }
    }

    async fn sha256(&self) -> Result<String> {
        match self {
            Source::Bytes(b) => {
                let b = b.clone();
                blocking(move || Ok(hex::encode(Sha256::digest(&b)))).await
            }
            Source::File(p) => {
                let p = p.clone();
                blocking(move || {
                    use std::io::Read;
                    let mut f = std::fs::File::open(&p).map_err(|e| io_err(&p, e))?;
                    let mut h = Sha256::new();
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf).map_err(|e| io_err(&p, e))?;
                        if n == 0 {
                            return Ok(hex::encode(h.finalize()));
                        }
                        h.update(&buf[..n]);
                    }
                })
                .await
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("a hashing task failed: {e}")))?
}

fn io_err(p: &Path, e: std::io::Error) -> Error {
    Error::io(format!("cannot read {}: {e}", p.display()))
}

/// What a staging call did.
#[derive(Debug, Clone)]
pub struct Staged {
    pub location: Location,
    pub hash: String,
    pub size: u64,
    pub uploaded: bool,
}

impl Staged {
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.location.api_path(),
            "cluster_path": self.location.cluster_path(),
            "hash": self.hash,
            "size": self.size as f64,
            "uploaded": self.uploaded,
        })
    }
}

/// Stage `source` under its content hash in `scope`; nothing is sent when a
/// file of that hash and size is already there.
pub async fn stage(s: &Session, source: Source, scope: Scope, ctl: &Control) -> Result<Staged> {
    ctl.set_progress("Hashing");
    let (hash, size) = (source.sha256().await?, source.len().await?);
    let location = match scope {
        Scope::Cache => s.staging.root.join(&format!("cache/{hash}")),
        Scope::Session => session_dir(s).join(&hash),
    };
    if ctl.run(size_at(s, &location)).await? == Some(size) {
        return Ok(Staged { location, hash, size, uploaded: false });
    }
    upload(s, &location, source, true, ctl).await?;
    Ok(Staged { location, hash, size, uploaded: true })
}

/// Upload `source` to an explicit path (`dbx_upload(path = )`).
pub async fn stage_at(s: &Session, path: &str, source: Source, overwrite: bool, ctl: &Control) -> Result<Staged> {
    let location = Location::parse(path)?;
    let (hash, size) = (source.sha256().await?, source.len().await?);
    upload(s, &location, source, overwrite, ctl).await?;
    Ok(Staged { location, hash, size, uploaded: true })
}

/// The size of the file at `loc`, `None` when there is none.
pub async fn size_at(s: &Session, loc: &Location) -> Result<Option<u64>> {
    match loc {
        Location::Volume(p) => files::head(&s.transport, p).await,
        Location::Dbfs(p) => Ok(dbfs::get_status(&s.transport, p).await?.filter(|i| !i.is_dir).map(|i| i.file_size)),
    }
}

async fn ensure_parent(s: &Session, loc: &Location) -> Result<()> {
    let Some(parent) = loc.parent() else { return Ok(()) };
    let key = parent.api_path();
    if s.staging.made_dirs.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
        return Ok(());
    }
    match &parent {
        Location::Volume(p) => files::mkdirs(&s.transport, p).await?,
        Location::Dbfs(p) => dbfs::mkdirs(&s.transport, p).await?,
    }
    s.staging.made_dirs.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    Ok(())
}

async fn upload(s: &Session, loc: &Location, source: Source, overwrite: bool, ctl: &Control) -> Result<()> {
    ctl.set_progress(format!("Uploading to {}", loc.api_path()));
    ctl.run(ensure_parent(s, loc)).await?;
    match loc {
        Location::Volume(p) => {
            let body = match source {
                Source::Bytes(b) => Body::Raw(b),
                Source::File(f) => Body::File(f),
            };
            ctl.run(files::upload(&s.transport, p, body, overwrite)).await
        }
        Location::Dbfs(p) => {
            // A dropped add-block is sent again; if the first one did arrive,
            // the file comes out too long, so its size is checked after close
            // and a wrong one is uploaded again from the start.
            let expected = source.len().await?;
            let tries = AtomicU32::new(0);
            let what = format!("the upload to {}", loc.api_path());
            RetryPolicy::upload()
                .run(&what, || async {
                    let first = tries.fetch_add(1, Ordering::SeqCst) == 0;
                    match upload_dbfs_once(s, loc, p, source.clone(), overwrite || !first, expected, ctl).await {
                        Ok(()) => Attempt::Done(()),
                        Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Cancelled | ErrorKind::Auth | ErrorKind::Io) => {
                            Attempt::Fail(e)
                        }
                        Err(e) => Attempt::Retry(e, None),
                    }
                })
                .await
        }
    }
}

/// One DBFS upload from the start: create, blocks, close, then the size
/// checked. A failed one is deleted: never a partial file under a hash.
async fn upload_dbfs_once(
    s: &Session,
    loc: &Location,
    p: &str,
    source: Source,
    overwrite: bool,
    expected: u64,
    ctl: &Control,
) -> Result<()> {
    let handle = ctl.run(dbfs::create(&s.transport, p, overwrite)).await?;
    let sent = ctl.run(add_blocks(s, handle, source)).await;
    let closed = dbfs::close(&s.transport, handle).await;
    let checked: Result<()> = match sent.and(closed) {
        Ok(()) => match ctl.run(dbfs::get_status(&s.transport, p)).await {
            Ok(Some(info)) if info.file_size == expected => return Ok(()),
            Ok(info) => Err(Error::new(
                ErrorKind::Http,
                format!(
                    "the upload to {} ended with {} bytes instead of {expected}",
                    loc.api_path(),
                    info.map(|i| i.file_size).unwrap_or(0)
                ),
            )),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let _ = dbfs::delete(&s.transport, p, false).await;
    checked
}

/// Send the blocks of `source` in order; the next block is read and encoded
/// on a blocking thread while the current one is in flight.
async fn add_blocks(s: &Session, handle: i64, source: Source) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(2);
    let producer = tokio::task::spawn_blocking(move || encode_blocks(handle, source, tx));
    while let Some(body) = rx.recv().await {
        dbfs::add_block_encoded(&s.transport, body?).await?;
    }
    producer.await.map_err(|e| Error::internal(format!("the block encoder failed: {e}")))
}

/// Produce add-block bodies until the source ends or the receiver is gone.
fn encode_blocks(handle: i64, source: Source, tx: tokio::sync::mpsc::Sender<Result<Bytes>>) {
    use std::io::Read;
    let send = |r: Result<Bytes>| tx.blocking_send(r).is_ok();
    match source {
        Source::Bytes(b) => {
            for chunk in b.chunks(dbfs::BLOCK) {
                if !send(Ok(dbfs::add_block_body(handle, chunk))) {
                    return;
                }
            }
        }
        Source::File(path) => {
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    send(Err(io_err(&path, e)));
                    return;
                }
            };
            let mut buf = vec![0u8; dbfs::BLOCK];
            loop {
                let mut filled = 0;
                while filled < buf.len() {
                    match f.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => {
                            send(Err(io_err(&path, e)));
                            return;
                        }
                    }
                }
                if filled > 0 && !send(Ok(dbfs::add_block_body(handle, &buf[..filled]))) {
                    return;
                }
                if filled < buf.len() {
                    return;
                }
            }
        }
    }
}

fn missing(loc: &Location) -> Error {
    let mut e = Error::new(ErrorKind::Http, format!("no file exists at {}", loc.api_path()))
        .hint("check the path; files under the staging `sessions/` directory are removed when their session closes");
    e.status = Some(404);
    e.error_code = Some("RESOURCE_DOES_NOT_EXIST".into());
    e
}

/// Download a file into memory.
pub async fn fetch(s: &Session, path: &str, ctl: &Control) -> Result<Vec<u8>> {
    let loc = Location::parse(path)?;
    let mut out = Vec::new();
    write_remote(s, &loc, &mut out, ctl).await?;
    Ok(out)
}

/// The blocks of a DBFS file, read in parallel, yielded in order.
fn dbfs_blocks<'a>(
    s: &'a Session,
    path: &'a str,
    size: u64,
) -> impl futures_util::Stream<Item = Result<Vec<u8>>> + Unpin + 'a {
    let n = size.div_ceil(dbfs::BLOCK as u64);
    Box::pin(
        futures_util::stream::iter(0..n)
            .map(move |i| dbfs::read(&s.transport, path, i * dbfs::BLOCK as u64, dbfs::BLOCK))
            .buffered(READ_PARALLELISM),
    )
}

fn check_size(loc: &Location, expected: u64, got: u64) -> Result<()> {
    if expected != got {
        return Err(Error::new(
            ErrorKind::Http,
            format!("download of {} returned {got} bytes, expected {expected}", loc.api_path()),
        )
        .hint("the file may have changed during the download; try again"));
    }
    Ok(())
}

/// Download a file to `dest`, atomically: a temporary file next to it, then
/// a rename. Returns the size.
pub async fn fetch_to_file(s: &Session, path: &str, dest: &Path, ctl: &Control) -> Result<u64> {
    let loc = Location::parse(path)?;
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.dbrxr-{}.part", hex::encode(rand::random::<[u8; 6]>())));
    let result = async {
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Error::io(format!("cannot write {}: {e}", tmp.display())))?;
        let written = write_remote(s, &loc, &mut f, ctl).await?;
        use tokio::io::AsyncWriteExt;
        f.flush().await.map_err(|e| Error::io(format!("cannot write {}: {e}", tmp.display())))?;
        drop(f);
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| Error::io(format!("cannot move the download to {}: {e}", dest.display())))?;
        Ok(written)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Copy a remote file into `f`: Files API streamed, DBFS in parallel ranges.
async fn write_remote<W: tokio::io::AsyncWrite + Unpin>(s: &Session, loc: &Location, f: &mut W, ctl: &Control) -> Result<u64> {
    use tokio::io::AsyncWriteExt;
    let werr = |e: std::io::Error| Error::io(format!("cannot write the download: {e}"));
    ctl.set_progress(format!("Downloading {}", loc.api_path()));
    match loc {
        Location::Volume(p) => ctl.run(files::download_to(&s.transport, p, f)).await,
        Location::Dbfs(p) => {
            let size = ctl.run(dbfs::get_status(&s.transport, p)).await?.ok_or_else(|| missing(loc))?.file_size;
            let mut blocks = dbfs_blocks(s, p, size);
            let mut written = 0u64;
            while let Some(b) = ctl.run(async { Ok(blocks.next().await) }).await? {
                let b = b?;
                f.write_all(&b).await.map_err(werr)?;
                written += b.len() as u64;
            }
            check_size(loc, size, written)?;
            Ok(written)
        }
    }
}

/// Write `bytes` to `loc` (a Files API PUT, or DBFS blocks).
pub async fn put_bytes(s: &Session, loc: &Location, bytes: Bytes, ctl: &Control) -> Result<()> {
    upload(s, loc, Source::Bytes(bytes), true, ctl).await
}

/// Remove a file or a directory with what it holds (missing is fine).
pub async fn remove_tree(s: &Session, loc: &Location) -> Result<()> {
    match loc {
        Location::Dbfs(p) => dbfs::delete(&s.transport, p, true).await,
        // A directory is emptied first; listing a file fails, so it is deleted.
        Location::Volume(p) => match remove_volume_tree(s, p).await {
            Ok(()) => Ok(()),
            Err(_) => files::delete(&s.transport, p).await,
        },
    }
}

/// Remove a file (missing is fine).
pub async fn remove(s: &Session, path: &str) -> Result<()> {
    match Location::parse(path)? {
        Location::Volume(p) => files::delete(&s.transport, &p).await,
        Location::Dbfs(p) => dbfs::delete(&s.transport, &p, false).await,
    }
}

/// The session's temporary directory, `<root>/sessions/<id>`; asking for it
/// marks it for removal when the session closes.
pub fn session_dir(s: &Session) -> Location {
    s.staging.session_used.store(true, Ordering::SeqCst);
    s.staging.root.join(&format!("sessions/{}", s.id))
}

/// Remove `sessions/<id>/` if this session may have put anything there.
pub async fn remove_session_dir(s: &Session) -> Result<()> {
    if !s.staging.session_used.load(Ordering::SeqCst) {
        return Ok(());
    }
    match session_dir(s) {
        Location::Dbfs(p) => dbfs::delete(&s.transport, &p, true).await,
        Location::Volume(p) => remove_volume_tree(s, &p).await,
    }
}

/// Files API directories are deleted only when empty: depth first.
async fn remove_volume_tree(s: &Session, dir: &str) -> Result<()> {
    let mut stack = vec![(dir.to_string(), false)];
    while let Some((d, visited)) = stack.pop() {
        if visited {
            files::delete_dir(&s.transport, &d).await?;
            continue;
        }
        stack.push((d.clone(), true));
        for entry in files::list(&s.transport, &d).await? {
            if entry.is_directory {
                stack.push((entry.path, false));
            } else {
                files::delete(&s.transport, &entry.path).await?;
            }
        }
    }
    Ok(())
}
