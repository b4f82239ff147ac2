//! Samples this process from `/proc/self` at scrape time: CPU time, resident memory, open
//! descriptors and their limit, and the start time (so a restart shows on a dashboard).

use std::time::{SystemTime, UNIX_EPOCH};

/// One reading of the process; a field is `None` where `/proc` could not be read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time, seconds.
    pub cpu_secs: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub fds_max: Option<u64>,
    /// Unix seconds at which the process started.
    pub start_secs: Option<f64>,
}

/// Reads the current process's sample.
pub fn sample() -> ProcessSample {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
    let ticks = clock_ticks_per_sec();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Field numbers are those of proc(5) counted from 1; `fields` starts at field 3 (state).
    let cpu_secs = match (field(14 - 3), field(15 - 3), ticks) {
        (Some(u), Some(s), Some(t)) => Some((u + s) as f64 / t),
        _ => None,
    };
    let start_secs = match (field(22 - 3), boot_time_secs(), ticks) {
        (Some(since_boot), Some(boot), Some(t)) => Some(boot as f64 + since_boot as f64 / t),
        _ => None,
    };
    ProcessSample {
        cpu_secs,
        resident_bytes: resident_bytes(),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
        fds_max: fds_max(),
        start_secs,
    }
}

/// The fields after the command name, which is in parentheses and may hold spaces.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

fn clock_ticks_per_sec() -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then_some(ticks as f64)
}

fn page_bytes() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|p| *p > 0)
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_bytes()?))
}

fn boot_time_secs() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn fds_max() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some(limit.rlim_cur)
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Goal: every reading is present and plausible for the test process itself. Method:
    // sample twice around some work and an opened file, and compare.
    #[test]
    fn samples_this_process() {
        let before = sample();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = sample();
        drop(file);
        assert!(after.cpu_secs.unwrap() >= before.cpu_secs.unwrap());
        assert!(after.resident_bytes.unwrap() > 1 << 20);
        assert!(after.open_fds.unwrap() >= 3);
        assert!(after.fds_max.unwrap() >= after.open_fds.unwrap());
        let start = after.start_secs.unwrap();
        let now = now_secs();
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
    }

    // Goal: a command name with spaces and parentheses does not shift the fields.
    #[test]
    fn stat_fields_skip_the_command_name() {
        let f = stat_fields("42 (a b) c) S 1 2 3");
        assert_eq!(f, vec!["S", "1", "2", "3"]);
    }
}
