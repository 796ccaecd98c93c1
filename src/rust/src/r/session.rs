//! Bindings for the client core: commands, cluster status, staging, jobs.
//!
//! Every long operation starts a job (see `crate::jobs`) and returns its id;
//! R waits on it in short slices so that Ctrl-C stays with R, and cancels it
//! on interrupt. No logic here beyond argument conversion.

use std::time::Duration;

use extendr_api::prelude::*;

use super::connect::SESSIONS;
use super::convert::{guard, json_to_robj, opt_f64, opt_string, CALLS, WAIT_CALLS};
use crate::error::Error;
use crate::jobs::{self, Output, Poll};
use crate::protocol::{self, Limits, Sources};
use crate::session::RunOptions;
use crate::staging::{self, Scope, Source};

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

/// Hand the remote protocol its bootstrap sources (once per connection).
/// @noRd
#[extendr]
fn rust_protocol_setup(id: i32, module: Raw, dispatcher: Raw, install_rpy2: bool) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
        protocol::state(&session).set_sources(Sources {
            module: bytes::Bytes::copy_from_slice(module.as_slice()),
            dispatcher: bytes::Bytes::copy_from_slice(dispatcher.as_slice()),
            install_rpy2,
        });
        Ok(Robj::from(true))
    })
}

/// Start one remote request: `req` is the request (a list, serialized here);
/// the job's
/// value is `list(value = <answer bytes>, meta = list(...))`. The timeout
/// bounds the whole request (upload, command, download). `limits` is
/// c(inline_request_max, inline_answer_max) in bytes.
/// @noRd
#[extendr]
fn rust_request_start(id: i32, req: Robj, kind: &str, timeout: Robj, poll_max: Robj, cluster_timeout: Robj, limits: Robj) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
        let mut opts = run_options(&timeout, &poll_max, &cluster_timeout)?;
        // The request object is serialized here, straight into the bytes
        // that travel (serialize() in R would make an R raw vector to copy).
        let bytes = bytes::Bytes::from(super::serialize::serialize_native(&req));
        opts.poll_kind = Some(format!("{kind} {}", bytes.len().max(1).ilog2()));
        let total = opts.timeout.take();
        let mut lim = Limits::default();
        if let Some(v) = limits.as_real_slice().filter(|v| v.len() == 2) {
            lim.inline_request_max = v[0].max(0.0) as usize;
            lim.inline_answer_max = v[1].max(0.0) as usize;
        }
        let ticket = protocol::state(&session).ticket();
        let job = jobs::spawn(move |ctl| async move {
            let work = protocol::request(session, ticket, bytes, lim, opts, ctl);
            crate::deadline::scope(total, work).await.map(Output::Answer)
        })?;
        Ok(job_id(job))
    })
}

/// Start installing the bootstrap in the session's context; the job's value
/// is what the bootstrap reported (R, rpy2 and Python versions, pid).
/// @noRd
#[extendr]
fn rust_bootstrap_start(id: i32, timeout: Robj, poll_max: Robj, cluster_timeout: Robj) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
        let opts = run_options(&timeout, &poll_max, &cluster_timeout)?;
        let job = jobs::spawn(move |ctl| async move {
            let st = protocol::state(&session);
            let info = crate::deadline::scope(opts.timeout, protocol::bootstrap(&session, &st, &opts, &ctl)).await?;
            Ok(Output::Json(serde_json::Value::Object(info)))
        })?;
        Ok(job_id(job))
    })
}

/// The Python of a bootstrap command (tests run it outside a cluster).
/// @noRd
#[extendr]
fn rust_bootstrap_code(module: Raw, dispatcher: Raw, install_rpy2: bool) -> Robj {
    guard(|| {
        let src = Sources {
            module: bytes::Bytes::copy_from_slice(module.as_slice()),
            dispatcher: bytes::Bytes::copy_from_slice(dispatcher.as_slice()),
            install_rpy2,
        };
        Ok(Robj::from(protocol::bootstrap_code(&src)))
    })
}

