//! Measures fleet mode's write path on a real loopback Redis Cluster (6 redis-server
//! processes, started and stopped here): messages/s, pipelines (round trips) and Redis
//! commands per message from `INFO commandstats`, and bytes of Redis memory per message
//! against the raw size. Figures go to BENCHMARKS.md; nothing is asserted.
//!
//! `cargo run --release -p tempmx-store --example cluster_cost -- [messages] [cores] [ack]
//! [corpus=plain|dedup|eml:DIR] [part_min=BYTES] [compress=0|1]`
//!
//! `plain` (the default): a 4 KiB plain-text message to one of 1 000 mailboxes. `dedup`:
//! the `dedup_ratio` example's temp-mail corpus (shared logos, newsletters, spam runs to
//! many recipients). `eml:DIR`: every `*.eml` file of at least 1 KiB under `DIR` (e.g. the
//! real messages in the mail-parser and mail-auth crates' test data) in name order, the
//! i-th message of a run to mailbox i mod 1 000 with file i mod 1 000 mod the file count
//! (a corpus of more than 1 000 files uses its first 1 000). `part_min` sets
//! `part_bytes_min` (0: no shared MIME parts); `compress=0` stores records uncompressed
//! (the default compresses them). Memory is
//! the `used_memory` delta over the primaries less their replication backlog and client
//! buffers (fixed costs of the run, not of the messages: the backlog alone grows to 1 MiB
//! per primary), against the raw bytes stored (one copy per recipient, as a single node
//! without sharing would hold them); then `MEMORY USAGE` of sampled keys of each kind.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use tempmx_store::cluster::testkit::TestCluster;
use tempmx_store::cluster::{Ack, Cluster, ClusterOptions};
use tempmx_store::{Commit, Mailbox, MessageSink, NewMessage};

#[path = "support/corpus.rs"]
mod corpus;

/// The value of argument `name=VALUE`, if given.
fn arg(name: &str) -> Option<String> {
    std::env::args().find_map(|a| Some(a.strip_prefix(name)?.strip_prefix('=')?.to_owned()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().filter(|a| !a.contains('=')).collect();
    let corpus = arg("corpus").unwrap_or_default();
    let dedup = corpus == "dedup";
    let eml_dir = corpus.strip_prefix("eml:").map(std::path::PathBuf::from);
    let messages: usize = args.get(1).map_or(Ok(20_000), |s| s.parse())?;
    let cores: usize = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let ack: Ack = args.get(3).map_or(Ok(Ack::Primary), |s| s.parse())?;
    let tc = TestCluster::start()?;
    let mut opts = ClusterOptions::new(tc.seeds(), "bench".to_owned());
    opts.ack = ack;
    if let Some(min) = arg("part_min") {
        opts.part_bytes_min = min.parse()?;
    }
    if let Some(c) = arg("compress") {
        opts.compress = c != "0";
    }
    let cluster = Cluster::connect(opts)?;
    let mem_before = used_memory(&tc);
    // Messages: (recipients, body). Plain: a 4 KiB plain-text message, 1000 mailboxes, one
    // recipient each. Dedup: the corpus, generated up front so the clock sees only writes.
    let trace = b"Received: from bench.test by mx.fleet.test; Sun, 6 Dec 2026 00:00:00 +0000\r\n";
    let mails: Vec<(Vec<Mailbox>, Vec<u8>)> = if dedup {
        let mut c = corpus::Corpus::new();
        (0..messages)
            .map(|i| {
                let (r, b) = c.next(i);
                (r, b.into_bytes())
            })
            .collect()
    } else if let Some(dir) = eml_dir {
        let mut files = Vec::new();
        eml_files(&dir, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(format!("no .eml file of 1 KiB or more under {}", dir.display()).into());
        }
        let bodies: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
        eprintln!("eml corpus: {} files", bodies.len());
        (0..1000)
            .map(|i| {
                Mailbox::parse(&format!("user{i}@fleet.test"))
                    .map(|m| (vec![m], bodies[i % bodies.len()].clone()))
            })
            .collect::<Result<_, _>>()?
    } else {
        let mut body = b"From: a@b.test\r\nTo: x@fleet.test\r\nSubject: load\r\n\r\n".to_vec();
        body.resize(4096 - 2, b'x');
        body.extend_from_slice(b"\r\n");
        (0..1000)
            .map(|i| {
                Mailbox::parse(&format!("user{i}@fleet.test")).map(|m| (vec![m], body.clone()))
            })
            .collect::<Result<_, _>>()?
    };
    let mails = std::sync::Arc::new(mails);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let start = Instant::now();
    let per_core = messages / cores;
    let failed: usize = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..cores {
            let mut sink = cluster.sink(c)?;
            let mails = std::sync::Arc::clone(&mails);
            tasks.push(tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut failed = 0;
                for i in 0..per_core {
                    let (rcpts, body) = &mails[(i * cores + c) % mails.len()];
                    let msg = NewMessage {
                        received_at_ms: 0,
                        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                        helo: "bench.test",
                        mail_from: "a@b.test",
                        recipients: rcpts,
                        tls: None,
                        trace_headers: trace,
                        auth: &[],
                        body,
                    };
                    match sink.accept(&msg).map(|a| a.commit) {
                        Ok(Commit::Pending(rx)) => pending.push(rx),
                        Ok(Commit::Done) => {}
                        Err(_) => failed += 1,
                    }
                    // Like SMTP sessions waiting for their 250: at most 256 in flight per core.
                    if pending.len() >= 256 {
                        for rx in pending.drain(..) {
                            failed += usize::from(!matches!(rx.await, Ok(Ok(()))));
                        }
                    }
                }
                for rx in pending {
                    failed += usize::from(!matches!(rx.await, Ok(Ok(()))));
                }
                failed
            }));
        }
        let mut failed = 0;
        for t in tasks {
            failed += t.await.unwrap_or(per_core);
        }
        Ok::<_, Box<dyn std::error::Error>>(failed)
    })?;
    let secs = start.elapsed().as_secs_f64();
    let stored = per_core * cores - failed;
    // Raw bytes as stored without sharing: every message once per recipient.
    let sent = per_core * cores;
    let raw_total: usize = (0..sent)
        .map(|n| {
            let (r, b) = &mails[n % mails.len()];
            (trace.len() + b.len()) * r.len()
        })
        .sum();
    let raw_once: usize = (0..sent)
        .map(|n| trace.len() + mails[n % mails.len()].1.len())
        .sum();
    let copies: usize = (0..sent).map(|n| mails[n % mails.len()].0.len()).sum();
    let mem_after = used_memory(&tc);
    let stats = cluster.write_stats();
    let (calls, by_cmd) = command_stats(&tc);
    let corpus = if corpus.is_empty() { "plain" } else { &corpus };
    println!(
        "corpus={corpus} part_min={} ack={ack} cores={cores} messages={stored} failed={failed} \
         mailbox_copies={copies} raw_bytes_per_copy={:.0}",
        cluster.options().part_bytes_min,
        raw_total as f64 / copies.max(1) as f64
    );
    println!("msgs_per_s={:.0} elapsed_s={secs:.2}", stored as f64 / secs);
    println!(
        "batches={} pipelines={} msgs_per_batch={:.1} pipelines_per_msg={:.3}",
        stats.batches(),
        stats.pipelines(),
        stats.messages() as f64 / stats.batches().max(1) as f64,
        stats.pipelines() as f64 / stats.messages().max(1) as f64
    );
    println!(
        "redis_commands_per_msg={:.2} ({by_cmd})",
        calls as f64 / stored.max(1) as f64
    );
    // Ratios over what was sent; `failed` must be 0 for them to mean anything.
    let mem = (mem_after - mem_before) as f64;
    println!(
        "redis_bytes_per_msg={:.0} per_mailbox_copy={:.0} ratio_to_raw={:.3} \
         (to one raw copy per message: {:.3})",
        mem / stored.max(1) as f64,
        mem / copies.max(1) as f64,
        mem / raw_total.max(1) as f64,
        mem / raw_once.max(1) as f64
    );
    breakdown(&tc);
    Ok(())
}

