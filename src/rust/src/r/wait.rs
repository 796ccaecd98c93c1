//! Bindings for waiting on jobs: R owns the loop (Ctrl-C stays with R), and
//! waits in short slices; a job is cancelled on interrupt.

use std::time::Duration;

use extendr_api::prelude::*;

use super::convert::{guard, json_to_robj, WAIT_CALLS};
use crate::jobs::{self, Output, Poll};

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
            Poll::Running { progress, counts, elapsed } => {
                let (units, unit_text) = match counts {
                    Some(c) => (Robj::from(vec![c.done, c.total]), Robj::from(c.text)),
                    None => (Robj::from(()), Robj::from(())),
                };
                Ok(List::from_pairs([
                    ("done", Robj::from(false)),
                    ("progress", Robj::from(progress)),
                    ("units", units),
                    ("unit_text", unit_text),
                    ("elapsed", Robj::from(elapsed.as_secs_f64())),
                    ("interrupted", Robj::from(interrupted)),
                ])
                .into())
            }
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

extendr_module! {
    mod wait;
    fn rust_job_wait;
    fn rust_job_done;
    fn rust_job_cancel;
}
