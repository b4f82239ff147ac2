//! Integration tests: the loads against in-test responders on 127.0.0.1.

mod fixture;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tempmx_bench::client::TxOptions;
use tempmx_bench::dns::{self, DnsConfig};
use tempmx_bench::e2e::{self, E2eConfig};
use tempmx_bench::pacing::Mode;
use tempmx_bench::smtp::{self, SmtpConfig};
use tempmx_bench::workload::{RcptCount, SizeDist, Spread, WorkloadSpec};

fn smtp_cfg(target: SocketAddr, messages: u64) -> SmtpConfig {
    SmtpConfig {
        target,
        connections: 4,
        threads: 2,
        per_connection: 0,
        workload: WorkloadSpec {
            size: SizeDist::Fixed(4096),
            rcpts: RcptCount { min: 1, max: 1 },
            mailboxes: 0,
            spread: Spread::Uniform,
            domains: vec!["tempmx.test".into()],
            from: "bench@bench.test".into(),
        },
        tx: TxOptions {
            pipelining: true,
            bdat: false,
        },
        starttls_share: 0.0,
        tls_name: None,
        helo: "bench.test".into(),
        mode: Mode::Closed,
        messages: Some(messages),
        duration: Some(Duration::from_secs(60)),
        timeout: Duration::from_secs(10),
        errors_max: 100,
        progress: false,
    }
}

#[test]
fn smtp_pipelined_data_counts_match_the_server() {
    // Goal: every message the bench reports as accepted was received by the server,
    // with the recipients asked for, across reconnects. Method: 300 messages, 1-3
    // recipients, 7 per connection, then compare the fixture's counters.
    let (addr, counts) = fixture::smtp_server(None);
    let mut cfg = smtp_cfg(addr, 300);
    cfg.per_connection = 7;
    cfg.workload.rcpts = RcptCount { min: 1, max: 3 };
    let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.attempted, 300);
    assert_eq!(s.ok, 300, "{}", s.table());
    assert_eq!(counts.data_msgs.load(Ordering::Relaxed), 300);
    let rcpts = counts.rcpts.load(Ordering::Relaxed);
    assert!((300..=900).contains(&rcpts), "{rcpts} recipients");
    // 300 / 7 per connection -> 43 sessions at least (slots may end with a short one).
    assert!(s.connections >= 43, "{} connections", s.connections);
    assert_eq!(s.replies.get("354"), Some(&300));
    assert_eq!(s.replies.get("220"), Some(&s.connections));
    assert_eq!(s.latency.samples, 300);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn smtp_bdat_without_pipelining() {
    // Goal: the lock-step BDAT path delivers every message whole.
    let (addr, counts) = fixture::smtp_server(None);
    let mut cfg = smtp_cfg(addr, 100);
    cfg.tx = TxOptions {
        pipelining: false,
        bdat: true,
    };
    let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 100, "{}", s.table());
    assert_eq!(counts.bdat_msgs.load(Ordering::Relaxed), 100);
    assert_eq!(counts.bytes.load(Ordering::Relaxed), 100 * 4096);
    assert_eq!(s.replies.get("354"), None);
}

#[test]
fn smtp_pipelined_bdat() {
    // Goal: MAIL, RCPT and BDAT+content in one write are all answered and counted.
    let (addr, counts) = fixture::smtp_server(None);
    let mut cfg = smtp_cfg(addr, 100);
    cfg.tx.bdat = true;
    let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 100, "{}", s.table());
    assert_eq!(counts.bdat_msgs.load(Ordering::Relaxed), 100);
}

#[test]
fn smtp_rejected_recipients_are_counted_not_accepted() {
    // Goal: recipients refused with 550 make the message rejected (pipelined and
    // lock-step), counted by code, and nothing reaches the server.
    for pipelining in [true, false] {
        let (addr, counts) = fixture::smtp_server(None);
        let mut cfg = smtp_cfg(addr, 50);
        cfg.workload.domains = vec!["bad.test".into()];
        cfg.tx.pipelining = pipelining;
        let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.ok, 0);
        assert_eq!(s.rejected, 50, "{}", s.table());
        assert_eq!(s.replies.get("550"), Some(&50));
        assert_eq!(counts.data_msgs.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn smtp_starttls_share() {
    // Goal: with share 1.0 every connection upgrades (the fixture's self-signed
    // certificate is accepted) and messages flow over TLS.
    let (addr, counts) = fixture::smtp_server(None);
    let mut cfg = smtp_cfg(addr, 40);
    cfg.starttls_share = 1.0;
    cfg.per_connection = 10;
    let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 40, "{}", s.table());
    assert_eq!(s.tls_sessions, s.connections);
    assert_eq!(counts.tls.load(Ordering::Relaxed), s.connections);
    assert_eq!(counts.data_msgs.load(Ordering::Relaxed), 40);
}

#[test]
fn smtp_open_loop_follows_the_schedule() {
    // Goal: open loop at 200/s sends 40 messages no faster than the schedule allows:
    // the last is due at 195 ms, so the run cannot end before that.
    let (addr, _) = fixture::smtp_server(None);
    let mut cfg = smtp_cfg(addr, 40);
    cfg.mode = Mode::Open(200.0);
    let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 40);
    assert!(s.elapsed_s >= 0.195, "elapsed {}", s.elapsed_s);
}

