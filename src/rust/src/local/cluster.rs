//! The one cluster and its state machine: TERMINATED → PENDING → RUNNING, and
//! RUNNING → RESTARTING → RUNNING. PENDING and RESTARTING last
//! `start_delay_ms`; transitions happen lazily when the state is read.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// What the cluster is, fixed at start.
pub struct Spec {
    pub id: String,
    pub start_delay: Duration,
    pub data_security_mode: String,
    /// The runtime it stands in for (see `runtime`).
    pub spark_version: &'static str,
}

/// The cluster: its spec and its state machine.
pub struct ClusterCell {
    pub spec: Spec,
    machine: Mutex<Cluster>,
}

impl ClusterCell {
    pub fn new(spec: Spec, initial: &str) -> ClusterCell {
        ClusterCell { spec, machine: Mutex::new(Cluster::new(initial)) }
    }
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn state(&self) -> ClusterState {
        self.lock().state()
    }
    pub fn details(&self) -> Value {
        self.lock().details(&self.spec)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    Pending,
    Running,
    Restarting,
    Terminated,
}

impl ClusterState {
    pub fn wire(self) -> &'static str {
        match self {
            ClusterState::Pending => "PENDING",
            ClusterState::Running => "RUNNING",
            ClusterState::Restarting => "RESTARTING",
            ClusterState::Terminated => "TERMINATED",
        }
    }
    /// As in the service's INVALID_STATE messages ("... unexpected state Running.").
    pub fn title(self) -> &'static str {
        match self {
            ClusterState::Pending => "Pending",
            ClusterState::Running => "Running",
            ClusterState::Restarting => "Restarting",
            ClusterState::Terminated => "Terminated",
        }
    }
}

pub struct Cluster {
    state: ClusterState,
    /// When PENDING/RESTARTING turns into RUNNING.
    until: Option<Instant>,
    start_time: u64,
    last_restarted_time: Option<u64>,
    terminated_time: Option<u64>,
    spark_context_id: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Cluster {
    pub fn new(initial: &str) -> Cluster {
        let running = initial == "RUNNING";
        Cluster {
            state: if running { ClusterState::Running } else { ClusterState::Terminated },
            until: None,
            start_time: now_ms(),
            last_restarted_time: running.then(now_ms),
            terminated_time: (!running).then(now_ms),
            spark_context_id: rand::random::<u64>() >> 1,
        }
    }

    pub fn state(&mut self) -> ClusterState {
        if let Some(t) = self.until {
            if Instant::now() >= t {
                self.until = None;
                self.state = ClusterState::Running;
                self.last_restarted_time = Some(now_ms());
            }
        }
        self.state
    }

    /// TERMINATED → PENDING. Err: the current state, for INVALID_STATE.
    pub fn start(&mut self, delay: Duration) -> Result<(), ClusterState> {
        match self.state() {
            ClusterState::Terminated => {
                self.state = ClusterState::Pending;
                self.until = Some(Instant::now() + delay);
                self.start_time = now_ms();
                self.terminated_time = None;
                self.spark_context_id = rand::random::<u64>() >> 1;
                Ok(())
            }
            s => Err(s),
        }
    }

    /// RUNNING → RESTARTING. The caller drops every context.
    pub fn restart(&mut self, delay: Duration) -> Result<(), ClusterState> {
        match self.state() {
            ClusterState::Running => {
                self.state = ClusterState::Restarting;
                self.until = Some(Instant::now() + delay);
                self.spark_context_id = rand::random::<u64>() >> 1;
                Ok(())
            }
            s => Err(s),
        }
    }

    /// Any state → TERMINATED. The caller drops every context.
    pub fn terminate(&mut self) {
        self.state = ClusterState::Terminated;
        self.until = None;
        self.terminated_time = Some(now_ms());
    }

    pub fn details(&mut self, spec: &Spec) -> Value {
        let state = self.state();
        let id = &spec.id;
        let message = match state {
            ClusterState::Pending => "Starting the local cluster.",
            ClusterState::Restarting => "Restarting the local cluster.",
            ClusterState::Running | ClusterState::Terminated => "",
        };
        let mut v = json!({
            "cluster_id": id,
            "cluster_name": "dbrxr local cluster",
            "spark_version": spec.spark_version,
            "node_type_id": "local",
            "driver_node_type_id": "local",
            "num_workers": 0,
            "autotermination_minutes": 0,
            "data_security_mode": spec.data_security_mode,
            "creator_user_name": "local@dbrxr.invalid",
            "cluster_source": "API",
            "runtime_engine": "STANDARD",
            "state": state.wire(),
            "state_message": message,
            "start_time": self.start_time,
            "spark_context_id": self.spark_context_id,
            "spark_conf": {"spark.master": "local[*]"},
            "default_tags": {"Vendor": "Databricks", "ClusterId": id, "ClusterName": "dbrxr local cluster"},
        });
        // Only dedicated clusters name the user they belong to.
        if matches!(
            spec.data_security_mode.as_str(),
            "SINGLE_USER" | "LEGACY_SINGLE_USER" | "DATA_SECURITY_MODE_DEDICATED"
        ) {
            v["single_user_name"] = json!("local@dbrxr.invalid");
        }
        if spec.data_security_mode.starts_with("DATA_SECURITY_MODE_") {
            // The newer spelling comes with the `kind` that selects it.
            v["kind"] = json!("CLASSIC_PREVIEW");
        }
        if let Some(t) = self.last_restarted_time {
            v["last_restarted_time"] = json!(t);
        }
        if let Some(t) = self.terminated_time {
            v["terminated_time"] = json!(t);
            v["termination_reason"] =
                json!({"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {}});
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminated_pending_running() {
        let mut c = Cluster::new("TERMINATED");
        assert_eq!(c.state(), ClusterState::Terminated);
        assert_eq!(c.restart(Duration::ZERO), Err(ClusterState::Terminated));
        c.start(Duration::from_millis(40)).unwrap();
        assert_eq!(c.state(), ClusterState::Pending);
        assert_eq!(c.start(Duration::ZERO), Err(ClusterState::Pending));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.state(), ClusterState::Running);
        assert_eq!(c.start(Duration::ZERO), Err(ClusterState::Running));
    }

    #[test]
    fn restart_passes_through_restarting() {
        let mut c = Cluster::new("RUNNING");
        c.restart(Duration::from_millis(30)).unwrap();
        assert_eq!(c.state(), ClusterState::Restarting);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(c.state(), ClusterState::Running);
        c.terminate();
        assert_eq!(c.state(), ClusterState::Terminated);
    }
}
