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

use tempmx_store::{
    CommitPolicy, Mailbox, MessageSink, NewMessage, Persistence, Store, StoreConfig,
};

/// Tiny deterministic generator (xorshift) so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn base64ish(seed: u64, len: usize) -> String {
    let mut r = Rng(seed | 1);
    let abc = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(len + len / 76 * 2);
    for i in 0..len {
        s.push(abc[(r.next() % 64) as usize] as char);
        if i % 76 == 75 {
            s.push_str("\r\n");
        }
    }
    s
}

fn verification(sender: usize, to: &str, code: u64, logo: &str) -> String {
    let html = format!(
        "<html><body><h1>Confirm</h1><p>Hi {to}, your code is <b>{code:06}</b></p>{}</body></html>",
        "<p>If you did not request this, ignore it.</p>".repeat(40)
    );
    format!(
        "From: no-reply@service{sender}.test\r\nTo: {to}\r\nSubject: Your code {code:06}\r\n\
         Message-ID: <{code}.{sender}@service.test>\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
         --rel\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain\r\n\r\nYour code is {code:06}\r\n\
         --alt\r\nContent-Type: text/html\r\n\r\n{html}\r\n--alt--\r\n\
         --rel\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <logo>\r\n\r\n{logo}\r\n--rel--\r\n"
    )
}

fn newsletter(to: &str, html: &str, token: Option<u64>) -> String {
    let html = match token {
        Some(t) => format!("{html}<a href=\"https://news.test/u/{t}\">unsubscribe</a>"),
        None => html.to_string(),
    };
    format!(
        "From: news@shop.test\r\nTo: {to}\r\nSubject: Weekly deals\r\nContent-Type: multipart/alternative; boundary=\"nl\"\r\n\r\n\
         --nl\r\nContent-Type: text/plain\r\n\r\nDeals for {to}\r\n--nl\r\nContent-Type: text/html\r\n\r\n{html}\r\n--nl--\r\n"
    )
}

fn spam(run: usize, to: &str, att: &str) -> String {
    format!(
        "From: \"Prize\" <win{run}@spam.test>\r\nTo: {to}\r\nSubject: You won {run}\r\nContent-Type: multipart/mixed; boundary=\"sp\"\r\n\r\n\
         --sp\r\nContent-Type: text/html\r\n\r\n<html>{}</html>\r\n\
         --sp\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=prize.pdf\r\n\r\n{att}\r\n--sp--\r\n",
        "<p>Claim your prize now!</p>".repeat(200)
    )
}

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
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let logos: Vec<String> = (0..5).map(|s| base64ish(100 + s, 12 * 1024)).collect();
    let news_html = format!(
        "<html>{}</html>",
        "<div class=deal>50% off everything</div>".repeat(750)
    );
    let atts: Vec<String> = (0..4).map(|s| base64ish(900 + s, 40 * 1024)).collect();
    let (mut logical, mut messages, mut scan_ns, mut accept_ns) = (0u64, 0u64, 0u128, 0u128);
    for i in 0..30_000usize {
        let kind = rng.next() % 10;
        let rcpt_count = if kind >= 8 && rng.next().is_multiple_of(4) {
            1 + (rng.next() % 20) as usize
        } else {
            1
        };
        let rcpts: Vec<Mailbox> = (0..rcpt_count)
            .map(|_| {
                Mailbox::parse(&format!("u{}@pool.test", rng.next() % 200_000)).expect("valid")
            })
            .collect();
        let body = match kind {
            0..=4 => verification(
                i % 5,
                rcpts[0].as_str(),
                rng.next() % 1_000_000,
                &logos[i % 5],
            ),
            5..=7 => newsletter(
                rcpts[0].as_str(),
                &news_html,
                rng.next().is_multiple_of(2).then(|| rng.next()),
            ),
            _ => spam(i % 4, rcpts[0].as_str(), &atts[i % 4]),
        };
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
