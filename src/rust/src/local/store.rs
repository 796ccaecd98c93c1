//! Where API paths live on disk. Under the file-view root (the workers'
//! `DBRXR_LOCAL_FS_ROOT`): DBFS `/x/y` (or `dbfs:/x/y`) is `<root>/dbfs/x/y`
//! (seen on the cluster as `/dbfs/x/y`), and `/Volumes/c/s/v/p` is
//! `<root>/Volumes/c/s/v/p`. Paths with `..`, NUL or no leading `/` are
//! refused, so nothing outside the root can be reached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A checked path: its canonical API spelling and its file.
#[derive(Debug, Clone)]
pub struct Located {
    /// `/x/y` for DBFS, `/Volumes/c/s/v/p` for volumes.
    pub api: String,
    pub file: PathBuf,
}

fn segments(raw: &str) -> Result<Vec<&str>, String> {
    if !raw.starts_with('/') {
        return Err(format!("Path must be absolute: {raw}"));
    }
    if raw.contains('\0') {
        return Err("Path must not contain NUL characters".to_string());
    }
    let segs: Vec<&str> = raw.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    if segs.contains(&"..") {
        return Err(format!("Path must not contain '..' segments: {raw}"));
    }
    if let Some(long) = segs.iter().find(|s| s.len() > MAX_NAME) {
        return Err(format!(
            "Path component is too long: {} bytes, at most {MAX_NAME} are allowed ({}...).",
            long.len(),
            long.chars().take(32).collect::<String>()
        ));
    }
    if raw.len() > MAX_PATH {
        return Err(format!("Path is too long: {} bytes, at most {MAX_PATH} are allowed.", raw.len()));
    }
    Ok(segs)
}

/// Longest file name and path the store accepts (those of Linux filesystems).
const MAX_NAME: usize = 255;
const MAX_PATH: usize = 4096;

/// Refuse a path that resolves, through symbolic links placed in the store,
/// to a place outside `root`. The deepest existing ancestor is resolved (a
/// dangling link is refused); what is below it does not exist yet, so it will
/// be created as plain directories and files.
fn confine(root: &Path, file: &Path, api: &str) -> Result<(), String> {
    let Ok(real_root) = root.canonicalize() else { return Ok(()) }; // nothing exists: nothing to follow
    let outside = || format!("Path {api} resolves outside the store through a symbolic link; links out of the local cluster's state directory are not followed.");
    let mut p = file;
    loop {
        if std::fs::symlink_metadata(p).is_ok() {
            let real = p.canonicalize().map_err(|_| outside())?;
            return if real.starts_with(&real_root) { Ok(()) } else { Err(outside()) };
        }
        match p.parent() {
            Some(parent) if p != root => p = parent,
            _ => return Ok(()),
        }
    }
}

/// Whether a directory entry found while listing stays inside `root` (links
/// out of the store are left out of listings).
pub fn inside(root: &Path, entry: &Path) -> bool {
    match (root.canonicalize(), entry.canonicalize()) {
        (Ok(r), Ok(e)) => e.starts_with(r),
        _ => false,
    }
}

/// The file stores (DBFS and volumes) as the DBFS and Files API routes see
/// them: where they live, what is read-only, open DBFS upload handles.
pub struct Store {
    /// The file-view root (`DBRXR_LOCAL_FS_ROOT` of the workers).
    pub root: PathBuf,
    /// The state directory; its `tmp/` holds uploads in progress.
    pub state_dir: PathBuf,
    pub readonly: Option<ReadOnly>,
    pub handles: Handles,
    /// Idle time after which a DBFS streaming handle expires.
    pub handle_ttl: Duration,
}

impl Store {
    pub fn dbfs(&self, raw: &str) -> Result<Located, String> {
        dbfs(&self.root, raw)
    }
    pub fn volume(&self, raw: &str, min_depth: usize) -> Result<Located, String> {
        volume(&self.root, raw, min_depth)
    }
    pub fn temp(&self) -> TempUpload {
        TempUpload::new(&self.state_dir)
    }
}

