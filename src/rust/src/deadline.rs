//! One deadline per call: the user's `timeout` bounds everything a job does
//! (connecting, every attempt, every body read, every retry wait, cluster
//! start), not each request separately.
//!
//! The deadline rides along the job's task as a task-local, so the transport
//! sees it without every layer passing it on. Work spawned on other tasks
//! (parallel transfers) is wrapped with [`inherit`] to keep it.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub total: Duration,
}

tokio::task_local! {
    static DEADLINE: Deadline;
}

/// Run `fut` under a deadline `total` from now (no deadline when `None`; an
/// enclosing deadline that is sooner wins).
pub async fn scope<F: Future>(total: Option<Duration>, fut: F) -> F::Output {
    let mine = total.map(|t| Deadline { at: Instant::now() + t, total: t });
    match (mine, current()) {
        (Some(d), Some(outer)) if outer.at <= d.at => fut.await,
        (Some(d), _) => DEADLINE.scope(d, fut).await,
        (None, _) => fut.await,
    }
}

/// Run `fut` under its own deadline `total` from now, whatever the enclosing
/// one (clean-up after expiry: cancelling the remote command).
pub async fn replace<F: Future>(total: Duration, fut: F) -> F::Output {
    DEADLINE.scope(Deadline { at: Instant::now() + total, total }, fut).await
}

/// Run `fut` (to be spawned on another task) under the current deadline.
pub fn inherit<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let d = current();
    async move {
        match d {
            Some(d) => DEADLINE.scope(d, fut).await,
            None => fut.await,
        }
    }
}

/// The deadline of the current task, if any.
pub fn current() -> Option<Deadline> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left before the deadline (`None`: no deadline).
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.at.saturating_duration_since(Instant::now()))
}

/// `limit` capped by the time left.
pub fn cap(limit: Duration) -> Duration {
    remaining().map_or(limit, |r| r.min(limit))
}

/// Whether waiting `wait` more would pass the deadline.
pub fn would_pass(wait: Duration) -> bool {
    remaining().is_some_and(|r| wait >= r)
}

/// The deadline's total as people write it: "8", "0.5", "120" (a timeout
/// that R passed as what was left of 8 s reads 8, not 7.9991509910000005).
pub fn total_text() -> String {
    let total = current().map(|d| d.total.as_secs_f64()).unwrap_or_default();
    let text = format!("{total:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// The error for a deadline that ran out while doing `what`.
pub fn expired(what: &str) -> Error {
    let total = total_text();
    Error::new(ErrorKind::Timeout, format!("the call did not finish within its timeout of {total} s ({what})"))
        .field("timeout", total)
        .hint("raise `timeout`, or check that the workspace is reachable and not overloaded")
}

/// Run `fut` until it ends or the deadline passes (then the error says `what`).
pub async fn bound<T>(what: &str, fut: impl Future<Output = crate::Result<T>>) -> crate::Result<T> {
    match remaining() {
        None => fut.await,
        Some(left) => match tokio::time::timeout(left, fut).await {
            Ok(r) => r,
            Err(_) => Err(expired(what)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scope_sets_and_nests_the_sooner_deadline() {
        assert!(current().is_none());
        scope(Some(Duration::from_secs(10)), async {
            assert!(remaining().unwrap() <= Duration::from_secs(10));
            scope(Some(Duration::from_secs(100)), async {
                assert!(remaining().unwrap() <= Duration::from_secs(10));
            })
            .await;
            scope(Some(Duration::from_secs(1)), async {
                assert!(remaining().unwrap() <= Duration::from_secs(1));
            })
            .await;
            let h = tokio::spawn(inherit(async { remaining() }));
            assert!(h.await.unwrap().is_some());
        })
        .await;
    }

    #[tokio::test]
    async fn bound_turns_expiry_into_a_timeout_error() {
        let r: crate::Result<()> = scope(Some(Duration::from_millis(50)), async {
            bound("sleeping", async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await
        })
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.contains("sleeping"), "{}", e.message);
    }
}
