//! The store's heap stays within `memory_bytes_max` plus a stated constant under a flood.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tempmx_store::{Mailbox, ManualClock, MessageSink, NewMessage, Store, StoreConfig};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Headroom beyond `memory_bytes_max`: per-append scratch (record copy, scan, chunk list),
/// the shard vector and locks, the test's own message buffers. Stated here, asserted below.
const SLACK_BYTES: usize = 512 << 10;

#[test]
fn flood_stays_within_budget_and_keeps_newest() {
    // Goal: 40x the budget in messages (mixed sizes, many mailboxes, large unique parts that
    // fill the dedup table) never lifts the heap above budget + SLACK_BYTES, and the newest
    // messages are the ones that remain. Bounded: 8000 appends.
    let cfg = StoreConfig {
        memory_bytes_max: 4 << 20,
        segment_bytes: 256 << 10,
        dedup_part_bytes_min: 2048,
        dedup_bytes_max: 1 << 20,
        ..StoreConfig::default()
    };
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let clock = ManualClock::new(1_767_225_600_000);
    let (store, mut w, _) = Store::open_with_clock(&cfg, 2, Arc::new(clock.clone())).expect("open");
    let mut ids = Vec::new();
    for i in 0..8000usize {
        clock.advance(1);
        let rcpt = vec![Mailbox::parse(&format!("user{}@pool.test", i % 3000)).expect("valid")];
        let size = 500 + (i * 7919) % 40_000;
        let body = format!("Subject: n{i}\r\n\r\n{}{i}", "b".repeat(size)).into_bytes();
        let msg = NewMessage {
            received_at_ms: 0,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "h",
            mail_from: "s@x.test",
            recipients: &rcpt,
            tls: None,
            trace_headers: b"",
            auth: &[],
            body: &body,
        };
        ids.push(w[i % 2].accept(&msg).expect("accept").id);
    }
    let peak = PEAK.load(Ordering::Relaxed) - base;
    eprintln!(
        "peak heap {peak} bytes for memory_bytes_max {}",
        cfg.memory_bytes_max
    );
    assert!(
        peak <= cfg.memory_bytes_max as usize + SLACK_BYTES,
        "peak {peak}"
    );
    let st = store.stats();
    assert!(st.totals.evicted_capacity > 6000, "{:?}", st.totals);
    assert!(st.shards.iter().any(|s| s.part_bytes > 0));
    for id in ids.iter().rev().take(20) {
        assert!(store.get(*id).is_some(), "newest kept");
    }
    assert!(store.get(ids[0]).is_none(), "oldest evicted");
}
