//! How a local cluster runs: its options, and THE table of those a user
//! sets ([`OPTIONS`]): name, kind, default and help text in one place. The
//! `dbrxr-local` flags and `--help`, the checks of R's `local_cluster(...)`
//! and its documentation are all made from this table; a new knob is one
//! field of [`LocalOptions`] and one row here.

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
    /// How long a status check of a running command waits for it to end (a
    /// workspace answers at once; 0 does the same).
    pub status_hold_ms: u64,
    /// What `clusters/get` reports as `data_security_mode` (the access mode):
    /// `SINGLE_USER` (dedicated, what R needs) or another mode of the
    /// service's enum, e.g. `USER_ISOLATION` for a standard (shared) cluster.
    pub data_security_mode: String,
    /// A path prefix (`dbfs:/ro/` or `/Volumes/main/ro/`) under which DBFS and
    /// the Files API refuse writes with `403 PERMISSION_DENIED`, as a location
    /// the user may read but not write does.
    pub readonly_staging: Option<String>,
    /// The Databricks Runtime profile (`"15.4"`): contexts and job tasks run
    /// its pinned Python environment and `clusters/get` reports its
    /// `spark_version` (see [`super::runtime`]). `None`: the `python` option's
    /// interpreter, unpinned.
    pub runtime: Option<String>,
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
            status_hold_ms: 1,
            data_security_mode: "SINGLE_USER".to_string(),
            readonly_staging: None,
            runtime: None,
        }
    }
}

/// What values an option takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A whole number in `min..=max`.
    Count { min: u64, max: u64 },
    /// A string.
    Text,
    /// One of these (case-insensitive; stored upper-case).
    Choice(&'static [&'static str]),
}

/// A value as it comes in: a number (R) or text (R, or a command-line flag).
#[derive(Debug, Clone)]
pub enum Input {
    Number(f64),
    Text(String),
}

/// A value checked against its option's [`Kind`].
enum Value {
    Count(u64),
    Text(String),
}

/// One row of the table.
pub struct OptionSpec {
    /// As R spells it (`max_contexts`); the flag is `--max-contexts`.
    pub name: &'static str,
    pub kind: Kind,
    /// As shown in help; empty when there is none.
    pub default: &'static str,
    pub help: &'static str,
    set: fn(&mut LocalOptions, Value),
}

impl OptionSpec {
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// `VALUE`-style placeholder for help text.
    pub fn placeholder(&self) -> &'static str {
        match self.kind {
            Kind::Count { .. } => "N",
            Kind::Text => "TEXT",
            Kind::Choice(_) => "MODE",
        }
    }

    /// What the option accepts, in words.
    pub fn accepts(&self) -> String {
        match self.kind {
            Kind::Count { min, max: u64::MAX } => format!("a whole number >= {min}"),
            Kind::Count { min, max } => format!("a whole number between {min} and {max}"),
            Kind::Text => "a string".to_string(),
            Kind::Choice(v) => format!("one of {}", v.join(", ")),
        }
    }

    fn parse(&self, input: Input) -> std::result::Result<Value, String> {
        let wrong = |what: String| format!("`{}` must be {}, not {what}", self.name, self.accepts());
        match (self.kind, input) {
            (Kind::Count { min, max }, input) => {
                let n = match input {
                    Input::Number(x) if x.fract() == 0.0 && (0.0..9.0e15).contains(&x) => x as u64,
                    Input::Number(x) => return Err(wrong(x.to_string())),
                    Input::Text(t) => t.trim().parse::<u64>().map_err(|_| wrong(format!("{t:?}")))?,
                };
                if n < min || n > max {
                    return Err(wrong(n.to_string()));
                }
                Ok(Value::Count(n))
            }
            (Kind::Text, Input::Text(t)) => Ok(Value::Text(t)),
            (Kind::Choice(values), Input::Text(t)) => {
                let up = t.to_ascii_uppercase();
                if values.contains(&up.as_str()) {
                    Ok(Value::Text(up))
                } else {
                    Err(wrong(format!("{t:?}")))
                }
            }
            (_, Input::Number(x)) => Err(wrong(format!("the number {x}"))),
        }
    }
}

fn text(v: Value) -> String {
    match v {
        Value::Text(t) => t,
        Value::Count(n) => n.to_string(),
    }
}

fn count(v: Value) -> u64 {
    match v {
        Value::Count(n) => n,
        Value::Text(_) => 0, // the kind is Count: parse() gave a number
    }
}

const ANY: u64 = u64::MAX;

