//! The bounded queue of new-message summaries a writer fills for one subscriber.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

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
    pub(crate) notify: Notify,
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

    /// The next event, a lag report first.
    pub(crate) fn pop(&self) -> Option<Event> {
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
