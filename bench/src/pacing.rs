//! When each unit of work (message, query) is sent.
//!
//! Every unit takes a numbered ticket from one shared [`Schedule`]. In closed loop a
//! ticket is due at once and latency runs from when it was taken; in open loop ticket
//! `i` is due at `start + i / rate` and latency runs from that *intended* time, so a
//! stalled server shows up as latency instead of silently lowering the offered load
//! (no coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How units are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Each worker sends its next unit as soon as the previous one is answered.
    Closed,
    /// Units are due at a fixed total rate (per second), whatever the answers do.
    Open(f64),
}

impl Mode {
    /// Short description for reports ("closed" or "open 1000/s").
    pub fn describe(&self) -> String {
        match self {
            Self::Closed => "closed loop".into(),
            Self::Open(r) => format!("open loop {r}/s"),
        }
    }
}

/// One unit of work granted by the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticket {
    /// Sequence number, unique across all workers.
    pub seq: u64,
    /// When the unit is due; latency is measured from here.
    pub due: Instant,
}

/// Waits until `due`; returns at once (no timer, no wake-up) if it has passed, which in
/// closed loop is always.
pub async fn wait_until(due: Instant) {
    if due > Instant::now() {
        tokio::time::sleep_until(due.into()).await;
    }
}

/// The shared schedule: hands out tickets until a count, a deadline or a stop request.
#[derive(Debug)]
pub struct Schedule {
    mode: Mode,
    start: Instant,
    count_max: Option<u64>,
    deadline: Option<Instant>,
    next: AtomicU64,
    stopped: AtomicBool,
}

impl Schedule {
    /// A schedule starting now; at least one of `count_max` and `duration` bounds it.
    pub fn new(mode: Mode, count_max: Option<u64>, duration: Option<Duration>) -> Self {
        let start = Instant::now();
        Self {
            mode,
            start,
            count_max,
            deadline: duration.map(|d| start + d),
            next: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// The next ticket, or `None` once the run is over.
    pub fn next(&self) -> Option<Ticket> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        if self.count_max.is_some_and(|m| seq >= m) {
            return None;
        }
        let due = match self.mode {
            Mode::Closed => Instant::now(),
            Mode::Open(rate) => self.start + Duration::from_secs_f64(seq as f64 / rate),
        };
        if self.deadline.is_some_and(|d| due >= d) {
            return None;
        }
        Some(Ticket { seq, due })
    }

    /// Ends the run: no more tickets are handed out (Ctrl-C, error budget spent).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Whether [`Schedule::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The pacing mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The message/query count bound, if any.
    pub fn count_max(&self) -> Option<u64> {
        self.count_max
    }

    /// The duration bound, if any.
    pub fn duration(&self) -> Option<Duration> {
        self.deadline.map(|d| d - self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_loop_stops_at_the_count() {
        // Goal: exactly count_max tickets, numbered 0.., then None for good.
        let s = Schedule::new(Mode::Closed, Some(5), None);
        let seqs: Vec<u64> = std::iter::from_fn(|| s.next()).map(|t| t.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
        assert!(s.next().is_none());
    }

    #[test]
    fn open_loop_spaces_due_times_by_the_rate() {
        // Goal: at 100/s ticket i is due i * 10 ms after start, independent of when taken.
        let s = Schedule::new(Mode::Open(100.0), Some(1000), None);
        let t0 = s.next().map(|t| t.due);
        let t9 = (0..8).filter_map(|_| s.next()).last().map(|t| t.due);
        assert_eq!(t0, Some(s.start()));
        assert_eq!(t9, Some(s.start() + Duration::from_millis(80)));
    }

    #[test]
    fn open_loop_stops_at_the_deadline() {
        // Goal: with a 1 s duration at 10/s, tickets due at 0.0..0.9 s exist (10), no more.
        let s = Schedule::new(Mode::Open(10.0), None, Some(Duration::from_secs(1)));
        let n = std::iter::from_fn(|| s.next()).take(100).count();
        assert_eq!(n, 10);
    }

    #[test]
    fn stop_ends_the_schedule() {
        // Goal: stop() makes next() return None even with budget left.
        let s = Schedule::new(Mode::Closed, Some(100), None);
        assert!(s.next().is_some());
        s.stop();
        assert!(s.is_stopped());
        assert!(s.next().is_none());
    }
}
