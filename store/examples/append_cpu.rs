//! CPU time per 4 KiB append on one writer, read from the thread's CPU clock, so the
//! figure means something on a machine shared with other work (the criterion bench
//! measures wall time, which counts time spent preempted). Same message, recipients and
//! config as the `append_4k` bench. First fills the ring twice (page faults, wrap-around),
//! then times `ROUNDS` rounds of `APPENDS` appends and prints each and the median.
//!
//! Run: `cargo run --release -p tempmx-store --example append_cpu [APPENDS_PER_ROUND]`
//! (a small count keeps runs under callgrind short; the fill stays the same).

use std::net::{IpAddr, Ipv4Addr};

use tempmx_store::{Mailbox, MessageSink, NewMessage, Store, StoreConfig};

#[path = "support/thread_cpu.rs"]
mod support;
use support::thread_cpu;

/// Appends per timed round unless the first argument says otherwise.
const APPENDS: usize = 200_000;
const ROUNDS: usize = 7;

fn main() {
    let appends: usize = std::env::args()
        .nth(1)
        .map_or(APPENDS, |a| a.parse().expect("APPENDS_PER_ROUND: a number"));
    assert!(appends > 0, "APPENDS_PER_ROUND must be positive");
    let cfg = StoreConfig::default();
    let (store, mut w, _) = Store::open(&cfg, 1).expect("open");
    let mut body = b"From: a@sender.test\r\nSubject: verify\r\nDate: now\r\n\r\n".to_vec();
    body.resize(4096 - 60, b'x');
    let rcpts: Vec<Vec<Mailbox>> = (0..10_000)
        .map(|i| vec![Mailbox::parse(&format!("user{i}@pool.test")).expect("valid")])
        .collect();
    let mut append = |i: usize| {
        let msg = NewMessage {
            received_at_ms: 0,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "mx.sender.test",
            mail_from: "bounce@sender.test",
            recipients: &rcpts[i % rcpts.len()],
            tls: None,
            trace_headers: b"Received: from mx.sender.test by tempmx; Thu, 1 Jan 2026\r\n",
            auth: &[],
            body: &body,
        };
        w[0].accept(&msg).expect("accept");
    };
    let fill = 2 * store.geometry().arena_bytes() / 4096;
    (0..fill).for_each(&mut append);
    let mut per = Vec::with_capacity(ROUNDS);
    for r in 0..ROUNDS {
        let t0 = thread_cpu();
        (0..appends).for_each(&mut append);
        let ns = (thread_cpu() - t0).as_nanos() as f64 / appends as f64;
        println!("round {r}: {ns:.0} ns CPU per append");
        per.push(ns);
    }
    per.sort_by(f64::total_cmp);
    let median = per[ROUNDS / 2];
    println!(
        "median {median:.0} ns CPU per 4 KiB append = {:.0}k appends/s per core ({:.2} GB/s)",
        1e6 / median,
        4096.0 / median
    );
}
