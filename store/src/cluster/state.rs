//! Small shared state of the compatible APIs and webhooks in fleet mode (mail.tm accounts,
//! Guerrilla Mail sessions, webhook registrations): one Redis hash per key, written with
//! an absolute expiry so Redis reclaims it. Callers name keys with
//! [`MailboxKeys::named`](super::MailboxKeys::named) (in the mailbox's slot, so it goes
//! with the mailbox) or [`tagged`] (state of no mailbox).

use std::collections::HashMap;

use super::keys::PREFIX;
use super::{Cluster, ClusterError};

/// The key `tmx:{<tag>}:<name>`: state that belongs to no mailbox (e.g. a session).
pub fn tagged(tag: &str, name: &str) -> String {
    format!("{PREFIX}{{{tag}}}:{name}")
}

impl Cluster {
    /// Every field of hash `key` (empty when it does not exist or expired).
    pub async fn hash_all(&self, key: String) -> Result<HashMap<String, Vec<u8>>, ClusterError> {
        self.run(move |mut c| async move {
            Ok(redis::cmd("HGETALL").arg(&key).query_async(&mut c).await?)
        })
        .await
    }

    /// Sets `fields` of hash `key`, removes `drop` fields, and makes the key expire at
    /// `expires_at_ms` (one pipeline to the key's primary).
    pub async fn hash_put(
        &self,
        key: String,
        fields: Vec<(String, Vec<u8>)>,
        drop: Vec<String>,
        expires_at_ms: u64,
    ) -> Result<(), ClusterError> {
        self.run(move |mut c| async move {
            let mut p = redis::pipe();
            if !fields.is_empty() {
                p.cmd("HSET").arg(&key).arg(&fields).ignore();
            }
            if !drop.is_empty() {
                p.cmd("HDEL").arg(&key).arg(&drop).ignore();
            }
            p.cmd("PEXPIREAT").arg(&key).arg(expires_at_ms).ignore();
            p.query_async::<()>(&mut c).await?;
            Ok(())
        })
        .await
    }

    /// Deletes hash `key`; whether it existed.
    pub async fn hash_delete(&self, key: String) -> Result<bool, ClusterError> {
        self.run(move |mut c| async move {
            let n: i64 = redis::cmd("DEL").arg(&key).query_async(&mut c).await?;
            Ok(n == 1)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn tagged_keys_hash_on_their_tag() {
        // Goal: a tagged key lands in its tag's slot, whatever its name. Method: compare
        // slots computed by redis-rs.
        let a = tagged("gs:abc", "s");
        assert_eq!(a, "tmx:{gs:abc}:s");
        assert_eq!(
            Slot::for_key(a.as_bytes()),
            Slot::for_key(tagged("gs:abc", "other").as_bytes())
        );
    }
}
