//! How a local cluster runs: its options, their defaults and their checks.

use std::path::PathBuf;

use crate::error::{Error, Result};

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
    /// What `clusters/get` reports as `data_security_mode` (the access mode):
    /// `SINGLE_USER` (dedicated, what R needs) or another mode of the
    /// service's enum, e.g. `USER_ISOLATION` for a standard (shared) cluster.
    pub data_security_mode: String,
    /// A path prefix (`dbfs:/ro/` or `/Volumes/main/ro/`) under which DBFS and
    /// the Files API refuse writes with `403 PERMISSION_DENIED`, as a location
    /// the user may read but not write does.
    pub readonly_staging: Option<String>,
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
            data_security_mode: "SINGLE_USER".to_string(),
            readonly_staging: None,
        }
    }
}

pub fn validate(opts: &LocalOptions) -> Result<()> {
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
    if !DATA_SECURITY_MODES.contains(&opts.data_security_mode.as_str()) {
        return bad(format!(
            "data_security_mode must be one of {}, not {:?}",
            DATA_SECURITY_MODES.join(", "),
            opts.data_security_mode
        ));
    }
    if let Some(p) = &opts.readonly_staging {
        super::store::ReadOnly::parse(p).map_err(Error::input)?;
    }
    if opts.token_ttl_s == 0 {
        return bad("token_ttl_s must be at least 1".to_string());
    }
    Ok(())
}

/// The service's `data_security_mode` enum (clusters API).
pub const DATA_SECURITY_MODES: &[&str] = &[
    "NONE",
    "SINGLE_USER",
    "USER_ISOLATION",
    "LEGACY_TABLE_ACL",
    "LEGACY_PASSTHROUGH",
    "LEGACY_SINGLE_USER",
    "LEGACY_SINGLE_USER_STANDARD",
    "DATA_SECURITY_MODE_STANDARD",
    "DATA_SECURITY_MODE_DEDICATED",
    "DATA_SECURITY_MODE_AUTO",
];

