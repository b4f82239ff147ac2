//! mail.tm accounts: an address registered in the mailbox registry, an argon2 hash of
//! its password, the bearer tokens issued by `POST /token` (kept as SHA-256 hashes) and
//! the messages marked seen. Memory only: accounts live as long as the process and the
//! registry entry (a restart asks clients to register again).

use std::collections::{HashMap, HashSet, VecDeque};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::Mutex;
use rand::RngCore;
use tempmx_store::{Mailbox, MessageId};

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

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The password could not be hashed (never expected with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The account table is full.
    #[error("at most {0} accounts")]
    Full(usize),
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

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Accounts {
    /// A table of at most `max` accounts.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            book: Mutex::default(),
        }
    }

    /// Adds an account whose address the caller registered; returns it.
    pub fn insert(
        &self,
        address: Mailbox,
        password_hash: String,
        now_ms: u64,
    ) -> Result<Account, AccountError> {
        let mut b = self.book.lock();
        if b.by_id.len() >= self.max {
            return Err(AccountError::Full(self.max));
        }
        let account = Account {
            id: random_hex(12),
            address: address.clone(),
            password_hash,
            created_at_ms: now_ms,
        };
        if let Some(old) = b.by_address.insert(address, account.id.clone()) {
            forget(&mut b, &old);
        }
        b.by_id.insert(account.id.clone(), account.clone());
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
    pub fn issue_token(&self, id: &str) -> String {
        let token = random_hex(32);
        let h = token_hash(&token);
        let mut b = self.book.lock();
        b.tokens.insert(h, id.to_owned());
        let issued = b.issued.entry(id.to_owned()).or_default();
        issued.push_back(h);
        let dropped = (issued.len() > TOKENS_PER_ACCOUNT_MAX)
            .then(|| issued.pop_front())
            .flatten();
        if let Some(old) = dropped {
            b.tokens.remove(&old);
        }
        token
    }

    /// Removes account `id` and its tokens; returns it.
    pub fn remove(&self, id: &str) -> Option<Account> {
        let mut b = self.book.lock();
        let account = b.by_id.get(id).cloned()?;
        b.by_address.remove(&account.address);
        forget(&mut b, id);
        Some(account)
    }

    /// Whether message `m` of account `id` is marked seen.
    pub fn is_seen(&self, id: &str, m: MessageId) -> bool {
        self.book
            .lock()
            .seen
            .get(id)
            .is_some_and(|s| s.contains(&m))
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
        let first = accounts.issue_token(&a.id);
        for _ in 0..TOKENS_PER_ACCOUNT_MAX {
            assert_eq!(
                accounts
                    .by_token(&accounts.issue_token(&a.id))
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
