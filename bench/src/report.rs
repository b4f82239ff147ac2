//! Measurements (HDR latency histogram, counters by reply code and error kind), the
//! summary table and its JSON form.
//!
//! Each worker thread owns one [`Stats`]; they are merged once at the end, so the hot
//! path never shares a histogram between threads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tracks (60 s in microseconds); slower samples saturate.
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant figures kept by the histogram (0.1 % value resolution).
const LATENCY_SIGFIG: u8 = 3;

/// Counters and latencies gathered by one worker.
#[derive(Debug, Clone)]
pub struct Stats {
    latency_us: Histogram<u64>,
    codes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    /// Units of work attempted (messages or queries).
    pub attempted: u64,
    /// Units that got a positive final answer (SMTP 2xx after the data, DNS answer).
    pub ok: u64,
    /// Units refused by the server (SMTP 4xx/5xx).
    pub rejected: u64,
    /// Units lost to an I/O, timeout or protocol error.
    pub failed: u64,
    /// Payload bytes of the units that got a positive answer.
    pub ok_bytes: u64,
    /// Connections (SMTP) or sockets (DNS) opened.
    pub connections: u64,
    /// Connections upgraded with STARTTLS.
    pub tls_sessions: u64,
    /// Connections the server closed with 421 (e.g. its messages-per-connection limit)
    /// after which the message was sent again on a new connection, as an MTA does.
    pub reconnects_421: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// An empty set of counters with a 1 µs .. 60 s latency histogram.
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
        // sigfig <= 5), so creation cannot fail.
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGFIG)
            .expect("constant histogram bounds are valid");
        Self {
            latency_us,
            codes: BTreeMap::new(),
            errors: BTreeMap::new(),
            attempted: 0,
            ok: 0,
            rejected: 0,
            failed: 0,
            ok_bytes: 0,
            connections: 0,
            tls_sessions: 0,
            reconnects_421: 0,
        }
    }

    /// Records one latency sample (saturating at [`LATENCY_US_MAX`]).
    pub fn record_latency(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us.saturating_record(us);
    }

    /// Counts one reply by its code (SMTP "250", DNS "NOERROR", ...).
    pub fn count_code(&mut self, code: &str) {
        bump(&mut self.codes, code);
    }

    /// Counts one error by its kind ("timeout", "io", ...).
    pub fn count_error(&mut self, kind: &str) {
        bump(&mut self.errors, kind);
    }

    /// Number of errors of every kind.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds another worker's counters into this one.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (k, v) in &other.codes {
            *self.codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.attempted += other.attempted;
        self.ok += other.ok;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.ok_bytes += other.ok_bytes;
        self.connections += other.connections;
        self.tls_sessions += other.tls_sessions;
        self.reconnects_421 += other.reconnects_421;
    }

    /// Latency percentiles of the samples recorded so far.
    pub fn latency(&self) -> Latency {
        let h = &self.latency_us;
        Latency {
            samples: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

/// The final report of one run, printed as a table or as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Which load ("smtp", "dns", "e2e").
    pub kind: &'static str,
    /// Server address under load.
    pub target: String,
    /// How the load was paced ("closed" or "open N/s").
    pub pacing: String,
    /// Wall time from the first to the last unit, in seconds.
    pub elapsed_s: f64,
    /// Units attempted.
    pub attempted: u64,
    /// Units answered positively.
    pub ok: u64,
    /// Units refused by the server.
    pub rejected: u64,
    /// Units lost to errors.
    pub failed: u64,
    /// Positive answers per second.
    pub ok_per_s: f64,
    /// MiB per second of payload that got a positive answer.
    pub mib_per_s: f64,
    /// Latency of positively answered units (from intended send time when open loop).
    pub latency: Latency,
    /// Replies by code.
    pub replies: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Connections or sockets opened.
    pub connections: u64,
    /// STARTTLS sessions.
    pub tls_sessions: u64,
    /// Connections closed by the server's 421 whose message was retried on a new one.
    pub reconnects_421: u64,
    /// CPU time (user + system) this process used during the run, in seconds.
    pub cpu_s: f64,
    /// CPU microseconds of this process per unit attempted.
    pub cpu_us_per_unit: f64,
    /// Extra named figures a load adds (e.g. e2e visibility latency).
    pub extra: BTreeMap<String, Latency>,
}

impl Summary {
    /// Builds the summary from merged stats, wall time and CPU time.
    pub fn new(
        kind: &'static str,
        target: String,
        pacing: String,
        stats: &Stats,
        elapsed: Duration,
        cpu: Duration,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let cpu_s = cpu.as_secs_f64();
        Self {
            kind,
            target,
            pacing,
            elapsed_s: secs,
            attempted: stats.attempted,
            ok: stats.ok,
            rejected: stats.rejected,
            failed: stats.failed,
            ok_per_s: stats.ok as f64 / secs,
            mib_per_s: stats.ok_bytes as f64 / secs / (1024.0 * 1024.0),
            latency: stats.latency(),
            replies: stats.codes.clone(),
            errors: stats.errors.clone(),
            connections: stats.connections,
            tls_sessions: stats.tls_sessions,
            reconnects_421: stats.reconnects_421,
            cpu_s,
            cpu_us_per_unit: if stats.attempted == 0 {
                0.0
            } else {
                cpu_s * 1e6 / stats.attempted as f64
            },
            extra: BTreeMap::new(),
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let unit = match self.kind {
            "dns" => "queries",
            _ => "msgs",
        };
        let _ = writeln!(s, "{} -> {} ({})", self.kind, self.target, self.pacing);
        let _ = writeln!(s, "  elapsed          {:>12.3} s", self.elapsed_s);
        let _ = writeln!(
            s,
            "  {unit:<16} {:>12} attempted, {} ok, {} rejected, {} failed",
            self.attempted, self.ok, self.rejected, self.failed
        );
        let _ = writeln!(s, "  throughput       {:>12.1} {unit}/s", self.ok_per_s);
        if self.kind != "dns" {
            let _ = writeln!(s, "  bandwidth        {:>12.2} MiB/s", self.mib_per_s);
        }
        write_latency(&mut s, "latency", &self.latency);
        for (name, l) in &self.extra {
            write_latency(&mut s, name, l);
        }
        let _ = writeln!(
            s,
            "  connections      {:>12} ({} with TLS, {} reopened after the server's 421)",
            self.connections, self.tls_sessions, self.reconnects_421
        );
        let _ = writeln!(
            s,
            "  generator cpu    {:>12.3} s ({:.1} us per unit)",
            self.cpu_s, self.cpu_us_per_unit
        );
        write_counts(&mut s, "replies", &self.replies);
        write_counts(&mut s, "errors", &self.errors);
        s
    }
}

fn write_latency(s: &mut String, name: &str, l: &Latency) {
    let ms = |us: u64| us as f64 / 1000.0;
    let _ = writeln!(
        s,
        "  {name:<16} p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} samples)",
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us),
        l.samples
    );
}

fn write_counts(s: &mut String, name: &str, counts: &BTreeMap<String, u64>) {
    if counts.is_empty() {
        let _ = writeln!(s, "  {name:<16} none");
        return;
    }
    let list: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(s, "  {name:<16} {}", list.join(", "));
}

/// CPU time (user + system) used by this process so far, from `/proc/self/stat`.
///
/// Returns zero where `/proc` is unavailable; the figure is informational only.
pub fn process_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_proc_stat_cpu(&s))
        .unwrap_or_default()
}

