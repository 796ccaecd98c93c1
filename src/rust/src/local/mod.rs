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
//! `faults`, `python` (interpreter discovery), `mounts` (`/dbfs` and
//! `/Volumes` in the cluster's processes).

// Handlers return complete HTTP responses as their error arm; their size is
// irrelevant next to the I/O they do.
#![allow(clippy::result_large_err)]

// The state types, below the routes (none of these imports an API family).
mod access;
mod child_env;
mod cluster;
mod contexts;
mod extract;
mod faults;
mod mlflow_state;
mod mounts;
mod options;
mod params;
pub mod python;
mod reply;
pub mod runtime;
mod serving_state;
mod sockets;
mod spark_catalog;
mod state;
mod stats;
mod store;
mod tempdir;
mod uc_names;
mod util;
// The API families, one router each, merged in `server`.
mod clusters;
mod commands;
mod control;
mod dbfs;
mod files;
mod identity;
pub mod jobs;
mod mlflow;
mod mlflow_rules;
mod mlflow_run_artifacts;
mod oauth;
mod uc_artifacts;
mod uc_registry;
mod uc_s3;
mod serving;
mod serving_deploy;
mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
pub use options::{Input, Kind, LocalOptions, OptionSpec, DATA_SECURITY_MODES, OPTIONS};
pub(crate) use util::local_error;
use state::Local;
use util::random_hex;

/// A running local cluster. Dropping it stops the server and kills its
/// context processes.
pub struct LocalCluster {
    local: Arc<Local>,
    url: String,
    /// Held while the cluster runs: marks a temporary state dir as in use.
    _owner: Option<std::fs::File>,
}

impl LocalCluster {
    /// Start the server on the shared runtime and return once it listens.
    /// Safe to call from any thread, including from inside a tokio runtime.
    pub fn start(opts: LocalOptions) -> Result<LocalCluster> {
        options::validate(&opts)?;
        // The cluster's own services (the MLflow server) run the `python`
        // option's interpreter; contexts and job tasks run the runtime
        // profile's when there is one.
        let tools_python = python::resolve(opts.python.as_deref())?;
        let python = match &opts.runtime {
            Some(r) => python::with_runtime(runtime::interpreter(runtime::profile(r)?)?),
            None => tools_python.clone(),
        };
        let (state_dir, owner) = match &opts.state_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempdir::create()?;
                (t.path, Some(t.lock))
            }
        };
        let owned = owner.is_some();
        std::fs::create_dir_all(state_dir.join("fs")).map_err(|e| {
            local_error(format!("could not create the state directory {}: {e}", state_dir.display()))
        })?;
        let token = opts.token.clone().unwrap_or_else(|| format!("dapi{}", random_hex(16)));
        let local = Local::new(opts, token, python, tools_python.path, state_dir, owned)?;
        let url = server::serve(local.clone())?;
        let _ = local.url.set(url.clone());
        let _ = local.worker_env.set(uc_registry::cluster_credentials_env(&url, &local.access.cluster_token));
        Ok(LocalCluster { local, url, _owner: owner })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn token(&self) -> &str {
        &self.local.access.token
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
    /// The runtime profile (`"15.4"`) and the `spark_version` it reports.
    pub fn runtime(&self) -> (Option<&str>, &str) {
        (self.local.opts.runtime.as_deref().and_then(|r| runtime::profile(r).ok()).map(|p| p.version),
         self.local.compute.cluster.spec.spark_version)
    }
    /// Whether that interpreter can import rpy2 (R work needs it).
    pub fn rpy2_available(&self) -> bool {
        self.local.python.rpy2
    }
    /// Set when R work will fail (no rpy2): what to tell the user.
    pub fn python_warning(&self) -> Option<&str> {
        self.local.python.warning.as_deref()
    }
    /// Why `/dbfs` and `/Volumes` are missing in contexts and job tasks (the
    /// machine refused mount namespaces); None when they are there.
    pub fn paths_missing(&self) -> Option<&str> {
        self.local.mounts.missing()
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
