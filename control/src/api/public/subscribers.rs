//! Live-push admission: bounded subscribers per mailbox and per client IP, released by
//! dropping the guard; also counts who is connected over which transport, for metrics.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use super::ratelimit::client_key;

/// Counts of open live-push connections.
pub struct Subscribers {
    per_mailbox_max: usize,
    per_ip_max: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    mailbox: HashMap<String, usize>,
    ip: HashMap<IpAddr, usize>,
    /// Subscribers by `Transport as usize`.
    transport: [usize; Transport::ALL.len()],
}

/// How a subscriber receives its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Server-Sent Events.
    Sse,
    /// WebSocket.
    WebSocket,
    /// A held `messages/wait` request.
    Wait,
}

impl Transport {
    /// Every transport, in `as usize` order.
    pub const ALL: [Self; 3] = [Self::Sse, Self::WebSocket, Self::Wait];

    /// Metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::WebSocket => "websocket",
            Self::Wait => "wait",
        }
    }
}

/// Which bound refused a subscriber.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `api.subscribers_per_mailbox_max`.
    Mailbox(usize),
    /// `api.subscribers_per_ip_max`.
    Ip(usize),
}

/// One admitted subscriber; dropping it frees the slots.
pub struct Admission {
    owner: Arc<Subscribers>,
    mailbox: String,
    ip: IpAddr,
    transport: Transport,
}

impl Subscribers {
    /// Bounds per mailbox and per client.
    pub fn new(per_mailbox_max: usize, per_ip_max: usize) -> Self {
        Self {
            per_mailbox_max,
            per_ip_max,
            counts: Mutex::default(),
        }
    }

    /// Admits a subscriber of `mailbox` from `ip` over `transport`, or says which bound is
    /// reached.
    pub fn admit(
        self: &Arc<Self>,
        mailbox: &str,
        ip: IpAddr,
        transport: Transport,
    ) -> Result<Admission, Refused> {
        let ip = client_key(ip);
        let mut c = self.counts.lock();
        if c.mailbox.get(mailbox).copied().unwrap_or(0) >= self.per_mailbox_max {
            return Err(Refused::Mailbox(self.per_mailbox_max));
        }
        if c.ip.get(&ip).copied().unwrap_or(0) >= self.per_ip_max {
            return Err(Refused::Ip(self.per_ip_max));
        }
        *c.mailbox.entry(mailbox.to_owned()).or_default() += 1;
        *c.ip.entry(ip).or_default() += 1;
        c.transport[transport as usize] += 1;
        Ok(Admission {
            owner: Arc::clone(self),
            mailbox: mailbox.to_owned(),
            ip,
            transport,
        })
    }

    /// Subscribers connected now, by transport.
    pub fn connected(&self) -> [(Transport, usize); Transport::ALL.len()] {
        let c = self.counts.lock();
        Transport::ALL.map(|t| (t, c.transport[t as usize]))
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock();
        release(&mut c.mailbox, &self.mailbox);
        release(&mut c.ip, &self.ip);
        let n = &mut c.transport[self.transport as usize];
        *n = n.saturating_sub(1);
    }
}

fn release<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: both bounds hold at their limit, dropping a guard frees its slot, and the
    // per-transport counts follow admissions and drops (a refusal counts nothing).
    #[test]
    fn bounds_and_release() {
        use Transport::{Sse, WebSocket};
        let s = Arc::new(Subscribers::new(2, 3));
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let a = s.admit("a@p.test", ip, Sse).expect("1");
        let _b = s.admit("a@p.test", ip, WebSocket).expect("2");
        assert_eq!(
            s.admit("a@p.test", ip, Sse).err(),
            Some(Refused::Mailbox(2))
        );
        let _c = s.admit("b@p.test", ip, Sse).expect("3");
        assert_eq!(s.admit("c@p.test", ip, Sse).err(), Some(Refused::Ip(3)));
        assert_eq!(
            s.connected(),
            [(Sse, 2), (WebSocket, 1), (Transport::Wait, 0)]
        );
        drop(a);
        let _d = s
            .admit("a@p.test", "127.0.0.2".parse().expect("ip"), WebSocket)
            .expect("freed");
        assert!(s.counts.lock().mailbox.len() <= 2);
        assert_eq!(
            s.connected(),
            [(Sse, 1), (WebSocket, 2), (Transport::Wait, 0)]
        );
    }
}
