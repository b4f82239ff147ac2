//! Measures index bytes per stored message with the default config: fills one shard's
//! ring with messages of a given size to unique mailboxes, then divides the index's
//! allocated bytes by the messages it holds.
//!
//! Run: `cargo run --release -p tempmx-store --example index_overhead`

use std::net::{IpAddr, Ipv4Addr};

use tempmx_store::{MessageSink, NewMessage, Store, StoreConfig};

fn main() {
    for size in [2048usize, 4096, 16384] {
        let cfg = StoreConfig {
            memory_bytes_max: 64 << 20,
            dedup_bytes_max: 0,
            ..StoreConfig::default()
        };
        let (store, mut w, _) = Store::open(&cfg, 1).expect("open");
        let mut body = b"Subject: x\r\n\r\n".to_vec();
        body.resize(size, b'y');
        let cap = store.geometry().arena_bytes() / size;
        for i in 0..cap * 2 {
            let r = vec![format!("user{i}@pool.test")];
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
        println!(
            "{size:>6} B messages: {} stored, {} mailboxes, index {} B allocated = {:.1} B/message \
             (entry 20 B + mailbox slot; preallocated for {} per MiB)",
            s.index_entries,
            s.mailboxes,
            s.index_bytes,
            s.index_bytes as f64 / s.index_entries as f64,
            cfg.index_entries_per_mib
        );
    }
}
