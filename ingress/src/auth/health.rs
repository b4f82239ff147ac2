//! Whether this core's resolver answers. Consecutive checks the resolver left unanswered mark
//! it down; while it is down, checks answer temperror at once without a query, and one probe
//! query at a time (at most one per interval) asks whether it is back.
//!
//! The state machine is sans-io: callers pass the time and run the probe themselves.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What one check tells about the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Some DNS answer came back (a record, NXDOMAIN, even SERVFAIL): the resolver is there.
    Answered,
    /// The check was cut by its deadline, or ended in a temperror no sooner than one DNS
    /// timeout: nothing came back.
    Unanswered,
    /// Nothing to learn (no query was needed, or it failed fast, e.g. from the cache).
    Unknown,
}

/// A change of state the caller counts and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The resolver was just marked down.
    Down,
    /// A probe was answered: the resolver is up again.
    Up,
}

#[derive(Debug)]
struct State {
    /// Unanswered checks in a row while up.
    unanswered: u32,
    /// Down, and when the next probe may start.
    down: Option<Instant>,
    /// A probe query is in flight.
    probing: bool,
}

/// The health of one core's resolver.
#[derive(Debug)]
pub(crate) struct ResolverHealth {
    state: Mutex<State>,
    unanswered_max: u32,
    probe_interval: Duration,
}

impl ResolverHealth {
    /// Up; `unanswered_max` unanswered checks in a row mark it down, probes are
    /// `probe_interval` apart.
    pub(crate) fn new(unanswered_max: u32, probe_interval: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                unanswered: 0,
                down: None,
                probing: false,
            }),
            unanswered_max: unanswered_max.max(1),
            probe_interval,
        }
    }

    /// True while the resolver is marked down (checks must not query it).
    pub(crate) fn is_down(&self) -> bool {
        self.state.lock().down.is_some()
    }

    /// While down: true when a probe should start now (none in flight and the interval has
    /// passed); the caller must then run it and report through [`Self::probe_finished`].
    pub(crate) fn take_probe(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        match s.down {
            Some(next) if !s.probing && now >= next => {
                s.probing = true;
                true
            }
            _ => false,
        }
    }

    /// Records the outcome of a check that queried the resolver.
    pub(crate) fn record(&self, outcome: Outcome, now: Instant) -> Option<Transition> {
        let mut s = self.state.lock();
        if s.down.is_some() {
            // A check that started before the resolver went down; only probes bring it back.
            return None;
        }
        match outcome {
            Outcome::Answered => s.unanswered = 0,
            Outcome::Unknown => {}
            Outcome::Unanswered => {
                s.unanswered += 1;
                if s.unanswered >= self.unanswered_max {
                    s.unanswered = 0;
                    // The first probe goes out at once: a resolver that merely dropped a few
                    // queries is back after one round trip.
                    s.down = Some(now);
                    return Some(Transition::Down);
                }
            }
        }
        None
    }

    /// Ends the probe in flight: an answer brings the resolver up, silence schedules the
    /// next probe one interval later.
    pub(crate) fn probe_finished(&self, answered: bool, now: Instant) -> Option<Transition> {
        let mut s = self.state.lock();
        s.probing = false;
        if answered {
            let was_down = s.down.take().is_some();
            s.unanswered = 0;
            return was_down.then_some(Transition::Up);
        }
        if s.down.is_some() {
            s.down = Some(now + self.probe_interval);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(2);

    #[test]
    fn unanswered_in_a_row_mark_it_down_and_an_answer_resets_the_count() {
        let h = ResolverHealth::new(3, INTERVAL);
        let t = Instant::now();
        assert_eq!(h.record(Outcome::Unanswered, t), None);
        assert_eq!(h.record(Outcome::Unanswered, t), None);
        assert_eq!(h.record(Outcome::Answered, t), None);
        assert_eq!(h.record(Outcome::Unanswered, t), None);
        assert_eq!(h.record(Outcome::Unknown, t), None);
        assert_eq!(h.record(Outcome::Unanswered, t), None);
        assert!(!h.is_down());
        assert_eq!(h.record(Outcome::Unanswered, t), Some(Transition::Down));
        assert!(h.is_down());
        assert_eq!(
            h.record(Outcome::Answered, t),
            None,
            "only a probe brings it back"
        );
        assert!(h.is_down());
    }

    #[test]
    fn one_probe_at_a_time_one_interval_apart_and_an_answer_brings_it_up() {
        let h = ResolverHealth::new(1, INTERVAL);
        let t = Instant::now();
        assert!(!h.take_probe(t), "no probe while up");
        assert_eq!(h.record(Outcome::Unanswered, t), Some(Transition::Down));
        assert!(h.take_probe(t), "the first probe goes out at once");
        assert!(!h.take_probe(t), "one probe in flight at most");
        assert_eq!(h.probe_finished(false, t), None);
        assert!(!h.take_probe(t + INTERVAL / 2), "not before the interval");
        assert!(h.take_probe(t + INTERVAL));
        assert_eq!(h.probe_finished(true, t + INTERVAL), Some(Transition::Up));
        assert!(!h.is_down());
        assert!(!h.take_probe(t + INTERVAL * 3));
    }
}
