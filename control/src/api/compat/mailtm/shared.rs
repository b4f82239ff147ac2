//! mail.tm accounts in fleet mode: one hash per account in its mailbox's slot
//! (`tmx:{M}:mt`), so an account created on one node logs in, reads and is deleted on
//! every node. It holds the account (`id`, `ph` password hash, `at` creation time), `reg`
//! (the registry token hash of the registration it was made with: an account whose
//! address was since released and registered again by someone else is stale and opens
//! nothing), one `t:<SHA-256 hex>` field per issued token (at most
//! [`TOKENS_PER_ACCOUNT_MAX`], oldest dropped) and one `s:<id>` field per message marked
//! seen. It expires with the mailbox. Tokens name their mailbox
//! (`mt1.<base64url(address)>.<secret>`), so a token finds its hash without any table
//! that spans slots.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use tempmx_store::cluster::{Cluster, ClusterError, MailboxKeys};
use tempmx_store::{Mailbox, MessageId};

use super::accounts::{Account, TOKENS_PER_ACCOUNT_MAX, random_hex, token_hash};

/// Name of the account hash beside the mailbox's other keys.
const KEY_NAME: &str = "mt";
/// What every fleet token starts with (its format's version).
const TOKEN_PREFIX: &str = "mt1.";
/// Bytes of a token looked at; longer ones open nothing.
pub const TOKEN_BYTES_MAX: usize = 640;

/// The fleet's mail.tm accounts.
pub struct SharedAccounts(pub Arc<Cluster>);

/// An account with what the cluster keeps beside it.
pub struct Loaded {
    /// The account.
    pub account: Account,
    /// Issued tokens: SHA-256 -> issue time (ms).
    tokens: Vec<([u8; 32], u64)>,
    /// Messages marked seen.
    pub seen: HashSet<MessageId>,
}