/// Clock ticks per second of `/proc` times: USER_HZ, which Linux fixes at 100 for
/// user space on every architecture we run on.
const USER_HZ: u64 = 100;

fn parse_proc_stat_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': state(3) ppid(4) ... utime is field 14, stime field 15 -> indices 11, 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        // Goal: the report's percentiles match a distribution we know exactly.
        // Method: record 1..=1000 ms once each; p50 is ~500 ms, p99 ~990 ms, max 1000 ms.
        let mut st = Stats::new();
        for ms in 1..=1000u64 {
            st.record_latency(Duration::from_millis(ms));
        }
        let l = st.latency();
        assert_eq!(l.samples, 1000);
        let near = |got: u64, want: u64| got.abs_diff(want) <= want / 500 + 1;
        assert!(near(l.p50_us, 500_000), "p50 {}", l.p50_us);
        assert!(near(l.p90_us, 900_000), "p90 {}", l.p90_us);
        assert!(near(l.p99_us, 990_000), "p99 {}", l.p99_us);
        assert!(near(l.p999_us, 999_000), "p99.9 {}", l.p999_us);
        assert!(near(l.max_us, 1_000_000), "max {}", l.max_us);
    }

    #[test]
    fn latency_beyond_the_limit_saturates() {
        // Goal: a sample above the histogram's range is kept, clamped, not dropped.
        let mut st = Stats::new();
        st.record_latency(Duration::from_secs(3600));
        let l = st.latency();
        assert_eq!(l.samples, 1);
        assert!(l.max_us >= LATENCY_US_MAX * 999 / 1000);
    }

    #[test]
    fn merge_adds_counts_and_samples() {
        // Goal: merging two workers' stats sums every counter and histogram.
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.count_code("250");
        b.count_code("250");
        b.count_code("452");
        b.count_error("timeout");
        a.ok = 1;
        b.ok = 2;
        a.record_latency(Duration::from_millis(1));
        b.record_latency(Duration::from_millis(3));
        a.merge(&b);
        assert_eq!(a.ok, 3);
        assert_eq!(a.codes.get("250"), Some(&2));
        assert_eq!(a.codes.get("452"), Some(&1));
        assert_eq!(a.errors_total(), 1);
        assert_eq!(a.latency().samples, 2);
    }

    #[test]
    fn summary_rates_table_and_json() {
        // Goal: rates are computed from elapsed time, and both outputs carry them.
        let mut st = Stats::new();
        st.attempted = 100;
        st.ok = 100;
        st.ok_bytes = 100 * 1024 * 1024;
        st.count_code("250");
        let s = Summary::new(
            "smtp",
            "127.0.0.1:25".into(),
            "closed".into(),
            &st,
            Duration::from_secs(2),
            Duration::from_millis(500),
        );
        assert_eq!(s.ok_per_s, 50.0);
        assert_eq!(s.mib_per_s, 50.0);
        assert_eq!(s.cpu_us_per_unit, 5000.0);
        assert!(s.table().contains("250: 1"));
        let json: serde_json::Value = serde_json::to_value(&s).unwrap_or(serde_json::Value::Null);
        assert_eq!(json["ok"], 100);
        assert_eq!(json["replies"]["250"], 1);
    }

    #[test]
    fn proc_stat_cpu_parse() {
        // Goal: utime + stime are read past a command name containing spaces and ')'.
        let line = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(parse_proc_stat_cpu(line), Some(Duration::from_secs(3)));
        assert_eq!(parse_proc_stat_cpu("garbage"), None);
    }
}
