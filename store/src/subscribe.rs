//! Live push: a reader subscribes to a mailbox and is woken with each new summary.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::address::Mailbox;
use crate::error::StoreError;
pub use crate::queue::Event;
use crate::queue::Queue;
use crate::shared::Inner;
use crate::store::Store;

impl Store {
    /// Subscribes to new messages of a mailbox.
    pub fn subscribe(&self, mailbox: &Mailbox) -> Result<Subscription, StoreError> {
        let max = self.inner.cfg.subscribers_max;
        if self.inner.subscribers.fetch_add(1, Ordering::Relaxed) >= max {
            self.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Subscribers(max));
        }
        let mbox = self.inner.hash(mailbox.as_str());
        let queue = Arc::new(Queue::new(
            mailbox.as_str(),
            self.inner.cfg.subscriber_queue_max,
        ));
        for sh in &self.inner.shards {
            sh.write()
                .subs
                .entry(mbox)
                .or_default()
                .push(Arc::clone(&queue));
        }
        Ok(Subscription {
            inner: Arc::clone(&self.inner),
            queue,
            mbox,
        })
    }
}

/// A live subscription to one mailbox; dropping it unsubscribes.
pub struct Subscription {
    pub(crate) inner: Arc<Inner>,
    pub(crate) queue: Arc<Queue>,
    pub(crate) mbox: u64,
}

impl Subscription {
    /// Waits for the next event (cancel-safe: dropping the future loses nothing).
    pub async fn recv(&self) -> Event {
        loop {
            if let Some(e) = self.queue.pop() {
                return e;
            }
            // notify_one stores a permit if nobody waits, so a push between pop and here
            // still wakes us.
            self.queue.notify.notified().await;
        }
    }

    /// Takes an event if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.queue.pop()
    }

    /// The mailbox subscribed to.
    pub fn mailbox(&self) -> &str {
        &self.queue.mailbox
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        for sh in &self.inner.shards {
            let mut sh = sh.write();
            if let Some(v) = sh.subs.get_mut(&self.mbox) {
                v.retain(|x| !Arc::ptr_eq(x, &self.queue));
                if v.is_empty() {
                    sh.subs.remove(&self.mbox);
                }
            }
        }
        self.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}
