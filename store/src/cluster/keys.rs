//! Key names of one mailbox: every key carries the mailbox in a `{hash tag}`, so all of
//! them live in one hash slot and one primary answers for the whole mailbox.

use redis::cluster_routing::Slot;

use crate::address::Mailbox;
use crate::sink::MessageId;

/// Prefix of every key fleet mode writes, so the keyspace can be shared and inspected.
pub const PREFIX: &str = "tmx:";

/// The keys of one mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxKeys {
    /// `tmx:{local@domain}`: the hash tag is the whole normalised address.
    base: String,
}

impl MailboxKeys {
    /// The keys of `mailbox`.
    pub fn of(mailbox: &Mailbox) -> Self {
        let mut base = String::with_capacity(PREFIX.len() + mailbox.as_str().len() + 2);
        base.push_str(PREFIX);
        base.push('{');
        base.push_str(mailbox.as_str());
        base.push('}');
        Self { base }
    }

    /// The registry entry (hash: token hash, expiry, TTL override, cap).
    pub fn registry(&self) -> String {
        format!("{}:reg", self.base)
    }

    /// The index (list of `id:expiry` entries, newest first).
    pub fn index(&self) -> String {
        format!("{}:idx", self.base)
    }

    /// What every record key of the mailbox starts with; the id in hex follows.
    pub fn record_prefix(&self) -> String {
        format!("{}:m:", self.base)
    }

    /// One record (string: frame header + archived record).
    pub fn record(&self, id: MessageId) -> String {
        format!("{}:m:{id}", self.base)
    }

    /// The sharded pub/sub channel announcing new records.
    pub fn channel(&self) -> String {
        format!("{}:ch", self.base)
    }

    /// The webhook registrations (hash: hook id -> JSON), which `tempmx_put` reports on.
    pub fn hooks(&self) -> String {
        self.named("wh")
    }

    /// The normalised mailbox address these keys belong to.
    pub fn address(&self) -> &str {
        &self.base[PREFIX.len() + 1..self.base.len() - 1]
    }

    /// Another key of the mailbox, `tmx:{M}:<name>` (state kept beside its mail).
    pub fn named(&self, name: &str) -> String {
        format!("{}:{name}", self.base)
    }

    /// The hash slot all of these keys are in.
    pub fn slot(&self) -> Slot {
        Slot::for_key(self.base.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_mailbox_is_in_its_slot() {
        // Goal: registry, index, record and channel keys share one slot, including for
        // local parts with braces (atext allows `{` and `}`), and two mailboxes' keys
        // differ. Method: compute slots of each key with redis-rs's slot function.
        for text in ["user@x.test", "a}b@x.test", "{a@x.test", "x{}y@x.test"] {
            let m = Mailbox::parse(text).expect("valid mailbox");
            let k = MailboxKeys::of(&m);
            let slot = k.slot();
            for key in [k.registry(), k.index(), k.record(MessageId(7)), k.channel()] {
                assert_eq!(Slot::for_key(key.as_bytes()), slot, "{key}");
            }
            assert!(k.record(MessageId(7)).starts_with(&k.record_prefix()));
            assert_eq!(Slot::for_key(k.hooks().as_bytes()), slot);
            assert_eq!(k.address(), m.as_str());
        }
        let a = MailboxKeys::of(&Mailbox::parse("a@x.test").expect("valid"));
        let b = MailboxKeys::of(&Mailbox::parse("b@x.test").expect("valid"));
        assert_ne!(a.registry(), b.registry());
    }
}
