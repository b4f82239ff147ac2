//! The mailbox registry: which addresses were created, the hash of each one's bearer
//! token, and when each expires. It is the one registry of the appliance: the public API
//! creates, opens and deletes mailboxes in it, the ingress asks it "is this address
//! registered?" in registered-only mode, and the control plane counts a domain's
//! mailboxes in it (admin counts, delete only when empty).
//!
//! Only a SHA-256 of a token is kept, so a memory dump or the log never holds a usable
//! token; comparisons are constant time. The registry is bounded (`api.mailboxes_max`);
//! expired entries are treated as absent at once and pruned when room is needed. With a
//! data directory, every creation and deletion is appended to a log ([`log`]) so tokens
//! survive a restart while their mailboxes live.

pub mod log;

use std::collections::HashMap;
use std::path::Path;

use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tempmx_ingress::policy::MailboxRegistry;
use tempmx_store::{Domain, Mailbox, Store};
use tracing::{info, warn};

use self::log::{Log, LogError, Record};

/// Random bytes in a token (256 bits, hex encoded to 64 characters).
const TOKEN_BYTES: usize = 32;

/// A token hash.
type Digest = [u8; 32];

/// One registered mailbox.
#[derive(Clone, Debug)]
struct Entry {
    token_hash: Digest,
    expires_at_ms: u64,
    /// The TTL asked for at creation, for the store's per-mailbox override.
    ttl_secs: u64,
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
    /// Persistence is on and the creation could not be written (nothing was registered).
    #[error("mailbox could not be saved: {0}")]
    Unsaved(String),
}

/// A freshly registered mailbox: the only time the token is seen in clear.
#[derive(Debug)]
pub struct Registered {
    /// The bearer token to hand to the creator.
    pub token: String,
    /// When the mailbox expires (ms since epoch).
    pub expires_at_ms: u64,
}

/// The entries and a per-domain count kept in step with them.
#[derive(Default)]
struct Entries {
    map: HashMap<Mailbox, Entry>,
    per_domain: HashMap<Domain, usize>,
}

impl Entries {
    fn insert(&mut self, address: &Mailbox, entry: Entry) {
        if self.map.insert(address.clone(), entry).is_none() {
            *self.per_domain.entry(address.to_domain()).or_default() += 1;
        }
    }

    fn remove(&mut self, address: &Mailbox) -> bool {
        let found = self.map.remove(address).is_some();
        if found {
            self.uncount(address);
        }
        found
    }

    fn uncount(&mut self, address: &Mailbox) {
        let d = address.domain();
        if let Some(n) = self.per_domain.get_mut(d) {
            *n -= 1;
            if *n == 0 {
                self.per_domain.remove(d);
            }
        }
    }

    /// Drops entries expired at `now_ms`; returns their addresses.
    fn retain_live(&mut self, now_ms: u64) -> Vec<Mailbox> {
        let mut gone = Vec::new();
        self.map.retain(|a, e| {
            let live = e.expires_at_ms > now_ms;
            if !live {
                gone.push(a.clone());
            }
            live
        });
        gone.iter().for_each(|a| self.uncount(a));
        gone
    }
}

/// Registered mailboxes: mailbox -> token hash and expiry.
pub struct Registry {
    entries: RwLock<Entries>,
    max: usize,
    /// Taken before `entries` by every change that is logged, so lines keep their order.
    log: Option<Mutex<Log<Record>>>,
}

impl Registry {
    /// An empty, memory-only registry that holds at most `max` live mailboxes.
    pub fn new(max: usize) -> Self {
        Self {
            entries: RwLock::new(Entries::default()),
            max,
            log: None,
        }
    }

