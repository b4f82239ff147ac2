//! Goal: `/metrics` on the live appliance is valid Prometheus text, exports every metric
//! the crates declare, and the dashboards and rules in `ops/` only use metric names the code
//! exports. Method: start the real app on loopback, deliver one message over SMTP, hold one
//! SSE and one WebSocket subscriber, create a mailbox, rotate a domain out as the operator,
//! scrape over HTTP, check the new families' values, run `promtool` on the output and on
//! the rules, and compare every `tempmx_*` name in `ops/` with the scrape. The rules also
//! pass their unit tests (`promtool test rules`), and every dashboard query parses and
//! follows the instance selector.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lettre::{Message, SmtpTransport, Transport};
use tempmx::fleet::FleetConfig;
use tempmx::metrics::{Kind, declared};
use tempmx::pool::DomainState;
use tempmx::{App, Config};
use tempmx_store::cluster::Ack;
use tempmx_store::cluster::testkit::TestCluster;

fn test_config() -> Config {
    let mut c = Config::default();
    let any = "127.0.0.1:0".parse().unwrap();
    c.ingress.listen = any;
    c.ingress.cores = 1;
    // No DNS may leave the machine.
    c.ingress.auth.mode = tempmx_ingress::auth::AuthMode::Off;
    c.http.listen = any;
    c.admin.listen = any;
    c.dns.listen = any;
    c.store.memory_bytes_max = 64 << 20;
    c.store.segment_bytes = 1 << 20;
    c.ingress.limits.message_bytes_max = 512 << 10;
    // Greylisting on, so its families are exported; loopback clients skip it (and are
    // counted as such).
    c.ingress.greylist.enabled = true;
    c.ingress.greylist.allow_networks = vec!["127.0.0.0/8".into()];
    // Live push without tokens.
    c.api.access = tempmx::api::public::config::AccessMode::Public;
    c
}

/// Sends a GET with optional extra header lines; returns the status line and the body.
fn http_request(addr: SocketAddr, path: &str, extra: &str) -> (String, String) {
    exchange(addr, &format!("GET {path} HTTP/1.1\r\n{extra}"), "")
}

/// Sends a POST with a JSON body; returns the status line and the body.
fn http_post(addr: SocketAddr, path: &str, body: &str) -> (String, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    exchange(addr, &head, body)
}

/// One HTTP/1.1 exchange: `head` (request line and header lines) and `body`; returns the
/// status line and the response body.
fn exchange(addr: SocketAddr, head: &str, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{head}Host: localhost\r\nConnection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// Opens a live-push connection and reads its response head; the returned stream keeps
/// the subscriber connected until it is dropped.
fn subscribe(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // The head is small; byte reads stop exactly at its end, before any event.
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.lines().next().unwrap_or("").to_owned();
    (s, status)
}

/// The value of the sample `series` (name with its labels, as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The `# TYPE` of every family in a scrape.
fn types_in(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let (status, body) = http_request(addr, path, "");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
    body
}

/// Every `tempmx_...` metric name in a text, with histogram suffixes folded.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("tempmx_") {
        let start = i + pos;
        let preceded_ok = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        if preceded_ok {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
        i = end;
    }
    names
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by ops/ci/test.sh");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The prefix of fleet mode's families, exported only by fleet nodes.
const FLEET: &str = "tempmx_fleet_";

/// Every `tempmx_*` name the rules and the dashboard in `ops/` use.
fn names_in_ops() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("ops");
    ["prometheus/tempmx.rules.yml", "grafana/tempmx.json"]
        .iter()
        .flat_map(|f| names_in(&std::fs::read_to_string(root.join(f)).unwrap()))
        .collect()
}

/// Expiry of the test certificate: 2031-01-02T00:00:00Z.
const CERT_NOT_AFTER: f64 = 1_925_078_400.0;

