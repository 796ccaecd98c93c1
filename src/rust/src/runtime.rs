//! The one tokio runtime of the process, built lazily and shared by the client
//! and every local cluster (extendr has no async interface, so bindings call
//! `block_on` on it).

use std::sync::OnceLock;
use tokio::runtime::Runtime;

use crate::error::{Error, Result};

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The shared multi-thread runtime.
pub fn runtime() -> Result<&'static Runtime> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dbrxr-rt")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    rt.as_ref()
        .map_err(|e| Error::internal(format!("could not start the tokio runtime: {e}")))
}

/// Run a future to completion on the shared runtime from a non-async thread.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(fut))
}

/// Block SIGPIPE on the calling thread, so a write to a closed pipe or socket
/// fails with EPIPE instead of raising the signal. Inside R this matters: R's
/// SIGPIPE handler calls `error()`, which on a thread that is not R's crashes
/// the session (a context process killed while idle did exactly that).
/// Children inherit the mask, so process spawners unblock it again.
pub fn block_sigpipe() {
    set_sigpipe_blocked(true);
}

/// Undo [`block_sigpipe`]; async-signal-safe (for `pre_exec`).
pub fn unblock_sigpipe() {
    set_sigpipe_blocked(false);
}

fn set_sigpipe_blocked(blocked: bool) {
    // SAFETY: plain syscalls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        let how = if blocked { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
