//! Measures fleet mode's write path on a real loopback Redis Cluster (6 redis-server
//! processes, started and stopped here): messages/s, pipelines (round trips) and Redis
//! commands per message from `INFO commandstats`, and bytes of Redis memory per message
//! against the raw size. Figures go to BENCHMARKS.md; nothing is asserted.
//!
//! `cargo run --release -p tempmx-store --example cluster_cost -- [messages] [cores] [ack]`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use tempmx_store::cluster::testkit::TestCluster;
use tempmx_store::cluster::{Ack, Cluster, ClusterOptions};
use tempmx_store::{Commit, Mailbox, MessageSink, NewMessage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let messages: usize = args.get(1).map_or(Ok(20_000), |s| s.parse())?;
    let cores: usize = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let ack: Ack = args.get(3).map_or(Ok(Ack::Primary), |s| s.parse())?;
    let tc = TestCluster::start()?;
    let mut opts = ClusterOptions::new(tc.seeds(), "bench".to_owned());
    opts.ack = ack;
    let cluster = Cluster::connect(opts)?;
    let mem_before = used_memory(&tc);
    // A 4 KiB plain-text message (headers + body), 1000 mailboxes, one recipient each.
    let mut body = b"From: a@b.test\r\nTo: x@fleet.test\r\nSubject: load\r\n\r\n".to_vec();
    body.resize(4096 - 2, b'x');
    body.extend_from_slice(b"\r\n");
    let trace = b"Received: from bench.test by mx.fleet.test; Sun, 6 Dec 2026 00:00:00 +0000\r\n";
    let raw = body.len() + trace.len();
    let rcpts: Vec<Vec<Mailbox>> = (0..1000)
        .map(|i| Mailbox::parse(&format!("user{i}@fleet.test")).map(|m| vec![m]))
        .collect::<Result<_, _>>()?;
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
            let (body, rcpts) = (body.clone(), rcpts.clone());
            tasks.push(tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut failed = 0;
                for i in 0..per_core {
                    let msg = NewMessage {
                        received_at_ms: 0,
                        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                        helo: "bench.test",
                        mail_from: "a@b.test",
                        recipients: &rcpts[(i * cores + c) % rcpts.len()],
                        tls: None,
                        trace_headers: trace,
                        auth: &[],
                        body: &body,
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
    let mem_after = used_memory(&tc);
    let stats = cluster.write_stats();
    let (calls, by_cmd) = command_stats(&tc);
    println!("ack={ack} cores={cores} messages={stored} failed={failed} raw_bytes={raw}");
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
    println!(
        "redis_bytes_per_msg={:.0} ratio_to_raw={:.2}",
        (mem_after - mem_before) as f64 / stored.max(1) as f64,
        (mem_after - mem_before) as f64 / stored.max(1) as f64 / raw as f64
    );
    Ok(())
}

/// Sum of `used_memory` over the primaries.
fn used_memory(tc: &TestCluster) -> i64 {
    primaries(tc)
        .filter_map(|i| tc.cli(i, &["info", "memory"]).ok())
        .filter_map(|s| field(&s, "used_memory:"))
        .sum()
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
    let sent = ["fcall", "spublish", "wait"];
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
