//! `/dbfs` and `/Volumes` in context and job task processes, as on a
//! Databricks cluster: each process runs in a mount namespace of its own in
//! which `/dbfs` is the store's `dbfs/` and `/Volumes` its `Volumes/` (bind
//! mounts), so code reads and writes the files of the DBFS and Files APIs.
//!
//! A new top-level directory needs a root that has it: the skeleton
//! `<state dir>/ns-root` holds an empty twin (directory, file or the same
//! link) of each entry of `/`, plus `dbfs` and `Volumes`. Between fork and
//! exec the child makes a private mount namespace (inside a user namespace
//! that maps the user to itself when it is not root, so no privilege is
//! needed), binds each entry of `/` onto its twin and the stores onto
//! `dbfs`/`Volumes`, chroots into the skeleton and returns to its working
//! directory. Nothing is mounted outside the child's namespace, so there
//! is nothing to undo; the cost is a few syscalls per process.
//!
//! Where the machine refuses namespaces (a seccomp filter, user namespaces
//! turned off, not Linux), the cluster runs without the paths and says why
//! once ([`Mounts::missing`]). `DBRXR_LOCAL_MOUNTS=off` turns them off.

use std::ffi::CString;
use std::path::Path;
use std::sync::Arc;

/// The mount plan every context and task process applies, or why there is none.
pub struct Mounts {
    plan: Option<Arc<Plan>>,
    missing: Option<String>,
}

/// Everything the child needs, made before fork (the child must not allocate).
#[derive(Clone)]
struct Plan {
    skeleton: CString,
    /// (source, target, recursive)
    binds: Vec<(CString, CString, bool)>,
    root: bool,
    uid_map: CString,
    gid_map: CString,
}

impl Mounts {
    /// Build the skeleton under `state_dir` and try it once. Never fails:
    /// a refusal becomes [`Mounts::missing`].
    pub fn prepare(state_dir: &Path, fs_root: &Path) -> Mounts {
        let off = std::env::var("DBRXR_LOCAL_MOUNTS").is_ok_and(|v| v.eq_ignore_ascii_case("off"));
        let plan = if off {
            Err("they were turned off (DBRXR_LOCAL_MOUNTS=off)".to_string())
        } else {
            build(state_dir, fs_root).and_then(|p| probe(&p, state_dir).map(|_| p))
        };
        match plan {
            Ok(p) => Mounts { plan: Some(Arc::new(p)), missing: None },
            Err(why) => Mounts {
                plan: None,
                missing: Some(format!(
                    "/dbfs and /Volumes are not available in the local cluster's contexts and job tasks: {why}. Code there can reach DBFS and volumes only through the APIs (dbfs:/ paths in Spark, the DBFS and Files APIs)."
                )),
            },
        }
    }

    /// Why `/dbfs` and `/Volumes` are missing in the cluster's processes
    /// (None: they are there).
    pub fn missing(&self) -> Option<&str> {
        self.missing.as_deref()
    }

    /// Make `cmd` start in the namespace, with `cwd` as its working directory.
    pub fn apply(&self, cmd: &mut tokio::process::Command, cwd: &Path) {
        let Some(plan) = self.plan.clone() else { return };
        let Ok(cwd) = cstring(cwd) else { return };
        // SAFETY: the hook makes only async-signal-safe syscalls on data made here.
        unsafe {
            cmd.pre_exec(move || enter(&plan, &cwd));
        }
    }
}

fn cstring(p: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("the path {} contains NUL", p.display()))
}

/// The skeleton root and the binds onto it.
fn build(state_dir: &Path, fs_root: &Path) -> Result<Plan, String> {
    if !cfg!(target_os = "linux") {
        return Err("they need Linux mount namespaces".to_string());
    }
    let fail = |what: &str, e: std::io::Error| format!("could not {what}: {e}");
    let skeleton = state_dir.join("ns-root");
    let _ = std::fs::remove_dir_all(&skeleton); // an earlier run's, possibly of another machine's /
    std::fs::create_dir_all(&skeleton).map_err(|e| fail(&format!("create {}", skeleton.display()), e))?;
    let mut binds = Vec::new();
    let entries = std::fs::read_dir("/").map_err(|e| fail("list /", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "dbfs" || name == "Volumes" {
            continue; // the host's own, if any, is hidden as on a cluster
        }
        let (src, twin) = (Path::new("/").join(&name), skeleton.join(&name));
        let Ok(meta) = std::fs::symlink_metadata(&src) else { continue };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| fail(&format!("read {}", src.display()), e))?;
            // Relative, so that on the machine the link stays inside the
            // skeleton (a walk of the state directory never leaves it); in
            // the chroot it names the same place.
            let target = target.strip_prefix("/").map(Path::to_path_buf).unwrap_or(target);
            std::os::unix::fs::symlink(target, &twin).map_err(|e| fail(&format!("link {}", twin.display()), e))?;
        } else if ft.is_dir() {
            std::fs::create_dir(&twin).map_err(|e| fail(&format!("create {}", twin.display()), e))?;
            binds.push((cstring(&src)?, cstring(&twin)?, true));
        } else if ft.is_file() {
            std::fs::File::create(&twin).map_err(|e| fail(&format!("create {}", twin.display()), e))?;
            binds.push((cstring(&src)?, cstring(&twin)?, false));
        }
    }
    for store in ["dbfs", "Volumes"] {
        let (src, twin) = (fs_root.join(store), skeleton.join(store));
        std::fs::create_dir_all(&src).map_err(|e| fail(&format!("create {}", src.display()), e))?;
        std::fs::create_dir(&twin).map_err(|e| fail(&format!("create {}", twin.display()), e))?;
        binds.push((cstring(&src)?, cstring(&twin)?, false));
    }
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    Ok(Plan {
        skeleton: cstring(&skeleton)?,
        binds,
        root: uid == 0,
        uid_map: CString::new(format!("{uid} {uid} 1")).unwrap_or_default(),
        gid_map: CString::new(format!("{gid} {gid} 1")).unwrap_or_default(),
    })
}