#[test]
fn smtp_error_budget_ends_a_run_against_a_dead_port() {
    // Goal: with nothing listening, the run stops at the error budget instead of
    // trying a million messages.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut cfg = smtp_cfg(port, 1_000_000);
    cfg.errors_max = 5;
    let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 0);
    assert!(s.failed >= 5 && s.failed < 100, "failed {}", s.failed);
    assert!(s.errors.contains_key("connect_refused"), "{:?}", s.errors);
}

#[test]
fn binary_prints_json() {
    // Goal: the real binary runs end to end and its --json output carries the counts.
    let (addr, counts) = fixture::smtp_server(None);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tempmx-bench"))
        .args([
            "smtp",
            &addr.to_string(),
            "-c",
            "3",
            "-m",
            "60",
            "-s",
            "1k-8k",
        ])
        .args(["--rcpts", "2", "--mailboxes", "10", "--spread", "zipf:1.1"])
        .args(["--json", "--no-progress"])
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("json: {e}"));
    assert_eq!(v["ok"], 60);
    assert_eq!(v["kind"], "smtp");
    assert!(v["latency"]["p99_us"].as_u64().is_some());
    assert_eq!(counts.data_msgs.load(Ordering::Relaxed), 60);
    assert_eq!(counts.rcpts.load(Ordering::Relaxed), 120);
}

#[test]
fn binary_refuses_an_unbounded_run() {
    // Goal: neither a count nor a duration is a clear error, not an endless run.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tempmx-bench"))
        .args(["smtp", "127.0.0.1:9", "--no-progress"])
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("count"));
}

fn dns_cfg(target: SocketAddr, names: &[&str], count: u64) -> DnsConfig {
    let list: Vec<String> = names.iter().map(|n| format!("{n} A")).collect();
    let list = dns::parse_query_list(&list.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    DnsConfig {
        target,
        queries: Arc::new(dns::encode_all(&list).unwrap_or_else(|e| panic!("{e}"))),
        threads: 2,
        sockets: 3,
        inflight: 8,
        mode: Mode::Closed,
        count: Some(count),
        duration: Some(Duration::from_secs(60)),
        timeout: Duration::from_millis(300),
        errors_max: 100,
        progress: false,
    }
}

#[test]
fn dns_closed_loop_counts_answers_by_rcode() {
    // Goal: every query is answered and counted once, by RCODE.
    let (addr, seen) = fixture::dns_server();
    let s = dns::run(dns_cfg(addr, &["a.tempmx.test", "nx.tempmx.test"], 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.attempted, 1000);
    assert_eq!(s.ok, 1000, "{}", s.table());
    assert_eq!(s.replies.get("No Error"), Some(&500), "{:?}", s.replies);
    assert_eq!(
        s.replies.get("Non-Existent Domain"),
        Some(&500),
        "{:?}",
        s.replies
    );
    assert_eq!(seen.load(Ordering::Relaxed), 1000);
}

#[test]
fn dns_lost_queries_time_out() {
    // Goal: unanswered queries are counted as timeouts and the run still ends.
    let (addr, _) = fixture::dns_server();
    let s = dns::run(dns_cfg(addr, &["ok.tempmx.test", "drop.tempmx.test"], 40))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 20, "{}", s.table());
    assert_eq!(s.failed, 20);
    assert_eq!(s.errors.get("timeout"), Some(&20));
}

#[test]
fn e2e_against_the_api_contract() {
    // Goal: the e2e load creates mailboxes, streams their events and matches each
    // message with its new_message event. Method: the fixture API announces every
    // accepted message on the recipient's SSE stream.
    let (smtp, http) = fixture::api_server();
    let cfg = E2eConfig {
        smtp,
        http,
        mailboxes: 3,
        messages: Some(30),
        duration: Some(Duration::from_secs(60)),
        mode: Mode::Closed,
        size: SizeDist::Fixed(2048),
        timeout: Duration::from_secs(10),
        errors_max: 10,
        helo: "bench.test".into(),
        from: "bench@bench.test".into(),
        progress: false,
    };
    let s = e2e::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 30, "{}", s.table());
    assert_eq!(s.latency.samples, 30);
    assert_eq!(s.extra.get("smtp_ack").map(|l| l.samples), Some(30));
    assert_eq!(s.extra.get("ack_to_visible").map(|l| l.samples), Some(30));
}

#[test]
fn e2e_without_an_api_fails_cleanly() {
    // Goal: with no HTTP API listening, the run ends with errors, not a hang or panic.
    let (smtp, _) = fixture::smtp_server(None);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let cfg = E2eConfig {
        smtp,
        http: dead,
        mailboxes: 2,
        messages: Some(10),
        duration: None,
        mode: Mode::Closed,
        size: SizeDist::Fixed(1024),
        timeout: Duration::from_secs(2),
        errors_max: 10,
        helo: "bench.test".into(),
        from: "bench@bench.test".into(),
        progress: false,
    };
    let s = e2e::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 0);
    assert_eq!(s.failed, 2);
    assert_eq!(s.errors.get("http"), Some(&2), "{:?}", s.errors);
}
