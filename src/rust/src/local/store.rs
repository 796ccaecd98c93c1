//! Where API paths live on disk. Under the file-view root (the workers'
//! `DBRXR_LOCAL_FS_ROOT`): DBFS `/x/y` (or `dbfs:/x/y`) is `<root>/dbfs/x/y`
//! (seen on the cluster as `/dbfs/x/y`), and `/Volumes/c/s/v/p` is
//! `<root>/Volumes/c/s/v/p`. Paths with `..`, NUL or no leading `/` are
//! refused, so nothing outside the root can be reached.

use std::path::{Path, PathBuf};

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
    Ok(segs)
}

/// A DBFS path (`/x`, `dbfs:/x`).
pub fn dbfs(root: &Path, raw: &str) -> Result<Located, String> {
    let stripped = raw.strip_prefix("dbfs:").unwrap_or(raw);
    let segs = segments(stripped)?;
    let mut file = root.join("dbfs");
    for s in &segs {
        file.push(s);
    }
    Ok(Located { api: format!("/{}", segs.join("/")), file })
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
    Ok(Located { api: format!("/{}", segs.join("/")), file })
}

pub fn mtime_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh temporary file next to the store, for writes that appear atomically.
pub fn temp_file(state_dir: &Path) -> PathBuf {
    state_dir.join("tmp").join(format!("upload-{}", super::random_hex(8)))
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
    }
}
