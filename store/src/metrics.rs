//! The store's metrics, declared once: name, help and type of every family it records.
//! The store counts per shard (see `stats`); the exporter in the `tempmx` crate builds
//! Prometheus families from these descriptors and [`StoreStats`](crate::StoreStats).

use self::MetricKind::{Counter, Gauge};

/// How a metric behaves, for the exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic since start (`_total`).
    Counter,
    /// Current value.
    Gauge,
    /// Observations in fixed buckets, with their sum and count.
    Histogram,
}

/// One metric family as a crate declares it. Defined here, the crate the ingress and the
/// exporter both depend on, so every crate but `dns` (which depends on none of ours)
/// declares its metrics with this one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDesc {
    /// Prometheus name, `tempmx_<area>_<what>_<unit>`.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
}

/// A descriptor, in `const` context.
pub const fn desc(name: &'static str, help: &'static str, kind: MetricKind) -> MetricDesc {
    MetricDesc { name, help, kind }
}

/// Bytes in used segments.
pub const USED_BYTES: MetricDesc = desc(
    "tempmx_store_used_bytes",
    "Bytes of records in used segments, per shard.",
    Gauge,
);
/// Arena size.
pub const CAPACITY_BYTES: MetricDesc = desc(
    "tempmx_store_capacity_bytes",
    "Arena size, per shard.",
    Gauge,
);
/// Index entries.
pub const RECORDS: MetricDesc = desc(
    "tempmx_store_records",
    "Index entries (message and mailbox pairs), per shard.",
    Gauge,
);
/// Mailboxes holding messages.
pub const MAILBOXES: MetricDesc = desc(
    "tempmx_store_mailboxes",
    "Mailboxes holding messages, per shard.",
    Gauge,
);
/// Index memory.
pub const INDEX_BYTES: MetricDesc = desc(
    "tempmx_store_index_bytes",
    "Bytes allocated by the mailbox index, per shard.",
    Gauge,
);
/// Deduplicated parts held.
pub const DEDUP_PARTS: MetricDesc = desc(
    "tempmx_store_dedup_parts",
    "Deduplicated MIME parts held, per shard.",
    Gauge,
);
/// Records appended.
pub const APPENDED: MetricDesc = desc("tempmx_store_appended_total", "Records appended.", Counter);
/// Records expired.
pub const EXPIRED: MetricDesc = desc(
    "tempmx_store_expired_total",
    "Records recycled after their TTL.",
    Counter,
);
/// Early drops by reason.
pub const EVICTIONS: MetricDesc = desc(
    "tempmx_store_evictions_total",
    "Records or mailbox references dropped before their TTL, by reason.",
    Counter,
);
/// User deletions.
pub const DELETED: MetricDesc = desc(
    "tempmx_store_deleted_total",
    "Mailbox references deleted by users.",
    Counter,
);
/// Dedup savings by kind.
pub const DEDUP_SAVED_BYTES: MetricDesc = desc(
    "tempmx_store_dedup_saved_bytes_total",
    "Bytes not stored thanks to deduplication, by kind.",
    Counter,
);
/// Live subscriptions.
pub const SUBSCRIBERS: MetricDesc = desc(
    "tempmx_store_subscribers",
    "Live mailbox subscriptions.",
    Gauge,
);
/// Events lost to slow subscribers.
pub const SUBSCRIBER_EVENTS_LOST: MetricDesc = desc(
    "tempmx_store_subscriber_events_lost_total",
    "Events dropped for slow subscribers.",
    Counter,
);
/// Syncs issued.
pub const SYNCS: MetricDesc = desc(
    "tempmx_store_syncs_total",
    "fsyncs issued by disk persistence.",
    Counter,
);
/// Records skipped by recovery.
pub const RECOVERY_SKIPPED_RECORDS: MetricDesc = desc(
    "tempmx_store_recovery_skipped_records",
    "Torn or corrupt records skipped by recovery at start.",
    Gauge,
);
/// Journal writes that failed.
pub const JOURNAL_ERRORS: MetricDesc = desc(
    "tempmx_store_journal_errors_total",
    "Deletion or TTL-override journal writes that failed (the change holds until a restart).",
    Counter,
);
/// Journal entries skipped by recovery.
pub const RECOVERY_JOURNAL_SKIPPED: MetricDesc = desc(
    "tempmx_store_recovery_journal_skipped",
    "Torn or corrupt journal entries skipped by recovery at start.",
    Gauge,
);

/// Every metric of the store.
pub const ALL: &[MetricDesc] = &[
    USED_BYTES,
    CAPACITY_BYTES,
    RECORDS,
    MAILBOXES,
    INDEX_BYTES,
    DEDUP_PARTS,
    APPENDED,
    EXPIRED,
    EVICTIONS,
    DELETED,
    DEDUP_SAVED_BYTES,
    SUBSCRIBERS,
    SUBSCRIBER_EVENTS_LOST,
    SYNCS,
    JOURNAL_ERRORS,
    RECOVERY_SKIPPED_RECORDS,
    RECOVERY_JOURNAL_SKIPPED,
];