    /// The registry saved in `dir` (empty when there is no log yet), logging later changes
    /// there. Expired entries are dropped; beyond `max` the soonest to expire are dropped
    /// with a warning (the limit was lowered). A corrupt log is an error.
    pub fn open(max: usize, dir: &Path) -> Result<Self, LogError> {
        let lines_max = log::lines_max(max);
        let (log, records) = Log::open(dir, log::MAILBOXES, lines_max)?;
        let mut entries = Entries::default();
        for r in records {
            replay(&mut entries, r, dir)?;
        }
        entries.retain_live(now_ms());
        if entries.map.len() > max {
            let mut by_expiry: Vec<(u64, Mailbox)> = entries
                .map
                .iter()
                .map(|(a, e)| (e.expires_at_ms, a.clone()))
                .collect();
            by_expiry.sort_unstable();
            let over = by_expiry.len() - max;
            warn!(
                dropped = over,
                max, "saved mailboxes exceed api.mailboxes_max; dropping the soonest to expire"
            );
            by_expiry[..over].iter().for_each(|(_, a)| {
                entries.remove(a);
            });
        }
        info!(mailboxes = entries.map.len(), "mailbox registry loaded");
        Ok(Self {
            entries: RwLock::new(entries),
            max,
            log: Some(Mutex::new(log)),
        })
    }

    /// The registry of a `--data-dir` (saved beside the pool state, see
    /// [`crate::pool::StateFile::dir_in`]), or a memory-only one without.
    pub fn open_in(max: usize, data_dir: Option<&Path>) -> Result<Self, LogError> {
        match data_dir {
            Some(d) => Self::open(max, &crate::pool::StateFile::dir_in(d)),
            None => Ok(Self::new(max)),
        }
    }

