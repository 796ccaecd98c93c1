//! Everything one local cluster holds, and the sub-states its route families
//! take (`State<Compute>`, `State<Arc<Store>>`, ...) through `FromRef`, so a
//! handler sees only what it uses. This module knows no routes: the API
//! families sit above it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;

use super::access::Access;
use super::cluster::{ClusterCell, ClusterState, Spec};
use super::contexts::{Contexts, WorkerSpec};
use super::faults::Faults;
use super::options::LocalOptions;
use super::python::Python;
use super::sockets::Sockets;
use super::stats::Stats;
use super::store::{ReadOnly, Store};
use super::util::local_error;
use crate::error::Result;

/// The state every router is built over: the whole cluster, from which
/// handlers take the sub-state they use.
#[derive(Clone)]
pub struct Shared(pub Arc<Local>);

impl std::ops::Deref for Shared {
    type Target = Local;
    fn deref(&self) -> &Local {
        &self.0
    }
}

pub struct Local {
    pub opts: LocalOptions,
    /// The Python of contexts and job tasks.
    pub python: Python,
    /// The Python of the cluster's own services (the MLflow server): the same
    /// but with a runtime profile, whose pinned environment has no server.
    pub tools_python: String,
    pub state_dir: PathBuf,
    owned_dir: bool,
    pub compute: Compute,
    pub store: Arc<Store>,
    pub access: Arc<Access>,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
    /// Cancelled on stop: ends the accept loop, connections and workers.
    pub shutdown: CancellationToken,
    /// Shut down synchronously on stop.
    pub sockets: Arc<Sockets>,
    stopped: Mutex<bool>,
    /// `http://127.0.0.1:PORT`, once the server listens.
    pub url: std::sync::OnceLock<String>,
    /// The environment every context gets once the server listens.
    pub worker_env: Arc<std::sync::OnceLock<Vec<(String, String)>>>,
    /// The MLflow server, started on the first MLflow request.
    pub mlflow: super::mlflow_state::Mlflow,
    /// `/dbfs` and `/Volumes` in context and job task processes.
    pub mounts: Arc<super::mounts::Mounts>,
    /// Model Serving endpoints and their scoring servers.
    pub endpoints: super::serving_state::Endpoints,
}

/// The cluster and its execution contexts (clusters and 1.2 routes).
#[derive(Clone)]
pub struct Compute {
    pub cluster: Arc<ClusterCell>,
    pub contexts: Arc<Contexts>,
}

impl Compute {
    pub fn state(&self) -> ClusterState {
        self.cluster.state()
    }

    /// RUNNING → RESTARTING: every context is lost.
    pub fn restart(&self) -> std::result::Result<(), ClusterState> {
        self.cluster.lock().restart(self.cluster.spec.start_delay)?;
        self.contexts.kill_all();
        Ok(())
    }

    /// Any state → TERMINATED: every context is lost.
    pub fn terminate(&self) {
        self.cluster.lock().terminate();
        self.contexts.kill_all();
    }
}

/// What the `/_local/` control routes act on.
#[derive(Clone)]
pub struct Control {
    pub compute: Compute,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
}

impl Control {
    pub fn stats_json(&self) -> serde_json::Value {
        self.stats.to_json(self.compute.contexts.alive())
    }
}

impl FromRef<Shared> for Compute {
    fn from_ref(l: &Shared) -> Compute {
        l.compute.clone()
    }
}
impl FromRef<Shared> for Arc<Store> {
    fn from_ref(l: &Shared) -> Arc<Store> {
        l.store.clone()
    }
}
impl FromRef<Shared> for Arc<Access> {
    fn from_ref(l: &Shared) -> Arc<Access> {
        l.access.clone()
    }
}
impl FromRef<Shared> for Arc<Stats> {
    fn from_ref(l: &Shared) -> Arc<Stats> {
        l.stats.clone()
    }
}
impl FromRef<Shared> for Arc<Faults> {
    fn from_ref(l: &Shared) -> Arc<Faults> {
        l.faults.clone()
    }
}
impl FromRef<Shared> for Control {
    fn from_ref(l: &Shared) -> Control {
        Control { compute: l.compute.clone(), faults: l.faults.clone(), stats: l.stats.clone() }
    }
}

