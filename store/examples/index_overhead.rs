//! Measures index bytes per stored message with the default config: for each message size
//! fills one 64 MiB shard's ring twice with messages to unique mailboxes (so the ring is
//! full and has wrapped), then divides the bytes the index holds (entry blocks, head
//! tables, both allocated and written) by the messages it holds. Also prints the index
//! budget the sizing plan reserves and what it would be per message.
//!
//! Run: `cargo run --release --locked -p tempmx-store --example index_overhead`

use std::net::{IpAddr, Ipv4Addr};

use tempmx_store::{Mailbox, MessageSink, NewMessage, Store, StoreConfig};

fn main() {
    for size in [1024usize, 2048, 4096, 16384, 65536] {
        let cfg = StoreConfig {
            memory_bytes_max: 64 << 20,
            dedup_bytes_max: 0,
            ..StoreConfig::default()
        };
        let (store, mut w, _) = Store::open(&cfg, 1).expect("open");
        let mut body = b"Subject: x\r\n\r\n".to_vec();
        body.resize(size, b'y');
        let g = store.geometry();
        let cap = g.arena_bytes() / size;
        for i in 0..cap * 2 {
            let r = vec![Mailbox::parse(&format!("user{i}@pool.test")).expect("valid")];
            let msg = NewMessage {
                received_at_ms: 0,
                client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                helo: "h",
                mail_from: "s@x.test",
                recipients: &r,
                tls: None,
                trace_headers: b"",
                auth: &[],
                body: &body,
            };
            w[0].accept(&msg).expect("accept");
        }
        let s = &store.stats().shards[0];
        let stored = s.index_entries as f64;
        println!(
            "{size:>6} B messages: {} stored, {} mailboxes, index holds {} B = {:.1} B/message \
             (budget {} entries = {} B, {:.1} B/message if reserved up front; {} evicted for \
             index budget)",
            s.index_entries,
            s.mailboxes,
            s.index_bytes,
            s.index_bytes as f64 / stored,
            g.entries,
            g.index_bytes_max(),
            g.index_bytes_max() as f64 / stored,
            s.counters.evicted_index_full,
        );
    }
}
