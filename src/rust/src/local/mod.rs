//! The local cluster: an embedded, Databricks-compatible server.
//!
//! It speaks the subset of the REST API the client uses (clusters, Command
//! Execution 1.2, DBFS 2.0, Files API, OAuth M2M) with the real shapes, and runs
//! each execution context as a Python process (see `worker.py`). It runs on the
//! shared tokio runtime, so starting one from R puts it on background threads
//! that never call into R.
//!
//! Modules, one concern each: `server` (accept loop, router, auth, faults,
//! counting), `params` (request bodies), `reply` (error bodies), `clusters`,
//! `contexts` (worker processes), `commands` (1.2 routes), `store` (path
//! mapping), `dbfs`, `files`, `oauth`, `control` (`/_local/`), `stats`,
//! `faults`, `python` (interpreter discovery).

// Handlers return complete HTTP responses as their error arm; their size is
// irrelevant next to the I/O they do.
#![allow(clippy::result_large_err)]

mod clusters;
mod commands;
mod contexts;
mod control;
mod dbfs;
mod faults;
mod files;
mod mlflow;
mod oauth;
mod params;
pub mod python;
mod reply;
mod server;
mod state;
mod stats;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use state::Local;

/// How to run a local cluster. Every field has a default (`LocalOptions::default()`).
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The bearer token clients must send; generated when `None`.
    pub token: Option<String>,
    /// Python interpreter for contexts; discovered when `None` (see [`python`]).
    pub python: Option<String>,
    /// Where DBFS, Volumes and worker logs live; a temporary directory (removed
    /// on stop) when `None`.
    pub state_dir: Option<PathBuf>,
    pub cluster_id: String,
    /// Initial state: `RUNNING` or `TERMINATED`.
    pub cluster_state: String,
    /// How long PENDING and RESTARTING last.
    pub start_delay_ms: u64,
    /// Enable OAuth M2M at `/oidc/v1/token` with these client credentials.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Lifetime of OAuth access tokens.
    pub token_ttl_s: u64,
    /// Text results longer than this are cut and marked `truncated`.
    pub max_output_chars: usize,
    /// Most execution contexts alive at once (idle ones are evicted LRU first).
    pub max_contexts: usize,
    /// Idle time after which a DBFS streaming handle expires.
    pub dbfs_handle_ttl_s: u64,
    /// How long a cancelled command may ignore the interrupt before its
    /// process is killed.
    pub cancel_grace_ms: u64,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            port: 0,
            token: None,
            python: None,
            state_dir: None,
            cluster_id: "local-cluster".to_string(),
            cluster_state: "RUNNING".to_string(),
            start_delay_ms: 0,
            client_id: None,
            client_secret: None,
            token_ttl_s: 3600,
            max_output_chars: 50_000,
            max_contexts: 145,
            dbfs_handle_ttl_s: 600,
            cancel_grace_ms: 3_000,
        }
    }
}

/// A running local cluster. Dropping it stops the server and kills its
/// context processes.
pub struct LocalCluster {
    local: Arc<Local>,
    url: String,
}

impl LocalCluster {
    /// Start the server on the shared runtime and return once it listens.
    /// Safe to call from any thread, including from inside a tokio runtime.
    pub fn start(opts: LocalOptions) -> Result<LocalCluster> {
        validate(&opts)?;
        let python = python::resolve(opts.python.as_deref())?;
        let (state_dir, owned) = match &opts.state_dir {
            Some(d) => (d.clone(), false),
            None => (temp_state_dir()?, true),
        };
        std::fs::create_dir_all(state_dir.join("fs")).map_err(|e| {
            local_error(format!("could not create the state directory {}: {e}", state_dir.display()))
        })?;
        let token = opts.token.clone().unwrap_or_else(|| format!("dapi{}", random_hex(16)));
        let local = Local::new(opts, token, python, state_dir, owned)?;
        let url = server::serve(local.clone())?;
        Ok(LocalCluster { local, url })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn token(&self) -> &str {
        &self.local.token
    }
    pub fn cluster_id(&self) -> &str {
        &self.local.opts.cluster_id
    }
    pub fn state_dir(&self) -> &Path {
        &self.local.state_dir
    }
    /// Root of the cluster-side file view (`DBRXR_LOCAL_FS_ROOT` of the workers).
    pub fn fs_root(&self) -> PathBuf {
        self.local.fs_root()
    }
    /// The Python interpreter contexts run with.
    pub fn python(&self) -> &str {
        &self.local.python.path
    }
    /// Whether that interpreter can import rpy2 (R work needs it).
    pub fn rpy2_available(&self) -> bool {
        self.local.python.rpy2
    }
    /// Set when R work will fail (no rpy2): what to tell the user.
    pub fn python_warning(&self) -> Option<&str> {
        self.local.python.warning.as_deref()
    }
    /// Counters, in the shape of `GET /_local/stats`.
    pub fn stats(&self) -> serde_json::Value {
        self.local.stats_json()
    }
    /// Stop serving, kill every context process, remove a temporary state dir.
    /// Idempotent.
    pub fn stop(&self) {
        self.local.shutdown();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn validate(opts: &LocalOptions) -> Result<()> {
    let bad = |m: String| Err(Error::input(m));
    if opts.cluster_id.is_empty() || opts.cluster_id.chars().any(|c| c.is_control() || c == '/') {
        return bad(format!("cluster_id {:?} is not a valid cluster id", opts.cluster_id));
    }
    if !matches!(opts.cluster_state.as_str(), "RUNNING" | "TERMINATED") {
        return bad(format!(
            "cluster_state must be \"RUNNING\" or \"TERMINATED\", not {:?}",
            opts.cluster_state
        ));
    }
    if opts.client_id.is_some() != opts.client_secret.is_some() {
        return Err(Error::input("client_id and client_secret must be given together")
            .hint("both are needed to enable OAuth M2M on the local cluster"));
    }
    if matches!(&opts.token, Some(t) if t.is_empty() || t.chars().any(char::is_whitespace)) {
        return bad("token must be a non-empty string without spaces".to_string());
    }
    if opts.max_contexts == 0 {
        return bad("max_contexts must be at least 1".to_string());
    }
    if opts.max_output_chars == 0 {
        return bad("max_output_chars must be at least 1".to_string());
    }
    if opts.token_ttl_s == 0 {
        return bad("token_ttl_s must be at least 1".to_string());
    }
    Ok(())
}

pub(crate) fn local_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::LocalCluster, msg)
}

fn temp_state_dir() -> Result<PathBuf> {
    remove_stale_state_dirs(&std::env::temp_dir());
    let dir = std::env::temp_dir().join(format!("dbrxr-local-{}-{}", std::process::id(), random_hex(6)));
    std::fs::create_dir_all(&dir)
        .map_err(|e| local_error(format!("could not create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Temporary state dirs of processes that died without stopping (killed, or
/// crashed) would pile up: remove those whose owner pid is gone.
fn remove_stale_state_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("dbrxr-local-")) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if !pid_alive(pid) && e.path().join("worker.py").exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Whether a process with this pid exists (possibly someone else's).
pub(crate) fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