impl Local {
    /// The server's address (empty before it listens).
    pub fn url(&self) -> &str {
        self.url.get().map(String::as_str).unwrap_or("")
    }
    pub fn new(
        opts: LocalOptions,
        token: String,
        python: Python,
        tools_python: String,
        state_dir: PathBuf,
        owned_dir: bool,
    ) -> Result<Arc<Local>> {
        let worker = state_dir.join("worker.py");
        std::fs::write(&worker, super::contexts::WORKER_PY)
            .map_err(|e| local_error(format!("could not write {}: {e}", worker.display())))?;
        super::spark_catalog::write_sources(&state_dir)?;
        for d in ["driver", "logs", "tmp", "r-site-library"] {
            std::fs::create_dir_all(state_dir.join(d))
                .map_err(|e| local_error(format!("could not create {d} in {}: {e}", state_dir.display())))?;
        }
        // A server killed mid-upload left its temporary files here.
        super::store::remove_stale_uploads(&state_dir);
        let readonly = match &opts.readonly_staging {
            Some(p) => Some(ReadOnly::parse(p).map_err(crate::error::Error::input)?),
            None => None,
        };
        let fs_root = state_dir.join("fs");
        let mounts = Arc::new(super::mounts::Mounts::prepare(&state_dir, &fs_root));
        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        let cluster = ClusterCell::new(
            Spec {
                id: opts.cluster_id.clone(),
                start_delay: Duration::from_millis(opts.start_delay_ms),
                data_security_mode: opts.data_security_mode.clone(),
                spark_version: match &opts.runtime {
                    Some(r) => super::runtime::profile(r)?.spark_version,
                    None => super::runtime::DEFAULT_SPARK_VERSION,
                },
            },
            &opts.cluster_state,
        );
        let worker_env: Arc<std::sync::OnceLock<Vec<(String, String)>>> = Arc::default();
        let contexts = Contexts::new(
            WorkerSpec {
                python: python.path.clone(),
                state_dir: state_dir.clone(),
                fs_root: fs_root.clone(),
                max_contexts: opts.max_contexts,
                max_output_chars: opts.max_output_chars,
                cancel_grace: Duration::from_millis(opts.cancel_grace_ms),
                status_hold: Duration::from_millis(opts.status_hold_ms),
                extra_env: worker_env.clone(),
                mounts: mounts.clone(),
            },
            stats.clone(),
            shutdown.clone(),
        );
        let store = Store {
            root: fs_root,
            state_dir: state_dir.clone(),
            readonly,
            handles: Default::default(),
            handle_ttl: Duration::from_secs(opts.dbfs_handle_ttl_s),
        };
        let client = opts.client_id.clone().zip(opts.client_secret.clone());
        let access = Access::new(token, client, Duration::from_secs(opts.token_ttl_s));
        Ok(Arc::new(Local {
            compute: Compute { cluster: Arc::new(cluster), contexts: Arc::new(contexts) },
            store: Arc::new(store),
            access: Arc::new(access),
            faults: Arc::default(),
            stats,
            shutdown,
            sockets: Arc::default(),
            stopped: Mutex::new(false),
            url: std::sync::OnceLock::new(),
            worker_env,
            mlflow: Default::default(),
            mounts,
            endpoints: Default::default(),
            opts,
            python,
            tools_python,
            state_dir,
            owned_dir,
        }))
    }

    /// Root of the cluster-side file view: `dbfs/...` and `Volumes/...`.
    pub fn fs_root(&self) -> PathBuf {
        self.store.root.clone()
    }

    pub fn stats_json(&self) -> serde_json::Value {
        self.stats.to_json(self.compute.contexts.alive())
    }

    pub fn shutdown(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            return;
        }
        *stopped = true;
        self.shutdown.cancel();
        self.sockets.shutdown_all();
        self.compute.contexts.kill_all();
        self.endpoints.stop_all();
        if self.owned_dir {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}
