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

/// A server dropped without `stop` (its cluster gone first) takes its whole
/// process group down: the supervisor and `mlflow server`'s own children.
impl Drop for Running {
    fn drop(&mut self) {
        super::util::kill_group(self.child.id().map(|p| p as i32));
    }
}
