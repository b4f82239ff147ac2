//! Bounded LRU caches of DNS answers that mail-auth reads and fills (`ResolverCache`).

use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::time::Instant;

use lru::LruCache;
use mail_auth::{MX, RecordSet, ResolverCache, Txt};
use parking_lot::Mutex;

/// An LRU cache of at most `capacity` entries; entries past their DNS TTL read as absent.
pub struct BoundedCache<K: Hash + Eq, V> {
    inner: Mutex<LruCache<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> BoundedCache<K, V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            inner: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Entries held now (expired ones included until they are read or evicted).
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for BoundedCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut inner = self.inner.lock();
        match inner.get(name) {
            Some((value, valid_until)) if *valid_until > Instant::now() => Some(value.clone()),
            Some(_) => {
                inner.pop(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.lock().pop(name).map(|(value, _)| value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.inner.lock().put(key, (value, valid_until));
    }
}

/// TXT records (SPF, DKIM keys, DMARC) by FQDN with a trailing dot.
pub type TxtCache = BoundedCache<Box<str>, Txt>;
/// MX record sets by FQDN.
pub type MxCache = BoundedCache<Box<str>, RecordSet<MX>>;
/// A record sets by FQDN.
pub type Ipv4Cache = BoundedCache<Box<str>, RecordSet<Ipv4Addr>>;
/// AAAA record sets by FQDN.
pub type Ipv6Cache = BoundedCache<Box<str>, RecordSet<Ipv6Addr>>;
/// PTR record sets by address.
pub type PtrCache = BoundedCache<IpAddr, RecordSet<Box<str>>>;

/// The five caches of one core.
pub struct ResolverCaches {
    /// TXT records.
    pub txt: TxtCache,
    /// MX records.
    pub mx: MxCache,
    /// A records.
    pub ipv4: Ipv4Cache,
    /// AAAA records.
    pub ipv6: Ipv6Cache,
    /// PTR records.
    pub ptr: PtrCache,
}

impl ResolverCaches {
    /// Five empty caches of `entries` entries each.
    pub fn new(entries: NonZeroUsize) -> Self {
        Self {
            txt: BoundedCache::new(entries),
            mx: BoundedCache::new(entries),
            ipv4: BoundedCache::new(entries),
            ipv6: BoundedCache::new(entries),
            ptr: BoundedCache::new(entries),
        }
    }

    /// `params` with all five caches attached, for any mail-auth `verify_*` call.
    pub fn attach<P>(
        &self,
        params: P,
    ) -> mail_auth::Parameters<'_, P, TxtCache, MxCache, Ipv4Cache, Ipv6Cache, PtrCache> {
        mail_auth::Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cache(capacity: usize) -> BoundedCache<Box<str>, u32> {
        BoundedCache::new(NonZeroUsize::new(capacity).expect("test capacity is non-zero"))
    }

    #[test]
    fn holds_at_most_capacity_and_evicts_least_recently_used() {
        let c = cache(2);
        let later = Instant::now() + Duration::from_secs(60);
        c.insert("a.".into(), 1, later);
        c.insert("b.".into(), 2, later);
        assert_eq!(c.get("a."), Some(1));
        c.insert("c.".into(), 3, later);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b."), None, "b was least recently used");
        assert_eq!(c.get("a."), Some(1));
        assert_eq!(c.get("c."), Some(3));
    }

    #[test]
    fn expired_entries_read_as_absent_and_are_dropped() {
        let c = cache(4);
        c.insert("old.".into(), 1, Instant::now());
        assert_eq!(c.get("old."), None);
        assert!(c.is_empty());
        c.insert("x.".into(), 7, Instant::now() + Duration::from_secs(60));
        assert_eq!(c.remove("x."), Some(7));
        assert_eq!(c.get("x."), None);
    }
}
