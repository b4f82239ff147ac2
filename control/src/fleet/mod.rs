//! Fleet mode: several appliances share mailboxes and mail through a Redis Cluster
//! (issue 15). This module owns the `[fleet]` section and connects at start-up; the
//! cluster backend itself is `tempmx_store::cluster`.
//!
//! Without `[fleet]` (and without `--fleet`) nothing here runs and no Redis is needed.

pub mod counts;
pub mod greylist;
pub mod lease;
pub mod pool;
pub mod registry;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tempmx_store::StoreConfig;
use tempmx_store::cluster::{Ack, Cluster, ClusterError, ClusterOptions};

/// Longest seed list `[fleet] redis` may hold.
pub const SEEDS_MAX: usize = 64;
/// Longest `[fleet] node` name in bytes.
pub const NODE_BYTES_MAX: usize = 64;
/// Shortest and longest `[fleet] node_ttl_secs`.
pub const NODE_TTL_SECS: std::ops::RangeInclusive<u64> = 2..=3600;
/// Shortest and longest `[fleet] lease_ms` (the rotation lease's length).
pub const LEASE_MS: std::ops::RangeInclusive<u64> = 1000..=300_000;
/// Shortest and longest `[fleet] lease_renew_ms`; it must also be at most half the lease.
pub const LEASE_RENEW_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
/// The version every heartbeat announces.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `[fleet]` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Seed nodes of the Redis Cluster, e.g. `["redis://10.0.0.5:7000"]`.
    pub redis: Vec<String>,
    /// This appliance's name in the fleet; the host name when unset.
    pub node: Option<String>,
    /// When a write counts as stored: `"primary"` or `"replicas:N"` (`WAIT N` first).
    pub ack: Ack,
    /// A node that has not heartbeat for this long shows as gone (it heartbeats three
    /// times per period).
    pub node_ttl_secs: u64,
    /// Length of the rotation lease (ms): a holder that stops renewing loses it this long
    /// after its last renewal, and another node takes over within one renew interval.
    pub lease_ms: u64,
    /// How often each node renews or tries to take the rotation lease (ms).
    pub lease_renew_ms: u64,
    /// Whether records and shared parts are stored LZ4-compressed in the cluster where that
    /// saves memory (default on); nodes of builds before it read them as damaged (503), so
    /// a rolling upgrade from such a build turns it off until every node runs this one.
    pub compress: bool,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            redis: Vec::new(),
            node: None,
            ack: Ack::Primary,
            node_ttl_secs: 10,
            lease_ms: 10_000,
            lease_renew_ms: 2_000,
            compress: true,
        }
    }
}

impl FleetConfig {
    /// Problems with the section, as `fleet.key: reason` lines.
    pub fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.redis.is_empty() {
            errors.push("fleet.redis: at least one seed node is needed".to_owned());
        }
        if self.redis.len() > SEEDS_MAX {
            errors.push(format!("fleet.redis: at most {SEEDS_MAX} seed nodes"));
        }
        for url in &self.redis {
            if !url.starts_with("redis://") {
                errors.push(format!("fleet.redis: `{url}` is not a redis:// URL"));
            }
        }
        if !NODE_TTL_SECS.contains(&self.node_ttl_secs) {
            errors.push(format!(
                "fleet.node_ttl_secs: {} to {}, not {}",
                NODE_TTL_SECS.start(),
                NODE_TTL_SECS.end(),
                self.node_ttl_secs
            ));
        }
        if !LEASE_MS.contains(&self.lease_ms) {
            errors.push(format!(
                "fleet.lease_ms: {} to {}, not {}",
                LEASE_MS.start(),
                LEASE_MS.end(),
                self.lease_ms
            ));
        }
        if !LEASE_RENEW_MS.contains(&self.lease_renew_ms)
            || self.lease_renew_ms.saturating_mul(2) > self.lease_ms
        {
            errors.push(format!(
                "fleet.lease_renew_ms: {} to {} and at most half of lease_ms, not {}",
                LEASE_RENEW_MS.start(),
                LEASE_RENEW_MS.end(),
                self.lease_renew_ms
            ));
        }
        if let Some(node) = &self.node {
            let ok = !node.is_empty()
                && node.len() <= NODE_BYTES_MAX
                && node.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                errors.push(format!(
                    "fleet.node: 1 to {NODE_BYTES_MAX} printable ASCII characters, not {node:?}"
                ));
            }
        }
        errors
    }

    /// The node name in force: the configured one or the host name.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(host_name)
    }
}

