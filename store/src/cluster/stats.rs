//! Fleet mode's health counters and their metric table: cluster errors by operation,
//! messages refused (451) because the cluster did not take them, the write path's
//! batches and pipelines, and the fleet's members as this node last saw them.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use super::{Cluster, ClusterError, Member, WriteStats, functions};
use crate::metrics::MetricKind::{Counter, Gauge};
use crate::metrics::{Metric, MetricDesc, Values, desc};

/// What a node was doing when the cluster failed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A batch's pipeline to one primary.
    Write,
    /// A batch's `WAIT` for replicas (`ack = "replicas:N"`).
    Wait,
    /// Any other call: reads, registry, heartbeats, the pool.
    Call,
}

impl Op {
    /// Every operation, in label order.
    pub const ALL: [Op; 3] = [Op::Write, Op::Wait, Op::Call];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Wait => "wait",
            Op::Call => "call",
        }
    }
}

/// Counters of the cluster's health as this node sees it; shared by every core's sink
/// and the calls of [`Cluster`](super::Cluster).
#[derive(Debug, Default)]
pub struct Health {
    errors: [AtomicU64; Op::ALL.len()],
    refused: AtomicU64,
    nodes_up: AtomicU64,
    nodes_stale: AtomicU64,
    /// Primaries whose eviction policy may drop keys, as last read.
    evicting: AtomicU64,
    /// Woken when a call named a function its primary lacks (`functions::keep_loaded`).
    function_missing: Notify,
}

impl Health {
    /// Counts `e` against `op` if it is the cluster's fault (not a bad address or value).
    pub fn error(&self, op: Op, e: &ClusterError) {
        let fault = matches!(
            e,
            ClusterError::Command(_)
                | ClusterError::Connect { .. }
                | ClusterError::NotReplicated { .. }
                | ClusterError::Stopped
                | ClusterError::Timeout(_)
        );
        if fault {
            self.errors[op as usize].fetch_add(1, Ordering::Relaxed);
        }
        if let ClusterError::Command(e) = e
            && functions::is_missing(e)
        {
            self.function_missing.notify_one();
        }
    }

    /// Waits until a call named a function its primary lacks.
    pub(crate) async fn function_missing(&self) {
        self.function_missing.notified().await;
    }

    /// Records how many primaries may evict keys; the count before.
    pub(crate) fn set_evicting(&self, n: u64) -> u64 {
        self.evicting.swap(n, Ordering::Relaxed)
    }

    /// Counts one message answered 451 because the cluster did not take it.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the membership just read: how many nodes are up and how many stale.
    pub fn members(&self, members: &[Member]) {
        let up = members.iter().filter(|m| m.up).count() as u64;
        self.nodes_up.store(up, Ordering::Relaxed);
        self.nodes_stale
            .store(members.len() as u64 - up, Ordering::Relaxed);
    }

    /// The counters now, with the write path's.
    pub fn snapshot(&self, writes: &WriteStats) -> FleetSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FleetSnapshot {
            errors: Op::ALL.map(|op| (op, load(&self.errors[op as usize]))),
            refused: load(&self.refused),
            nodes: [
                ("up", load(&self.nodes_up)),
                ("stale", load(&self.nodes_stale)),
            ],
            evicting: load(&self.evicting),
            batches: writes.batches(),
            messages: writes.messages(),
            pipelines: writes.pipelines(),
            retries: writes.retries(),
        }
    }
}

impl Cluster {
    /// Reads the fleet's members and keeps their count by state for `/metrics`.
    pub async fn census(&self) -> Result<Vec<Member>, ClusterError> {
        let members = self.members().await?;
        self.health.members(&members);
        Ok(members)
    }
}

