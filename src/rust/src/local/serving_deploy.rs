//! Deploying a Model Serving endpoint's config on the local cluster (for
//! `serving.rs`): start MLflow's scoring server for the config's model
//! version, wait until it answers, then swap it in.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster::now_ms;
use super::mlflow_state::SocketDir;
use super::serving_state::{Active, Pending, Scorer};
use super::state::Local;

/// How long a scoring server may take to answer `/ping` (MLflow, R and the
/// model load first; tens of seconds on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(240);
/// The command `mlflow models serve --env-manager local` runs (MLflow's
/// `scoring_server.get_cmd`: uvicorn on MLflow's scoring app, the model's
/// path and request timeout in its environment), with `--uds` for the port.
const LAUNCHER: &str = "import os, shlex, sys
from mlflow.pyfunc import scoring_server
model, sock = sys.argv[1], sys.argv[2]
cmd, env = scoring_server.get_cmd(model, nworkers=1)
args = shlex.split(cmd)
assert args[0] == 'uvicorn', cmd
os.execve(sys.executable, [sys.executable, '-m', 'uvicorn', '--uds', sock] + args[1:], env)";

/// Start `pending`'s server in the background; once it answers, it serves
/// `name` and the previous one goes when its last query ends. Failure: the
/// endpoint's config_update is UPDATE_FAILED with the server's last words.
pub fn deploy(local: Arc<Local>, name: String, pending: Pending) {
    tokio::spawn(async move {
        let started = start(&local, &name, &pending).await;
        let mut t = local.endpoints.lock();
        // Deleted, or the cluster stopped: the new server is dropped (killed).
        let Some(e) = t.get_mut(&name) else { return };
        if e.pending.as_ref().map(|p| p.config_version) != Some(pending.config_version) {
            return;
        }
        e.pending = None;
        e.updated_ms = now_ms();
        match started {
            Ok(scorer) => {
                let served = pending.served;
                let old = e.active.replace(Active { served, config_version: pending.config_version, scorer: Arc::new(scorer) });
                drop(t);
                drop(old);
            }
            Err(why) => e.failed = Some((pending, why)),
        }
    });
}

async fn start(local: &Arc<Local>, name: &str, p: &Pending) -> Result<Scorer, String> {
    let dir = local.state_dir.join("serving").join(name).join(p.config_version.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let socket = SocketDir::create(&dir).map_err(|e| format!("no place for the server's socket: {e}"))?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("could not create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("could not open the log: {e}"))?;
    let model = super::uc_artifacts::version_dir(local, &p.served.entity_name, &p.served.entity_version);
    // No credentials: scoring needs none. R as in a context: the machine's
    // libraries and the cluster's own site library.
    let mut cmd = super::child_env::command(&local.tools_python, &[]);
    cmd.arg("-c")
        .arg(LAUNCHER)
        .arg(&model)
        .arg(socket.path())
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("R_LIBS", local.state_dir.join("r-site-library"))
        .env("R_LIBS_USER", local.state_dir.join("r-site-library"))
        .env_remove("R_LIBS_SITE")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true);
    super::util::own_group_dying_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("could not start {}: {e}", local.tools_python))?;
    let pid = child.id().map(|p| p as i32);
    let client = reqwest::Client::builder()
        .unix_socket(socket.path())
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("could not make a client: {e}"))?;
    let began = Instant::now();
    loop {
        // Exited: its log says why (a missing package, a model that does not load).
        if let Ok(Some(status)) = child.try_wait() {
            super::util::kill_group(pid);
            return Err(format!(
                "MLflow's scoring server exited ({status}) while loading the model; its log ends with: {}",
                log_tail(&log_path)
            ));
        }
        let up = client
            .get(format!("{}/ping", super::mlflow::SERVER_BASE))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if up {
            return Ok(Scorer { client, pid, _child: child, _socket: socket });
        }
        if began.elapsed() > START_TIMEOUT || local.shutdown.is_cancelled() {
            super::util::kill_group(pid);
            return Err(format!(
                "MLflow's scoring server did not answer within {} s; see {}.",
                START_TIMEOUT.as_secs(),
                log_path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().filter(|l| !l.trim().is_empty()).take(6).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