/// Every `*.eml` file of at least 1 KiB under `dir`, recursively.
fn eml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            eml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "eml")
            && std::fs::metadata(&path)?.len() >= 1024
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Sum over the primaries of `used_memory` less the replication backlog and the client
/// buffers (normal and replica), which are the run's fixed costs, not the messages'.
fn used_memory(tc: &TestCluster) -> i64 {
    primaries(tc)
        .filter_map(|i| tc.cli(i, &["info", "memory"]).ok())
        .map(|s| {
            let f = |n| field(&s, n).unwrap_or(0);
            f("used_memory:")
                - f("mem_replication_backlog:")
                - f("mem_clients_slaves:")
                - f("mem_clients_normal:")
        })
        .sum()
}

/// Prints, per kind of key (record, index, registry, shared part), how many the primaries
/// hold and the mean `MEMORY USAGE` of up to 200 of them (`SAMPLES 0`: every element).
fn breakdown(tc: &TestCluster) {
    let kinds = [
        ("record", ":m:"),
        ("index", ":idx"),
        ("registry", ":reg"),
        ("part", "{p:"),
    ];
    let mut count = [0usize; 4];
    let mut bytes = [(0i64, 0usize); 4];
    for i in primaries(tc) {
        let Ok(out) = tc.cli(i, &["--scan", "--pattern", "tmx:*"]) else {
            continue;
        };
        for key in out.lines() {
            let Some(k) = kinds.iter().position(|(_, pat)| key.contains(pat)) else {
                continue;
            };
            count[k] += 1;
            if bytes[k].1 < 200
                && let Some(n) = tc
                    .cli(i, &["memory", "usage", key, "samples", "0"])
                    .ok()
                    .and_then(|v| v.trim().parse::<i64>().ok())
            {
                bytes[k].0 += n;
                bytes[k].1 += 1;
            }
        }
    }
    for (k, (name, _)) in kinds.iter().enumerate() {
        let (sum, n) = bytes[k];
        println!(
            "keys {name}: {} on the primaries, MEMORY USAGE mean {:.0} bytes (of {n} sampled)",
            count[k],
            sum as f64 / n.max(1) as f64
        );
    }
}

/// Calls of every command on the primaries (after the FCALL's inner calls), and a
/// per-command breakdown of the client-sent ones.
fn command_stats(tc: &TestCluster) -> (i64, String) {
    let mut per: std::collections::BTreeMap<String, i64> = Default::default();
    for i in primaries(tc) {
        let Ok(text) = tc.cli(i, &["info", "commandstats"]) else {
            continue;
        };
        for line in text.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            *per.entry(name.to_owned()).or_default() += calls;
        }
    }
    // The announcement (SPUBLISH) runs inside `tempmx_put`; builds before it sent one per write.
    let sent = ["fcall", "wait"];
    let total = sent.iter().filter_map(|c| per.get(*c)).sum();
    let text = per
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    (total, text)
}

fn primaries(tc: &TestCluster) -> impl Iterator<Item = usize> + '_ {
    (0..tc.ports().len()).filter(|&i| tc.cli(i, &["role"]).is_ok_and(|r| r.starts_with("master")))
}

fn field(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}
