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