/// Writes a self-signed STARTTLS certificate expiring at [`CERT_NOT_AFTER`] and its key.
fn write_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut params = rcgen::CertificateParams::new(vec!["mx.tempmx.test".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2031, 1, 2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[test]
fn live_metrics_are_valid_and_ops_files_match_them() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = write_certificate(dir.path());
    let mut config = test_config();
    config.ingress.tls.cert_path = Some(cert_path);
    config.ingress.tls.key_path = Some(key_path);
    let app = App::start(config).unwrap();
    let addrs = app.addrs();
    let email = Message::builder()
        .from("a@example.test".parse().unwrap())
        .to("metrics@tempmx.test".parse().unwrap())
        .subject("metrics")
        .body("hello\r\n".to_owned())
        .unwrap();
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(addrs.smtp.port())
        .build()
        .send(&email)
        .unwrap();
    // One request on the public listener so the HTTP families have samples.
    http_get(addrs.http, "/healthz");
    let (status, body) = http_post(addrs.http, "/api/v1/mailboxes", "{}");
    assert!(status.starts_with("HTTP/1.1 201"), "{status}\n{body}");
    let mailbox = "/api/v1/mailboxes/metrics@tempmx.test";
    let (_sse, status) = subscribe(addrs.http, &format!("{mailbox}/events"), "");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (_ws, status) = subscribe(addrs.http, &format!("{mailbox}/ws"), upgrade);
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    // The operator rotates the only active domain out; a pending one replaces it.
    let plane = &app.shared().plane;
    plane
        .add_domains(&["spare.test".to_owned()], DomainState::Pending, "spare")
        .unwrap();
    plane
        .set_state(
            &tempmx_store::Domain::parse("tempmx.test").expect("test domain"),
            DomainState::Draining,
            "metrics test",
        )
        .unwrap();

    // The SMTP session is counted when the server has closed it, just after the client's
    // QUIT; wait for that (bounded), then keep the scrape that shows it.
    let mut scrape = String::new();
    for _ in 0..400 {
        scrape = http_get(addrs.admin, "/metrics");
        if sample(&scrape, "tempmx_smtp_session_duration_seconds_count") == Some(1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    app.shutdown();
    let expect = [
        ("tempmx_smtp_messages_accepted_total", 1.0),
        ("tempmx_smtp_session_duration_seconds_count", 1.0),
        ("tempmx_smtp_message_size_bytes_count", 1.0),
        ("tempmx_api_subscribers{transport=\"sse\"}", 1.0),
        ("tempmx_api_subscribers{transport=\"websocket\"}", 1.0),
        ("tempmx_pool_rotations_total{reason=\"operator\"}", 1.0),
        ("tempmx_pool_rotations_total{reason=\"listing\"}", 0.0),
        (
            "tempmx_greylist_checks_total{verdict=\"allow_network\"}",
            1.0,
        ),
        (
            "tempmx_auth_results_total{method=\"spf\",result=\"pass\"}",
            0.0,
        ),
    ];
    for (series, want) in expect {
        assert_eq!(sample(&scrape, series), Some(want), "{series}\n{scrape}");
    }
    // Build and process families: the version and the backend in use, a live process.
    let info = ["uring", "epoll"].map(|backend| {
        let series = format!(
            "tempmx_build_info{{version=\"{}\",backend=\"{backend}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        sample(&scrape, &series)
    });
    assert!(
        matches!(info, [Some(1.0), None] | [None, Some(1.0)]),
        "one build_info series with a resolved backend:\n{scrape}"
    );
    assert_eq!(sample(&scrape, "tempmx_api_mailboxes_live"), Some(1.0));
    assert_eq!(
        sample(
            &scrape,
            "tempmx_smtp_tls_certificate_expiry_timestamp_seconds"
        ),
        Some(CERT_NOT_AFTER)
    );
    let rss = sample(&scrape, "tempmx_process_resident_memory_bytes").unwrap();
    assert!(rss > f64::from(1u32 << 20), "{rss}");
    let fds = sample(&scrape, "tempmx_process_open_fds").unwrap();
    let fds_max = sample(&scrape, "tempmx_process_fds_max").unwrap();
    assert!(fds >= 5.0 && fds <= fds_max, "{fds} of {fds_max}");
    assert!(sample(&scrape, "tempmx_process_cpu_seconds_total").unwrap() > 0.0);
    let started = sample(&scrape, "tempmx_process_start_time_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
    // The message as received: at least its body, well under the 512 KiB limit.
    let size = sample(&scrape, "tempmx_smtp_message_size_bytes_sum").unwrap();
    assert!((7.0..4096.0).contains(&size), "{size}");
    assert_eq!(
        sample(
            &scrape,
            "tempmx_smtp_message_size_bytes_bucket{le=\"1024\"}"
        ),
        Some(1.0)
    );
    let secs = sample(&scrape, "tempmx_smtp_session_duration_seconds_sum").unwrap();
    assert!(secs > 0.0, "{secs}");

    // Every declared metric is exported with its declared type, except the per-list
    // blocklist gauge, which has no series while no blocklist is configured, and fleet
    // mode's families (checked on a fleet node below).
    let types = types_in(&scrape);
    for d in declared() {
        if d.name == tempmx::metrics::BLOCKLIST_LISTED.name || d.name.starts_with(FLEET) {
            continue;
        }
        let want = match d.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert_eq!(
            types.get(d.name).map(String::as_str),
            Some(want),
            "{}",
            d.name
        );
    }

    let (ok, out) = promtool(&["check", "metrics"], Some(&scrape));
    assert!(ok, "promtool check metrics:\n{out}");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("ops");
    let rules = root.join("prometheus/tempmx.rules.yml");
    let (ok, out) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "promtool check rules:\n{out}");

    let exported = names_in(&scrape);
    let used = names_in_ops();
    assert!(used.len() > 10, "{used:?}");
    let unknown: Vec<&String> = used
        .difference(&exported)
        .filter(|n| !n.starts_with(FLEET))
        .collect();
    assert!(
        unknown.is_empty(),
        "ops/ uses metrics the code does not export: {unknown:?}"
    );
}

// Goal: with `admin.metrics_need_token`, a scrape needs the admin (or read-only) token.
// Method: start the app with both tokens set and scrape without, with a wrong, and with
// each right token.
#[test]
fn metrics_token_is_enforced_when_configured() {
    let mut c = test_config();
    c.admin.token = Some("admin-secret".into());
    c.admin.read_token = Some("read-secret".into());
    c.admin.metrics_need_token = true;
    c.validate().unwrap();
    let app = App::start(c).unwrap();
    let admin = app.addrs().admin;
    let status = |extra: &str| http_request(admin, "/metrics", extra).0;
    let none = status("");
    let wrong = status("Authorization: Bearer admin-secreT\r\n");
    let full = status("Authorization: Bearer admin-secret\r\n");
    let read = status("Authorization: Bearer read-secret\r\n");
    app.shutdown();
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    assert!(full.starts_with("HTTP/1.1 200"), "{full}");
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
}

// Goal: the alert and recording rules behave as intended with several instances. Method:
// `promtool test rules` on ops/prometheus/tempmx.rules.test.yml, whose input series come
// from two or three appliances and whose expected alerts name the one concerned.
#[test]
fn prometheus_rules_pass_their_unit_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus");
    let tests = dir.join("tempmx.rules.test.yml");
    let (ok, out) = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(ok, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

// Goal: the dashboard is well formed for Grafana and follows the instance selector: unique
// panel ids, every panel on the `${datasource}` variable, an `instance` variable fed by
// tempmx_build_info, every tempmx_* selector filtered by `$instance`, and every query
// parses as PromQL. Method: read the JSON; give promtool each query (with Grafana's
// variables replaced by values) as a recording rule, so `promtool check rules` parses it.
#[test]
fn dashboard_queries_parse_and_follow_the_instance_selector() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/grafana/tempmx.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36);
    let vars = dash["templating"]["list"].as_array().unwrap();
    let instance = vars.iter().find(|v| v["name"] == "instance").unwrap();
    assert_eq!(instance["type"], "query");
    assert!(
        instance["definition"]
            .as_str()
            .unwrap()
            .contains("tempmx_build_info")
    );
    assert_eq!(instance["multi"], true);
    let mut ids = BTreeSet::new();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut queries = 0;
    for panel in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id {panel}"
        );
        let grid = &panel["gridPos"];
        assert!(grid["w"].as_u64().unwrap() <= 24 && grid["h"].as_u64().unwrap() > 0);
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let selectors = expr.matches("tempmx_").count();
            let filtered = expr.matches("instance=~\"$instance\"").count();
            assert_eq!(selectors, filtered, "{}: {expr}", panel["title"]);
            let concrete = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            queries += 1;
            rules.push_str(&format!(
                "      - record: dashboard:query{queries}\n        expr: {}\n",
                serde_json::Value::String(concrete)
            ));
        }
    }
    assert!(queries > 40, "{queries}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let (ok, out) = promtool(&["check", "rules", file.to_str().unwrap()], None);
    assert!(ok, "a dashboard query does not parse:\n{out}");
}

/// The test config of a fleet node named `node` on `tc`, heartbeating every 2 s.
fn fleet_config(tc: &TestCluster, node: &str) -> Config {
    let mut c = test_config();
    c.fleet = Some(FleetConfig {
        redis: tc.seeds(),
        node: Some(node.to_owned()),
        ack: Ack::Primary,
        node_ttl_secs: 2,
        ..FleetConfig::default()
    });
    c
}

// Goal: in fleet mode every series carries the node's name, the fleet families count what
// they promise (write batches and round trips, a stale member, cluster errors and the 451s
// they cause, a primary switched to an evicting policy), and every metric the Fleet row and
// the fleet alerts use is exported by a running fleet node. Method: a real 6-node Redis Cluster (Debian redis-server), the real
// app as node mx-a, a second node mx-b started and stopped so its heartbeat lapses; one
// message over SMTP; then every Redis process SIGKILLed (the test's own children) and a
// second message, which must get a 4xx; scrape over HTTP and compare with `ops/`.
#[test]
fn fleet_metrics_carry_the_node_and_cover_the_fleet_panels() {
    let mut tc = TestCluster::start().expect("cluster starts");
    let app = App::start(fleet_config(&tc, "mx-a")).unwrap();
    let gone = App::start(fleet_config(&tc, "mx-b")).unwrap();
    let addrs = app.addrs();
    let smtp = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(addrs.smtp.port())
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let email = |subject: &str| {
        Message::builder()
            .from("a@example.test".parse().unwrap())
            .to("fleet@tempmx.test".parse().unwrap())
            .subject(subject)
            .body("hello\r\n".to_owned())
            .unwrap()
    };
    smtp.send(&email("stored")).unwrap();
    // mx-b heartbeats, then stops; once its 2 s TTL lapses mx-a counts it stale.
    let scrape_has = |series: &str, want: f64| {
        let scrape = http_get(addrs.admin, "/metrics");
        (sample(&scrape, series) == Some(want)).then_some(scrape)
    };
    wait_until(Duration::from_secs(10), "mx-b up", || {
        scrape_has("tempmx_fleet_nodes{state=\"up\",node=\"mx-a\"}", 2.0)
    });
    gone.shutdown();
    let healthy = wait_until(Duration::from_secs(15), "mx-b stale", || {
        scrape_has("tempmx_fleet_nodes{state=\"stale\",node=\"mx-a\"}", 1.0)
    });
    for (series, want) in [
        ("tempmx_fleet_write_messages_total{node=\"mx-a\"}", 1.0),
        ("tempmx_fleet_write_batches_total{node=\"mx-a\"}", 1.0),
        ("tempmx_fleet_write_pipelines_total{node=\"mx-a\"}", 1.0),
        ("tempmx_fleet_write_retries_total{node=\"mx-a\"}", 0.0),
        ("tempmx_fleet_messages_refused_total{node=\"mx-a\"}", 0.0),
        ("tempmx_fleet_nodes{state=\"up\",node=\"mx-a\"}", 1.0),
        ("tempmx_fleet_primaries_evicting{node=\"mx-a\"}", 0.0),
    ] {
        assert_eq!(sample(&healthy, series), Some(want), "{series}\n{healthy}");
    }

    // A primary switched to an evicting policy after start shows within a heartbeat.
    let primary = (0..tc.ports().len())
        .find(|&i| tc.cli(i, &["role"]).unwrap().starts_with("master"))
        .unwrap();
    let set = |policy: &str| {
        let out = tc.cli(primary, &["config", "set", "maxmemory-policy", policy]);
        assert_eq!(out.unwrap().trim(), "OK");
    };
    set("allkeys-lru");
    wait_until(Duration::from_secs(10), "the evicting primary seen", || {
        scrape_has("tempmx_fleet_primaries_evicting{node=\"mx-a\"}", 1.0)
    });
    set("noeviction");
    wait_until(
        Duration::from_secs(10),
        "the policy back to noeviction",
        || scrape_has("tempmx_fleet_primaries_evicting{node=\"mx-a\"}", 0.0),
    );

    // The cluster goes away: the next message is refused with a 4xx, never a 250.
    for i in 0..tc.ports().len() {
        tc.kill(i).unwrap();
    }
    let refused = smtp.send(&email("refused")).unwrap_err();
    assert!(refused.is_transient(), "{refused}");
    let scrape = http_get(addrs.admin, "/metrics");
    app.shutdown();
    assert_eq!(
        sample(
            &scrape,
            "tempmx_fleet_messages_refused_total{node=\"mx-a\"}"
        ),
        Some(1.0),
        "{scrape}"
    );
    let write_errors = sample(
        &scrape,
        "tempmx_fleet_cluster_errors_total{op=\"write\",node=\"mx-a\"}",
    );
    assert!(write_errors.is_some_and(|n| n >= 1.0), "{scrape}");

    // Every series names the node; the text is valid; the fleet families have their types.
    let series: Vec<&str> = scrape.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(series.len() > 50, "{scrape}");
    for line in series {
        assert!(line.contains("node=\"mx-a\""), "{line}");
    }
    let (ok, out) = promtool(&["check", "metrics"], Some(&scrape));
    assert!(ok, "promtool check metrics:\n{out}");
    let types = types_in(&scrape);
    for d in declared().into_iter().filter(|d| d.name.starts_with(FLEET)) {
        let want = if d.kind == Kind::Counter {
            "counter"
        } else {
            "gauge"
        };
        assert_eq!(
            types.get(d.name).map(String::as_str),
            Some(want),
            "{}",
            d.name
        );
    }

    // Every fleet name the rules and the dashboard use (the lease's included) is exported
    // by this fleet node; the single-node test covers the others the fleet rules use.
    let exported = names_in(&scrape);
    assert!(exported.contains("tempmx_smtp_messages_accepted_total"));
    let unknown: Vec<String> = names_in_ops()
        .into_iter()
        .filter(|n| n.starts_with(FLEET) && !exported.contains(n))
        .collect();
    assert!(
        unknown.is_empty(),
        "ops/ uses metrics a fleet node does not export: {unknown:?}"
    );
}

/// Polls `f` every 100 ms until it gives a value, for at most `within`.
fn wait_until<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
