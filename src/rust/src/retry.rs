//! Retrying: one policy and one loop for everything the client sends (API
//! calls, OAuth token requests, transfers).
//!
//! It sits below both `auth` and `http` and knows neither: a caller makes one
//! attempt and says how it ended ([`Attempt`]); [`RetryPolicy::run`] decides
//! whether and when to try again. What is retried (reference §4.5): 429 and
//! 503 (an integer `Retry-After` is honoured, capped), connection failures,
//! the transient messages the SDKs know, with capped
//! exponential backoff and full jitter inside a budget of attempts and time.
//! A request marked [`Replay::Never`] (`commands/execute`) is resent only when
//! the server surely did not run it: it answered with an error, or the
//! connection was never made. The call's deadline ([`crate::deadline`])
//! bounds every attempt and every wait.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::deadline;
use crate::error::{Error, Result};

/// Longest time one attempt may take (headers and body), unless the request
/// sets its own (big transfers). The SDKs use 60 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Messages that mean "try again" whatever the status (SDKs, reference §4.5).
const TRANSIENT_MESSAGES: &[&str] = &[
    "com.databricks.backend.manager.util.UnknownWorkerEnvironmentException",
    "does not have any associated worker environments",
    "There is no worker environment with id",
    "Unknown worker environment",
    "ClusterNotReadyException",
    "Unexpected error",
    "Please try again later or try a faster operation.",
    "RPC token bucket limit has been exceeded",
    "REQUEST_LIMIT_EXCEEDED",
];

/// Whether a request may be sent again after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Reads, and writes that are idempotent (status, put with overwrite...).
    Safe,
    /// Resend only if the server surely did not act on it (`commands/execute`).
    Never,
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt<T> {
    Done(T),
    /// Try again after the given wait (the policy's backoff when `None`).
    Retry(Error, Option<Duration>),
    Fail(Error),
}

/// How hard the client tries before giving up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total (first try included).
    pub max_attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
    /// First backoff ceiling; doubles each retry up to `cap`.
    pub base: Duration,
    pub cap: Duration,
    /// Longest `Retry-After` we honour.
    pub retry_after_cap: Duration,
    /// Attempts when the connection cannot be made: a host that refuses
    /// connections should fail in seconds, not after the whole time budget.
    /// (A connection dropped mid-request counts against `max_attempts`.)
    pub max_network_attempts: u32,
    /// Longest time one attempt may take when the request sets none.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 30,
            max_elapsed: Duration::from_secs(300),
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
            retry_after_cap: Duration::from_secs(60),
            max_network_attempts: 5,
            attempt_timeout: REQUEST_TIMEOUT,
        }
    }
}

impl RetryPolicy {
    /// The policy of auth endpoints (token, discovery): same backoff, three
    /// attempts, as a login that fails should say so quickly.
    pub fn auth() -> Self {
        RetryPolicy { max_attempts: 3, ..Default::default() }
    }

    /// The policy of creating an execution context that ended in `Error`
    /// (an overloaded driver): four attempts, slower backoff.
    pub fn context() -> Self {
        RetryPolicy { max_attempts: 4, base: Duration::from_millis(500), ..Default::default() }
    }

    /// The policy of a whole DBFS upload that came out wrong (each of its
    /// requests has retried already): three tries, from the start.
    pub fn upload() -> Self {
        RetryPolicy { max_attempts: 3, ..Default::default() }
    }

    /// Statuses that mean "try again later".
    pub fn retryable_status(status: u16) -> bool {
        status == 429 || status == 503
    }

