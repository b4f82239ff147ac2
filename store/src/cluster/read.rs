//! The read side: list, get and delete messages of one mailbox.

use async_trait::async_trait;
use futures_util::future::try_join_all;

use super::codec::{Checked, decode_summary};
use super::functions::{Function, fcall};
use super::keys::MailboxKeys;
use super::parts::{open, part_key};
use super::{Cluster, ClusterError};
use crate::address::Mailbox;
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::read::MailRead;
use crate::sink::MessageId;
use crate::view::{MessageRef, MessageSummary, MessageView};

/// An index entry: the record's id, its expiry and its listing fields (absent in entries
/// written before they were kept there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry<'a> {
    id: MessageId,
    expires_at_ms: u64,
    summary: Option<&'a str>,
}

impl<'a> Entry<'a> {
    /// Parses `<id 16 hex>:<expiry ms>[:<summary>]`; anything else is skipped by readers.
    fn parse(text: &'a [u8]) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        let mut parts = text.splitn(3, ':');
        Some(Self {
            id: parts.next()?.parse().ok()?,
            expires_at_ms: parts.next()?.parse().ok()?,
            summary: parts.next(),
        })
    }
}

impl Cluster {
    /// Up to `limit` messages of `mailbox`, newest first, older than `before` if given;
    /// expired ones are left out at once.
    pub async fn list(
        &self,
        mailbox: &Mailbox,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, ClusterError> {
        let keys = MailboxKeys::of(mailbox);
        let name = mailbox.as_str().to_owned();
        let limit = limit.min(self.opts.mailbox_records_max);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The index is capped at the mailbox cap, so reading all of it is bounded; a
        // mailbox's cap override may exceed the default, hence no LRANGE bound here.
        let before = before.map_or(u64::MAX, |b| b.0);
        self.run(move |mut c| async move {
            let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
                .arg(keys.index())
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await?;
            let now = SystemClock.now_ms();
            let live: Vec<Entry> = raw
                .iter()
                .filter_map(|e| Entry::parse(e))
                .filter(|e| e.expires_at_ms > now && e.id.0 < before)
                .take(limit)
                .collect();
            // The entries carry their summaries: one command lists the page. Entries
            // without one (written by an older node) are read from their records.
            let mut out: Vec<Option<MessageSummary>> = live
                .iter()
                .map(|e| {
                    e.summary
                        .and_then(|s| decode_summary(s, e.id, &name, e.expires_at_ms))
                })
                .collect();
            let missing: Vec<usize> = (0..live.len()).filter(|&i| out[i].is_none()).collect();
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|&i| keys.record(live[i].id)).collect();
                let values: Vec<Option<Vec<u8>>> =
                    redis::cmd("MGET").arg(&names).query_async(&mut c).await?;
                for ((&i, key), value) in missing.iter().zip(&names).zip(values) {
                    // Gone between the two commands (expired, deleted, trimmed): not listed.
                    let Some(bytes) = value else { continue };
                    let rec = Checked::new(&bytes, key)?;
                    if rec.id() != live[i].id {
                        return Err(ClusterError::Corrupt { key: key.clone() });
                    }
                    out[i] = Some(rec.summary(&name, live[i].expires_at_ms));
                }
            }
            Ok(out.into_iter().flatten().collect())
        })
        .await
    }

    /// Message `id` of `mailbox`, unless it expired or is not in that mailbox.
    pub async fn get(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Result<Option<MessageView>, ClusterError> {
        let name = mailbox.as_str();
        self.fetch(mailbox, id)
            .await?
            .map(|(rec, expires_at_ms)| rec.view(name, expires_at_ms))
            .transpose()
    }

    /// Runs `f` on message `id` as `mailbox` shows it (the cluster's counterpart of
    /// `Store::read_for`: the value is fetched and checked once, then read in place);
    /// `None` when it expired or is not in that mailbox.
    pub async fn read_for<R>(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
        f: impl FnOnce(&MessageRef<'_>) -> R,
    ) -> Result<Option<R>, ClusterError> {
        let name = mailbox.as_str();
        self.fetch(mailbox, id)
            .await?
            .map(|(rec, expires_at_ms)| rec.with_ref(name, expires_at_ms, f))
            .transpose()
    }

    /// The checked value of record `id` of `mailbox` with its expiry, if it is live, with
    /// the shared parts it names fetched and checked: one round trip for a record without
    /// any, two for one with some (its parts are read at once, each from its own slot).
    async fn fetch(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Result<Option<(Checked, u64)>, ClusterError> {
        let key = MailboxKeys::of(mailbox).record(id);
        self.run(move |mut c| async move {
            let (value, expires): (Option<Vec<u8>>, i64) = redis::pipe()
                .cmd("GET")
                .arg(&key)
                .cmd("PEXPIRETIME")
                .arg(&key)
                .query_async(&mut c)
                .await?;
            let Some(bytes) = value else { return Ok(None) };
            // A key without an expiry is not one this module wrote.
            let expires_at_ms =
                u64::try_from(expires).map_err(|_| ClusterError::Corrupt { key: key.clone() })?;
            if expires_at_ms <= SystemClock.now_ms() {
                return Ok(None);
            }
            let mut rec = Checked::new(&bytes, &key)?;
            if rec.id() != id {
                return Err(ClusterError::Corrupt { key });
            }
            let reads = rec.shared().into_iter().map(|(part, len)| {
                let mut c = c.clone();
                async move {
                    let name = part_key(part);
                    let value: Option<Vec<u8>> =
                        redis::cmd("GET").arg(&name).query_async(&mut c).await?;
                    let value =
                        value.ok_or_else(|| ClusterError::PartMissing { key: name.clone() })?;
                    Ok::<_, ClusterError>((part, open(value, part, len, &name)?))
                }
            });
            for (part, data) in try_join_all(reads).await? {
                rec.attach(part, data);
            }
            Ok(Some((rec, expires_at_ms)))
        })
        .await
    }

    /// Deletes message `id` from `mailbox`; whether it was there.
    pub async fn delete_message(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Result<bool, ClusterError> {
        let keys = MailboxKeys::of(mailbox);
        self.run(move |mut c| async move {
            let n: i64 = fcall(Function::Remove)
                .arg(2)
                .arg(keys.index())
                .arg(keys.record(id))
                .arg(id.to_string())
                .query_async(&mut c)
                .await?;
            Ok(n == 1)
        })
        .await
    }
}

#[async_trait]
impl MailRead for Cluster {
    async fn list(
        &self,
        mailbox: &Mailbox,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        Ok(Cluster::list(self, mailbox, before, limit).await?)
    }

    async fn get_for(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        Ok(self.get(mailbox, id).await?)
    }

    async fn delete_message(&self, mailbox: &Mailbox, id: MessageId) -> Result<bool, StoreError> {
        Ok(Cluster::delete_message(self, mailbox, id).await?)
    }

    async fn delete_mailbox(&self, mailbox: &Mailbox) -> Result<usize, StoreError> {
        Ok(Cluster::delete_mailbox(self, mailbox).await?.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_parse_or_are_skipped() {
        // Goal: the reader takes `<id>:<expiry>` entries and skips anything else rather
        // than failing the listing. Method: a table of entries.
        let ok = Entry::parse(b"0000019aeb3c0001:1765000000000").expect("valid entry");
        assert_eq!(ok.id, MessageId(0x0000_019a_eb3c_0001));
        assert_eq!(ok.expires_at_ms, 1_765_000_000_000);
        assert_eq!(ok.summary, None);
        // A summary may itself hold ':'.
        let with = Entry::parse(b"0000019aeb3c0001:1765000000000:[\"a:b\"]").expect("valid");
        assert_eq!(with.summary, Some("[\"a:b\"]"));
        assert_eq!(with.expires_at_ms, 1_765_000_000_000);
        for bad in [&b""[..], b"abc", b"zz:1", b"1:", b":1", b"1:x", b"\xff:1"] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
    }
}
