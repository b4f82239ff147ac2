//! Per-domain message counts fed from the delivery path.
//!
//! Each ingress core's store writer is wrapped in a [`CountingSink`]: once the store has
//! accepted a message, it adds one to every recipient domain in that core's own slot. A
//! slot's mutex is taken only by its core and, once per control tick, by the plane that
//! drains it, so the SMTP hot path pays one uncontended lock and a hash lookup per
//! message and never waits for another core. Counting at the sink sees exactly the
//! messages the store took (a refused or failed message is not counted) without touching
//! the ingress; the store itself keeps per-shard, not per-domain, counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tempmx_store::{Accepted, Domain, MessageSink, NewMessage, StoreError};

/// Messages counted for one domain since the last drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Messages with at least one recipient on the domain.
    pub messages: u64,
    /// Receipt time of the newest of them (ms since the Unix epoch).
    pub last_at_ms: u64,
}

/// One core's counts.
#[derive(Default)]
struct Slot {
    counts: Mutex<HashMap<Domain, Count>>,
    /// Messages not counted because the slot already held `domains_max` domains.
    dropped: AtomicU64,
}

impl Slot {
    fn count(&self, msg: &NewMessage<'_>, domains_max: usize) {
        let mut counts = self.counts.lock();
        for (i, rcpt) in msg.recipients.iter().enumerate() {
            let domain = rcpt.domain();
            // A message counts once per domain, however many of its recipients share it.
            if msg.recipients[..i].iter().any(|r| r.domain() == domain) {
                continue;
            }
            if !counts.contains_key(domain) && counts.len() >= domains_max {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Allocates the key only the first time a domain is seen since the last drain.
            let c = match counts.get_mut(domain) {
                Some(c) => c,
                None => counts.entry(rcpt.to_domain()).or_default(),
            };
            c.messages += 1;
            c.last_at_ms = c.last_at_ms.max(msg.received_at_ms);
        }
    }
}

/// The counts of every core, drained by the control plane.
pub struct MessageCounters {
    slots: Mutex<Vec<Arc<Slot>>>,
    domains_max: usize,
}

impl MessageCounters {
    /// No slots yet; each slot holds at most `domains_max` domains between drains (the
    /// ingress only accepts pool domains, so this is never reached with a sane pool).
    pub fn new(domains_max: usize) -> Self {
        Self {
            slots: Mutex::new(Vec::new()),
            domains_max,
        }
    }

    /// Wraps one core's sink so that it counts what the store accepts.
    pub fn wrap(&self, inner: Box<dyn MessageSink + Send>) -> Box<dyn MessageSink + Send> {
        let slot = Arc::new(Slot::default());
        self.slots.lock().push(slot.clone());
        Box::new(CountingSink {
            inner,
            slot,
            domains_max: self.domains_max,
        })
    }

    /// Takes the counts of every core since the last drain, merged per domain, and how
    /// many messages could not be counted.
    pub fn drain(&self) -> (HashMap<Domain, Count>, u64) {
        let mut out: HashMap<Domain, Count> = HashMap::new();
        let mut dropped = 0;
        for slot in self.slots.lock().iter() {
            dropped += slot.dropped.swap(0, Ordering::Relaxed);
            for (domain, c) in slot.counts.lock().drain() {
                let total = out.entry(domain).or_default();
                total.messages += c.messages;
                total.last_at_ms = total.last_at_ms.max(c.last_at_ms);
            }
        }
        (out, dropped)
    }
}

/// A store writer that counts accepted messages per recipient domain.
pub struct CountingSink {
    inner: Box<dyn MessageSink + Send>,
    slot: Arc<Slot>,
    domains_max: usize,
}

impl MessageSink for CountingSink {
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        let accepted = self.inner.accept(msg)?;
        self.slot.count(msg, self.domains_max);
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use tempmx_store::{Commit, Mailbox, MessageId};

    /// Accepts everything except messages whose sender is `refuse@…`.
    struct Accepting;

    impl MessageSink for Accepting {
        fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
            if msg.mail_from.starts_with("refuse@") {
                return Err(StoreError::CommitStopped);
            }
            Ok(Accepted {
                id: MessageId(1),
                commit: Commit::Done,
            })
        }
    }

    fn message<'a>(from: &'a str, rcpts: &'a [Mailbox], at: u64) -> NewMessage<'a> {
        NewMessage {
            received_at_ms: at,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "client.test",
            mail_from: from,
            recipients: rcpts,
            tls: None,
            trace_headers: b"",
            auth: &[],
            body: b"Subject: x\r\n\r\nx\r\n",
        }
    }

    fn rcpts(list: &[&str]) -> Vec<Mailbox> {
        list.iter()
            .map(|s| Mailbox::parse(s).expect("test address"))
            .collect()
    }

    // Goal: one count per message and domain across cores, the newest time wins, refused
    // messages are not counted, and a drain empties the slots.
    #[test]
    fn counts_per_domain_across_cores() {
        let counters = MessageCounters::new(10);
        let mut a = counters.wrap(Box::new(Accepting));
        let mut b = counters.wrap(Box::new(Accepting));
        let two = rcpts(&["x@a.test", "y@a.test", "z@b.test"]);
        a.accept(&message("s@o.test", &two, 5_000))
            .expect("accepted");
        b.accept(&message("s@o.test", &rcpts(&["x@a.test"]), 9_000))
            .expect("accepted");
        assert!(b.accept(&message("refuse@o.test", &two, 10_000)).is_err());
        let (counts, dropped) = counters.drain();
        assert_eq!(dropped, 0);
        assert_eq!(
            counts.get("a.test"),
            Some(&Count {
                messages: 2,
                last_at_ms: 9_000
            })
        );
        assert_eq!(counts.get("b.test").map(|c| c.messages), Some(1));
        assert!(counters.drain().0.is_empty(), "drained");
    }

    // Goal: at `domains_max` distinct domains a new domain is not counted but known ones
    // still are, and the loss is reported.
    #[test]
    fn domain_limit_drops_and_reports() {
        let counters = MessageCounters::new(1);
        let mut s = counters.wrap(Box::new(Accepting));
        s.accept(&message("s@o.test", &rcpts(&["x@a.test"]), 1))
            .expect("accepted");
        s.accept(&message("s@o.test", &rcpts(&["x@b.test", "x@a.test"]), 2))
            .expect("accepted");
        let (counts, dropped) = counters.drain();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts.get("a.test").map(|c| c.messages), Some(2));
        assert_eq!(dropped, 1);
    }
}