/// What the fleet families read at one scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetSnapshot {
    /// Cluster errors by operation.
    pub errors: [(Op, u64); Op::ALL.len()],
    /// Messages answered 451 because the cluster did not take them.
    pub refused: u64,
    /// Fleet members by state (`up`, `stale`) at the last heartbeat.
    pub nodes: [(&'static str, u64); 2],
    /// Primaries whose `maxmemory-policy` may evict keys, at the last heartbeat.
    pub evicting: u64,
    /// Write batches sent.
    pub batches: u64,
    /// Messages in those batches.
    pub messages: u64,
    /// Pipelines (round trips to one primary) of those batches.
    pub pipelines: u64,
    /// Pipelines re-sent per slot after a pipeline to a primary failed as a whole.
    pub retries: u64,
}

/// Cluster errors by operation.
pub const CLUSTER_ERRORS: MetricDesc = desc(
    "tempmx_fleet_cluster_errors_total",
    "Redis Cluster calls that failed (error, timeout, no primary, too few replicas), by \
     operation (write, wait, call).",
    Counter,
);
/// Messages refused because the cluster did not take them.
pub const MESSAGES_REFUSED: MetricDesc = desc(
    "tempmx_fleet_messages_refused_total",
    "Messages answered 451 4.3.0 because the cluster did not take the write in time (or \
     the core's write queue was full).",
    Counter,
);
/// Members by state.
pub const NODES: MetricDesc = desc(
    "tempmx_fleet_nodes",
    "Fleet nodes seen in the last day, by state: up (heartbeat key alive) or stale (its \
     heartbeat lapsed), as read at this node's last heartbeat.",
    Gauge,
);
/// Primaries that may evict.
pub const PRIMARIES_EVICTING: MetricDesc = desc(
    "tempmx_fleet_primaries_evicting",
    "Primaries whose maxmemory-policy is not noeviction, as read at this node's last \
     heartbeat: under memory pressure they may evict acknowledged mail before its expiry.",
    Gauge,
);
/// Write batches.
pub const WRITE_BATCHES: MetricDesc = desc(
    "tempmx_fleet_write_batches_total",
    "Write batches (one per core per group commit) sent to the cluster.",
    Counter,
);
/// Messages written.
pub const WRITE_MESSAGES: MetricDesc = desc(
    "tempmx_fleet_write_messages_total",
    "Messages in the write batches sent to the cluster.",
    Counter,
);
/// Pipelines sent.
pub const WRITE_PIPELINES: MetricDesc = desc(
    "tempmx_fleet_write_pipelines_total",
    "Pipelines sent by the write batches (one per primary of a batch, plus one per slot \
     of a failed one re-sent): each is one round trip to one primary.",
    Counter,
);
/// Pipelines re-sent.
pub const WRITE_RETRIES: MetricDesc = desc(
    "tempmx_fleet_write_retries_total",
    "Pipelines re-sent one per slot after a pipeline to a primary failed as a whole (a \
     moved slot, a lost connection); counted in tempmx_fleet_write_pipelines_total too.",
    Counter,
);

/// The fleet families, present only in fleet mode.
pub const TABLE: &[Metric<FleetSnapshot>] = &[
    Metric::new(CLUSTER_ERRORS, |s| {
        Values::by("op", s.errors.map(|(op, n)| (op.label(), n)))
    }),
    Metric::one(MESSAGES_REFUSED, |s| s.refused),
    Metric::new(NODES, |s| Values::by("state", s.nodes)),
    Metric::one(PRIMARIES_EVICTING, |s| s.evicting),
    Metric::one(WRITE_BATCHES, |s| s.batches),
    Metric::one(WRITE_MESSAGES, |s| s.messages),
    Metric::one(WRITE_PIPELINES, |s| s.pipelines),
    Metric::one(WRITE_RETRIES, |s| s.retries),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clusters_faults_count_and_members_split_by_state() {
        // Goal: a bad address is not a cluster error; a timeout is, under its operation;
        // the membership splits into up and stale. Method: feed `Health` and read its
        // snapshot.
        let h = Health::default();
        h.error(
            Op::Write,
            &ClusterError::Timeout(std::time::Duration::from_secs(2)),
        );
        h.error(Op::Call, &ClusterError::Encode("x".into()));
        h.refused();
        let member = |up| Member {
            node: "n".into(),
            version: "v".into(),
            last_seen_ms: 0,
            up,
        };
        h.members(&[member(true), member(false), member(true)]);
        let s = h.snapshot(&WriteStats::default());
        assert_eq!(s.errors, [(Op::Write, 1), (Op::Wait, 0), (Op::Call, 0)]);
        assert_eq!(s.refused, 1);
        assert_eq!(s.nodes, [("up", 2), ("stale", 1)]);
    }
}
