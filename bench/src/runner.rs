//! Thread-per-core execution: N OS threads, each with its own current-thread tokio
//! runtime running its share of the connections, plus the main thread that shows
//! progress and turns Ctrl-C into a clean stop.

use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::pacing::Schedule;
use crate::report::Stats;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How often the watcher checks whether the workers are done.
const WATCH_EVERY: Duration = Duration::from_millis(20);
/// Width of the progress bar in characters.
const BAR_WIDTH: usize = 30;

/// A worker's future: runs on one thread, need not be `Send`.
pub type LocalTask = Pin<Box<dyn Future<Output = Stats>>>;

/// A failure to run the load at all (as opposed to errors counted in the report).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunError {
    /// A runtime or thread could not be created.
    #[error("cannot start worker: {0}")]
    Start(#[from] std::io::Error),
    /// A worker thread panicked.
    #[error("a worker thread panicked")]
    WorkerPanicked,
    /// The run has neither a count nor a duration bound.
    #[error("give a message/query count, a duration, or both")]
    Unbounded,
    /// A bad workload specification.
    #[error(transparent)]
    Spec(#[from] crate::workload::SpecError),
    /// TLS client setup failed.
    #[error("tls setup: {0}")]
    Tls(#[from] rustls::Error),
    /// A bad option value.
    #[error("{0}")]
    Option(String),
}

/// Live counters for the progress line, updated by every worker.
#[derive(Debug, Default)]
pub struct Progress {
    /// Units finished (any outcome).
    pub done: AtomicU64,
    /// Units answered positively.
    pub ok: AtomicU64,
    /// Units not answered positively.
    pub not_ok: AtomicU64,
    /// Errors that count towards the error budget.
    pub errors: AtomicU64,
}

impl Progress {
    /// Counts one finished unit.
    pub fn finish(&self, ok: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.not_ok.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one error; stops the schedule once `errors_max` is reached.
    pub fn error(&self, schedule: &Schedule, errors_max: u64) {
        if self.errors.fetch_add(1, Ordering::Relaxed) + 1 >= errors_max {
            schedule.stop();
        }
    }
}

/// Runs `work(i)` for `i in 0..threads`, one thread and runtime each, until all finish.
///
/// Returns every worker's stats and the wall time. Ctrl-C stops the schedule; workers
/// then finish what is in flight and return.
pub fn run_threads<F>(
    threads: usize,
    schedule: Arc<Schedule>,
    progress: Arc<Progress>,
    show_progress: bool,
    work: F,
) -> Result<(Vec<Stats>, Duration), RunError>
where
    F: Fn(usize) -> LocalTask + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let work = Arc::clone(&work);
        let h = std::thread::Builder::new()
            .name(format!("bench-{i}"))
            .spawn(move || -> Result<(Stats, Instant), std::io::Error> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let local = tokio::task::LocalSet::new();
                let stats = local.block_on(&rt, work(i));
                Ok((stats, Instant::now()))
            })?;
        handles.push(h);
    }
    watch(&handles, &schedule, &progress, show_progress, start)?;
    let mut all = Vec::with_capacity(threads);
    // Wall time ends when the last worker did, not when the watcher noticed.
    let mut end = start;
    for h in handles {
        let (stats, done) = h.join().map_err(|_| RunError::WorkerPanicked)??;
        all.push(stats);
        end = end.max(done);
    }
    Ok((all, end - start))
}

/// Main-thread loop: progress line and Ctrl-C, until every worker thread is done.
fn watch<T>(
    handles: &[std::thread::JoinHandle<T>],
    schedule: &Schedule,
    progress: &Progress,
    show: bool,
    start: Instant,
) -> Result<(), RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let show = show && std::io::stderr().is_terminal();
    rt.block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut ctrl_c_armed = true;
        let mut tick = tokio::time::interval(WATCH_EVERY);
        let mut last_draw = Instant::now();
        // Ends when all workers are done; they end by themselves (bounded schedule,
        // reply timeouts), so this loop is bounded too.
        while !handles.iter().all(|h| h.is_finished()) {
            tokio::select! {
                r = &mut ctrl_c, if ctrl_c_armed => {
                    // Poll the signal future only once to completion.
                    ctrl_c_armed = false;
                    if r.is_ok() {
                        eprintln!("\ninterrupted: finishing what is in flight");
                        schedule.stop();
                    }
                }
                _ = tick.tick() => {
                    if show && last_draw.elapsed() >= PROGRESS_EVERY {
                        last_draw = Instant::now();
                        eprint!("\r{}", progress_line(schedule, progress, start.elapsed()));
                        let _ = std::io::stderr().flush();
                    }
                }
            }
        }
        if show {
            eprintln!("\r{}", progress_line(schedule, progress, start.elapsed()));
        }
    });
    Ok(())
}

/// One progress line: a bar over the count or duration bound, then live counters.
pub fn progress_line(schedule: &Schedule, p: &Progress, elapsed: Duration) -> String {
    let done = p.done.load(Ordering::Relaxed);
    let by_count = schedule.count_max().map(|m| done as f64 / m.max(1) as f64);
    let by_time = schedule
        .duration()
        .map(|d| elapsed.as_secs_f64() / d.as_secs_f64().max(1e-9));
    let frac = match (by_count, by_time) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 0.0,
    }
    .clamp(0.0, 1.0);
    let filled = (frac * BAR_WIDTH as f64) as usize;
    let rate = p.ok.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64().max(1e-9);
    format!(
        "[{}{}] {:>3.0}% {:>7.1}s  done {}  ok {}  not ok {}  {:.0}/s ",
        "#".repeat(filled),
        " ".repeat(BAR_WIDTH - filled),
        frac * 100.0,
        elapsed.as_secs_f64(),
        done,
        p.ok.load(Ordering::Relaxed),
        p.not_ok.load(Ordering::Relaxed),
        rate
    )
}

/// Merges every worker's stats into one.
pub fn merge(all: &[Stats]) -> Stats {
    let mut total = Stats::new();
    for s in all {
        total.merge(s);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::Mode;

    #[test]
    fn progress_bar_tracks_the_count() {
        // Goal: half the count done draws half the bar and 50 %.
        let s = Schedule::new(Mode::Closed, Some(10), None);
        let p = Progress::default();
        for _ in 0..5 {
            p.finish(true);
        }
        let line = progress_line(&s, &p, Duration::from_secs(1));
        assert!(line.contains(&"#".repeat(BAR_WIDTH / 2)), "{line}");
        assert!(line.contains(" 50%"), "{line}");
        assert!(line.contains("ok 5"), "{line}");
    }

    #[test]
    fn error_budget_stops_the_schedule() {
        // Goal: the schedule stops exactly when the errors_max-th error is counted.
        let s = Schedule::new(Mode::Closed, Some(100), None);
        let p = Progress::default();
        p.error(&s, 3);
        p.error(&s, 3);
        assert!(!s.is_stopped());
        p.error(&s, 3);
        assert!(s.is_stopped());
    }

    #[test]
    fn threads_run_and_merge() {
        // Goal: every worker runs once on its own thread and all stats come back.
        let s = Arc::new(Schedule::new(Mode::Closed, Some(1), None));
        let p = Arc::new(Progress::default());
        let (all, _) = run_threads(3, s, p, false, |i| {
            Box::pin(async move {
                let mut st = Stats::new();
                st.ok = i as u64 + 1;
                st
            })
        })
        .unwrap_or_default();
        assert_eq!(merge(&all).ok, 6);
    }
}
