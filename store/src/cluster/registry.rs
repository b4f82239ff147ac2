//! The fleet's mailbox registry: address -> token hash, expiry, TTL override and cap, with
//! creation as an atomic set-if-absent so two nodes never hand out one address.

use std::collections::HashMap;

use super::functions::{Function, fcall};
use super::keys::MailboxKeys;
use super::{Cluster, ClusterError};
use crate::address::Mailbox;
use crate::clock::{Clock, SystemClock};

/// A registered mailbox as the registry keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// SHA-256 of the mailbox's bearer token.
    pub token_hash: [u8; 32],
    /// When the mailbox expires (ms since epoch).
    pub expires_at_ms: u64,
    /// Message TTL for this mailbox, if not the default.
    pub ttl_secs: Option<u64>,
    /// Index cap for this mailbox, if not the default.
    pub cap: Option<u32>,
}

/// What extending a mailbox changed, as one atomic step saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extended {
    /// The expiry before the call (ms since epoch).
    pub before_ms: u64,
    /// The expiry in force after it.
    pub after_ms: u64,
}

/// What deleting a mailbox removed, as one atomic step saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// Index entries (messages) it had.
    pub messages: usize,
    /// The expiry of the registration this call removed; `None` when there was none
    /// (another node deleted it first, or it was never registered).
    pub expires_at_ms: Option<u64>,
}

impl Registration {
    /// Rebuilds an entry from the registry hash's fields; `None` if any is missing or bad.
    fn from_fields(f: &HashMap<String, Vec<u8>>) -> Option<Self> {
        let num = |k: &str| -> Option<u64> { std::str::from_utf8(f.get(k)?).ok()?.parse().ok() };
        Some(Self {
            token_hash: f.get("th")?.as_slice().try_into().ok()?,
            expires_at_ms: num("exp")?,
            ttl_secs: Some(num("ttl")?).filter(|&t| t > 0),
            cap: Some(u32::try_from(num("cap")?).ok()?).filter(|&c| c > 0),
        })
    }
}

impl Cluster {
    /// Registers `mailbox` unless it is registered (on any node); `false` when taken.
    pub async fn create_mailbox(
        &self,
        mailbox: &Mailbox,
        reg: &Registration,
    ) -> Result<bool, ClusterError> {
        let keys = MailboxKeys::of(mailbox);
        let reg = reg.clone();
        self.run(move |mut c| async move {
            let created: i64 = fcall(Function::Create)
                .arg(2)
                .arg(keys.registry())
                .arg(keys.index())
                .arg(&reg.token_hash[..])
                .arg(reg.expires_at_ms)
                .arg(reg.ttl_secs.unwrap_or(0))
                .arg(reg.cap.unwrap_or(0))
                .arg(keys.record_prefix())
                .query_async(&mut c)
                .await?;
            Ok(created == 1)
        })
        .await
    }

    /// Moves a live `mailbox`'s expiry to `expires_at_ms` (never earlier) and its message
    /// TTL to the time left; `None` when it is not registered.
    pub async fn extend_mailbox(
        &self,
        mailbox: &Mailbox,
        expires_at_ms: u64,
    ) -> Result<Option<Extended>, ClusterError> {
        let key = MailboxKeys::of(mailbox).registry();
        self.run(move |mut c| async move {
            let (before_ms, after_ms): (u64, u64) = fcall(Function::Extend)
                .arg(1)
                .arg(&key)
                .arg(expires_at_ms)
                .arg(SystemClock.now_ms())
                .query_async(&mut c)
                .await?;
            Ok((after_ms > 0).then_some(Extended {
                before_ms,
                after_ms,
            }))
        })
        .await
    }

    /// The registration of `mailbox`, if it exists and has not expired.
    pub async fn mailbox(&self, mailbox: &Mailbox) -> Result<Option<Registration>, ClusterError> {
        let key = MailboxKeys::of(mailbox).registry();
        self.run(move |mut c| async move {
            let fields: HashMap<String, Vec<u8>> =
                redis::cmd("HGETALL").arg(&key).query_async(&mut c).await?;
            if fields.is_empty() {
                return Ok(None);
            }
            let reg = Registration::from_fields(&fields).ok_or(ClusterError::Corrupt { key })?;
            Ok(Some(reg).filter(|r| r.expires_at_ms > SystemClock.now_ms()))
        })
        .await
    }

    /// Deletes `mailbox`'s registration and every message of it.
    pub async fn delete_mailbox(&self, mailbox: &Mailbox) -> Result<Deleted, ClusterError> {
        let keys = MailboxKeys::of(mailbox);
        self.run(move |mut c| async move {
            let (messages, expires_at_ms): (usize, u64) = fcall(Function::Drop)
                .arg(2)
                .arg(keys.registry())
                .arg(keys.index())
                .arg(keys.record_prefix())
                .query_async(&mut c)
                .await?;
            Ok(Deleted {
                messages,
                expires_at_ms: (expires_at_ms > 0).then_some(expires_at_ms),
            })
        })
        .await
    }
}