/// The Python of one request command: `req` inline (raw) or `paths` of its
/// staged parts; the answer goes to `result_path` when larger than `inline_max`.
/// @noRd
#[extendr]
fn rust_call_code(request_id: &str, req: Robj, paths: Robj, result_path: &str, inline_max: f64) -> Robj {
    guard(|| {
        let parts: Vec<String> = paths.as_str_vector().map(|v| v.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
        let code = protocol::call_code_for(request_id, req.as_raw_slice().unwrap_or(&[]), &parts, result_path, inline_max as usize)?;
        Ok(Robj::from(code))
    })
}

/// The dbrxr marker of a command's output: `list(kind, payload, fields)`.
/// @noRd
#[extendr]
fn rust_parse_marker(text: &str) -> Robj {
    guard(|| {
        let (kind, payload) = protocol::parse_marker(text)?;
        let fields = json_to_robj(&serde_json::Value::Object(protocol::parse_fields(&payload)));
        Ok(List::from_pairs([("kind", Robj::from(kind)), ("payload", Robj::from(payload)), ("fields", fields)]).into())
    })
}

/// Debug counter: calls from R into Rust so far, and how many of them only
/// waited on a job. Not counted itself.
/// @noRd
#[extendr]
fn rust_debug_calls() -> Robj {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as f64;
    List::from_pairs([("calls", Robj::from(get(&CALLS))), ("waits", Robj::from(get(&WAIT_CALLS)))]).into()
}

/// Start running `code` in the session's context. Options in seconds; NULL
/// for defaults. `poll_fixed` (benchmarks only) polls at a fixed interval,
/// checking at once first; a negative value sleeps before the first check too.
/// @noRd
#[extendr]
fn rust_exec_start(
    id: i32,
    code: &str,
    language: &str,
    timeout: Robj,
    poll_max: Robj,
    cluster_timeout: Robj,
    poll_fixed: Robj,
) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
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
fn rust_cluster_status_start(id: i32) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
        let job = jobs::spawn(move |ctl| async move {
            let d = ctl.run(session.cluster_details()).await?;
            serde_json::to_value(d)
                .map(Output::Json)
                .map_err(|e| Error::internal(format!("could not encode cluster details: {e}")))
        })?;
        Ok(job_id(job))
    })
}

/// Start staging a raw vector (`x` raw) or a local file (`x` a path). With
/// `path` NULL it goes under its content hash in `scope`; else to `path`.
/// @noRd
#[extendr]
fn rust_stage_start(id: i32, x: Robj, scope: &str, path: Robj, overwrite: bool) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
        let source = match x.as_raw_slice() {
            Some(b) => Source::Bytes(bytes::Bytes::copy_from_slice(b)),
            None => match opt_string(&x) {
                Some(p) => Source::File(std::path::PathBuf::from(p)),
                None => return Err(Error::input("expected a raw vector or a file path")),
            },
        };
        let scope = Scope::parse(scope)?;
        let path = opt_string(&path);
        let job = jobs::spawn(move |ctl| async move {
            let staged = match path {
                Some(p) => staging::stage_at(&session, &p, source, overwrite, &ctl).await?,
                None => staging::stage(&session, source, scope, &ctl).await?,
            };
            Ok(Output::Json(staged.to_json()))
        })?;
        Ok(job_id(job))
    })
}

/// Start downloading `path`: into memory (a raw vector) when `dest` is NULL,
/// else atomically into the file `dest` (returns its size).
/// @noRd
#[extendr]
fn rust_fetch_start(id: i32, path: &str, dest: Robj) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
        let path = path.to_string();
        let dest = opt_string(&dest);
        let job = jobs::spawn(move |ctl| async move {
            match dest {
                None => staging::fetch(&session, &path, &ctl).await.map(Output::Bytes),
                Some(d) => staging::fetch_to_file(&session, &path, std::path::Path::new(&d), &ctl)
                    .await
                    .map(|n| Output::Json(serde_json::json!(n as f64))),
            }
        })?;
        Ok(job_id(job))
    })
}

/// Start removing a remote file.
/// @noRd
#[extendr]
fn rust_remove_start(id: i32, path: &str) -> Robj {
    guard(|| {
        let session = SESSIONS.get(id)?;
        let path = path.to_string();
        let job = jobs::spawn(move |ctl| async move {
            ctl.run(staging::remove(&session, &path)).await.map(|_| Output::Json(serde_json::json!(true)))
        })?;
        Ok(job_id(job))
    })
}

