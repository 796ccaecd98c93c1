//! When to look again: the polling schedules of commands, contexts and
//! clusters, and what a session learns about when its short commands finish.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Polling intervals: `first`, then ×`factor` each time, capped at `cap`;
/// optionally one check placed at a target time (a long command's learned
/// finish), after which the intervals start small again.
#[derive(Debug, Clone)]
pub struct PollSchedule {
    next: Duration,
    /// The delay after an immediate (zero) one.
    first: Duration,
    /// The delay after `first`, when not `first` × `factor`.
    then: Option<Duration>,
    cap: Duration,
    factor: f64,
    /// (when, the interval after it), measured from the first delay.
    target: Option<(Duration, Duration)>,
    /// Time since the first delay, as the delays add up.
    elapsed: Duration,
    checks: u32,
    /// Which check (1-based) landed on the target.
    target_check: Option<u32>,
}

impl PollSchedule {
    pub fn new(first: Duration, cap: Duration) -> Self {
        let first = std::cmp::min(first, cap);
        PollSchedule {
            next: first,
            first,
            then: None,
            cap,
            factor: 1.5,
            target: None,
            elapsed: Duration::ZERO,
            checks: 0,
            target_check: None,
        }
    }
    /// An immediate check, then `first`, growing ×1.5 to `cap`.
    pub fn immediate(first: Duration, cap: Duration) -> Self {
        PollSchedule { next: Duration::ZERO, ..Self::new(first, cap) }
    }
    /// An immediate check, then every `every`: the strategy of peers
    /// (brickster 0.5 s, the prototype 1 s), kept for benchmarks.
    pub fn fixed(every: Duration) -> Self {
        PollSchedule { next: Duration::ZERO, factor: 1.0, ..Self::new(every, every) }
    }
    /// Every `every`, the first check included (no immediate check).
    pub fn fixed_sleep_first(every: Duration) -> Self {
        PollSchedule { factor: 1.0, ..Self::new(every, every) }
    }
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_at(self.elapsed)
    }
    /// The next delay when `now` has passed since the first one (the time
    /// the checks themselves took included), so a target check lands on time.
    pub fn next_delay_at(&mut self, now: Duration) -> Duration {
        let mut d = self.next;
        self.next = if d.is_zero() {
            self.first
        } else if let Some(then) = self.then.take() {
            std::cmp::min(self.cap, then)
        } else {
            std::cmp::min(self.cap, d.mul_f64(self.factor))
        };
        if let Some((at, tail)) = self.target {
            if now + d >= at {
                d = at.saturating_sub(now);
                self.next = std::cmp::min(self.cap, tail);
                self.target = None;
                self.target_check = Some(self.checks + 1);
            }
        }
        self.checks += 1;
        self.elapsed = now + d;
        d
    }
    /// Whether the check after the last delay was the one placed at the
    /// learned finish.
    pub fn last_was_target(&self) -> bool {
        self.target_check == Some(self.checks)
    }
}

/// Second status check of a command with no estimate (the first is
/// immediate: short commands are often done by then).
pub const FIRST_POLL: Duration = Duration::from_millis(1);

/// When a session's commands of each kind finish, learned from the status
/// checks that saw them end, so a check lands just after. dbrxr's own
/// requests name their kind (target, operation, size); a warm 1-row score
/// finishes ~1.5 ms after it is submitted, and checks on a fixed schedule
/// would find it later or pay for checks that find it running. A short kind
/// is first checked at its estimate; a long one (a table write, ~1.3 s) keeps
/// the growing schedule, whose checks ×1.5 apart would find it up to a third
/// late, plus one check at its estimate and short intervals after it.
/// Commands without a kind (a user's `dbx_exec()`) use the plain schedule.
#[derive(Debug, Default)]
pub struct FinishEstimates {
    by_kind: Mutex<HashMap<String, Duration>>,
}

impl FinishEstimates {
    /// Commands that finished within this are first checked at their estimate.
    const SHORT: Duration = Duration::from_millis(20);
    /// Only commands that finished within this teach the estimate (beyond,
    /// the checks are `poll_max` apart anyway).
    const LONG: Duration = Duration::from_secs(60);
    const MIN: Duration = Duration::from_micros(100);
    /// Kinds remembered at most (then forgotten all at once).
    const KINDS: usize = 256;

    pub fn get(&self, kind: &str) -> Option<Duration> {
        self.by_kind.lock().unwrap_or_else(|p| p.into_inner()).get(kind).copied()
    }

