//! The state of a local cluster's Model Serving endpoints (below the routes:
//! `serving.rs` answers the Serving Endpoints API over it).
//!
//! An endpoint serves one registered Unity Catalog model version with
//! MLflow's own scoring server (the app `mlflow models serve
//! --env-manager local` runs), one process per deployed config. A server
//! listens on a Unix socket in a directory only this user may enter: the
//! workspace's `/serving-endpoints/<name>/invocations`, behind the token, is
//! the only way in.
//!
//! A config update starts the new server next to the old one and swaps them
//! once it answers: queries in flight keep the old server (an `Arc`) until
//! they end, and its process group is killed when the last one lets go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::mlflow_state::SocketDir;

/// What a config serves: one entity (a UC model version).
#[derive(Clone, Debug)]
pub struct Served {
    /// The served entity's name in the endpoint (default `<model>-<version>`).
    pub name: String,
    /// `catalog.schema.model`
    pub entity_name: String,
    pub entity_version: String,
    pub workload_size: String,
    pub scale_to_zero_enabled: bool,
    pub created_ms: u64,
}

/// A running scoring server. Dropping it kills its process group.
pub struct Scorer {
    /// Connects to the server's Unix socket (URLs start with `http://localhost`).
    pub client: reqwest::Client,
    pub pid: Option<i32>,
    pub(super) _child: tokio::process::Child,
    pub(super) _socket: SocketDir,
}

impl Drop for Scorer {
    fn drop(&mut self) {
        super::util::kill_group(self.pid);
    }
}

/// The config that answers queries.
pub struct Active {
    pub served: Served,
    pub config_version: u64,
    pub scorer: Arc<Scorer>,
}

/// A config being deployed.
#[derive(Clone)]
pub struct Pending {
    pub served: Served,
    pub config_version: u64,
    pub start_ms: u64,
}

pub struct Endpoint {
    pub id: String,
    pub creator: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub active: Option<Active>,
    pub pending: Option<Pending>,
    /// The last update that failed and why (cleared by the next one).
    pub failed: Option<(Pending, String)>,
    /// The last config version handed out.
    pub config_version: u64,
}

/// Every endpoint of one local cluster, by name.
#[derive(Default)]
pub struct Endpoints(Mutex<HashMap<String, Endpoint>>);

impl Endpoints {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Endpoint>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server that answers `name`'s queries, if it has one.
    pub fn scorer(&self, name: &str) -> Option<Arc<Scorer>> {
        self.lock().get(name).and_then(|e| e.active.as_ref()).map(|a| a.scorer.clone())
    }

    /// Forget an endpoint and kill its server now (queries in flight fail:
    /// the endpoint is gone). Whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let gone = self.lock().remove(name);
        match gone {
            Some(e) => {
                if let Some(a) = e.active {
                    super::util::kill_group(a.scorer.pid);
                }
                true
            }
            None => false,
        }
    }

    /// Stop every server (the cluster stops). Deployments in progress see
    /// their endpoint gone and drop their server.
    pub fn stop_all(&self) {
        let all: Vec<Endpoint> = self.lock().drain().map(|(_, e)| e).collect();
        for e in all {
            if let Some(a) = e.active {
                super::util::kill_group(a.scorer.pid);
            }
        }
    }
}
