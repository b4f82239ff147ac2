//! Generates a temp-mail corpus and prints how much the store saves by storing
//! multi-recipient messages once and large MIME parts once by content.
//!
//! Corpus (deterministic): verification mails from 5 senders with a per-recipient code in
//! both text and HTML (and a shared 12 KiB inline logo), newsletters (half personalised in
//! the HTML, half identical) with a shared 30 KiB HTML, and spam runs: one body (HTML +
//! 40 KiB attachment) sent to thousands of addresses, some transactions with many RCPTs.
//!
//! Run: `cargo run --release -p tempmx-store --example dedup_ratio [disk] [fill=MIB]
//! [index=N]`. With `disk` the store persists to a temporary directory (`commit = "none"`:
//! the ratio does not depend on the commit policy), so parts go to the parts files instead
//! of the heap. With `fill=MIB` the corpus goes into a store of `MIB` MiB (parts: an
//! eighth, as by default), so it wraps, and the run prints how many messages the full
//! store keeps and how much of its arena they use; `index=N` sets
//! `index_entries_per_mib` (otherwise the default).

use std::net::{IpAddr, Ipv4Addr};

use tempmx_store::{CommitPolicy, MessageSink, NewMessage, Persistence, Store, StoreConfig};

#[path = "support/corpus.rs"]
mod corpus;

/// The value of argument `name=VALUE`, if given.
fn arg(name: &str) -> Option<u64> {
    std::env::args().find_map(|a| {
        let v = a.strip_prefix(name)?.strip_prefix('=')?;
        Some(v.parse().expect("a number after ="))
    })
}

fn main() {
    let disk = std::env::args().any(|a| a == "disk");
    let fill = arg("fill");
    let dir = tempfile::tempdir().expect("temporary directory");
    let memory: u64 = fill.map_or(1 << 30, |mib| mib << 20);
    let mut cfg = StoreConfig {
        memory_bytes_max: memory,
        // A quarter (256 MiB) keeps every part of the corpus; a full store gets the
        // default share, an eighth.
        dedup_bytes_max: memory / if fill.is_some() { 8 } else { 4 },
        dedup_part_bytes_min: 4096,
        ..StoreConfig::default()
    };
    if let Some(n) = arg("index") {
        cfg.index_entries_per_mib = n;
    }
    if disk {
        cfg.persistence = Persistence::Disk;
        cfg.dir = Some(dir.path().to_path_buf());
        cfg.commit = CommitPolicy::None;
    }
    println!("mode: {}", if disk { "disk" } else { "memory" });
    let (store, mut w, _) = Store::open(&cfg, 2).expect("open");
    let mut corpus = corpus::Corpus::new();
    let (mut logical, mut messages, mut scan_ns, mut accept_ns) = (0u64, 0u64, 0u128, 0u128);
    for i in 0..30_000usize {
        let (rcpts, body) = corpus.next(i);
        let msg = NewMessage {
            received_at_ms: 0,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "mx.test",
            mail_from: "b@sender.test",
            recipients: &rcpts,
            tls: None,
            trace_headers: b"Received: from mx.test by tempmx\r\n",
            auth: &[],
            body: body.as_bytes(),
        };
        let t = std::time::Instant::now();
        let _ = tempmx_store::mime::scan(body.as_bytes(), cfg.dedup_part_bytes_min);
        scan_ns += t.elapsed().as_nanos();
        let t = std::time::Instant::now();
        w[i % 2].accept(&msg).expect("accept");
        accept_ns += t.elapsed().as_nanos();
        logical += ((msg.trace_headers.len() + body.len()) * rcpts.len()) as u64;
        messages += 1;
    }
    let st = store.stats();
    let arena: u64 = st.shards.iter().map(|s| s.bytes_used).sum();
    let parts: u64 = st.shards.iter().map(|s| s.part_bytes).sum();
    let stored = arena + parts;
    let once = logical - st.totals.multi_rcpt_bytes_saved;
    println!(
        "messages: {messages}, mailbox copies: {}",
        st.shards.iter().map(|s| s.index_entries).sum::<u64>()
    );
    println!("logical bytes (one copy per recipient): {logical}");
    println!("bytes with one copy per message:        {once}");
    println!("stored bytes (frames {arena} + parts {parts}): {stored}");
    println!(
        "saved vs per-recipient copies: {:.1}%",
        100.0 * (1.0 - stored as f64 / logical as f64)
    );
    println!(
        "saved vs one copy per message: {:.1}%",
        100.0 * (1.0 - stored as f64 / once as f64)
    );
    println!(
        "evictions: {} (must be 0 for a fair ratio; arena full {}, index budget {})",
        st.totals.evicted_capacity + st.totals.evicted_index_full,
        st.totals.evicted_capacity,
        st.totals.evicted_index_full
    );
    if fill.is_some() {
        let kept: u64 = st.shards.iter().map(|s| s.counters.appended).sum::<u64>()
            - st.totals.evicted_capacity
            - st.totals.evicted_index_full;
        let capacity: u64 = st.shards.iter().map(|s| s.bytes_capacity).sum();
        println!(
            "full store of {} MiB (index_entries_per_mib {}): keeps {kept} of {messages} messages, \
             arena {:.1} % used ({arena} of {capacity} bytes), {} index entries",
            memory >> 20,
            cfg.index_entries_per_mib,
            100.0 * arena as f64 / capacity as f64,
            st.shards.iter().map(|s| s.index_entries).sum::<u64>()
        );
    }
    println!(
        "mime scan: {:.2} us per message on average",
        scan_ns as f64 / messages as f64 / 1000.0
    );
    // Wall time, scan included: compare runs on one machine only.
    println!(
        "accept: {:.2} us per message on average",
        accept_ns as f64 / messages as f64 / 1000.0
    );
}
