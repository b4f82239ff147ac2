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

/// An e2e run of `messages` over `mailboxes` against the given fixture addresses.
fn e2e_cfg(smtp: SocketAddr, http: SocketAddr, mailboxes: usize, messages: u64) -> E2eConfig {
    E2eConfig {
        smtp,
        http,
        mailboxes,
        messages: Some(messages),
        duration: Some(Duration::from_secs(60)),
        mode: Mode::Closed,
        size: SizeDist::Fixed(1024),
        timeout: Duration::from_secs(10),
        create_wait_max: Duration::from_secs(30),
        errors_max: 10,
        helo: "bench.test".into(),
        from: "bench@bench.test".into(),
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
        size: SizeDist::Fixed(2048),
        ..e2e_cfg(smtp, http, 3, 30)
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
        duration: None,
        timeout: Duration::from_secs(2),
        ..e2e_cfg(smtp, dead, 2, 10)
    };
    let s = e2e::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ok, 0);
    assert_eq!(s.failed, 2);
    assert_eq!(
        s.errors.get("http connect_refused"),
        Some(&2),
        "{:?}",
        s.errors
    );
}

#[test]
fn smtp_reconnects_after_the_servers_421_like_an_mta() {
    // Goal: a server that closes each connection with 421 after 10 messages (tempmx's
    // messages_per_connection_max) costs reconnects, not failures: every message is
    // accepted, each 421 is counted apart and the message goes again on a new connection.
    // Method: 2 long-lived connections, 50 messages, pipelined and lockstep, against the
    // limited fixture; the counts must tie up exactly.
    for pipelining in [true, false] {
        let (addr, counts) = fixture::smtp_server_limited(None, 10);
        let mut cfg = smtp_cfg(addr, 50);
        cfg.connections = 2;
        cfg.tx.pipelining = pipelining;
        let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
        let table = s.table();
        assert_eq!((s.ok, s.rejected, s.failed), (50, 0, 0), "{table}");
        assert!(s.errors.is_empty(), "{table}");
        assert_eq!(counts.data_msgs.load(Ordering::Relaxed), 50);
        // 50 messages over 2 connections of at most 10 each: at least 3 reopenings.
        assert!(s.reconnects_421 >= 3, "{table}");
        assert_eq!(s.replies.get("421"), Some(&s.reconnects_421), "{table}");
        assert_eq!(s.connections, 2 + s.reconnects_421, "{table}");
        assert!(table.contains("reopened after the server's 421"), "{table}");
    }
}

#[test]
fn smtp_421_on_a_fresh_connection_is_a_rejection_not_a_loop() {
    // Goal: a 421 on a connection that carried no mail yet is not retried (a server that
    // refuses everything must not make the bench loop): each message is one rejection, and
    // the next one opens a new connection. Method: the limited fixture with a limit of 0
    // answers the first MAIL of every connection with 421.
    let (addr, _) = fixture::smtp_server_limited(None, 0);
    let mut cfg = smtp_cfg(addr, 6);
    cfg.connections = 1;
    let s = smtp::run(cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.ok, s.rejected), (0, 6), "{}", s.table());
    assert_eq!(s.reconnects_421, 0, "{}", s.table());
    assert_eq!(s.connections, 6, "{}", s.table());
}

#[test]
fn e2e_creates_mailboxes_within_the_rate_limit() {
    // Goal: e2e mode waits out the API's 429 (Retry-After) when creating mailboxes, and
    // names the cause when it may not wait long enough. Method: a fixture API that allows
    // 2 creations at once then one a second; 4 mailboxes with a 30 s creation bound all
    // work; with no wait allowed, the 2 beyond the burst fail as `http 429`.
    let (smtp, http) = fixture::api_server_limited(2);
    let cfg = e2e_cfg(smtp, http, 4, 12);
    let s = e2e::run(cfg.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.ok, s.failed), (12, 0), "{}", s.table());
    let (smtp, http) = fixture::api_server_limited(2);
    let s = e2e::run(E2eConfig {
        smtp,
        http,
        create_wait_max: Duration::ZERO,
        ..cfg
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.errors.get("http 429"), Some(&2), "{}", s.table());
    assert_eq!(
        s.ok,
        12,
        "the two created mailboxes carry the load: {}",
        s.table()
    );
}

#[test]
fn e2e_rate_limit_note_says_how_to_lift_the_limits() {
    // Goal: a run bigger than tempmx's default per-client limits is told how long creation
    // takes and which settings lift the limits; a small run gets no note.
    assert_eq!(e2e::rate_limit_note(5), None);
    let note = e2e::rate_limit_note(25).unwrap_or_default();
    assert!(note.contains("api.create_per_minute"), "{note}");
    assert!(note.contains("about 60 s"), "{note}");
    assert!(note.contains("api.subscribers_per_ip_max"), "{note}");
}
