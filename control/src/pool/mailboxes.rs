//! The registry of created mailboxes (registered-only mode), read by the ingress cores.

use std::collections::HashMap;

use parking_lot::RwLock;
use tempmx_ingress::policy::MailboxRegistry;

struct Inner {
    /// address → created at (unix seconds).
    addresses: HashMap<String, u64>,
    /// domain → mailboxes, so per-domain counts need no scan.
    per_domain: HashMap<String, usize>,
    /// Oldest creation time held, so a tick with nothing to expire needs no scan.
    oldest: u64,
}

/// Bounded set of registered addresses (`local@domain`, domain normalised).
pub struct Mailboxes {
    inner: RwLock<Inner>,
    max: usize,
}

/// The registry is full.
#[derive(Debug, thiserror::Error)]
#[error("mailbox limit of {0} reached")]
pub struct MailboxLimit(pub usize);

impl Mailboxes {
    /// An empty registry holding at most `max` addresses.
    pub fn new(max: usize) -> Self {
        let inner = Inner {
            addresses: HashMap::new(),
            per_domain: HashMap::new(),
            oldest: u64::MAX,
        };
        Self {
            inner: RwLock::new(inner),
            max,
        }
    }

    /// Adds an address; `Ok(false)` when it already existed.
    pub fn insert(&self, address: &str, now: u64) -> Result<bool, MailboxLimit> {
        let mut inner = self.inner.write();
        if inner.addresses.contains_key(address) {
            return Ok(false);
        }
        if inner.addresses.len() >= self.max {
            return Err(MailboxLimit(self.max));
        }
        inner.addresses.insert(address.to_owned(), now);
        inner.oldest = inner.oldest.min(now);
        *inner
            .per_domain
            .entry(domain_of(address).to_owned())
            .or_default() += 1;
        Ok(true)
    }

    /// Removes mailboxes created at or before `cutoff`; returns how many.
    pub fn expire(&self, cutoff: u64) -> usize {
        if self.inner.read().oldest > cutoff {
            return 0;
        }
        let mut inner = self.inner.write();
        let old: Vec<String> = inner
            .addresses
            .iter()
            .filter(|(_, t)| **t <= cutoff)
            .map(|(a, _)| a.clone())
            .collect();
        for a in &old {
            inner.addresses.remove(a);
            let d = domain_of(a).to_owned();
            if let Some(n) = inner.per_domain.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    inner.per_domain.remove(&d);
                }
            }
        }
        inner.oldest = inner.addresses.values().copied().min().unwrap_or(u64::MAX);
        old.len()
    }

    /// Mailboxes on `domain`.
    pub fn count(&self, domain: &str) -> usize {
        self.inner
            .read()
            .per_domain
            .get(domain)
            .copied()
            .unwrap_or(0)
    }

    /// Every entry, for persistence.
    pub fn entries(&self) -> Vec<(String, u64)> {
        self.inner
            .read()
            .addresses
            .iter()
            .map(|(a, t)| (a.clone(), *t))
            .collect()
    }
}

impl MailboxRegistry for Mailboxes {
    fn contains(&self, address: &str) -> bool {
        self.inner.read().addresses.contains_key(address)
    }
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the registry is bounded, counts per domain and expires by age.
    #[test]
    fn bounded_counted_expired() {
        let m = Mailboxes::new(2);
        assert!(m.insert("a@x.test", 1).expect("test setup"));
        assert!(!m.insert("a@x.test", 2).expect("test setup"));
        assert!(m.insert("b@x.test", 3).expect("test setup"));
        assert!(m.insert("c@x.test", 4).is_err());
        assert!(m.contains("a@x.test") && !m.contains("c@x.test"));
        assert_eq!(m.count("x.test"), 2);
        assert_eq!(m.expire(1), 1);
        assert_eq!(m.count("x.test"), 1);
        assert_eq!(m.entries(), vec![("b@x.test".to_owned(), 3)]);
    }
}
