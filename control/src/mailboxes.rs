//! The mailbox registry of the public API: which addresses were created, the hash of
//! each one's bearer token, and when each expires.
//!
//! Only a SHA-256 of a token is kept, so a memory dump or a state file never holds a
//! usable token; comparisons are constant time. The registry is bounded
//! (`mailboxes_max`); expired entries are treated as absent at once and pruned when room
//! is needed. It also answers the ingress's "is this address registered?" question for
//! the registered-only recipient mode.

use std::collections::HashMap;

use parking_lot::RwLock;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tempmx_ingress::policy::MailboxRegistry;

/// Random bytes in a token (256 bits, hex encoded to 64 characters).
const TOKEN_BYTES: usize = 32;

/// A token hash.
type Digest = [u8; 32];

/// One registered mailbox.
#[derive(Clone, Debug)]
struct Entry {
    token_hash: Digest,
    expires_at_ms: u64,
}

/// Why a mailbox could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// The address is registered and has not expired.
    #[error("address is taken")]
    Taken,
    /// The registry holds `mailboxes_max` live mailboxes.
    #[error("mailbox registry is full ({0} mailboxes)")]
    Full(usize),
}

/// A freshly registered mailbox: the only time the token is seen in clear.
#[derive(Debug)]
pub struct Registered {
    /// The bearer token to hand to the creator.
    pub token: String,
    /// When the mailbox expires (ms since epoch).
    pub expires_at_ms: u64,
}

/// Registered mailboxes: normalised address -> token hash and expiry.
pub struct Registry {
    entries: RwLock<HashMap<String, Entry>>,
    max: usize,
}

impl Registry {
    /// An empty registry that holds at most `max` live mailboxes.
    pub fn new(max: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            max,
        }
    }

    /// Registers `address` (normalised) until `expires_at_ms`; returns its new token.
    pub fn register(
        &self,
        address: &str,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<Registered, RegistryError> {
        let mut map = self.entries.write();
        if map.get(address).is_some_and(|e| e.expires_at_ms > now_ms) {
            return Err(RegistryError::Taken);
        }
        if map.len() >= self.max && !map.contains_key(address) {
            map.retain(|_, e| e.expires_at_ms > now_ms);
            if map.len() >= self.max {
                return Err(RegistryError::Full(self.max));
            }
        }
        let token = new_token();
        map.insert(
            address.to_owned(),
            Entry {
                token_hash: hash(&token),
                expires_at_ms,
            },
        );
        Ok(Registered {
            token,
            expires_at_ms,
        })
    }

    /// Whether `token` opens `address` now. Unknown, expired and wrong-token cases take
    /// the same path (a hash and a constant-time compare) so timing tells them apart less.
    pub fn verify(&self, address: &str, token: &str, now_ms: u64) -> bool {
        let given = hash(token);
        let map = self.entries.read();
        match map.get(address) {
            Some(e) => {
                let same: bool = e.token_hash[..].ct_eq(&given[..]).into();
                same && e.expires_at_ms > now_ms
            }
            None => {
                let _: bool = [0u8; 32][..].ct_eq(&given[..]).into();
                false
            }
        }
    }

    /// Expiry of a live mailbox (ms since epoch).
    pub fn expires_at(&self, address: &str, now_ms: u64) -> Option<u64> {
        self.entries
            .read()
            .get(address)
            .map(|e| e.expires_at_ms)
            .filter(|&t| t > now_ms)
    }

    /// Whether `address` is registered and live.
    pub fn is_live(&self, address: &str, now_ms: u64) -> bool {
        self.expires_at(address, now_ms).is_some()
    }

    /// Removes a mailbox; returns whether it was there.
    pub fn remove(&self, address: &str) -> bool {
        self.entries.write().remove(address).is_some()
    }

    /// Drops expired entries; returns the addresses dropped (so their mail can go too).
    pub fn sweep(&self, now_ms: u64) -> Vec<String> {
        let mut gone = Vec::new();
        self.entries.write().retain(|a, e| {
            let live = e.expires_at_ms > now_ms;
            if !live {
                gone.push(a.clone());
            }
            live
        });
        gone
    }

    /// Live and expired-but-not-swept entries held.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MailboxRegistry for Registry {
    fn contains(&self, address: &str) -> bool {
        self.is_live(address, now_ms())
    }
}

/// Milliseconds since the Unix epoch on the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a token opens only its own mailbox, only until expiry; the clear token is
    // never stored. Method: register two boxes and cross-check tokens.
    #[test]
    fn tokens_open_only_their_mailbox() {
        let r = Registry::new(10);
        let a = r.register("a@p.test", 0, 1000).expect("a");
        let b = r.register("b@p.test", 0, 1000).expect("b");
        assert_eq!(a.token.len(), 64);
        assert!(r.verify("a@p.test", &a.token, 10));
        assert!(!r.verify("a@p.test", &b.token, 10));
        assert!(!r.verify("c@p.test", &a.token, 10));
        assert!(!r.verify("a@p.test", &a.token, 1000), "expired");
        let held = format!("{:?}", r.entries.read().get("a@p.test"));
        assert!(!held.contains(&a.token));
    }

    // Goal: the limit refuses a new box but makes room from expired ones; a live address
    // cannot be taken twice, an expired one can.
    #[test]
    fn limit_and_reuse() {
        let r = Registry::new(2);
        r.register("a@p.test", 0, 100).expect("a");
        r.register("b@p.test", 0, 500).expect("b");
        assert_eq!(
            r.register("c@p.test", 50, 600).expect_err("must fail"),
            RegistryError::Full(2)
        );
        assert_eq!(
            r.register("b@p.test", 50, 600).expect_err("must fail"),
            RegistryError::Taken
        );
        r.register("c@p.test", 200, 600)
            .expect("room after a expired");
        assert_eq!(r.len(), 2);
        r.register("b@p.test", 500, 900)
            .expect("b expired, free again");
        assert_eq!(r.sweep(700), vec!["c@p.test".to_owned()]);
    }

    // Goal: the ingress view (registered-only mode) sees live boxes on the system clock.
    #[test]
    fn ingress_sees_live_boxes() {
        let r = Registry::new(2);
        let t = now_ms();
        r.register("live@p.test", t, t + 60_000).expect("live");
        r.register("old@p.test", 0, 1).expect("old");
        assert!(MailboxRegistry::contains(&r, "live@p.test"));
        assert!(!MailboxRegistry::contains(&r, "old@p.test"));
        assert!(!MailboxRegistry::contains(&r, "none@p.test"));
    }
}