/// Ctrl-C detection from Rust without unwinding through Rust frames: run
/// `R_CheckUserInterrupt` under `R_ToplevelExec`, which returns FALSE when it
/// jumped (the interrupt is consumed; R re-raises it with `rlang::interrupt()`).
/// Only ever called on R's main thread (we are inside `.Call`).
mod interrupt {
    use std::os::raw::{c_int, c_void};
    extern "C" {
        fn R_ToplevelExec(fun: Option<unsafe extern "C" fn(*mut c_void)>, data: *mut c_void) -> c_int;
        fn R_CheckUserInterrupt();
    }
    unsafe extern "C" fn check(_: *mut c_void) {
        R_CheckUserInterrupt();
    }
    pub fn pending() -> bool {
        // SAFETY: main R thread; the callback only checks for an interrupt.
        unsafe { R_ToplevelExec(Some(check), std::ptr::null_mut()) == 0 }
    }
}

/// Slices of a wait between two interrupt checks.
const SLICE: Duration = Duration::from_millis(20);

/// Wait up to `budget_ms` for a job: `list(done = FALSE, progress, elapsed,
/// interrupted)` or `list(done = TRUE, value)`; a failed job returns its
/// error. Ctrl-C is checked every 20 ms and ends the wait with `interrupted = TRUE`.
/// @noRd
#[extendr]
fn rust_job_wait(job: i32, budget_ms: f64) -> Robj {
    WAIT_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    guard(|| {
        let budget = Duration::from_millis(budget_ms.clamp(0.0, 10_000.0) as u64);
        let started = std::time::Instant::now();
        let mut interrupted = false;
        let poll = loop {
            let left = budget.saturating_sub(started.elapsed());
            let p = jobs::wait(job, left.min(SLICE))?;
            if matches!(p, Poll::Done(_)) || left <= SLICE {
                break p;
            }
            if interrupt::pending() {
                interrupted = true;
                break p;
            }
        };
        match poll {
            Poll::Running { progress, elapsed } => Ok(List::from_pairs([
                ("done", Robj::from(false)),
                ("progress", Robj::from(progress)),
                ("elapsed", Robj::from(elapsed.as_secs_f64())),
                ("interrupted", Robj::from(interrupted)),
            ])
            .into()),
            Poll::Done(result) => {
                let value = match result? {
                    Output::Json(v) => json_to_robj(&v),
                    Output::Bytes(b) => Raw::from_bytes(&b).into(),
                    Output::Answer(a) => {
                        let value: Robj = Raw::from_bytes(&a.bytes).into();
                        return Ok(List::from_pairs([
                            ("done", Robj::from(true)),
                            ("value", value),
                            ("meta", json_to_robj(&a.meta)),
                        ])
                        .into());
                    }
                };
                Ok(List::from_pairs([("done", Robj::from(true)), ("value", value)]).into())
            }
        }
    })
}

/// Whether a job has finished: never waits, never takes its result (for
/// non-blocking checks such as `future::resolved()`).
/// @noRd
#[extendr]
fn rust_job_done(job: i32) -> Robj {
    guard(|| Ok(Robj::from(jobs::finished(job))))
}

/// Cancel a job (it cancels its remote command) and wait for it up to ~2 s.
/// Unknown (finished) jobs are fine.
/// @noRd
#[extendr]
fn rust_job_cancel(job: i32) -> Robj {
    guard(|| {
        jobs::cancel(job, Duration::from_millis(2000))?;
        Ok(Robj::from(true))
    })
}

/// Session facts R needs: the current context id (NULL before the first
/// command), the staging root, the session id and its staging directory
/// (removed when the session closes).
/// @noRd
#[extendr]
fn rust_session_info(id: i32) -> Robj {
    guard(|| {
        let s = SESSIONS.get(id)?;
        let ctx = s.context_id().map(Robj::from).unwrap_or_else(|| Robj::from(()));
        // Whoever learns the session directory may have the cluster write there.
        let dir = staging::session_dir(&s);
        Ok(List::from_pairs([
            ("context_id", ctx),
            ("session_id", Robj::from(s.id.as_str())),
            ("staging", Robj::from(s.staging.root.api_path())),
            ("session_dir", Robj::from(dir.api_path())),
            ("session_cluster_dir", Robj::from(dir.cluster_path())),
        ])
        .into())
    })
}

extendr_module! {
    mod session;
    fn rust_exec_start;
    fn rust_protocol_setup;
    fn rust_request_start;
    fn rust_bootstrap_start;
    fn rust_debug_calls;
    fn rust_bootstrap_code;
    fn rust_call_code;
    fn rust_parse_marker;
    fn rust_cluster_status_start;
    fn rust_stage_start;
    fn rust_fetch_start;
    fn rust_remove_start;
    fn rust_job_wait;
    fn rust_job_done;
    fn rust_job_cancel;
    fn rust_session_info;
}