/// DBFS streaming uploads (`create`, `add-block`, `close`) by handle.
pub struct Handle {
    pub target: Located,
    pub tmp: TempUpload,
    pub overwrite: bool,
    pub last: Instant,
}

pub struct Handles {
    pub map: Mutex<HashMap<i64, Handle>>,
    pub next: AtomicI64,
}

impl Default for Handles {
    fn default() -> Self {
        Handles { map: Mutex::new(HashMap::new()), next: AtomicI64::new(7_904_256) }
    }
}

impl Handles {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Handle>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget handles idle longer than `ttl` (their partial data goes too).
    pub fn expire(&self, ttl: Duration) {
        self.lock().retain(|_, h| {
            h.last.elapsed() < ttl // a dropped handle removes its partial data
        });
    }
}

/// A DBFS path (`/x`, `dbfs:/x`).
pub fn dbfs(root: &Path, raw: &str) -> Result<Located, String> {
    let stripped = raw.strip_prefix("dbfs:").unwrap_or(raw);
    let segs = segments(stripped)?;
    let mut file = root.join("dbfs");
    for s in &segs {
        file.push(s);
    }
    let api = format!("/{}", segs.join("/"));
    confine(root, &file, &format!("dbfs:{api}"))?;
    Ok(Located { api, file })
}

/// A Unity Catalog volume path. `min_depth` is the number of segments after
/// `Volumes` required (3 = the volume itself, 4 = something inside it).
pub fn volume(root: &Path, raw: &str, min_depth: usize) -> Result<Located, String> {
    let segs = segments(raw)?;
    if segs.first() != Some(&"Volumes") || segs.len() < 1 + min_depth {
        return Err(format!(
            "Path {raw} is not a Unity Catalog volume path: expected /Volumes/<catalog>/<schema>/<volume>/..."
        ));
    }
    let mut file = root.to_path_buf();
    for s in &segs {
        file.push(s);
    }
    let api = format!("/{}", segs.join("/"));
    confine(root, &file, &api)?;
    Ok(Located { api, file })
}

/// The `readonly_staging` option: a DBFS or volume path prefix under which
/// writes are refused (`403 PERMISSION_DENIED`), whole segments only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOnly {
    /// An API path of DBFS (`/ro` for `dbfs:/ro/`).
    Dbfs(String),
    /// A volume path (`/Volumes/main/ro`).
    Volume(String),
}

impl ReadOnly {
    pub fn parse(raw: &str) -> Result<ReadOnly, String> {
        let bad = |why: &str| format!("readonly_staging {raw:?} {why}");
        let is_volume = raw.starts_with("/Volumes/");
        let stripped = raw.strip_prefix("dbfs:").unwrap_or(raw);
        let segs = segments(stripped).map_err(|e| bad(&format!("is not a valid path: {e}")))?;
        if segs.is_empty() || (is_volume && segs.len() < 2) {
            return Err(bad("must name a directory below the root, e.g. dbfs:/ro/ or /Volumes/main/ro/"));
        }
        let api = format!("/{}", segs.join("/"));
        Ok(if is_volume { ReadOnly::Volume(api) } else { ReadOnly::Dbfs(api) })
    }

    fn covers(prefix: &str, api: &str) -> bool {
        api == prefix || api.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }

    /// Whether writing DBFS path `api` (canonical, `/x/y`) is refused.
    pub fn denies_dbfs(&self, api: &str) -> bool {
        matches!(self, ReadOnly::Dbfs(p) if Self::covers(p, api))
    }

    /// Whether writing volume path `api` (`/Volumes/c/s/v/...`) is refused.
    pub fn denies_volume(&self, api: &str) -> bool {
        matches!(self, ReadOnly::Volume(p) if Self::covers(p, api))
    }
}

pub fn mtime_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh temporary file next to the store, for writes that appear
/// atomically. Its name carries our pid, so a server started later on the
/// same state directory knows it is stale (see [`remove_stale_uploads`]).
pub fn temp_file(state_dir: &Path) -> PathBuf {
    state_dir.join("tmp").join(format!("upload-{}-{}", std::process::id(), super::util::random_hex(8)))
}