/// The options a user sets, in the order help shows them.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec { name: "port", kind: Kind::Count { min: 0, max: 65535 }, default: "0",
        help: "TCP port on 127.0.0.1 (0 picks a free one)",
        set: |o, v| o.port = count(v) as u16 },
    OptionSpec { name: "token", kind: Kind::Text, default: "",
        help: "the bearer token clients must send (generated when absent)",
        set: |o, v| o.token = Some(text(v)) },
    OptionSpec { name: "python", kind: Kind::Text, default: "",
        help: "Python interpreter for the contexts (default: DBRXR_PYTHON, else the first of python3 on PATH and /usr/bin/python3 that can import rpy2)",
        set: |o, v| o.python = Some(text(v)) },
    OptionSpec { name: "state_dir", kind: Kind::Text, default: "",
        help: "where DBFS, Volumes and logs live (default: a temporary directory, removed on stop)",
        set: |o, v| o.state_dir = Some(PathBuf::from(text(v))) },
    OptionSpec { name: "cluster_id", kind: Kind::Text, default: "local-cluster",
        help: "the cluster's id",
        set: |o, v| o.cluster_id = text(v) },
    OptionSpec { name: "cluster_state", kind: Kind::Choice(&["RUNNING", "TERMINATED"]), default: "RUNNING",
        help: "the state it starts in",
        set: |o, v| o.cluster_state = text(v) },
    OptionSpec { name: "start_delay_ms", kind: Kind::Count { min: 0, max: ANY }, default: "0",
        help: "how long PENDING and RESTARTING last",
        set: |o, v| o.start_delay_ms = count(v) },
    OptionSpec { name: "client_id", kind: Kind::Text, default: "",
        help: "enable OAuth M2M with this client id (with client_secret)",
        set: |o, v| o.client_id = Some(text(v)) },
    OptionSpec { name: "client_secret", kind: Kind::Text, default: "",
        help: "the OAuth M2M client secret (with client_id)",
        set: |o, v| o.client_secret = Some(text(v)) },
    OptionSpec { name: "token_ttl_s", kind: Kind::Count { min: 1, max: ANY }, default: "3600",
        help: "lifetime of OAuth access tokens, in seconds",
        set: |o, v| o.token_ttl_s = count(v) },
    OptionSpec { name: "max_output_chars", kind: Kind::Count { min: 1, max: ANY }, default: "50000",
        help: "text results are cut after this many characters (truncated: true)",
        set: |o, v| o.max_output_chars = count(v) as usize },
    OptionSpec { name: "max_contexts", kind: Kind::Count { min: 1, max: ANY }, default: "145",
        help: "most execution contexts at once (idle ones are evicted first)",
        set: |o, v| o.max_contexts = count(v) as usize },
    OptionSpec { name: "data_security_mode", kind: Kind::Choice(DATA_SECURITY_MODES), default: "SINGLE_USER",
        help: "the access mode clusters/get reports; e.g. USER_ISOLATION stands for a standard (shared) cluster, where R cannot run",
        set: |o, v| o.data_security_mode = text(v) },
    OptionSpec { name: "readonly_staging", kind: Kind::Text, default: "",
        help: "a path prefix (dbfs:/ro/ or /Volumes/main/ro/) under which DBFS and Files API writes get 403 PERMISSION_DENIED",
        set: |o, v| o.readonly_staging = Some(text(v)) },
    OptionSpec { name: "runtime", kind: Kind::Text, default: "",
        help: "a Databricks Runtime LTS profile, \"15.4\": contexts and job tasks run a Python environment pinned to that runtime's libraries (built by `make runtime-15.4`, found in $DBRXR_RUNTIME_HOME/.venv-15.4, else ./.venv-15.4) and clusters/get reports its spark_version; `python` then runs only the MLflow server (default: none, the `python` interpreter as it is)",
        set: |o, v| o.runtime = Some(text(v)) },
];

/// The row of `name`.
pub fn spec(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|s| s.name == name)
}

impl LocalOptions {
    /// Set one option from the table by name, checking its value.
    pub fn set(&mut self, name: &str, input: Input) -> Result<()> {
        let spec = spec(name).ok_or_else(|| {
            Error::input(format!("unknown local cluster option `{name}`"))
                .hint(format!("known options: {}", OPTIONS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")))
        })?;
        let value = spec.parse(input).map_err(Error::input)?;
        (spec.set)(self, value);
        Ok(())
    }

    /// Options from (name, value) pairs, each set through the table, then
    /// checked as a whole.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, Input)>) -> Result<LocalOptions> {
        let mut o = LocalOptions::default();
        for (name, value) in pairs {
            o.set(&name, value)?;
        }
        validate(&o)?;
        Ok(o)
    }
}

/// Checks across options, and of values a caller set directly.
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
    if let Some(r) = &opts.runtime {
        super::runtime::profile(r)?;
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

