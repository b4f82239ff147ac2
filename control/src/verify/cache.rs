//! Extraction results by message id, computed on first read and kept in a bounded map
//! (oldest dropped first). Records never change, so an entry never goes stale; a deleted
//! message's entry just ages out.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tempmx_store::{Mailbox, MessageId, Reader};

use super::{Verification, extract};

/// Bytes of a raw message parsed for extraction: the code sits near the top, and this
/// bounds the work one read can cause.
pub const RAW_BYTES_MAX: usize = 512 * 1024;

/// The cache.
pub struct VerifyCache {
    entries_max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<MessageId, Arc<[Verification]>>,
    order: VecDeque<MessageId>,
}

impl VerifyCache {
    /// A cache of at most `entries_max` messages' results.
    pub fn new(entries_max: usize) -> Self {
        Self {
            entries_max: entries_max.max(1),
            inner: Mutex::default(),
        }
    }

    /// The verifications of message `id` in `mailbox`, extracted now (from the record in
    /// place) if not cached; empty when the mailbox no longer shows it or cannot be read
    /// now (then nothing is cached).
    pub async fn get(
        &self,
        reader: &Reader,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Arc<[Verification]> {
        if let Some(v) = self.inner.lock().map.get(&id) {
            return v.clone();
        }
        match reader
            .read_for(mailbox, id, |m| self.of_raw(id, m.raw()))
            .await
        {
            Ok(Some(v)) => v,
            Ok(None) | Err(_) => Arc::from(Vec::new()),
        }
    }

    /// The verifications of a message whose raw bytes the caller holds already.
    pub fn of_raw(&self, id: MessageId, raw: &[u8]) -> Arc<[Verification]> {
        if let Some(v) = self.inner.lock().map.get(&id) {
            return v.clone();
        }
        let found: Arc<[Verification]> = extract(&raw[..raw.len().min(RAW_BYTES_MAX)]).into();
        let mut inner = self.inner.lock();
        if inner.map.insert(id, found.clone()).is_none() {
            inner.order.push_back(id);
            while inner.order.len() > self.entries_max {
                if let Some(old) = inner.order.pop_front() {
                    inner.map.remove(&old);
                }
            }
        }
        found
    }

    /// Messages cached now.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
