//! When to look again: the polling schedules of commands, contexts and
//! clusters, and what a session learns about when its short commands finish.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Polling intervals: `first`, then ×`factor` each time, capped at `cap`.
#[derive(Debug, Clone)]
pub struct PollSchedule {
    next: Duration,
    /// The delay after an immediate (zero) one.
    first: Duration,
    /// The delay after `first`, when not `first` × `factor`.
    then: Option<Duration>,
    cap: Duration,
    factor: f64,
}

impl PollSchedule {
    pub fn new(first: Duration, cap: Duration) -> Self {
        let first = std::cmp::min(first, cap);
        PollSchedule { next: first, first, then: None, cap, factor: 1.5 }
    }
    /// An immediate check, then `first`, growing ×1.5 to `cap`.
    pub fn immediate(first: Duration, cap: Duration) -> Self {
        PollSchedule { next: Duration::ZERO, ..Self::new(first, cap) }
    }
    /// An immediate check, then every `every`: the strategy of peers
    /// (brickster 0.5 s, the prototype 1 s), kept for benchmarks.
    pub fn fixed(every: Duration) -> Self {
        PollSchedule { next: Duration::ZERO, first: every, then: None, cap: every, factor: 1.0 }
    }
    /// Every `every`, the first check included (no immediate check).
    pub fn fixed_sleep_first(every: Duration) -> Self {
        PollSchedule { next: every, first: every, then: None, cap: every, factor: 1.0 }
    }
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = if d.is_zero() {
            self.first
        } else if let Some(then) = self.then.take() {
            std::cmp::min(self.cap, then)
        } else {
            std::cmp::min(self.cap, d.mul_f64(self.factor))
        };
        d
    }
}

/// Second status check of a command with no estimate (the first is
/// immediate: short commands are often done by then).
pub const FIRST_POLL: Duration = Duration::from_millis(1);

/// When a session's short commands of each kind finish, learned from the
/// status checks that saw them end, so the first check lands just after.
/// dbrxr's own requests name their kind (operation, object, size); a warm
/// 1-row score finishes ~1.5 ms after it is submitted, and checks on a fixed
/// schedule would find it later or pay for checks that find it running.
/// Commands without a kind (a user's `dbx_exec()`) use the fixed schedule.
#[derive(Debug, Default)]
pub struct FinishEstimates {
    by_kind: Mutex<HashMap<String, Duration>>,
}

impl FinishEstimates {
    /// Only commands that finished within this teach the estimate.
    const SHORT: Duration = Duration::from_millis(20);
    const MIN: Duration = Duration::from_micros(100);
    /// Kinds remembered at most (then forgotten all at once).
    const KINDS: usize = 256;

    pub fn get(&self, kind: &str) -> Option<Duration> {
        self.by_kind.lock().unwrap_or_else(|p| p.into_inner()).get(kind).copied()
    }

    /// A command of `kind` was last seen running at `running` (time since
    /// submitting; None: never) and seen finished at `finished`; `first` when
    /// that was the first check, the one placed at the estimate.
    pub fn learn(&self, kind: &str, running: Option<Duration>, finished: Duration, first: bool) {
        if finished > Self::SHORT {
            return;
        }
        let mut m = self.by_kind.lock().unwrap_or_else(|p| p.into_inner());
        let next = match (m.get(kind), running) {
            // Caught at the estimate: try a little earlier next time.
            (Some(e), _) if first => e.mul_f64(0.9),
            // It ended somewhere between the two checks.
            (_, Some(r)) => (r + finished) / 2,
            (_, None) => finished,
        };
        if m.len() >= Self::KINDS && !m.contains_key(kind) {
            m.clear();
        }
        m.insert(kind.to_string(), next.max(Self::MIN));
    }

    /// The schedule of one command: with an estimate, the first check at it,
    /// then short growing intervals (a command that ends just after the
    /// estimate costs little); otherwise an immediate check, then
    /// [`FIRST_POLL`] growing ×1.5.
    pub fn schedule(&self, kind: Option<&str>, cap: Duration) -> PollSchedule {
        match kind.and_then(|k| self.get(k)) {
            Some(e) => PollSchedule {
                next: e.min(cap),
                first: e,
                then: Some((e / 2).max(Duration::from_micros(250))),
                cap,
                factor: 1.5,
            },
            None => PollSchedule::immediate(FIRST_POLL, cap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_starts_fast_and_grows_to_the_cap() {
        let mut s = PollSchedule::immediate(Duration::from_millis(3), Duration::from_secs(1));
        let ds: Vec<_> = (0..30).map(|_| s.next_delay()).collect();
        assert_eq!(ds[0], Duration::ZERO);
        assert_eq!(ds[1], Duration::from_millis(3));
        assert_eq!(PollSchedule::new(Duration::from_millis(3), Duration::from_secs(1)).next_delay(), Duration::from_millis(3));
        assert!(ds.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*ds.last().unwrap(), Duration::from_secs(1));
        // Ten checks happen within the first ~0.5 s: short commands return fast.
        let first_ten: Duration = ds[..10].iter().sum();
        assert!(first_ten < Duration::from_millis(500), "{first_ten:?}");
        let mut f = PollSchedule::fixed(Duration::from_millis(500));
        assert_eq!(f.next_delay(), Duration::ZERO);
        assert_eq!(f.next_delay(), Duration::from_millis(500));
        assert_eq!(f.next_delay(), Duration::from_millis(500));
        let mut g = PollSchedule::fixed_sleep_first(Duration::from_millis(500));
        assert_eq!(g.next_delay(), Duration::from_millis(500));
        assert_eq!(g.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn the_first_check_follows_what_was_learned_per_kind() {
        let f = FinishEstimates::default();
        let cap = Duration::from_secs(1);
        let mut s = f.schedule(Some("score a"), cap);
        assert_eq!(s.next_delay(), Duration::ZERO);
        assert_eq!(s.next_delay(), FIRST_POLL);
        // Seen running at 0.2 ms, finished at 3 ms: it ended in between.
        f.learn("score a", Some(Duration::from_micros(200)), Duration::from_millis(3), false);
        assert_eq!(f.get("score a"), Some(Duration::from_micros(1600)));
        assert_eq!(f.get("score b"), None);
        let mut s = f.schedule(Some("score a"), cap);
        assert_eq!(s.next_delay(), Duration::from_micros(1600));
        // After a miss at the estimate, checks come soon and then grow.
        assert_eq!(s.next_delay(), Duration::from_micros(800));
        assert_eq!(s.next_delay(), Duration::from_micros(1200));
        let rest: Vec<_> = (0..40).map(|_| s.next_delay()).collect();
        assert_eq!(*rest.last().unwrap(), cap);
        // Caught at the estimate: the next one is a little earlier.
        f.learn("score a", None, Duration::from_micros(1600), true);
        assert_eq!(f.get("score a"), Some(Duration::from_micros(1440)));
        // Long commands teach nothing; commands without a kind use the fixed schedule.
        f.learn("score a", Some(Duration::from_millis(30)), Duration::from_millis(45), false);
        assert_eq!(f.get("score a"), Some(Duration::from_micros(1440)));
        assert_eq!(f.schedule(None, cap).next_delay(), Duration::ZERO);
    }
}