/// Connects to the cluster with the store's TTL, caps and part threshold; a clear error
/// naming the seed nodes when it cannot be reached.
pub fn connect(fleet: &FleetConfig, store: &StoreConfig) -> Result<Cluster, ClusterError> {
    let mut opts = ClusterOptions::new(fleet.redis.clone(), fleet.node_name());
    opts.ack = fleet.ack;
    opts.ttl_secs = store.ttl_secs;
    opts.mailbox_records_max = store.mailbox_records_max;
    opts.record_mailboxes_max = store.record_mailboxes_max;
    // The same knob as the single node's: parts this large are stored once (0: nothing is).
    opts.part_bytes_min = store.dedup_part_bytes_min;
    opts.compress = fleet.compress;
    Cluster::connect(opts)
}

/// Heartbeats this node into the fleet's membership every third of `ttl` (and reads the
/// membership and the primaries' eviction policies) until `stop`;
/// a failed heartbeat is logged and retried at the next tick (the node shows as gone
/// only if the cluster misses a whole `ttl`).
pub async fn heartbeat(
    cluster: Arc<Cluster>,
    ttl: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ttl_ms = ttl.as_millis() as u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = cluster.heartbeat(VERSION, ttl_ms).await {
            tracing::warn!(error = %e, "fleet heartbeat failed");
        }
        // The stale-node gauge follows the membership as of each heartbeat.
        if let Err(e) = cluster.census().await {
            tracing::warn!(error = %e, "fleet membership read failed");
        }
        // A policy changed after start shows in the gauge and the log, as of each heartbeat.
        if let Err(e) = cluster.check_eviction().await {
            tracing::debug!(error = %e, "fleet eviction policies not read");
        }
    }
}

/// The kernel's host name, or `tempmx` if it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tempmx".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_parses_and_checks_its_values() {
        // Goal: `[fleet]` takes seeds, a node name and both ack forms; bad values are
        // reported with their key. Method: TOML texts through serde, then `problems`.
        let ok: FleetConfig = toml::from_str(
            "redis = [\"redis://127.0.0.1:7000\"]\nnode = \"mx-a\"\nack = \"replicas:1\"",
        )
        .expect("parses");
        assert_eq!(ok.ack, Ack::Replicas(1));
        assert_eq!(ok.node_name(), "mx-a");
        assert!(ok.problems().is_empty());
        let primary: FleetConfig = toml::from_str("redis = [\"redis://h:1\"]").expect("parses");
        assert_eq!(primary.ack, Ack::Primary);
        assert!(!primary.node_name().is_empty());
        assert!(primary.compress, "records are compressed unless turned off");
        let plain: FleetConfig =
            toml::from_str("redis = [\"redis://h:1\"]\ncompress = false").expect("parses");
        assert!(!plain.compress);
        for bad in [
            "ack = \"replicas:0\"",
            "ack = \"all\"",
            "ack = \"replicas:x\"",
        ] {
            let e = toml::from_str::<FleetConfig>(bad).expect_err(bad);
            assert!(e.to_string().contains("ack must be"), "{bad}: {e}");
        }
        let empty = FleetConfig::default();
        assert!(empty.problems()[0].starts_with("fleet.redis"));
        let wrong = FleetConfig {
            redis: vec!["http://x".into()],
            node: Some("a b".into()),
            ack: Ack::Primary,
            node_ttl_secs: 1,
            lease_ms: 999,
            lease_renew_ms: 600,
            compress: true,
        };
        let p = wrong.problems();
        assert!(
            p.iter().any(|e| e.starts_with("fleet.node_ttl_secs")),
            "{p:?}"
        );
        // The TTL's limits are inclusive.
        for (ttl, valid) in [(2, true), (3600, true), (3601, false)] {
            let f = FleetConfig {
                node_ttl_secs: ttl,
                ..ok.clone()
            };
            assert_eq!(f.problems().is_empty(), valid, "node_ttl_secs = {ttl}");
        }
        assert!(p.iter().any(|e| e.starts_with("fleet.lease_ms")), "{p:?}");
        assert!(
            p.iter().any(|e| e.starts_with("fleet.lease_renew_ms")),
            "{p:?}"
        );
        // The lease's limits are inclusive; the renewal fits twice in the lease.
        for (lease_ms, lease_renew_ms, valid) in [
            (1000, 100, true),
            (1000, 500, true),
            (1000, 501, false),
            (300_000, 60_000, true),
            (300_001, 1000, false),
            (10_000, 99, false),
        ] {
            let f = FleetConfig {
                lease_ms,
                lease_renew_ms,
                ..ok.clone()
            };
            assert_eq!(
                f.problems().is_empty(),
                valid,
                "{lease_ms} {lease_renew_ms}"
            );
        }
        assert!(p.iter().any(|e| e.contains("not a redis:// URL")), "{p:?}");
        assert!(p.iter().any(|e| e.starts_with("fleet.node")), "{p:?}");
    }
}