    /// Full-jitter backoff before retry number `retry` (1-based):
    /// uniform in `[0, min(cap, base * 2^(retry-1))]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(if ms == 0 { 0 } else { rand::thread_rng().gen_range(0..=ms) })
    }

    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
        std::cmp::min(self.cap, self.base.saturating_mul(factor))
    }

    /// The wait a `Retry-After` asks for (integer seconds only, as the SDKs),
    /// capped, plus up to 50 ms of jitter so clients don't stampede.
    pub fn retry_after(&self, header: Option<&str>) -> Option<Duration> {
        let secs: u64 = header?.trim().parse().ok()?;
        let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..=50));
        Some(std::cmp::min(Duration::from_secs(secs), self.retry_after_cap) + jitter)
    }

    /// The time one attempt may take: the request's own, else the policy's,
    /// never past the call's deadline.
    pub fn attempt_limit(&self, own: Option<Duration>) -> Duration {
        deadline::cap(own.unwrap_or(self.attempt_timeout)).max(Duration::from_millis(1))
    }

    /// The server answered `status` with error `err`: it did not act on the
    /// request, so even a [`Replay::Never`] request may be sent again when
    /// the answer means "later" (429/503 with their `Retry-After`, a
    /// throttling code, a transient message).
    pub fn answered<T>(&self, err: Error, status: u16, retry_after: Option<&str>) -> Attempt<T> {
        if Self::retryable_status(status) {
            let wait = self.retry_after(retry_after);
            return Attempt::Retry(err, wait);
        }
        if is_transient_message(&err.message) || err.error_code.as_deref().is_some_and(is_throttle_code) {
            return Attempt::Retry(err, None);
        }
        Attempt::Fail(err)
    }

    /// No (whole) answer came: `err` says why. A connection never made is
    /// always retried (and counted against `max_network_attempts`); a request
    /// that may have arrived is retried only when it is safe to replay.
    pub fn unanswered<T>(&self, err: Error, never_sent: bool, replay: Replay) -> Attempt<T> {
        let err = if never_sent { err.field("never_sent", "true") } else { err };
        if never_sent || replay == Replay::Safe {
            return Attempt::Retry(err, None);
        }
        Attempt::Fail(
            err.hint("the request may have reached the workspace, so it was not sent again (it may have run)")
                .hint("check the outcome on the cluster before running it again"),
        )
    }

    /// Make attempts with `attempt` until one is done or fails for good, the
    /// budget of attempts or time is spent, or the call's deadline passes
    /// (then the error is a timeout saying `what` was being sent).
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            if deadline::remaining().is_some_and(|r| r.is_zero()) {
                return Err(deadline::expired(&format!("sending {what}")).attempts(attempts));
            }
            attempts += 1;
            let outcome = match deadline::bound(&format!("waiting for {what}"), async { Ok(attempt().await) }).await {
                Ok(o) => o,
                Err(e) => return Err(e.attempts(attempts)),
            };
            let (err, wait) = match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fail(e) => return Err(e.attempts(attempts)),
                Attempt::Retry(e, wait) => (e, wait),
            };
            let wait = wait.unwrap_or_else(|| self.backoff(attempts));
            let limit = if err.get_field("never_sent").is_some() {
                self.max_network_attempts.min(self.max_attempts)
            } else {
                self.max_attempts
            };
            if deadline::would_pass(wait) {
                let e = deadline::expired(&format!("{what} was retried {attempts} times; last: {}", err.message));
                return Err(e.attempts(attempts));
            }
            if attempts >= limit || started.elapsed() + wait > self.max_elapsed {
                let e = err.hint(format!(
                    "gave up after {attempts} attempts in {:.1} s; the workspace may be overloaded: try again later",
                    started.elapsed().as_secs_f64()
                ));
                return Err(e.attempts(attempts));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

pub fn is_transient_message(msg: &str) -> bool {
    TRANSIENT_MESSAGES.iter().any(|m| msg.contains(m))
}

fn is_throttle_code(code: &str) -> bool {
    matches!(code, "RESOURCE_EXHAUSTED" | "REQUEST_LIMIT_EXCEEDED" | "TOO_MANY_REQUESTS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts, base: Duration::from_millis(1), cap: Duration::from_millis(2), ..Default::default() }
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(2), ..Default::default() };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(400));
        assert_eq!(p.ceiling(30), Duration::from_secs(2));
        for r in 1..40 {
            assert!(p.backoff(r) <= p.ceiling(r));
        }
    }

    #[test]
    fn retry_after_integer_only_and_capped() {
        let p = RetryPolicy { retry_after_cap: Duration::from_secs(5), ..Default::default() };
        let w = p.retry_after(Some("2")).unwrap();
        assert!(w >= Duration::from_secs(2) && w <= Duration::from_millis(2050));
        assert!(p.retry_after(Some("3600")).unwrap() <= Duration::from_millis(5050));
        assert!(p.retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")).is_none());
        assert!(p.retry_after(None).is_none());
    }

    #[test]
    fn transient_messages() {
        assert!(is_transient_message("x ClusterNotReadyException y"));
        assert!(!is_transient_message("Cluster x does not exist"));
    }

    #[test]
    fn answers_and_lost_requests_are_classified_once() {
        let p = RetryPolicy::default();
        let e = || Error::new(ErrorKind::Http, "x");
        assert!(matches!(p.answered::<()>(e(), 429, Some("1")), Attempt::Retry(_, Some(w)) if w >= Duration::from_secs(1)));
        assert!(matches!(p.answered::<()>(e(), 503, None), Attempt::Retry(_, None)));
        assert!(matches!(p.answered::<()>(e(), 400, None), Attempt::Fail(_)));
        let mut throttled = e();
        throttled.error_code = Some("REQUEST_LIMIT_EXCEEDED".into());
        assert!(matches!(p.answered::<()>(throttled, 400, None), Attempt::Retry(_, None)));
        // Safe requests are resent; unsafe ones only when never sent.
        assert!(matches!(p.unanswered::<()>(e(), false, Replay::Safe), Attempt::Retry(_, None)));
        assert!(matches!(p.unanswered::<()>(e(), true, Replay::Never), Attempt::Retry(ref e, None) if e.get_field("never_sent").is_some()));
        match p.unanswered::<()>(e(), false, Replay::Never) {
            Attempt::Fail(e) => assert!(e.hints.iter().any(|h| h.contains("may have run"))),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_loop_retries_until_done_and_counts_attempts() {
        let n = AtomicU32::new(0);
        let r = quick(5)
            .run("GET /x", || async {
                match n.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Attempt::Retry(Error::new(ErrorKind::Http, "busy"), None),
                    _ => Attempt::Done(7),
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_loop_gives_up_on_budgets_and_fails_at_once_on_fail() {
        let n = AtomicU32::new(0);
        let e = quick(4)
            .run("GET /x", || async {
                n.fetch_add(1, Ordering::SeqCst);
                Attempt::<()>::Retry(Error::new(ErrorKind::Http, "busy"), None)
            })
            .await
            .unwrap_err();
        assert_eq!((n.load(Ordering::SeqCst), e.attempts), (4, Some(4)));
        assert!(e.hints.iter().any(|h| h.contains("gave up after 4 attempts")), "{:?}", e.hints);

        // A connection never made is tried max_network_attempts times.
        let n = AtomicU32::new(0);
        let p = RetryPolicy { max_network_attempts: 2, ..quick(10) };
        let e = p
            .run("GET /x", || async {
                n.fetch_add(1, Ordering::SeqCst);
                p.unanswered::<()>(Error::new(ErrorKind::Network, "refused"), true, Replay::Never)
            })
            .await
            .unwrap_err();
        assert_eq!((n.load(Ordering::SeqCst), e.kind), (2, ErrorKind::Network));

        let n = AtomicU32::new(0);
        let e = quick(10)
            .run("GET /x", || async {
                n.fetch_add(1, Ordering::SeqCst);
                Attempt::<()>::Fail(Error::new(ErrorKind::Http, "no"))
            })
            .await
            .unwrap_err();
        assert_eq!((n.load(Ordering::SeqCst), e.attempts), (1, Some(1)));
    }

    #[tokio::test]
    async fn the_deadline_bounds_attempts_and_waits() {
        let e = deadline::scope(Some(Duration::from_millis(100)), async {
            quick(100)
                .run("GET /slow", || async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Attempt::Done(())
                })
                .await
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.contains("GET /slow"), "{}", e.message);

        // A Retry-After longer than the time left ends the call at once.
        let t0 = Instant::now();
        let e = deadline::scope(Some(Duration::from_millis(200)), async {
            quick(100).run("GET /x", || async { Attempt::<()>::Retry(Error::new(ErrorKind::Http, "429"), Some(Duration::from_secs(5))) }).await
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
