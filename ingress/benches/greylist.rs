//! `Greylist::check` on a warm table: one thread, and two threads hammering the same table,
//! with 64 stripes and with 1 stripe (the cost of sharing one table across cores).
//!
//! Run: `cargo bench -p tempmx-ingress --bench greylist -- --warm-up-time 1 --measurement-time 3`.
//! In the two-thread cases one iteration is one check on each thread, timed by wall clock, so
//! with no contention it costs about what one single-threaded check does.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use tempmx_ingress::greylist::{GreyRequest, GreyVerdict, Greylist, GreylistConfig, PassReason};
use tempmx_store::Mailbox;

/// Triplets in the warm table (all passed, so checks answer Known).
const TRIPLETS: usize = 16_384;

struct Triplet {
    client: IpAddr,
    sender: String,
    recipient: Mailbox,
}

fn triplets() -> Vec<Triplet> {
    (0..TRIPLETS)
        .map(|i| Triplet {
            client: IpAddr::from([127, (i >> 8) as u8 & 0x3f, i as u8, 1]),
            sender: format!("bounce+{i}@sender{}.test", i % 97),
            recipient: Mailbox::parse(&format!("user{i}@pool.test")).expect("valid"),
        })
        .collect()
}

fn request(t: &Triplet) -> GreyRequest<'_> {
    GreyRequest {
        client: t.client,
        sender: &t.sender,
        recipient: &t.recipient,
        sender_trusted: false,
    }
}

/// A table with every triplet passed once, so each later check is a Known hit.
fn warm_table(stripes: usize, all: &[Triplet], t0: SystemTime) -> Greylist {
    let cfg = GreylistConfig {
        enabled: true,
        stripes,
        entries_max: 4 * TRIPLETS,
        clients_max: TRIPLETS,
        // No auto-allowlist: every check goes through the triplet table.
        auto_allow_after: 0,
        ..GreylistConfig::default()
    };
    let g = Greylist::new(&cfg).expect("bench config is valid");
    let retry = t0 + Duration::from_secs(cfg.delay_secs);
    for t in all {
        g.check(&request(t), t0);
        assert_eq!(
            g.check(&request(t), retry),
            GreyVerdict::Pass(PassReason::Retried)
        );
    }
    g
}

fn bench_check(c: &mut Criterion) {
    let all = triplets();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let now = t0 + Duration::from_secs(120);
    let mut group = c.benchmark_group("greylist_check_known");
    for stripes in [64, 1] {
        let g = warm_table(stripes, &all, t0);
        let mut i = 0usize;
        group.bench_function(format!("1thread/{stripes}stripes"), |b| {
            b.iter(|| {
                i = (i + 1) % TRIPLETS;
                black_box(g.check(&request(&all[i]), now))
            })
        });
        group.bench_function(format!("2threads/{stripes}stripes"), |b| {
            b.iter_custom(|iters| two_threads(&g, &all, now, iters))
        });
    }
    group.finish();
}

/// Both threads run `iters` checks over disjoint halves of the triplets; wall time.
fn two_threads(g: &Greylist, all: &[Triplet], now: SystemTime, iters: u64) -> Duration {
    let (left, right) = all.split_at(all.len() / 2);
    let start = Instant::now();
    std::thread::scope(|s| {
        for half in [left, right] {
            s.spawn(move || {
                for n in 0..iters {
                    let t = &half[n as usize % half.len()];
                    black_box(g.check(&request(t), now));
                }
            });
        }
    });
    start.elapsed()
}

/// New triplets into a full table: a Defer plus an LRU eviction each.
fn bench_new_triplet(c: &mut Criterion) {
    let cfg = GreylistConfig {
        enabled: true,
        entries_max: 4_096,
        auto_allow_after: 0,
        ..GreylistConfig::default()
    };
    let g = Greylist::new(&cfg).expect("bench config is valid");
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let recipients: Vec<Mailbox> = (0..65_536)
        .map(|i| Mailbox::parse(&format!("r{i}@pool.test")).expect("valid"))
        .collect();
    let mut i = 0usize;
    c.bench_function("greylist_check_new_evicting/1thread/64stripes", |b| {
        b.iter(|| {
            i = (i + 1) % recipients.len();
            let r = GreyRequest {
                client: IpAddr::from([127, 0, 0, 1]),
                sender: "someone@sender.test",
                recipient: &recipients[i],
                sender_trusted: false,
            };
            black_box(g.check(&r, now))
        })
    });
}

criterion_group!(benches, bench_check, bench_new_triplet);
criterion_main!(benches);
