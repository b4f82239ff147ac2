//! Live push: a reader subscribes to a mailbox and is woken with each new summary.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::store::Inner;
use crate::view::MessageSummary;

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A message landed in the mailbox.
    New(MessageSummary),
    /// Events were dropped because the subscriber was slow: re-list the mailbox.
    Lagged {
        /// Events lost since the last delivery.
        lost: u64,
    },
}

/// The bounded queue shared between the writers and one subscriber.
pub(crate) struct Queue {
    pub(crate) mailbox: String,
    max: usize,
    state: Mutex<QueueState>,
    notify: Notify,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<MessageSummary>,
    lost: u64,
}

impl Queue {
    pub(crate) fn new(mailbox: &str, max: usize) -> Self {
        Self {
            mailbox: mailbox.to_string(),
            max,
            state: Mutex::default(),
            notify: Notify::new(),
        }
    }

    /// Enqueues a summary, or counts it lost if the queue is full; returns whether lost.
    pub(crate) fn push(&self, s: MessageSummary, lost_total: &AtomicU64) {
        let mut st = self.state.lock();
        if st.events.len() >= self.max {
            st.lost += 1;
            lost_total.fetch_add(1, Ordering::Relaxed);
        } else {
            st.events.push_back(s);
        }
        drop(st);
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Event> {
        let mut st = self.state.lock();
        if st.lost > 0 {
            // The reader must re-list anyway, so queued events are stale too.
            st.events.clear();
            return Some(Event::Lagged {
                lost: std::mem::take(&mut st.lost),
            });
        }
        st.events.pop_front().map(Event::New)
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
        self.inner.unsubscribe(self.mbox, &self.queue);
    }
}