/// A temporary upload that is removed unless it was moved into place: an
/// upload that fails half way (client gone, disk full) leaves nothing.
pub struct TempUpload {
    pub path: PathBuf,
    kept: bool,
}

impl TempUpload {
    pub fn new(state_dir: &Path) -> TempUpload {
        TempUpload { path: temp_file(state_dir), kept: false }
    }
    /// Rename into `target` (same filesystem, so the file appears whole).
    pub fn commit(mut self, target: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, target)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Remove temporary uploads left by servers that died mid-upload (their pid
/// is gone). Called at start-up; returns how many were removed.
pub fn remove_stale_uploads(state_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(state_dir.join("tmp")) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("upload-")) else { continue };
        let owner = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        // Names without a pid come from older versions: always stale.
        let stale = owner.map_or(true, |pid| pid != std::process::id() as i32 && !super::util::pid_alive(pid));
        if stale && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbfs_accepts_prefix_and_rejects_escape() {
        let root = Path::new("/r");
        let l = dbfs(root, "dbfs:/tmp//a.rds").unwrap();
        assert_eq!(l.api, "/tmp/a.rds");
        assert_eq!(l.file, Path::new("/r/dbfs/tmp/a.rds"));
        assert!(dbfs(root, "/tmp/../../etc/passwd").is_err());
        assert!(dbfs(root, "tmp/a").is_err());
        assert_eq!(dbfs(root, "/").unwrap().file, Path::new("/r/dbfs"));
    }

    #[test]
    fn volumes_need_catalog_schema_volume() {
        let root = Path::new("/r");
        assert_eq!(volume(root, "/Volumes/c/s/v/x.bin", 4).unwrap().file, Path::new("/r/Volumes/c/s/v/x.bin"));
        assert!(volume(root, "/Volumes/c/s/v", 4).is_err());
        assert!(volume(root, "/Volumes/c/s/v", 3).is_ok());
        assert!(volume(root, "/tmp/x", 3).is_err());
        assert!(volume(root, "/Volumes/c/s/v/../../../../x", 3).is_err());
        let long = format!("/Volumes/c/s/v/{}", "n".repeat(300));
        assert!(volume(root, &long, 4).unwrap_err().contains("too long"));
    }

    #[test]
    fn read_only_prefixes_match_whole_segments() {
        let d = ReadOnly::parse("dbfs:/ro/").unwrap();
        assert_eq!(d, ReadOnly::Dbfs("/ro".into()));
        assert!(d.denies_dbfs("/ro") && d.denies_dbfs("/ro/x/y"));
        assert!(!d.denies_dbfs("/rox") && !d.denies_dbfs("/tmp/ro") && !d.denies_volume("/ro/x"));
        let v = ReadOnly::parse("/Volumes/main/ro/").unwrap();
        assert!(v.denies_volume("/Volumes/main/ro/v/x") && !v.denies_volume("/Volumes/main/rw/v/x"));
        assert!(!v.denies_dbfs("/Volumes/main/ro/v/x"));
        assert!(ReadOnly::parse("dbfs:/").is_err());
        assert!(ReadOnly::parse("ro").is_err());
        assert!(ReadOnly::parse("/x/../y").is_err());
        assert!(ReadOnly::parse("/Volumes/").is_err());
    }

    #[test]
    fn links_out_of_the_store_are_refused() {
        let dir = std::env::temp_dir().join(format!("dbrxr-store-test-{}", super::super::util::random_hex(4)));
        let root = dir.join("fs");
        std::fs::create_dir_all(root.join("dbfs/in")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("dbfs/out")).unwrap();
        std::os::unix::fs::symlink(root.join("dbfs/in"), root.join("dbfs/alias")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", root.join("dbfs/dangling")).unwrap();
        assert!(dbfs(&root, "/out/passwd").unwrap_err().contains("symbolic link"));
        assert!(dbfs(&root, "/out/new/deeper").is_err());
        assert!(dbfs(&root, "/out").is_err());
        assert!(dbfs(&root, "/dangling").is_err());
        assert!(dbfs(&root, "/alias/file").is_ok());
        assert!(dbfs(&root, "/in/not/yet/there").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
