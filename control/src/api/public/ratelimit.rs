//! Per-client-IP token buckets, one table per request class, bounded in entries.
//!
//! IPv6 clients are keyed by their /64, since one host usually holds a whole /64 and
//! could otherwise rotate addresses to dodge the limit.
//!
//! Fleet mode ([`FleetLimits`]): each class's quota also holds across every node, in one
//! GCRA bucket per (class, client) in the cluster (one round trip per request, see
//! `tempmx_store::cluster`). This node's bucket runs first at the same rate, as a filter
//! that costs no round trip: a client over its quota on this node alone is over it in the
//! fleet. When the cluster cannot answer, the request is judged by this node's bucket
//! alone, logged and counted (`tempmx_api_rate_limit_fleet_checks_total{result="fallback"}`):
//! refusing every API request while Redis blips would hurt every user to stop a few, and
//! the local bucket still caps each client at its quota per node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tempmx_store::cluster::{Cluster, RateQuota};

/// One class of requests (creation, reads) with its own rate and table.
pub struct Limiter {
    rate_per_sec: f64,
    burst: f64,
    ips_max: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limiter {
    /// `rate_per_sec` tokens refill per second up to `burst`; at most `ips_max` clients tracked.
    pub fn new(rate_per_sec: f64, burst: u32, ips_max: usize) -> Self {
        Self {
            rate_per_sec,
            burst: f64::from(burst.max(1)),
            ips_max,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip` at `now`; on refusal returns the seconds to wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let key = client_key(ip);
        let mut map = self.buckets.lock();
        if !map.contains_key(&key) && map.len() >= self.ips_max {
            // Forget clients whose bucket is full again: they are idle.
            map.retain(|_, b| self.refilled(*b, now) < self.burst);
            if map.len() >= self.ips_max {
                return Err(1);
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refilled(*b, now);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        *b = Bucket { tokens, at: now };
        Err(((1.0 - tokens) / self.rate_per_sec).ceil().max(1.0) as u64)
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let secs = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + secs * self.rate_per_sec).min(self.burst)
    }
}

/// A request class: which bucket a request takes its token from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Requests that take or keep a registry slot.
    Create,
    /// Every other API request.
    Read,
}

impl Class {
    /// The class's name in keys and labels.
    pub fn label(self) -> &'static str {
        match self {
            Class::Create => "create",
            Class::Read => "read",
        }
    }
}

/// The fleet-wide buckets of fleet mode, with counters of their outcomes.
pub struct FleetLimits {
    cluster: Arc<Cluster>,
    create: RateQuota,
    read: RateQuota,
    stats: Arc<FleetLimitStats>,
    /// Whether the last check failed, so an outage is logged once when it starts.
    failing: AtomicBool,
}

/// Outcomes of fleet-wide checks.
#[derive(Debug, Default)]
pub struct FleetLimitStats {
    taken: AtomicU64,
    refused: AtomicU64,
    fallback: AtomicU64,
}

impl FleetLimitStats {
    /// `(result, count)` pairs for `/metrics`: taken, refused, fallback.
    pub fn by_result(&self) -> [(&'static str, u64); 3] {
        [
            ("taken", self.taken.load(Ordering::Relaxed)),
            ("refused", self.refused.load(Ordering::Relaxed)),
            ("fallback", self.fallback.load(Ordering::Relaxed)),
        ]
    }
}

impl FleetLimits {
    /// Buckets in `cluster` with the given quotas.
    pub fn new(cluster: Arc<Cluster>, create: RateQuota, read: RateQuota) -> Self {
        Self {
            cluster,
            create,
            read,
            stats: Arc::default(),
            failing: AtomicBool::new(false),
        }
    }

    /// The outcome counters (shared with `/metrics`).
    pub fn stats(&self) -> Arc<FleetLimitStats> {
        self.stats.clone()
    }

    /// Takes one token of `class` for `ip` from the fleet's bucket; `Err(secs)` when
    /// refused. A cluster error lets the request through (the local bucket already passed
    /// it), counted as a fallback.
    pub async fn take(&self, class: Class, ip: IpAddr) -> Result<(), u64> {
        let quota = match class {
            Class::Create => self.create,
            Class::Read => self.read,
        };
        let client = client_key(ip).to_string();
        match self.cluster.rate_take(class.label(), &client, quota).await {
            Ok(None) => {
                self.stats.taken.fetch_add(1, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("fleet rate limits reachable again");
                }
                Ok(())
            }
            Ok(Some(secs)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(secs)
            }
            Err(e) => {
                self.stats.fallback.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "fleet rate limits unavailable; this node's buckets alone apply");
                }
                Ok(())
            }
        }
    }
}

/// The rate-limit identity of a client: its IPv4 address, or its IPv6 /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6([s[0], s[1], s[2], s[3], 0, 0, 0, 0].into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Goal: the burst passes, the next request waits the refill time, and time refills.
    #[test]
    fn burst_then_retry_after() {
        let l = Limiter::new(0.5, 3, 10);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let t = Instant::now();
        for _ in 0..3 {
            l.check(ip, t).expect("burst");
        }
        assert_eq!(l.check(ip, t), Err(2));
        l.check(ip, t + Duration::from_secs(2)).expect("refilled");
    }

    // Goal: the table limit holds; idle clients make room; a full table of busy clients
    // refuses newcomers. Method: fill a table of two.
    #[test]
    fn table_is_bounded() {
        let l = Limiter::new(1.0, 1, 2);
        let t = Instant::now();
        l.check("10.0.0.1".parse().expect("ip"), t).expect("a");
        l.check("10.0.0.2".parse().expect("ip"), t).expect("b");
        assert_eq!(l.check("10.0.0.3".parse().expect("ip"), t), Err(1));
        l.check("10.0.0.3".parse().expect("ip"), t + Duration::from_secs(5))
            .expect("idle pruned");
    }

    // Goal: one IPv6 /64 is one client.
    #[test]
    fn ipv6_keyed_by_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
    }
}
