//! The state every layer of the store shares: the shards behind their locks, the
//! configuration, the clock, counters and the journal handle. The store handle (opening,
//! reading, changes), the writers and subscriptions sit above it; it knows none of them.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use parking_lot::{Mutex, RwLock};

use crate::clock::Clock;
use crate::config::StoreConfig;
use crate::journal::Journal;
use crate::shard::Shard;
use crate::sizing::Geometry;
use crate::stats::RecoveryReport;

/// State shared by the store handle, its writers and subscriptions.
pub(crate) struct Inner {
    pub(crate) shards: Vec<RwLock<Shard>>,
    pub(crate) cfg: StoreConfig,
    pub(crate) geometry: Geometry,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) dedup: bool,
    pub(crate) hasher: RandomState,
    pub(crate) subscribers: AtomicUsize,
    pub(crate) events_lost: AtomicU64,
    pub(crate) syncs: AtomicU64,
    /// Deletions and TTL overrides in `disk` mode (see `journal`).
    pub(crate) journal: Option<Mutex<Journal>>,
    pub(crate) journal_errors: AtomicU64,
    pub(crate) recovery: RecoveryReport,
}

impl Inner {
    /// Keyed hash of a mailbox (keys the index and subscriptions).
    pub(crate) fn hash(&self, mailbox: &str) -> u64 {
        self.hasher.hash_one(mailbox)
    }
}
