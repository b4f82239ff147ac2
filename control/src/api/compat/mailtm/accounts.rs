//! mail.tm accounts: an address registered in the mailbox registry, an argon2 hash of
//! its password, the bearer tokens issued by `POST /token` (kept as SHA-256 hashes) and
//! the messages marked seen. With a data directory, accounts and token hashes are kept
//! in `<data_dir>/control/mailtm-accounts.log` the way the registry keeps mailboxes (one
//! line per change, fsynced before the answer, compacted when long), so clients keep
//! their accounts and tokens across a restart; seen marks are memory only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tempmx_store::{Mailbox, MessageId};
use tracing::warn;

use crate::mailboxes::log::{Kind, Log, LogError, lines_max};

/// Tokens kept per account; the oldest is dropped when another is issued.
pub const TOKENS_PER_ACCOUNT_MAX: usize = 16;
/// Password length in characters (mail.tm asks for at least 6).
pub const PASSWORD_CHARS_MIN: usize = 6;
/// Longest password taken (hashing cost is bounded by it).
pub const PASSWORD_BYTES_MAX: usize = 256;

/// One account.
#[derive(Clone, Debug)]
pub struct Account {
    /// 24 hex digits, like mail.tm's ids.
    pub id: String,
    /// The mailbox.
    pub address: Mailbox,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
    /// Creation time (ms since epoch).
    pub created_at_ms: u64,
}

/// The accounts' log.
const LOG: Kind = Kind {
    file: "mailtm-accounts.log",
    temp: "mailtm-accounts.log.tmp",
    header: "tempmx_mailtm_accounts",
};

/// One line of the accounts' log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Line {
    /// An account was created.
    Add {
        /// Account id.
        id: String,
        /// Normalised address.
        address: String,
        /// argon2id PHC string.
        password_hash: String,
        /// Creation time (ms since epoch).
        created_at_ms: u64,
    },
    /// A token was issued.
    Token {
        /// Account id.
        id: String,
        /// SHA-256 of the token, hex.
        token_sha256: String,
    },
    /// An account was deleted.
    Remove {
        /// Account id.
        id: String,
    },
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The password could not be hashed (never expected with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The account table is full.
    #[error("at most {0} accounts")]
    Full(usize),
    /// The change could not be written to the data directory.
    #[error("account not saved: {0}")]
    Unsaved(#[from] LogError),
}

#[derive(Default)]
struct Book {
    by_id: HashMap<String, Account>,
    by_address: HashMap<Mailbox, String>,
    /// SHA-256 of a token -> account id.
    tokens: HashMap<[u8; 32], String>,
    issued: HashMap<String, VecDeque<[u8; 32]>>,
    seen: HashMap<String, HashSet<MessageId>>,
}

/// All accounts.
pub struct Accounts {
    max: usize,
    book: Mutex<Book>,
    /// Taken before `book` by every logged change, so lines keep their order.
    log: Option<Mutex<Log<Line>>>,
}

/// Hashes a password with argon2id and a random salt (CPU heavy: call off the runtime).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Checks a password against a PHC hash (CPU heavy: call off the runtime).
pub fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// `bytes` random bytes in hex.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// SHA-256 of a bearer token.
pub(super) fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    hex::FromHex::from_hex(s).ok()
}

impl Book {
    fn add(&mut self, account: Account) {
        if let Some(old) = self
            .by_address
            .insert(account.address.clone(), account.id.clone())
        {
            forget(self, &old);
        }
        self.by_id.insert(account.id.clone(), account);
    }

    fn add_token(&mut self, id: &str, h: [u8; 32]) {
        self.tokens.insert(h, id.to_owned());
        let issued = self.issued.entry(id.to_owned()).or_default();
        issued.push_back(h);
        let dropped = (issued.len() > TOKENS_PER_ACCOUNT_MAX)
            .then(|| issued.pop_front())
            .flatten();
        if let Some(old) = dropped {
            self.tokens.remove(&old);
        }
    }