fn key(address: &Mailbox) -> String {
    MailboxKeys::of(address).named(KEY_NAME)
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The mailbox a fleet token names, if it has the fleet form.
fn token_mailbox(token: &str) -> Option<Mailbox> {
    if token.len() > TOKEN_BYTES_MAX {
        return None;
    }
    let (address, _) = token.strip_prefix(TOKEN_PREFIX)?.split_once('.')?;
    let address = String::from_utf8(URL_SAFE_NO_PAD.decode(address).ok()?).ok()?;
    Mailbox::parse(&address).ok()
}

/// Rebuilds an account of `address` from its hash; `None` if absent or unreadable.
fn parse(address: &Mailbox, f: &HashMap<String, Vec<u8>>) -> Option<(Loaded, [u8; 32])> {
    let text = |k: &str| std::str::from_utf8(f.get(k)?).ok();
    let account = Account {
        id: text("id")?.to_owned(),
        address: address.clone(),
        password_hash: text("ph")?.to_owned(),
        created_at_ms: text("at")?.parse().ok()?,
    };
    let reg: [u8; 32] = f.get("reg")?.as_slice().try_into().ok()?;
    let mut tokens = Vec::new();
    let mut seen = HashSet::new();
    for (k, v) in f {
        if let Some(h) = k.strip_prefix("t:").and_then(unhex32) {
            let at = std::str::from_utf8(v).ok().and_then(|t| t.parse().ok());
            tokens.push((h, at.unwrap_or(0)));
        } else if let Some(id) = k.strip_prefix("s:").and_then(|i| i.parse().ok()) {
            seen.insert(id);
        }
    }
    Some((
        Loaded {
            account,
            tokens,
            seen,
        },
        reg,
    ))
}

impl SharedAccounts {
    /// The account of `address`, if one was made with the registration in force.
    pub async fn load(&self, address: &Mailbox) -> Result<Option<Loaded>, ClusterError> {
        let fields = self.0.hash_all(key(address)).await?;
        let Some((loaded, reg)) = parse(address, &fields) else {
            return Ok(None);
        };
        let current = self.0.mailbox(address).await?;
        let same = current.is_some_and(|r| bool::from(r.token_hash[..].ct_eq(&reg[..])));
        Ok(same.then_some(loaded))
    }

    /// Creates the account of `address` (registered just now with registry token hash
    /// `reg`, until `expires_at_ms`).
    pub async fn insert(
        &self,
        address: Mailbox,
        password_hash: String,
        now_ms: u64,
        reg: [u8; 32],
        expires_at_ms: u64,
    ) -> Result<Account, ClusterError> {
        let account = Account {
            id: random_hex(12),
            address,
            password_hash,
            created_at_ms: now_ms,
        };
        let fields = vec![
            ("id".to_owned(), account.id.clone().into_bytes()),
            ("ph".to_owned(), account.password_hash.clone().into_bytes()),
            ("at".to_owned(), now_ms.to_string().into_bytes()),
            ("reg".to_owned(), reg.to_vec()),
        ];
        self.0
            .hash_put(key(&account.address), fields, Vec::new(), expires_at_ms)
            .await?;
        Ok(account)
    }

    /// The account a bearer token opens.
    pub async fn by_token(&self, token: &str) -> Result<Option<Loaded>, ClusterError> {
        let Some(address) = token_mailbox(token) else {
            return Ok(None);
        };
        let Some(loaded) = self.load(&address).await? else {
            return Ok(None);
        };
        let given = token_hash(token);
        let known = loaded.tokens.iter().fold(false, |acc, (h, _)| {
            acc | bool::from(h[..].ct_eq(&given[..]))
        });
        Ok(known.then_some(loaded))
    }

    /// Issues a new bearer token for `loaded`'s account, dropping the oldest beyond
    /// [`TOKENS_PER_ACCOUNT_MAX`]; `expires_at_ms` is the mailbox's expiry.
    pub async fn issue_token(
        &self,
        loaded: &Loaded,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<String, ClusterError> {
        let a = &loaded.account;
        let token = format!(
            "{TOKEN_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(a.address.as_str()),
            random_hex(32)
        );
        let mut tokens = loaded.tokens.clone();
        tokens.sort_by_key(|(_, at)| *at);
        let excess = (tokens.len() + 1).saturating_sub(TOKENS_PER_ACCOUNT_MAX);
        let drop = tokens[..excess]
            .iter()
            .map(|(h, _)| format!("t:{}", hex::encode(h)))
            .collect();
        let field = format!("t:{}", hex::encode(token_hash(&token)));
        self.0
            .hash_put(
                key(&a.address),
                vec![(field, now_ms.to_string().into_bytes())],
                drop,
                expires_at_ms,
            )
            .await?;
        Ok(token)
    }

    /// Marks message `m` seen or unseen; `seen_max` bounds the marks (a mailbox's size).
    pub async fn set_seen(
        &self,
        loaded: &Loaded,
        m: MessageId,
        seen: bool,
        seen_max: usize,
        expires_at_ms: u64,
    ) -> Result<(), ClusterError> {
        let field = format!("s:{m}");
        let (set, drop) = if seen && loaded.seen.len() < seen_max {
            (vec![(field, b"1".to_vec())], Vec::new())
        } else if !seen {
            (Vec::new(), vec![field])
        } else {
            return Ok(());
        };
        self.0
            .hash_put(key(&loaded.account.address), set, drop, expires_at_ms)
            .await
    }

    /// Deletes the account of `address`.
    pub async fn remove(&self, address: &Mailbox) -> Result<(), ClusterError> {
        self.0.hash_delete(key(address)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_mailbox_and_hashes_parse() {
        // Goal: a fleet token leads to its mailbox; foreign, oversized or mangled tokens
        // lead nowhere; an account hash round-trips its tokens and seen marks. Method:
        // hand-made tokens and a field table.
        let m = Mailbox::parse("bob@pool.test").expect("mailbox");
        let t = format!("mt1.{}.abc", URL_SAFE_NO_PAD.encode("bob@pool.test"));
        assert_eq!(token_mailbox(&t), Some(m.clone()));
        assert_eq!(token_mailbox("0123abcd"), None);
        assert_eq!(token_mailbox("mt1.!!!.x"), None);
        assert_eq!(
            token_mailbox(&format!("{t}{}", "x".repeat(TOKEN_BYTES_MAX))),
            None
        );
        let h = token_hash(&t);
        let tk = format!("t:{}", hex::encode(h));
        let f: HashMap<String, Vec<u8>> = [
            ("id", b"aa".to_vec()),
            ("ph", b"$argon2id$x".to_vec()),
            ("at", b"5".to_vec()),
            ("reg", vec![7u8; 32]),
            (tk.as_str(), b"9".to_vec()),
            ("s:00000000000000ff", b"1".to_vec()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (l, reg) = parse(&m, &f).expect("parses");
        assert_eq!(reg, [7u8; 32]);
        assert_eq!(l.account.id, "aa");
        assert_eq!(l.tokens, vec![(h, 9)]);
        assert!(l.seen.contains(&MessageId(0xff)));
        let mut short = f.clone();
        short.remove("reg");
        assert!(parse(&m, &short).is_none());
    }
}
