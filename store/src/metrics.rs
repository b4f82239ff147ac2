//! The store's metrics, declared once as a table: name, help, type and how to read each
//! family from [`StoreStats`]. Also the vocabulary every crate's table uses
//! ([`MetricDesc`], [`Metric`], [`Values`]); it lives here, the crate the others depend
//! on, so there is one of each. The exporter in the `tempmx` crate only walks the tables.

use crate::stats::{ShardStats, StoreStats};

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

/// One metric family as a crate declares it: name, help and type.
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

/// One row of a crate's metric table: a family and how to read its values from the
/// snapshot `S` that crate's counters give at scrape time.
pub struct Metric<S> {
    /// The family.
    pub desc: MetricDesc,
    read: Read<S>,
}

/// How a row reads its values.
enum Read<S> {
    /// One unlabelled sample.
    One(fn(&S) -> u64),
    /// Anything else.
    Values(fn(&S) -> Values),
}

impl<S> Metric<S> {
    /// A family whose values `read` builds.
    pub const fn new(desc: MetricDesc, read: fn(&S) -> Values) -> Self {
        Self {
            desc,
            read: Read::Values(read),
        }
    }

    /// A family of one unlabelled sample.
    pub const fn one(desc: MetricDesc, read: fn(&S) -> u64) -> Self {
        Self {
            desc,
            read: Read::One(read),
        }
    }

    /// The family's values in `snapshot`.
    pub fn read(&self, snapshot: &S) -> Values {
        match self.read {
            Read::One(f) => Values::one(f(snapshot)),
            Read::Values(f) => f(snapshot),
        }
    }
}

/// Every family of `table`, in order.
pub fn descs<S>(table: &[Metric<S>]) -> impl Iterator<Item = MetricDesc> + '_ {
    table.iter().map(|m| m.desc)
}

/// One counter or gauge value with its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label names and values.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// The values of one family at one scrape.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Counter or gauge samples (none: the family is left out of the scrape).
    Samples(Vec<Sample>),
    /// One unlabelled histogram.
    Histogram {
        /// Finite upper bounds, ascending, in the exported unit (+Inf is implied).
        bounds: Vec<f64>,
        /// Observations per bucket (not cumulative); one more than `bounds`, the last +Inf.
        counts: Vec<u64>,
        /// Sum of the observations, in the exported unit.
        sum: f64,
    },
}

impl Values {
    /// One unlabelled sample.
    pub fn one(value: u64) -> Self {
        Self::Samples(vec![Sample {
            labels: Vec::new(),
            value: value as f64,
        }])
    }

    /// One unlabelled sample when there is a value, else none.
    pub fn maybe(value: Option<f64>) -> Self {
        Self::Samples(
            value
                .map(|value| Sample {
                    labels: Vec::new(),
                    value,
                })
                .into_iter()
                .collect(),
        )
    }

    /// One sample per `(label value, value)`, all under the label `label`.
    pub fn by<V: Into<String>>(
        label: &'static str,
        values: impl IntoIterator<Item = (V, u64)>,
    ) -> Self {
        Self::Samples(
            values
                .into_iter()
                .map(|(v, value)| Sample {
                    labels: vec![(label, v.into())],
                    value: value as f64,
                })
                .collect(),
        )
    }

    /// A histogram from bucket bounds in a source unit: the finite bounds (all but the
    /// last, `u64::MAX`, which is +Inf) and the sum are multiplied by `scale`.
    pub fn histogram(bounds: &[u64], scale: f64, counts: &[u64], sum: u64) -> Self {
        let finite = bounds.len().saturating_sub(1);
        Self::Histogram {
            bounds: bounds[..finite].iter().map(|&b| b as f64 * scale).collect(),
            counts: counts.to_vec(),
            sum: sum as f64 * scale,
        }
    }
}

/// One sample per shard, labelled by its index.
fn per_shard(s: &StoreStats, f: fn(&ShardStats) -> u64) -> Values {
    Values::by(
        "shard",
        s.shards
            .iter()
            .enumerate()
            .map(|(i, sh)| (i.to_string(), f(sh))),
    )
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

/// Every metric of the store, read from [`StoreStats`].
pub const TABLE: &[Metric<StoreStats>] = &[
    Metric::new(USED_BYTES, |s| per_shard(s, |sh| sh.bytes_used)),
    Metric::new(CAPACITY_BYTES, |s| per_shard(s, |sh| sh.bytes_capacity)),
    Metric::new(RECORDS, |s| per_shard(s, |sh| sh.index_entries)),
    Metric::new(MAILBOXES, |s| per_shard(s, |sh| sh.mailboxes)),
    Metric::new(INDEX_BYTES, |s| per_shard(s, |sh| sh.index_bytes)),
    Metric::new(DEDUP_PARTS, |s| per_shard(s, |sh| sh.parts)),
    Metric::one(APPENDED, |s| s.totals.appended),
    Metric::one(EXPIRED, |s| s.totals.expired),
    Metric::new(EVICTIONS, |s| {
        let t = &s.totals;
        Values::by(
            "reason",
            [
                ("capacity", t.evicted_capacity),
                ("index_full", t.evicted_index_full),
                ("mailbox_cap", t.evicted_mailbox_cap),
            ],
        )
    }),
    Metric::one(DELETED, |s| s.totals.deleted),
    Metric::new(DEDUP_SAVED_BYTES, |s| {
        let t = &s.totals;
        Values::by(
            "kind",
            [
                ("parts", t.dedup_bytes_saved),
                ("recipients", t.multi_rcpt_bytes_saved),
            ],
        )
    }),
    Metric::one(SUBSCRIBERS, |s| s.subscribers),
    Metric::one(SUBSCRIBER_EVENTS_LOST, |s| s.subscriber_events_lost),
    Metric::one(SYNCS, |s| s.syncs),
    Metric::one(JOURNAL_ERRORS, |s| s.journal_errors),
    Metric::one(RECOVERY_SKIPPED_RECORDS, |s| s.recovery.records_skipped),
    Metric::one(RECOVERY_JOURNAL_SKIPPED, |s| s.recovery.journal_skipped),
];
