//! Jobs: long operations (run a command, move bytes) spawned on the shared
//! runtime, so that the caller's thread only ever blocks for a short budget.
//!
//! extendr cannot see R interrupts, so R owns the loop: it calls [`wait`] with
//! a budget of ~150 ms until the job is done, and on Ctrl-C calls [`cancel`],
//! which asks the job to stop (the job cancels the remote command itself) and
//! returns within a bounded time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::control::Control;
use crate::error::{Error, Result};
use crate::runtime;

/// What a finished job produced.
#[derive(Debug)]
pub enum Output {
    Json(serde_json::Value),
    Bytes(Vec<u8>),
    /// A remote request's answer bytes and facts about the call.
    Answer(crate::protocol::Answer),
}

/// Where a job is.
#[derive(Debug)]
pub enum Poll {
    Running { progress: String, counts: Option<crate::control::Counts>, elapsed: Duration },
    Done(Result<Output>),
}

struct Job {
    control: Control,
    started: Instant,
    handle: tokio::sync::Mutex<JoinHandle<Result<Output>>>,
}

type Table = Mutex<(i32, HashMap<i32, Arc<Job>>)>;

fn table() -> &'static Table {
    static JOBS: OnceLock<Table> = OnceLock::new();
    JOBS.get_or_init(|| Mutex::new((0, HashMap::new())))
}

fn lock() -> std::sync::MutexGuard<'static, (i32, HashMap<i32, Arc<Job>>)> {
    table().lock().unwrap_or_else(|p| p.into_inner())
}

fn get(id: i32) -> Option<Arc<Job>> {
    lock().1.get(&id).cloned()
}

fn remove(id: i32) {
    lock().1.remove(&id);
}

/// Start `make(control)` on the runtime and return its id.
pub fn spawn<F, Fut>(make: F) -> Result<i32>
where
    F: FnOnce(Control) -> Fut,
    Fut: Future<Output = Result<Output>> + Send + 'static,
{
    let control = Control::default();
    let handle = runtime::runtime()?.spawn(make(control.clone()));
    let job = Arc::new(Job { control, started: Instant::now(), handle: tokio::sync::Mutex::new(handle) });
    let mut t = lock();
    t.0 += 1;
    let id = t.0;
    t.1.insert(id, job);
    Ok(id)
}

fn joined(r: std::result::Result<Result<Output>, tokio::task::JoinError>) -> Result<Output> {
    match r {
        Ok(out) => out,
        Err(e) if e.is_cancelled() => Err(Error::new(crate::ErrorKind::Cancelled, "the operation was cancelled")),
        Err(e) => Err(Error::internal(format!("a background task of dbrxr failed: {e}"))
            .hint("this is a bug in dbrxr; please report it")),
    }
}

/// Wait at most `budget` for job `id`. A finished job is forgotten.
pub fn wait(id: i32, budget: Duration) -> Result<Poll> {
    let job = get(id).ok_or_else(|| Error::internal(format!("unknown job {id} (already finished or cancelled)")))?;
    let done = runtime::block_on(async {
        let mut handle = job.handle.lock().await;
        tokio::time::timeout(budget, &mut *handle).await.ok()
    })?;
    match done {
        Some(r) => {
            remove(id);
            Ok(Poll::Done(joined(r)))
        }
        None => Ok(Poll::Running {
            progress: job.control.progress(),
            counts: job.control.counts(),
            elapsed: job.started.elapsed(),
        }),
    }
}

/// Whether job `id` has finished, without waiting and without taking its
/// result (a later [`wait`] returns it). Unknown ids count as finished: their
/// result was already taken, and [`wait`] says so.
pub fn finished(id: i32) -> bool {
    let Some(job) = get(id) else { return true };
    // Locked only briefly by wait/cancel; busy means someone is waiting on it.
    job.handle.try_lock().map(|h| h.is_finished()).unwrap_or(false)
}

/// Ask job `id` to stop and wait up to `grace` for it to clean up (cancel its
/// remote command); past that it is dropped. Unknown ids are fine (the job
/// may have just finished). Returns the job's final result if it ended.
pub fn cancel(id: i32, grace: Duration) -> Result<Option<Result<Output>>> {
    let Some(job) = get(id) else { return Ok(None) };
    job.control.cancel.cancel();
    let out = runtime::block_on(async {
        let mut handle = job.handle.lock().await;
        match tokio::time::timeout(grace, &mut *handle).await {
            Ok(r) => Some(joined(r)),
            Err(_) => {
                handle.abort();
                None
            }
        }
    })?;
    remove(id);
    Ok(out)
}

/// Jobs still registered (for tests and cleanup).
pub fn count() -> usize {
    lock().1.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_progress_then_result() {
        let id = spawn(|ctl| async move {
            ctl.set_progress("working");
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok(Output::Json(serde_json::json!(42)))
        })
        .unwrap();
        match wait(id, Duration::from_millis(20)).unwrap() {
            Poll::Running { progress, .. } => assert_eq!(progress, "working"),
            Poll::Done(_) => panic!("finished too early"),
        }
        let mut n = 0;
        loop {
            n += 1;
            if let Poll::Done(r) = wait(id, Duration::from_millis(50)).unwrap() {
                assert!(matches!(r.unwrap(), Output::Json(v) if v == 42));
                break;
            }
            assert!(n < 20);
        }
        assert!(wait(id, Duration::from_millis(1)).is_err());
    }

    #[test]
    fn finished_never_waits_nor_takes_the_result() {
        let id = spawn(|_| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Output::Json(serde_json::json!(7)))
        })
        .unwrap();
        let t = Instant::now();
        assert!(!finished(id));
        assert!(t.elapsed() < Duration::from_millis(50));
        let mut n = 0;
        while !finished(id) {
            n += 1;
            assert!(n < 200);
            std::thread::sleep(Duration::from_millis(10));
        }
        // The result is still there for wait().
        assert!(matches!(wait(id, Duration::ZERO).unwrap(), Poll::Done(Ok(Output::Json(v))) if v == 7));
        assert!(finished(id));
    }

    #[test]
    fn cancel_lets_the_job_clean_up_then_drops_it() {
        let id = spawn(|ctl| async move {
            ctl.cancel.cancelled().await;
            Err(Error::new(crate::ErrorKind::Cancelled, "stopped"))
        })
        .unwrap();
        let r = cancel(id, Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!(r.unwrap_err().kind, crate::ErrorKind::Cancelled);

        // A job that ignores cancellation is aborted after the grace period.
        let id = spawn(|_| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Output::Bytes(vec![]))
        })
        .unwrap();
        let t = Instant::now();
        assert!(cancel(id, Duration::from_millis(100)).unwrap().is_none());
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(cancel(id, Duration::from_millis(100)).unwrap().is_none());
    }
}
