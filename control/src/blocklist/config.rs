//! The `[blocklists]` section: DNS blocklist zones, nameservers, schedule and list files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Most zones and files together; each adds one query per domain per cycle.
const LISTS_MAX: usize = 32;
/// Shortest check interval; public DNSBLs block resolvers that query faster.
const INTERVAL_SECS_MIN: u64 = 10;

/// Blocklist checking. With no zone and no file nothing is checked (the laptop default).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BlocklistConfig {
    /// DNS blocklist zones queried as `<domain>.<zone>` A.
    pub zones: Vec<DnsblZone>,
    /// Nameservers (ip:port) the queries go to; empty uses the system resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    /// Seconds between check cycles.
    pub interval_secs: u64,
    /// Up to this many seconds are added at random to each interval, so a fleet does not query in step.
    pub jitter_secs: u64,
    /// Queries in flight at once.
    pub concurrency_max: usize,
    /// Timeout of one query, in milliseconds; a timeout is an error result, never a listing.
    pub timeout_ms: u64,
    /// Local list files: one domain per line, `#` comments; re-read when their mtime changes.
    pub files: Vec<PathBuf>,
    /// Largest list file read; a bigger file is an error result for that list.
    pub file_bytes_max: u64,
}

impl Default for BlocklistConfig {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            nameservers: Vec::new(),
            interval_secs: 900,
            jitter_secs: 60,
            concurrency_max: 8,
            timeout_ms: 3_000,
            files: Vec::new(),
            file_bytes_max: 64 << 20,
        }
    }
}

/// One DNS blocklist zone.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsblZone {
    /// The zone, e.g. `dbl.spamhaus.org`.
    pub zone: String,
    /// Return code (`127.0.1.2`) → reason; merged over the built-in Spamhaus DBL/ZRD table.
    #[serde(default)]
    pub codes: BTreeMap<String, String>,
}

impl BlocklistConfig {
    /// Checks the values; every problem is listed as `blocklists.field: what`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.zones.len() + self.files.len() > LISTS_MAX {
            errors.push(format!(
                "blocklists: at most {LISTS_MAX} zones and files together"
            ));
        }
        for z in &self.zones {
            if let Err(e) = tempmx_store::Domain::parse(&z.zone) {
                errors.push(format!(
                    "blocklists.zones: `{}` is not a valid zone name: {e}",
                    z.zone
                ));
            }
            for code in z.codes.keys() {
                if code.parse::<std::net::Ipv4Addr>().is_err() {
                    errors.push(format!(
                        "blocklists.zones.codes: `{code}` is not an IPv4 address"
                    ));
                }
            }
        }
        if self.interval_secs < INTERVAL_SECS_MIN {
            errors.push(format!(
                "blocklists.interval_secs: must be at least {INTERVAL_SECS_MIN}"
            ));
        }
        if self.jitter_secs > self.interval_secs {
            errors.push("blocklists.jitter_secs: must not exceed interval_secs".to_owned());
        }
        if !(1..=256).contains(&self.concurrency_max) {
            errors.push("blocklists.concurrency_max: must be 1..=256".to_owned());
        }
        if !(100..=30_000).contains(&self.timeout_ms) {
            errors.push("blocklists.timeout_ms: must be 100..=30000".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the defaults validate and every bad value is reported.
    #[test]
    fn validation() {
        BlocklistConfig::default().validate().expect("test setup");
        let bad = BlocklistConfig {
            zones: vec![DnsblZone {
                zone: "not a zone".into(),
                codes: [("127.0.1".to_owned(), "x".to_owned())].into(),
            }],
            interval_secs: 5,
            jitter_secs: 6,
            concurrency_max: 0,
            timeout_ms: 50,
            ..BlocklistConfig::default()
        };
        assert_eq!(bad.validate().expect_err("must fail").len(), 6);
    }
}