    /// A command of `kind` was last seen running at `running` (time since
    /// submitting; None: never) and seen finished at `finished`; `at_estimate`
    /// when that was the check placed at the estimate.
    pub fn learn(&self, kind: &str, running: Option<Duration>, finished: Duration, at_estimate: bool) {
        if finished > Self::LONG {
            return;
        }
        let mut m = self.by_kind.lock().unwrap_or_else(|p| p.into_inner());
        let next = match (m.get(kind), running) {
            // Caught at the estimate: try a little earlier next time.
            (Some(e), _) if at_estimate => e.mul_f64(0.9),
            // It ended somewhere between the two checks.
            (_, Some(r)) => (r + finished) / 2,
            (_, None) => finished,
        };
        if m.len() >= Self::KINDS && !m.contains_key(kind) {
            m.clear();
        }
        m.insert(kind.to_string(), next.max(Self::MIN));
    }

    /// The schedule of one command: with a short estimate, the first check
    /// at it, then short growing intervals (a command that ends just after
    /// the estimate costs little); otherwise an immediate check, then
    /// [`FIRST_POLL`] growing ×1.5, with a long estimate one check at it and
    /// intervals from a twentieth of it after.
    pub fn schedule(&self, kind: Option<&str>, cap: Duration) -> PollSchedule {
        match kind.and_then(|k| self.get(k)) {
            Some(e) if e <= Self::SHORT => PollSchedule {
                next: e.min(cap),
                first: e,
                then: Some((e / 2).max(Duration::from_micros(250))),
                target_check: Some(1),
                ..PollSchedule::new(e, cap)
            },
            Some(e) => PollSchedule { target: Some((e, e / 20)), ..PollSchedule::immediate(FIRST_POLL, cap) },
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
        // Very long commands teach nothing; commands without a kind use the plain schedule.
        f.learn("score a", Some(Duration::from_secs(70)), Duration::from_secs(71), false);
        assert_eq!(f.get("score a"), Some(Duration::from_micros(1440)));
        assert_eq!(f.schedule(None, cap).next_delay(), Duration::ZERO);
    }

    /// Wall-clock times of the checks of a schedule, each check taking `rtt`.
    fn check_times(s: &mut PollSchedule, rtt: Duration, until: Duration) -> Vec<(Duration, bool)> {
        let mut now = Duration::ZERO;
        let mut out = vec![];
        while now < until {
            now += s.next_delay_at(now);
            out.push((now, s.last_was_target()));
            now += rtt;
        }
        out
    }

    #[test]
    fn a_long_kind_is_also_checked_at_its_learned_finish() {
        let f = FinishEstimates::default();
        let cap = Duration::from_secs(1);
        let rtt = Duration::from_millis(2);
        // With nothing learned, a 1.35 s table write is found at ~2 s.
        let plain = check_times(&mut f.schedule(Some("spark write 9"), cap), rtt, Duration::from_millis(1350));
        let (found, at_est) = *plain.last().unwrap();
        assert!(found > Duration::from_millis(1900) && !at_est, "{found:?}");
        let (running, _) = plain[plain.len() - 2];
        f.learn("spark write 9", Some(running), found, at_est);
        let e = f.get("spark write 9").unwrap();
        assert!(e > Duration::from_millis(1500) && e < Duration::from_millis(1800), "{e:?}");
        // Next time, the growing checks still come, one lands on the estimate
        // (on the wall clock, the checks' own time included), and the
        // intervals after it start from a twentieth of it.
        let mut s = f.schedule(Some("spark write 9"), cap);
        let times = check_times(&mut s, rtt, Duration::from_millis(1900));
        assert_eq!(times[0].0, Duration::ZERO);
        let hit = times.iter().position(|t| t.1).expect("a check at the estimate");
        assert_eq!(times[hit].0, e);
        assert!(hit > 10, "the growing checks before it stay: {hit}");
        assert_eq!(times[hit + 1].0 - times[hit].0 - rtt, e / 20);
        // Found there: the estimate moves a little earlier; a command that
        // ended between two checks is placed between them.
        f.learn("spark write 9", Some(times[hit - 1].0), e, true);
        assert_eq!(f.get("spark write 9"), Some(e.mul_f64(0.9)));
        f.learn("spark write 9", Some(Duration::from_millis(1300)), Duration::from_millis(1400), false);
        assert_eq!(f.get("spark write 9"), Some(Duration::from_millis(1350)));
        // A first call that waited for Spark to start (30 s) does not delay
        // the next one: the growing checks before the estimate find it.
        f.learn("spark write 9", Some(Duration::from_secs(29)), Duration::from_secs(30), false);
        let times = check_times(&mut f.schedule(Some("spark write 9"), cap), rtt, Duration::from_millis(1350));
        assert!(times.last().unwrap().0 < Duration::from_millis(2100));
    }
}