    /// The lines that rebuild this book.
    fn lines(&self) -> Vec<Line> {
        let mut out = Vec::new();
        for a in self.by_id.values() {
            out.push(Line::Add {
                id: a.id.clone(),
                address: a.address.to_string(),
                password_hash: a.password_hash.clone(),
                created_at_ms: a.created_at_ms,
            });
            for h in self.issued.get(&a.id).into_iter().flatten() {
                out.push(Line::Token {
                    id: a.id.clone(),
                    token_sha256: hex::encode(h),
                });
            }
        }
        out
    }

    /// Lines a compacted log would hold.
    fn live_lines(&self) -> usize {
        self.by_id.len() + self.issued.values().map(VecDeque::len).sum::<usize>()
    }
}

impl Accounts {
    /// A memory-only table of at most `max` accounts.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            book: Mutex::default(),
            log: None,
        }
    }

    /// The accounts saved in `dir` (none when there is no log yet), logging later
    /// changes there. Beyond `max` (the limit was lowered) later accounts are dropped
    /// with a warning. A corrupt log is an error.
    pub fn open(max: usize, dir: &Path) -> Result<Self, LogError> {
        let bound = lines_max(max.saturating_mul(TOKENS_PER_ACCOUNT_MAX + 1));
        let (log, lines) = Log::open(dir, LOG, bound)?;
        let mut book = Book::default();
        let mut dropped = 0usize;
        for line in lines {
            match line {
                Line::Add {
                    id,
                    address,
                    password_hash,
                    created_at_ms,
                } => {
                    let Ok(address) = Mailbox::parse(&address) else {
                        dropped += 1;
                        continue;
                    };
                    if book.by_id.len() >= max && !book.by_id.contains_key(&id) {
                        dropped += 1;
                        continue;
                    }
                    book.add(Account {
                        id,
                        address,
                        password_hash,
                        created_at_ms,
                    });
                }
                Line::Token { id, token_sha256 } => {
                    if let (true, Some(h)) = (book.by_id.contains_key(&id), unhex32(&token_sha256))
                    {
                        book.add_token(&id, h);
                    }
                }
                Line::Remove { id } => forget(&mut book, &id),
            }
        }
        if dropped > 0 {
            warn!(
                dropped,
                max, "mail.tm accounts not restored (over the limit or unreadable)"
            );
        }
        tracing::info!(accounts = book.by_id.len(), "mail.tm accounts loaded");
        Ok(Self {
            max,
            book: Mutex::new(book),
            log: Some(Mutex::new(log)),
        })
    }

    /// Writes `line` and makes it durable, before the change it describes is made.
    fn save(log: &mut Log<Line>, line: &Line) -> Result<(), LogError> {
        log.append(line)?;
        log.sync()
    }

    /// Rewrites the log from `book` once it holds far more lines than the accounts need
    /// (after the change is made); a failure keeps the long, still correct, log.
    fn compact_if_due(log: Option<&mut Log<Line>>, book: &Book) {
        if let Some(log) = log
            && log.wants_compaction(book.live_lines())
            && let Err(e) = log.compact(&book.lines())
        {
            warn!(error = %e, "mail.tm accounts log not compacted");
        }
    }

    /// Adds an account whose address the caller registered; returns it.
    pub fn insert(
        &self,
        address: Mailbox,
        password_hash: String,
        now_ms: u64,
    ) -> Result<Account, AccountError> {
        let mut log = self.log.as_ref().map(|l| l.lock());
        let mut b = self.book.lock();
        if b.by_id.len() >= self.max {
            return Err(AccountError::Full(self.max));
        }
        let account = Account {
            id: random_hex(12),
            address,
            password_hash,
            created_at_ms: now_ms,
        };
        if let Some(log) = log.as_deref_mut() {
            let line = Line::Add {
                id: account.id.clone(),
                address: account.address.to_string(),
                password_hash: account.password_hash.clone(),
                created_at_ms: now_ms,
            };
            Self::save(log, &line)?;
        }
        b.add(account.clone());
        Self::compact_if_due(log.as_deref_mut(), &b);
        Ok(account)
    }

    /// The account of `address`.
    pub fn by_address(&self, address: &Mailbox) -> Option<Account> {
        let b = self.book.lock();
        b.by_address
            .get(address)
            .and_then(|id| b.by_id.get(id))
            .cloned()
    }

    /// The account a bearer token opens.
    pub fn by_token(&self, token: &str) -> Option<Account> {
        let b = self.book.lock();
        b.tokens
            .get(&token_hash(token))
            .and_then(|id| b.by_id.get(id))
            .cloned()
    }

    /// Issues a new bearer token for account `id`.
    pub fn issue_token(&self, id: &str) -> Result<String, AccountError> {
        let token = random_hex(32);
        let h = token_hash(&token);
        let mut log = self.log.as_ref().map(|l| l.lock());
        let mut b = self.book.lock();
        if let Some(log) = log.as_deref_mut() {
            let line = Line::Token {
                id: id.to_owned(),
                token_sha256: hex::encode(h),
            };
            Self::save(log, &line)?;
        }
        b.add_token(id, h);
        Self::compact_if_due(log.as_deref_mut(), &b);
        Ok(token)
    }

    /// Removes account `id` and its tokens; returns it. A failed log write is only
    /// warned about: the account is gone now, and its mailbox (released with it) no
    /// longer opens after a restart either.
    pub fn remove(&self, id: &str) -> Option<Account> {
        let mut log = self.log.as_ref().map(|l| l.lock());
        let mut b = self.book.lock();
        let account = b.by_id.get(id).cloned()?;
        if let Some(log) = log.as_deref_mut()
            && let Err(e) = Self::save(log, &Line::Remove { id: id.to_owned() })
        {
            warn!(error = %e, "mail.tm account removal not saved");
        }
        b.by_address.remove(&account.address);
        forget(&mut b, id);
        Self::compact_if_due(log.as_deref_mut(), &b);
        Some(account)
    }

    /// The messages of account `id` marked seen.
    pub fn seen_of(&self, id: &str) -> HashSet<MessageId> {
        self.book.lock().seen.get(id).cloned().unwrap_or_default()
    }

    /// Marks message `m` seen or unseen; `seen_max` bounds the set (a mailbox's size).
    pub fn set_seen(&self, id: &str, m: MessageId, seen: bool, seen_max: usize) {
        let mut b = self.book.lock();
        let set = b.seen.entry(id.to_owned()).or_default();
        if seen && set.len() < seen_max {
            set.insert(m);
        } else if !seen {
            set.remove(&m);
        }
    }
}