    /// Registers `address` until `expires_at_ms`; returns its new token.
    pub fn register(
        &self,
        address: &Mailbox,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<Registered, RegistryError> {
        let token = new_token();
        let entry = Entry {
            token_hash: hash(&token),
            expires_at_ms,
            ttl_secs: expires_at_ms.saturating_sub(now_ms) / 1000,
        };
        match &self.log {
            None => {
                let mut entries = self.entries.write();
                self.check_room(&mut entries, address, now_ms)?;
                entries.insert(address, entry);
            }
            Some(log) => {
                // The log lock keeps other changes out while the line is written without
                // holding `entries`, which the ingress cores read.
                let mut log = log.lock();
                self.check_room(&mut self.entries.write(), address, now_ms)?;
                log.append(&add_record(address, &entry))
                    .map_err(|e| RegistryError::Unsaved(e.to_string()))?;
                self.entries.write().insert(address, entry);
                self.compact_if_due(&mut log);
            }
        }
        Ok(Registered {
            token,
            expires_at_ms,
        })
    }

    fn check_room(
        &self,
        entries: &mut Entries,
        address: &Mailbox,
        now_ms: u64,
    ) -> Result<(), RegistryError> {
        if entries
            .map
            .get(address)
            .is_some_and(|e| e.expires_at_ms > now_ms)
        {
            return Err(RegistryError::Taken);
        }
        if entries.map.len() >= self.max && !entries.map.contains_key(address) {
            entries.retain_live(now_ms);
            if entries.map.len() >= self.max {
                return Err(RegistryError::Full(self.max));
            }
        }
        Ok(())
    }

    /// Whether `token` opens `address` now. Unknown, expired and wrong-token cases take
    /// the same path (a hash and a constant-time compare) so timing tells them apart less.
    pub fn verify(&self, address: &Mailbox, token: &str, now_ms: u64) -> bool {
        let given = hash(token);
        let entries = self.entries.read();
        match entries.map.get(address) {
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
    pub fn expires_at(&self, address: &Mailbox, now_ms: u64) -> Option<u64> {
        self.entries
            .read()
            .map
            .get(address)
            .map(|e| e.expires_at_ms)
            .filter(|&t| t > now_ms)
    }

    /// Moves a live mailbox's expiry to `expires_at_ms` (never earlier than it is); returns
    /// the expiry now in force, or `None` when the mailbox is not live. The token stays.
    pub fn extend(
        &self,
        address: &Mailbox,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<Option<u64>, RegistryError> {
        let renew = |e: &Entry| {
            let expires_at_ms = expires_at_ms.max(e.expires_at_ms);
            Entry {
                expires_at_ms,
                ttl_secs: expires_at_ms.saturating_sub(now_ms).div_ceil(1000),
                ..e.clone()
            }
        };
        let Some(log) = &self.log else {
            let mut entries = self.entries.write();
            let Some(entry) = entries
                .map
                .get_mut(address)
                .filter(|e| e.expires_at_ms > now_ms)
            else {
                return Ok(None);
            };
            *entry = renew(entry);
            return Ok(Some(entry.expires_at_ms));
        };
        // As in `register`: the log lock orders the change against every other logged one,
        // and `entries`, which the ingress cores read, is not held while the line is written.
        let mut log = log.lock();
        let renewed = self
            .entries
            .read()
            .map
            .get(address)
            .filter(|e| e.expires_at_ms > now_ms)
            .map(renew);
        let Some(renewed) = renewed else {
            return Ok(None);
        };
        // Replay lets a later `add` of the same address replace the earlier one.
        log.append(&add_record(address, &renewed))
            .map_err(|e| RegistryError::Unsaved(e.to_string()))?;
        let at = renewed.expires_at_ms;
        // `insert`, not an update: a sweep in between must not leave memory behind the log.
        self.entries.write().insert(address, renewed);
        self.compact_if_due(&mut log);
        Ok(Some(at))
    }

    /// Whether `address` is registered and live.
    pub fn is_live(&self, address: &Mailbox, now_ms: u64) -> bool {
        self.expires_at(address, now_ms).is_some()
    }

    /// Removes a mailbox; returns whether it was there.
    pub fn remove(&self, address: &Mailbox) -> bool {
        let Some(log) = &self.log else {
            return self.entries.write().remove(address);
        };
        let mut log = log.lock();
        let found = self.entries.write().remove(address);
        if found {
            let line = Record::Remove {
                address: address.to_string(),
            };
            if let Err(e) = log.append(&line) {
                // The mailbox and its mail are gone now; after a restart it would come back empty.
                warn!(error = %e, "mailbox deletion not saved");
            }
            self.compact_if_due(&mut log);
        }
        found
    }

    /// Drops expired entries; returns the addresses dropped (so their mail can go too).
    /// Nothing is logged: replay drops expired entries by their time.
    pub fn sweep(&self, now_ms: u64) -> Vec<Mailbox> {
        self.entries.write().retain_live(now_ms)
    }

    /// Entries held on `domain` (live, or expired less than a sweep ago).
    pub fn count(&self, domain: &Domain) -> usize {
        self.entries
            .read()
            .per_domain
            .get(domain)
            .copied()
            .unwrap_or(0)
    }

    /// Live and expired-but-not-swept entries held.
    pub fn len(&self) -> usize {
        self.entries.read().map.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the logged changes durable (fsync) and compacts the log when it has grown
    /// well past the live entries. Called on the control tick; memory-only: nothing.
    pub fn persist(&self) -> Result<(), LogError> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let mut log = log.lock();
        self.compact_if_due(&mut log);
        log.sync()
    }

    /// Rewrites the log from the live entries once it holds far more lines than they
    /// need; checked after every line, so the file never outgrows the bound `open`
    /// enforces. A failure keeps the long log (still correct) and is retried later.
    fn compact_if_due(&self, log: &mut Log<Record>) {
        if !log.wants_compaction(self.len()) {
            return;
        }
        let records: Vec<Record> = self
            .entries
            .read()
            .map
            .iter()
            .map(|(a, e)| add_record(a, e))
            .collect();
        if let Err(e) = log.compact(&records) {
            warn!(error = %e, "mailbox registry log not compacted");
        }
    }

    /// Gives every live mailbox its TTL override in the store again, so mail keeps the
    /// lifetime its owner asked for. A `disk` store keeps overrides in its own journal, so
    /// there this only fills in what a memory store or a lost journal lacks (values
    /// already in force cost the store nothing).
    pub fn restore_ttls(&self, store: &Store) {
        let ttls: Vec<(Mailbox, u64)> = self
            .entries
            .read()
            .map
            .iter()
            .map(|(a, e)| (a.clone(), e.ttl_secs))
            .collect();
        for (address, ttl) in ttls {
            if let Err(e) = store.set_mailbox_ttl(&address, Some(ttl)) {
                warn!(error = %e, "mailbox ttls not restored; the store default holds for the rest");
                return;
            }
        }
    }
}

impl MailboxRegistry for Registry {
    fn contains(&self, mailbox: &Mailbox) -> bool {
        self.is_live(mailbox, now_ms())
    }
}

/// Milliseconds since the Unix epoch on the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new random bearer token (hex).
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a token, as registries keep it.
pub(crate) fn hash(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn add_record(address: &Mailbox, e: &Entry) -> Record {
    Record::Add {
        address: address.to_string(),
        token_sha256: hex::encode(e.token_hash),
        expires_at_ms: e.expires_at_ms,
        ttl_secs: e.ttl_secs,
    }
}

/// The mailbox a log line names, folded by the current rule (lines written before local
/// parts were folded name the same mailbox); `None`, with a warning, for one that is no
/// mailbox at all, which is skipped rather than failing the start.
fn saved_mailbox(address: &str) -> Option<Mailbox> {
    match Mailbox::parse(address) {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(%address, error = %e, "saved mailbox is not a valid address; skipped");
            None
        }
    }
}

/// Applies one log line to the entries being rebuilt.
fn replay(entries: &mut Entries, record: Record, dir: &Path) -> Result<(), LogError> {
    match record {
        Record::Add {
            address,
            token_sha256,
            expires_at_ms,
            ttl_secs,
        } => {
            let token_hash = unhex(&token_sha256).ok_or_else(|| LogError::Corrupt {
                path: dir.join(log::FILE),
                line: 0,
                detail: format!("token hash of {address} is not 64 hex digits"),
            })?;
            let entry = Entry {
                token_hash,
                expires_at_ms,
                ttl_secs,
            };
            if let Some(mailbox) = saved_mailbox(&address) {
                entries.insert(&mailbox, entry);
            }
        }
        Record::Remove { address } => {
            if let Some(mailbox) = saved_mailbox(&address) {
                entries.remove(&mailbox);
            }
        }
    }
    Ok(())
}

fn unhex(text: &str) -> Option<Digest> {
    hex::FromHex::from_hex(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(address: &str) -> Mailbox {
        Mailbox::parse(address).expect("test address")
    }

    fn d(name: &str) -> Domain {
        Domain::parse(name).expect("test domain")
    }

    // Goal: a token opens only its own mailbox, only until expiry; the clear token is
    // never stored. Method: register two boxes and cross-check tokens.
    #[test]
    fn tokens_open_only_their_mailbox() {
        let r = Registry::new(10);
        let a = r.register(&m("a@p.test"), 0, 1000).expect("a");
        let b = r.register(&m("b@p.test"), 0, 1000).expect("b");
        assert_eq!(a.token.len(), 64);
        assert!(r.verify(&m("a@p.test"), &a.token, 10));
        assert!(!r.verify(&m("a@p.test"), &b.token, 10));
        assert!(!r.verify(&m("c@p.test"), &a.token, 10));
        assert!(!r.verify(&m("a@p.test"), &a.token, 1000), "expired");
        let held = format!("{:?}", r.entries.read().map.get(&m("a@p.test")));
        assert!(!held.contains(&a.token));
    }

    // Goal: the limit refuses a new box but makes room from expired ones; a live address
    // cannot be taken twice, an expired one can.
    #[test]
    fn limit_and_reuse() {
        let r = Registry::new(2);
        r.register(&m("a@p.test"), 0, 100).expect("a");
        r.register(&m("b@p.test"), 0, 500).expect("b");
        assert_eq!(
            r.register(&m("c@p.test"), 50, 600).expect_err("must fail"),
            RegistryError::Full(2)
        );
        assert_eq!(
            r.register(&m("b@p.test"), 50, 600).expect_err("must fail"),
            RegistryError::Taken
        );
        r.register(&m("c@p.test"), 200, 600)
            .expect("room after a expired");
        assert_eq!(r.len(), 2);
        r.register(&m("b@p.test"), 500, 900)
            .expect("b expired, free again");
        assert_eq!(r.sweep(700), vec![m("c@p.test")]);
    }

    // Goal: the ingress view (registered-only mode) sees live boxes on the system clock.
    #[test]
    fn ingress_sees_live_boxes() {
        let r = Registry::new(2);
        let t = now_ms();
        r.register(&m("live@p.test"), t, t + 60_000).expect("live");
        r.register(&m("old@p.test"), 0, 1).expect("old");
        assert!(MailboxRegistry::contains(&r, &m("live@p.test")));
        assert!(!MailboxRegistry::contains(&r, &m("old@p.test")));
        assert!(!MailboxRegistry::contains(&r, &m("none@p.test")));
    }

    // Goal: per-domain counts follow registration, deletion and sweeping.
    #[test]
    fn counts_per_domain() {
        let r = Registry::new(10);
        r.register(&m("a@x.test"), 0, 100).expect("a");
        r.register(&m("b@x.test"), 0, 200).expect("b");
        r.register(&m("a@y.test"), 0, 200).expect("c");
        assert_eq!((r.count(&d("x.test")), r.count(&d("y.test"))), (2, 1));
        assert!(r.remove(&m("b@x.test")));
        assert!(!r.remove(&m("b@x.test")));
        assert_eq!(r.sweep(150), vec![m("a@x.test")]);
        assert_eq!((r.count(&d("x.test")), r.count(&d("y.test"))), (0, 1));
        r.register(&m("a@x.test"), 150, 300)
            .expect("expired address taken again");
        assert_eq!(r.count(&d("x.test")), 1);
    }

    // Goal: with a directory, tokens, deletions and TTLs survive a reopen; expired entries
    // do not; a lowered limit keeps the latest-expiring entries; a bad hash is corruption.
    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        let r = Registry::open(10, dir.path()).expect("open");
        let a = r.register(&m("a@x.test"), now, now + 60_000).expect("a");
        let b = r.register(&m("b@x.test"), now, now + 120_000).expect("b");
        r.register(&m("gone@x.test"), now, now + 60_000)
            .expect("gone");
        r.register(&m("old@x.test"), 0, 1).expect("old");
        assert!(r.remove(&m("gone@x.test")));
        r.persist().expect("persist");
        drop(r);

        let back = Registry::open(10, dir.path()).expect("reopen");
        assert!(back.verify(&m("a@x.test"), &a.token, now));
        assert!(back.verify(&m("b@x.test"), &b.token, now));
        assert!(!back.verify(&m("a@x.test"), &b.token, now));
        assert_eq!(back.len(), 2, "deleted and expired entries are not back");
        assert_eq!(back.count(&d("x.test")), 2);
        let ttl = back
            .entries
            .read()
            .map
            .get(&m("b@x.test"))
            .map(|e| e.ttl_secs);
        assert_eq!(ttl, Some(120));
        drop(back);

        let lowered = Registry::open(1, dir.path()).expect("lowered limit");
        assert!(
            lowered.verify(&m("b@x.test"), &b.token, now),
            "latest expiry kept"
        );
        assert_eq!(lowered.len(), 1);

        let path = dir.path().join(log::FILE);
        let mut text = std::fs::read(&path).expect("read");
        text.extend_from_slice(
            br#"{"add":{"address":"z@x.test","token_sha256":"zz","expires_at_ms":1,"ttl_secs":1}}"#,
        );
        text.push(b'\n');
        std::fs::write(&path, text).expect("write");
        let err = Registry::open(10, dir.path())
            .err()
            .expect("bad hash refused");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    // Goal: a log written before local parts were folded still loads, and its upper-case
    // address opens the folded mailbox; a line that is no mailbox (an IP as its domain)
    // is skipped, not fatal. Method: write such lines to a log, reopen, verify the token.
    #[test]
    fn old_spellings_fold_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        let r = Registry::open(10, dir.path()).expect("open");
        let a = r.register(&m("a@x.test"), now, now + 60_000).expect("a");
        drop(r);
        let path = dir.path().join(log::FILE);
        let text = std::fs::read_to_string(&path).expect("read");
        let upper = text.replace("a@x.test", "Mixed.Case@X.Test");
        let line = text
            .lines()
            .find(|l| l.contains("a@x.test"))
            .expect("add line");
        let ip = line.replace("a@x.test", "u@127.0.0.1");
        std::fs::write(&path, format!("{upper}{ip}\n")).expect("write");
        let back = Registry::open(10, dir.path()).expect("reopen");
        assert!(back.verify(&m("mixed.case@x.test"), &a.token, now));
        assert!(back.verify(&m("MIXED.CASE@x.test"), &a.token, now));
        assert_eq!(back.len(), 1, "the IP line is skipped");
    }

    // Goal: extending moves a live mailbox's expiry forward only, keeps its token, refuses
    // an expired or unknown one, and survives a reopen. Method: extend, shorten, reopen.
    #[test]
    fn extend_moves_expiry_forward_and_is_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        let r = Registry::open(10, dir.path()).expect("open");
        let a = r.register(&m("a@x.test"), now, now + 60_000).expect("a");
        r.register(&m("old@x.test"), 0, 1).expect("old");
        assert_eq!(
            r.extend(&m("a@x.test"), now, now + 90_000),
            Ok(Some(now + 90_000))
        );
        assert_eq!(
            r.extend(&m("a@x.test"), now, now + 10_000),
            Ok(Some(now + 90_000)),
            "never shortened"
        );
        assert_eq!(r.extend(&m("old@x.test"), now, now + 90_000), Ok(None));
        assert_eq!(r.extend(&m("none@x.test"), now, now + 90_000), Ok(None));
        assert!(r.verify(&m("a@x.test"), &a.token, now + 80_000));
        drop(r);
        let back = Registry::open(10, dir.path()).expect("reopen");
        assert_eq!(back.expires_at(&m("a@x.test"), now), Some(now + 90_000));
        assert!(back.verify(&m("a@x.test"), &a.token, now + 80_000));
        let ttl = back.entries.read().map.get("a@x.test").map(|e| e.ttl_secs);
        assert_eq!(ttl, Some(90));

        let memory = Registry::new(10);
        memory.register(&m("m@x.test"), now, now + 1000).expect("m");
        assert_eq!(
            memory.extend(&m("m@x.test"), now, now + 5000),
            Ok(Some(now + 5000))
        );
        assert_eq!(
            memory.extend(&m("m@x.test"), now + 6000, now + 9000),
            Ok(None)
        );
    }

    // Goal: a creation that cannot be written is refused and leaves nothing registered.
    #[test]
    fn unsaved_creation_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(10, &dir.path().join("missing")).expect("open");
        let now = now_ms();
        assert!(matches!(
            r.register(&m("a@x.test"), now, now + 1000),
            Err(RegistryError::Unsaved(_))
        ));
        assert!(r.is_empty());
    }

    // Goal: churn (create and delete far more often than the limit) never grows the log
    // past the bound `open` enforces, with or without a tick in between.
    #[test]
    fn churn_keeps_the_log_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(10, dir.path()).expect("open");
        let now = now_ms();
        for i in 0..3_000 {
            let a = format!("u{i}@x.test");
            r.register(&m(&a), now, now + 60_000)
                .expect("room after each delete");
            assert!(r.remove(&m(&a)));
        }
        r.register(&m("kept@x.test"), now, now + 60_000)
            .expect("kept");
        let bytes = std::fs::metadata(dir.path().join(log::FILE))
            .expect("log")
            .len();
        assert!(bytes < (log::lines_max(10) * 200) as u64, "{bytes} bytes");
        drop(r);
        let back = Registry::open(10, dir.path()).expect("reopens within the bound");
        assert_eq!(back.len(), 1);
    }
}
