//! Temporary state directories (`<tmp>/dbrxr-local-<pid>-<hex>`), and the
//! removal of those left by processes that died without stopping (killed
//! with -9, crashed).
//!
//! An owner holds an exclusive `flock` on `<dir>/owner.lock` while it runs;
//! the kernel drops it when the process dies, however it dies. So a
//! directory whose lock can be taken is stale, even when its owner is a
//! zombie not yet reaped by its parent, or its pid has been reused (a pid
//! check gets both wrong).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::util::{local_error, pid_alive, random_hex};
use crate::error::Result;

const PREFIX: &str = "dbrxr-local-";
const LOCK: &str = "owner.lock";

/// A fresh temporary state directory, locked by this process while `lock` is open.
pub struct TempStateDir {
    pub path: PathBuf,
    pub lock: File,
}

pub fn create() -> Result<TempStateDir> {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let path = tmp.join(format!("{PREFIX}{}-{}", std::process::id(), random_hex(6)));
    std::fs::create_dir_all(&path).map_err(|e| local_error(format!("could not create {}: {e}", path.display())))?;
    let lock_path = path.join(LOCK);
    let lock = File::create(&lock_path)
        .map_err(|e| local_error(format!("could not create {}: {e}", lock_path.display())))?;
    if !try_lock(&lock) {
        return Err(local_error(format!("could not lock {}", lock_path.display())));
    }
    Ok(TempStateDir { path, lock })
}

/// Take the exclusive lock without waiting; false when another process holds it.
fn try_lock(f: &File) -> bool {
    // SAFETY: plain syscall on an open descriptor.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether a state directory's owner is gone.
fn stale(dir: &Path, pid: i32) -> bool {
    match File::open(dir.join(LOCK)) {
        // Taken here, the lock is released when `f` is dropped.
        Ok(f) => try_lock(&f),
        // Older versions had no lock: fall back on the pid.
        Err(_) => !pid_alive(pid) && dir.join("worker.py").exists(),
    }
}

/// Remove the temporary state directories of owners that are gone.
pub fn remove_stale(tmp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        let ours = pid == std::process::id() as i32 && e.path().join(LOCK).exists();
        if !ours && stale(&e.path(), pid) && std::fs::remove_dir_all(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_dir_is_kept_and_an_unlocked_one_is_removed() {
        let tmp = std::env::temp_dir().join(format!("dbrxr-tempdir-test-{}", random_hex(4)));
        std::fs::create_dir_all(&tmp).unwrap();
        // Owned by a live process (this one, through another open file).
        let live = tmp.join(format!("{PREFIX}1-aa"));
        std::fs::create_dir_all(&live).unwrap();
        let held = File::create(live.join(LOCK)).unwrap();
        assert!(try_lock(&held));
        // Its owner is gone: the lock file is there, nobody holds it.
        let dead = tmp.join(format!("{PREFIX}1-bb"));
        std::fs::create_dir_all(&dead).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        assert_eq!(remove_stale(&tmp), 1);
        assert!(live.exists() && !dead.exists());
        drop(held);
        // A process another test spawns at this moment holds a copy of the
        // lock's descriptor between its fork and its exec (a mount namespace
        // is set up there, mounts.rs): its lock goes with the exec.
        let mut removed = 0;
        for _ in 0..100 {
            removed = remove_stale(&tmp);
            if removed == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(removed, 1);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