fn forget(b: &mut Book, id: &str) {
    b.by_id.remove(id);
    b.seen.remove(id);
    for h in b.issued.remove(id).unwrap_or_default() {
        b.tokens.remove(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: passwords are stored as argon2id PHC strings (never in clear) and check
    // right; tokens open their account only, and the oldest is dropped past the bound.
    #[test]
    fn passwords_and_tokens() {
        let h = hash_password("secret-pw").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("secret-pw"));
        assert!(password_matches("secret-pw", &h));
        assert!(!password_matches("secret-pX", &h));
        let accounts = Accounts::new(2);
        let a = accounts
            .insert(Mailbox::parse("a@pool.test").expect("mailbox"), h, 0)
            .expect("insert");
        let first = accounts.issue_token(&a.id).expect("token");
        for _ in 0..TOKENS_PER_ACCOUNT_MAX {
            assert_eq!(
                accounts
                    .by_token(&accounts.issue_token(&a.id).expect("token"))
                    .map(|x| x.id),
                Some(a.id.clone())
            );
        }
        assert!(accounts.by_token(&first).is_none(), "oldest token dropped");
        assert!(accounts.by_token("nope").is_none());
        accounts.remove(&a.id);
        assert!(accounts.by_address(&a.address).is_none());
    }
}