/// Start one process with the plan (a shell that checks the paths): what the
/// machine says, before any context depends on it.
fn probe(plan: &Plan, state_dir: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let cwd = cstring(state_dir)?;
    let plan = plan.clone();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "test -d /dbfs && test -d /Volumes"])
        .current_dir(state_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: as in `apply`.
    unsafe {
        cmd.pre_exec(move || enter(&plan, &cwd));
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("a process in a mount namespace did not see them ({s})")),
        Err(e) => Err(format!("the machine refused a mount namespace ({e})")),
    }
}

/// In the child, between fork and exec: the namespace, the binds, the new root.
#[cfg(target_os = "linux")]
fn enter(plan: &Plan, cwd: &CString) -> std::io::Result<()> {
    use std::io::Error;
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(Error::last_os_error()) };
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: syscalls on NUL-terminated strings owned by `plan` and `cwd`.
    unsafe {
        // Root makes a plain mount namespace; anyone else (or root in a
        // container that lacks CAP_SYS_ADMIN) a user namespace holding it.
        if !plan.root || libc::unshare(libc::CLONE_NEWNS) != 0 {
            check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
            write_proc(c"/proc/self/setgroups", b"deny", true)?;
            write_proc(c"/proc/self/uid_map", plan.uid_map.as_bytes(), false)?;
            write_proc(c"/proc/self/gid_map", plan.gid_map.as_bytes(), false)?;
        }
        // Nothing done here may reach the machine's mounts.
        check(libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()))?;
        for (src, dst, recursive) in &plan.binds {
            let flags = libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 };
            check(libc::mount(src.as_ptr(), dst.as_ptr(), null, flags, std::ptr::null()))?;
        }
        check(libc::chroot(plan.skeleton.as_ptr()))?;
        check(libc::chdir(cwd.as_ptr()))?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn enter(_plan: &Plan, _cwd: &CString) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
}

/// Write `data` to a /proc file of this process (`optional`: a kernel
/// without the file is fine).
#[cfg(target_os = "linux")]
unsafe fn write_proc(path: &std::ffi::CStr, data: &[u8], optional: bool) -> std::io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return if optional && e.raw_os_error() == Some(libc::ENOENT) { Ok(()) } else { Err(e) };
    }
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let e = std::io::Error::last_os_error();
    libc::close(fd);
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process started with the plan sees the store's files at /dbfs and
    /// /Volumes, writes there land in the store, and the rest of the
    /// machine (its working directory, /usr) is where it was.
    #[test]
    fn a_process_sees_the_stores_at_dbfs_and_volumes() {
        let dir = std::env::temp_dir().join(format!("dbrxr-mounts-{}", super::super::util::random_hex(6)));
        let fs_root = dir.join("fs");
        std::fs::create_dir_all(fs_root.join("dbfs/tmp")).unwrap();
        std::fs::write(fs_root.join("dbfs/tmp/in.txt"), "from the API\n").unwrap();
        let m = Mounts::prepare(&dir, &fs_root);
        assert_eq!(m.missing(), None, "this machine must allow mount namespaces (CI machines do)");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = rt.block_on(async {
            let mut cmd = tokio::process::Command::new("/bin/sh");
            cmd.args(["-c", "cat /dbfs/tmp/in.txt; mkdir -p /Volumes/c/s/v && echo hi > /Volumes/c/s/v/out.txt; pwd; test -x /usr/bin/env && echo usr"]);
            m.apply(&mut cmd, &dir);
            cmd.output().await.unwrap()
        });
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(text, format!("from the API\n{}\nusr\n", dir.display()));
        assert_eq!(std::fs::read_to_string(fs_root.join("Volumes/c/s/v/out.txt")).unwrap(), "hi\n");
        assert!(!Path::new("/dbfs/tmp/in.txt").exists(), "nothing is mounted outside the child");
        // What the namespace adds to a process start (printed with --nocapture):
        // 50 starts of /bin/true with and without it, medians.
        let median = |with: bool| {
            let mut times: Vec<std::time::Duration> = (0..50)
                .map(|_| {
                    let t = std::time::Instant::now();
                    rt.block_on(async {
                        let mut cmd = tokio::process::Command::new("/bin/true");
                        if with {
                            m.apply(&mut cmd, &dir);
                        }
                        cmd.status().await.unwrap()
                    });
                    t.elapsed()
                })
                .collect();
            times.sort();
            times[times.len() / 2]
        };
        let (plain, namespaced) = (median(false), median(true));
        eprintln!("process start: {plain:?} plain, {namespaced:?} in the mount namespace");
        assert!(namespaced < plain + std::time::Duration::from_millis(50), "{namespaced:?} vs {plain:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
