//! The store handle. Each file has one job, above the shared state (`crate::shared`):
//! `open` builds the shards (recovering them from disk), `read` serves listings and
//! messages, `change` deletes mail and sets TTLs, and `journaled` writes those changes to
//! the journal so they survive a restart. Subscriptions live in `crate::subscribe`.

mod change;
mod journaled;
mod open;
mod read;

use std::sync::Arc;

pub use self::open::{parts_path, shard_path};
use crate::shared::Inner;

/// The message store. `Sync`: share it via `Arc` among readers; writes go through
/// the per-core [`ShardWriter`]s returned by [`Store::open`].
///
/// Who calls what: ingress cores call `MessageSink::accept` on their own writer; the HTTP
/// API calls `list`, `get_for` or `read_for`, `contains`, `delete_*` and `subscribe`; the
/// control plane calls `expire` on a timer (about once a second) so idle shards free
/// expired segments, and `set_mailbox_ttl`; `/metrics` calls `stats`. Expired messages are never served even
/// before `expire` runs.
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the store's unit tests.
    use std::net::{IpAddr, Ipv4Addr};

    use super::Store;
    use crate::address::Mailbox;
    use crate::sink::MessageId;
    use crate::sink::{MessageSink, NewMessage};
    use crate::writer::ShardWriter;

    pub(crate) fn put(w: &mut ShardWriter, rcpt: &str, body: &[u8]) -> MessageId {
        put_to(w, Mailbox::parse(rcpt).expect("test address"), body)
    }

    /// Stores `body` for one recipient taken as it is (it may be an unfolded legacy one).
    pub(crate) fn put_to(w: &mut ShardWriter, rcpt: Mailbox, body: &[u8]) -> MessageId {
        let r = [rcpt];
        let m = NewMessage {
            received_at_ms: 0,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "h",
            mail_from: "s@x.test",
            recipients: &r,
            tls: None,
            trace_headers: b"",
            auth: &[],
            body,
        };
        w.accept(&m).expect("accept").id
    }

    pub(crate) fn arena_has(store: &Store, needle: &[u8]) -> bool {
        store.inner.shards.iter().any(|s| {
            s.read()
                .arena
                .bytes()
                .windows(needle.len())
                .any(|w| w == needle)
        })
    }
}
