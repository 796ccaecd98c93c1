//! Everything one local cluster holds, shared by its request handlers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

use super::clusters::Cluster;
use super::contexts::Contexts;
use super::dbfs::Handles;
use super::faults::Faults;
use super::oauth::Tokens;
use super::python::Python;
use super::stats::Stats;
use super::{local_error, LocalOptions};
use crate::error::Result;

pub struct Local {
    pub opts: LocalOptions,
    pub token: String,
    pub python: Python,
    pub state_dir: PathBuf,
    owned_dir: bool,
    pub url: OnceLock<String>,
    pub cluster: Mutex<Cluster>,
    pub contexts: Contexts,
    pub dbfs: Handles,
    pub oauth: Tokens,
    pub faults: Faults,
    pub stats: Stats,
    pub mlflow: super::mlflow::Mlflow,
    /// Cancelled on stop: ends the accept loop, connections and workers.
    pub shutdown: CancellationToken,
    /// Shut down synchronously on stop (see `server::Sockets`).
    pub sockets: Arc<super::server::Sockets>,
    stopped: Mutex<bool>,
}

impl Local {
    pub fn new(
        opts: LocalOptions,
        token: String,
        python: Python,
        state_dir: PathBuf,
        owned_dir: bool,
    ) -> Result<Arc<Local>> {
        let worker = state_dir.join("worker.py");
        std::fs::write(&worker, super::contexts::WORKER_PY)
            .map_err(|e| local_error(format!("could not write {}: {e}", worker.display())))?;
        for d in ["driver", "logs", "tmp", "r-site-library"] {
            std::fs::create_dir_all(state_dir.join(d))
                .map_err(|e| local_error(format!("could not create {d} in {}: {e}", state_dir.display())))?;
        }
        // A server killed mid-upload left its temporary files here.
        super::store::remove_stale_uploads(&state_dir);
        let cluster = Cluster::new(&opts.cluster_state);
        Ok(Arc::new(Local {
            cluster: Mutex::new(cluster),
            contexts: Contexts::default(),
            dbfs: Handles::default(),
            oauth: Tokens::default(),
            faults: Faults::default(),
            stats: Stats::default(),
            mlflow: Default::default(),
            shutdown: CancellationToken::new(),
            sockets: Arc::default(),
            stopped: Mutex::new(false),
            url: OnceLock::new(),
            opts,
            token,
            python,
            state_dir,
            owned_dir,
        }))
    }

    /// Root of the cluster-side file view: `dbfs/...` and `Volumes/...`.
    pub fn fs_root(&self) -> PathBuf {
        self.state_dir.join("fs")
    }

    pub fn url(&self) -> String {
        self.url.get().cloned().unwrap_or_default()
    }

    pub fn stats_json(&self) -> serde_json::Value {
        self.stats.to_json(self.contexts.alive())
    }

    pub fn shutdown(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            return;
        }
        *stopped = true;
        self.shutdown.cancel();
        self.sockets.shutdown_all();
        self.contexts.kill_all(&self.stats);
        if self.owned_dir {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}
