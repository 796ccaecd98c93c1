//! The state of a local cluster's MLflow server (below the routes: the
//! proxy and its start/stop live in `mlflow.rs`).

/// The MLflow server of one local cluster (none until first used).
#[derive(Default)]
pub struct Mlflow {
    pub(super) server: tokio::sync::Mutex<Option<Running>>,
}

pub(super) struct Running {
    pub(super) url: String,
    pub(super) child: tokio::process::Child,
}
