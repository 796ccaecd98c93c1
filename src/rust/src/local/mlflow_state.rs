//! The state of a local cluster's MLflow server (below the routes: the
//! proxy and its start/stop live in `mlflow.rs`).

use std::path::{Path, PathBuf};

/// The MLflow server of one local cluster (none until first used).
#[derive(Default)]
pub struct Mlflow {
    pub(super) server: tokio::sync::Mutex<Option<Running>>,
}

impl Mlflow {
    /// Whether the server runs now (one starting, or locked, counts as not).
    pub fn running(&self) -> bool {
        self.server
            .try_lock()
            .map(|mut g| g.as_mut().is_some_and(|r| matches!(r.child.try_wait(), Ok(None))))
            .unwrap_or(false)
    }
}

pub(super) struct Running {
    /// Connects to the server's Unix socket.
    pub(super) client: reqwest::Client,
    pub(super) child: tokio::process::Child,
    pub(super) _socket: SocketDir,
}

/// A server dropped without `stop` (its cluster gone first) takes its whole
/// process group down: the launcher and `mlflow server`'s own children.
impl Drop for Running {
    fn drop(&mut self) {
        super::util::kill_group(self.child.id().map(|p| p as i32));
    }
}

/// Longest path a Unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A directory only this user may enter, holding the server's socket
/// (uvicorn makes the socket itself world-writable): `sock/` of the MLflow
/// state directory, or a fresh one under /tmp when that path is too long
/// for a socket address. Removed when dropped.
pub(super) struct SocketDir(PathBuf);

impl SocketDir {
    pub(super) fn create(mlflow_dir: &Path) -> std::io::Result<SocketDir> {
        use std::os::unix::fs::DirBuilderExt;
        let mut dir = mlflow_dir.join("sock");
        if dir.join("server.sock").as_os_str().len() > MAX_SOCKET_PATH {
            dir = PathBuf::from(format!("/tmp/dbrxr-mlflow-{}", super::util::random_hex(8)));
        }
        let _ = std::fs::remove_dir_all(&dir); // a socket left by a server that died
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(SocketDir(dir))
    }
    pub(super) fn path(&self) -> PathBuf {
        self.0.join("server.sock")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
