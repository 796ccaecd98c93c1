//! One error type for the whole crate.
//!
//! Errors never cross into R as panics: the bindings turn an [`Error`] into a
//! plain R list (see `r::convert`) and `R/conditions.R` raises the classed
//! condition. Every field here is safe to show: secrets are masked before an
//! error is built (see [`crate::redact`]).

use std::fmt;

/// What went wrong, at the granularity of the R condition classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad or missing configuration (`dbrxr_config_error`).
    Config,
    /// Credentials missing, rejected or not obtainable (`dbrxr_auth_error`).
    Auth,
    /// The API answered with an HTTP error (`dbrxr_http_error`, `dbrxr_http_<status>`).
    Http,
    /// The network failed: refused, reset, DNS, TLS (`dbrxr_network_error`).
    Network,
    /// A wait ran out of time (`dbrxr_timeout_error`).
    Timeout,
    /// The cluster cannot be used: ERROR state, unknown, won't start (`dbrxr_cluster_error`).
    Cluster,
    /// An execution context could not be created or was lost (`dbrxr_context_error`).
    Context,
    /// A Python command on the cluster raised (`dbrxr_remote_python_error`).
    RemotePython,
    /// The user gave input we refuse before any network call (`dbrxr_input_error`).
    Input,
    /// A local file could not be read or written (`dbrxr_io_error`).
    Io,
    /// The operation was cancelled (user interrupt) (`dbrxr_cancelled_error`).
    Cancelled,
    /// The embedded local cluster failed to start or run (`dbrxr_local_cluster_error`).
    LocalCluster,
    /// A bug in dbrxr itself (`dbrxr_internal_error`).
    Internal,
}

impl ErrorKind {
    /// The specific R condition class for this kind.
    pub fn r_class(self) -> &'static str {
        match self {
            ErrorKind::Config => "dbrxr_config_error",
            ErrorKind::Auth => "dbrxr_auth_error",
            ErrorKind::Http => "dbrxr_http_error",
            ErrorKind::Network => "dbrxr_network_error",
            ErrorKind::Timeout => "dbrxr_timeout_error",
            ErrorKind::Cluster => "dbrxr_cluster_error",
            ErrorKind::Context => "dbrxr_context_error",
            ErrorKind::RemotePython => "dbrxr_remote_python_error",
            ErrorKind::Input => "dbrxr_input_error",
            ErrorKind::Io => "dbrxr_io_error",
            ErrorKind::Cancelled => "dbrxr_cancelled_error",
            ErrorKind::LocalCluster => "dbrxr_local_cluster_error",
            ErrorKind::Internal => "dbrxr_internal_error",
        }
    }
}

/// An error with everything R needs to raise a useful condition.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// What failed, one sentence.
    pub message: String,
    /// Why, and what to do: shown as bullets under the message.
    pub hints: Vec<String>,
    /// HTTP status, when the API answered.
    pub status: Option<u16>,
    /// Databricks `error_code` (string or number in the body, kept as text).
    pub error_code: Option<String>,
    /// Request id from the body's RequestInfo or `[ReqId: ...]`.
    pub request_id: Option<String>,
    /// How many attempts the transport made before giving up.
    pub attempts: Option<u32>,
    /// Extra named fields (e.g. `summary`, `cause`, `last_status`, `state`).
    pub fields: Vec<(String, String)>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hints: Vec::new(),
            status: None,
            error_code: None,
            request_id: None,
            attempts: None,
            fields: Vec::new(),
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, message)
    }

    /// Add a bullet saying why or what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Attach a named field that R exposes on the condition.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.fields.retain(|(n, _)| *n != name);
        self.fields.push((name, value.into()));
        self
    }

    pub fn get_field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Record how many attempts the transport made.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = Some(n);
        self
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status}")?;
            if let Some(code) = &self.error_code {
                write!(f, ", {code}")?;
            }
            write!(f, ")")?;
        }
        for h in &self.hints {
            write!(f, "\n  {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_status_code_and_hints() {
        let mut e = Error::new(ErrorKind::Http, "GET /api/2.1/clusters/get failed")
            .hint("check the cluster id");
        e.status = Some(400);
        e.error_code = Some("INVALID_PARAMETER_VALUE".into());
        let s = e.to_string();
        assert!(s.contains("HTTP 400, INVALID_PARAMETER_VALUE"));
        assert!(s.contains("check the cluster id"));
    }

    #[test]
    fn field_replaces_same_name() {
        let e = Error::internal("x").field("a", "1").field("a", "2");
        assert_eq!(e.get_field("a"), Some("2"));
        assert_eq!(e.fields.len(), 1);
    }

    #[test]
    fn every_kind_has_a_dbrxr_class() {
        use ErrorKind::*;
        for k in [
            Config, Auth, Http, Network, Timeout, Cluster, Context, RemotePython, Input, Io,
            Cancelled, LocalCluster, Internal,
        ] {
            assert!(k.r_class().starts_with("dbrxr_") && k.r_class().ends_with("_error"));
        }
    }
}
