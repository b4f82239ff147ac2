//! Helpers: small configs, a manual clock and message builders.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tempmx_store::{
    Accepted, Commit, Mailbox, ManualClock, MessageSink, NewMessage, RecoveryReport, ShardWriter,
    Store, StoreConfig,
};

/// Start of the test clock (2026-01-01).
pub const T0: u64 = 1_767_225_600_000;

/// A small memory config: per shard 4 segments of 64 KiB and 2048 index entries.
pub fn small() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 2 * (4 * (64 << 10) + (128 << 10)),
        segment_bytes: 64 << 10,
        index_entries_per_mib: 8192,
        dedup_bytes_max: 0,
        ..StoreConfig::default()
    }
}

/// Opens a store on a manual clock at `T0`.
pub fn open(
    cfg: &StoreConfig,
    shards: usize,
) -> (Arc<Store>, Vec<ShardWriter>, ManualClock, RecoveryReport) {
    let clock = ManualClock::new(T0);
    let (s, w, r) = Store::open_with_clock(cfg, shards, Arc::new(clock.clone())).expect("open");
    (s, w, clock, r)
}

/// A plain message with a subject and body.
pub fn body(subject: &str, text: &str) -> Vec<u8> {
    format!("From: Sender <s@shop.test>\r\nSubject: {subject}\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n{text}\r\n")
        .into_bytes()
}

/// Stores `body` for `rcpts` through `w`; returns the acceptance.
pub fn put(w: &mut ShardWriter, rcpts: &[&str], body: &[u8]) -> Accepted {
    let rcpts: Vec<Mailbox> = rcpts.iter().map(|s| mb(s)).collect();
    let msg = NewMessage {
        received_at_ms: T0,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        helo: "mx.shop.test",
        mail_from: "bounce@shop.test",
        recipients: &rcpts,
        tls: None,
        trace_headers: b"Received: from mx.shop.test by tempmx\r\n",
        auth: &[],
        body,
    };
    w.accept(&msg).expect("accept")
}

/// The mailbox of a test address (valid by the test's construction).
pub fn mb(address: &str) -> Mailbox {
    Mailbox::parse(address).expect("test address")
}

/// Like `put` but waits for a pending commit.
pub fn put_durable(w: &mut ShardWriter, rcpts: &[&str], body: &[u8]) -> tempmx_store::MessageId {
    let a = put(w, rcpts, body);
    if let Commit::Pending(rx) = a.commit {
        rx.blocking_recv().expect("commit thread").expect("synced");
    }
    a.id
}
