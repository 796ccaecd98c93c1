//! Where staged bytes live: remote locations (DBFS paths and UC Volume
//! paths, as the APIs, the user and the cluster's Python see them) and a
//! session's staging state. No I/O: [`crate::staging`] moves the bytes.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use crate::error::{Error, Result};

pub const DEFAULT_ROOT: &str = "dbfs:/tmp/dbrxr";

/// A remote location: a DBFS path (`/tmp/x`) or a Volume path (`/Volumes/c/s/v/x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dbfs(String),
    Volume(String),
}

impl Location {
    /// Accepts `dbfs:/x`, `/dbfs/x` (the cluster's view), `/Volumes/...` and
    /// other absolute paths (DBFS).
    pub fn parse(p: &str) -> Result<Location> {
        let p = p.trim();
        let bad = || {
            Error::input(format!("`{p}` is not a remote path"))
                .hint("use a DBFS path such as `dbfs:/tmp/x.rds` or a volume path such as `/Volumes/catalog/schema/volume/x.rds`")
        };
        let loc = if let Some(rest) = p.strip_prefix("dbfs:") {
            Location::Dbfs(rest.to_string())
        } else if let Some(rest) = p.strip_prefix("/dbfs/") {
            Location::Dbfs(format!("/{rest}"))
        } else if p.starts_with("/Volumes/") {
            Location::Volume(p.to_string())
        } else if p.starts_with('/') {
            Location::Dbfs(p.to_string())
        } else {
            return Err(bad());
        };
        let path = loc.raw();
        if !path.starts_with('/') || path.split('/').any(|s| s == ".." || s == ".") {
            return Err(bad());
        }
        if let Location::Volume(v) = &loc {
            // /Volumes/<catalog>/<schema>/<volume>/...
            if v.split('/').filter(|s| !s.is_empty()).count() < 4 {
                return Err(Error::input(format!("`{v}` is not inside a volume"))
                    .hint("volume paths look like `/Volumes/<catalog>/<schema>/<volume>/<path>`"));
            }
        }
        Ok(loc)
    }

    fn raw(&self) -> &str {
        match self {
            Location::Dbfs(p) | Location::Volume(p) => p,
        }
    }

    /// The path as the APIs and the user see it.
    pub fn api_path(&self) -> String {
        match self {
            Location::Dbfs(p) => format!("dbfs:{p}"),
            Location::Volume(p) => p.clone(),
        }
    }

    /// The path as Python on the cluster sees it.
    pub fn cluster_path(&self) -> String {
        match self {
            Location::Dbfs(p) => format!("/dbfs{p}"),
            Location::Volume(p) => p.clone(),
        }
    }

    pub fn join(&self, rel: &str) -> Location {
        let j = |p: &str| format!("{}/{}", p.trim_end_matches('/'), rel.trim_start_matches('/'));
        match self {
            Location::Dbfs(p) => Location::Dbfs(j(p)),
            Location::Volume(p) => Location::Volume(j(p)),
        }
    }

    pub fn parent(&self) -> Option<Location> {
        let p = self.raw().trim_end_matches('/');
        let cut = p.rfind('/')?;
        let parent = if cut == 0 { "/" } else { &p[..cut] };
        Some(match self {
            Location::Dbfs(_) => Location::Dbfs(parent.to_string()),
            Location::Volume(_) => Location::Volume(parent.to_string()),
        })
    }
}

/// Where a session stages, and what it has done there.
#[derive(Debug)]
pub struct StagingState {
    pub root: Location,
    /// Directories known to exist (made or seen) in this session.
    pub(crate) made_dirs: Mutex<HashSet<String>>,
    /// Whether the session directory was used (so it is removed at close).
    pub(crate) session_used: AtomicBool,
}

impl StagingState {
    pub fn new(root: Option<&str>) -> Result<Self> {
        let root = Location::parse(root.unwrap_or(DEFAULT_ROOT)).map_err(|e| {
            Error::config(format!("invalid staging location: {}", e.message)).hint(
                "set `staging` in dbx_connect() (or DBRXR_STAGING) to `dbfs:/tmp/dbrxr` or `/Volumes/<catalog>/<schema>/<volume>/dbrxr`",
            )
        })?;
        Ok(StagingState { root, made_dirs: Mutex::new(HashSet::new()), session_used: AtomicBool::new(false) })
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn locations() {
        let d = Location::parse("dbfs:/tmp/dbrxr").unwrap();
        assert_eq!(d, Location::Dbfs("/tmp/dbrxr".into()));
        assert_eq!(Location::parse("/dbfs/tmp/dbrxr").unwrap(), d);
        let f = d.join("cache/abc");
        assert_eq!(f.api_path(), "dbfs:/tmp/dbrxr/cache/abc");
        assert_eq!(f.cluster_path(), "/dbfs/tmp/dbrxr/cache/abc");
        assert_eq!(f.parent().unwrap().api_path(), "dbfs:/tmp/dbrxr/cache");
        let v = Location::parse("/Volumes/c/s/v/dbrxr").unwrap().join("sessions/1/h");
        assert_eq!(v.api_path(), "/Volumes/c/s/v/dbrxr/sessions/1/h");
        assert_eq!(v.cluster_path(), v.api_path());
        assert!(Location::parse("relative/x").is_err());
        assert!(Location::parse("dbfs:/tmp/../etc").is_err());
        assert!(Location::parse("/Volumes/c/s").is_err());
        assert!(StagingState::new(Some("nope")).unwrap_err().is(ErrorKind::Config));
    }
}
