//! Bindings of the one protocol: hand over the sources, start a request for
//! a target, bootstrap, raw commands (`dbx_exec()`), cluster status. Each
//! starts a job (see `crate::jobs`) and returns its id; `wait.rs` waits.

use std::time::Duration;

use extendr_api::prelude::*;

use super::convert::{guard, opt_f64};
use crate::error::Error;
use crate::jobs::{self, Output};
use crate::protocol::{self, Limits, Sources};
use crate::session::RunOptions;

fn secs(x: Option<f64>, what: &str) -> crate::Result<Option<Duration>> {
    match x {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(Duration::from_secs_f64(v))),
        Some(v) => Err(Error::input(format!("`{what}` must be a non-negative number of seconds, not {v}"))),
    }
}

fn job_id(id: i32) -> Robj {
    Robj::from(id)
}

fn run_options(timeout: &Robj, poll_max: &Robj, cluster_timeout: &Robj) -> crate::Result<RunOptions> {
    let defaults = RunOptions::default();
    Ok(RunOptions {
        timeout: secs(opt_f64(timeout), "timeout")?,
        poll_max: secs(opt_f64(poll_max), "poll_max")?.unwrap_or(defaults.poll_max),
        cluster_timeout: secs(opt_f64(cluster_timeout), "cluster_timeout")?.unwrap_or(defaults.cluster_timeout),
        ..defaults
    })
}

/// Hand the remote protocol its sources (once per connection): `sources`
/// is a named list of raw vectors (file name -> contents).
/// @noRd
#[extendr]
fn rust_protocol_setup(conn: Robj, sources: List, install_rpy2: bool) -> Robj {
    guard(|| {
        let (_, st) = super::connect::session_and_protocol(&conn)?;
        st.set_sources(sources_from(&sources, install_rpy2)?);
        Ok(Robj::from(true))
    })
}

pub(super) fn sources_from(sources: &List, install_rpy2: bool) -> crate::Result<Sources> {
    let mut files = Vec::new();
    for (name, data) in sources.iter() {
        let bytes = data.as_raw_slice().ok_or_else(|| Error::internal(format!("source {name} is not a raw vector")))?;
        files.push((name.to_string(), bytes::Bytes::copy_from_slice(bytes)));
    }
    Sources::new(files, install_rpy2)
}

/// Start one remote request for `target` (`"r"` or a Python target): `req`
/// is the request (a list, serialized here); the job's value is
/// `list(value = <answer bytes>, meta = list(...))`. The timeout bounds the
/// whole request (upload, command, download). `limits` is
/// c(inline_request_max, inline_answer_max) in bytes; with `progress` the
/// target's progress reports come back as counts while it runs.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rust_request_start(
    conn: Robj,
    target: &str,
    req: Robj,
    kind: &str,
    timeout: Robj,
    poll_max: Robj,
    cluster_timeout: Robj,
    limits: Robj,
    progress: bool,
) -> Robj {
    guard(|| {
        let (session, st) = super::connect::session_and_protocol(&conn)?;
        protocol::check_target(target)?;
        let mut opts = run_options(&timeout, &poll_max, &cluster_timeout)?;
        // The request object is serialized here, straight into the bytes
        // that travel (serialize() in R would make an R raw vector to copy).
        let bytes = bytes::Bytes::from(super::serialize::serialize_native(&req));
        opts.poll_kind = Some(format!("{target} {kind} {}", bytes.len().max(1).ilog2()));
        let total = opts.timeout.take();
        let mut lim = Limits::default();
        if let Some(v) = limits.as_real_slice().filter(|v| v.len() == 2) {
            lim.inline_request_max = v[0].max(0.0) as usize;
            lim.inline_answer_max = v[1].max(0.0) as usize;
        }
        let req = protocol::Request { target: target.to_string(), bytes, limits: lim, progress };
        let ticket = st.ticket();
        let job = jobs::spawn(move |ctl| async move {
            let work = protocol::request(session, st, ticket, req, opts, ctl);
            crate::deadline::scope(total, work).await.map(Output::Answer)
        })?;
        Ok(job_id(job))
    })
}

/// Start installing the bootstrap in the session's context; the job's value
/// is what the bootstrap reported (R, rpy2 and Python versions, pid).
/// @noRd
#[extendr]
fn rust_bootstrap_start(conn: Robj, timeout: Robj, poll_max: Robj, cluster_timeout: Robj) -> Robj {
    guard(|| {
        let (session, st) = super::connect::session_and_protocol(&conn)?;
        let opts = run_options(&timeout, &poll_max, &cluster_timeout)?;
        let job = jobs::spawn(move |ctl| async move {
            let info = crate::deadline::scope(opts.timeout, protocol::bootstrap(&session, &st, &opts, &ctl)).await?;
            Ok(Output::Json(serde_json::Value::Object(info)))
        })?;
        Ok(job_id(job))
    })
}

/// Start running `code` in the session's context. Options in seconds; NULL
/// for defaults. `poll_fixed` (benchmarks only) polls at a fixed interval,
/// checking at once first; a negative value sleeps before the first check too.
/// @noRd
#[extendr]
fn rust_exec_start(
    conn: Robj,
    code: &str,
    language: &str,
    timeout: Robj,
    poll_max: Robj,
    cluster_timeout: Robj,
    poll_fixed: Robj,
) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let defaults = RunOptions::default();
        let fixed = opt_f64(&poll_fixed);
        let opts = RunOptions {
            language: language.to_string(),
            timeout: secs(opt_f64(&timeout), "timeout")?,
            poll_max: secs(opt_f64(&poll_max), "poll_max")?.unwrap_or(defaults.poll_max),
            cluster_timeout: secs(opt_f64(&cluster_timeout), "cluster_timeout")?.unwrap_or(defaults.cluster_timeout),
            poll_fixed: secs(fixed.map(f64::abs), "poll_fixed")?,
            poll_fixed_sleep_first: fixed.is_some_and(|x| x < 0.0),
            poll_kind: None,
        };
        let code = code.to_string();
        let job = jobs::spawn(move |ctl| async move {
            session.run_command(&code, &opts, &ctl).await.map(Output::Json)
        })?;
        Ok(job_id(job))
    })
}

/// Start fetching the cluster's details.
/// @noRd
#[extendr]
fn rust_cluster_status_start(conn: Robj) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let job = jobs::spawn(move |ctl| async move {
            let d = ctl.run(session.cluster_details()).await?;
            serde_json::to_value(d)
                .map(Output::Json)
                .map_err(|e| Error::internal(format!("could not encode cluster details: {e}")))
        })?;
        Ok(job_id(job))
    })
}

extendr_module! {
    mod protocol;
    fn rust_protocol_setup;
    fn rust_request_start;
    fn rust_bootstrap_start;
    fn rust_exec_start;
    fn rust_cluster_status_start;
}
