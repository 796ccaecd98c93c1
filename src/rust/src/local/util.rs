//! Small helpers every layer of the local cluster uses: its error, random
//! ids, and whether a process is alive.

use crate::error::{Error, ErrorKind};

pub(crate) fn local_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::LocalCluster, msg)
}

pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Whether a process with this pid exists (possibly someone else's).
pub(crate) fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// SIGKILL to the process group that `pid` leads (children started with
/// [`own_group_dying_with_parent`] lead their own): the child and everything
/// it started.
pub(crate) fn kill_group(pid: Option<i32>) {
    if let Some(pid) = pid {
        // SAFETY: plain syscall; the process leads its own group (setsid at spawn).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// A child of the local cluster leads a process group of its own (so it and
/// its children can be killed together) and dies with the server; its
/// SIGPIPE is the usual one (the mask is inherited).
pub(crate) fn own_group_dying_with_parent(cmd: &mut tokio::process::Command) {
    own_group_told_of_parent_death(cmd, libc::SIGKILL);
}

/// As [`own_group_dying_with_parent`], but the child gets `signal` when the
/// server dies: a supervisor that catches it can take its group down (the
/// kernel signals only the direct child, never its children).
pub(crate) fn own_group_told_of_parent_death(cmd: &mut tokio::process::Command, signal: libc::c_int) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            crate::runtime::unblock_sigpipe();
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            Ok(())
        });
    }
}
