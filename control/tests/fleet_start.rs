//! Fleet mode start-up through the real `tempmx serve` binary: against a real 6-node Redis
//! Cluster (Debian redis-server, started and stopped by the test) and against seeds where
//! nothing listens.

mod binary_support;

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempmx_store::cluster::testkit::TestCluster;

/// A loopback port nobody listens on (bound and released just before).
fn dead_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn an_unreachable_cluster_stops_start_up_naming_the_seeds() {
    // Goal: with fleet mode on and no cluster at the seeds, `tempmx serve` exits non-zero
    // with an error that names every seed, whether the seeds come from `--fleet` flags or
    // from `[fleet] redis`. Method: run the binary both ways against released ports.
    let dir = tempfile::tempdir().expect("temp dir");
    let seeds = [
        format!("redis://127.0.0.1:{}", dead_port()),
        format!("redis://127.0.0.1:{}", dead_port()),
    ];
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, binary_support::config_text(None, 60, "")).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["serve", "--config"])
        .arg(&plain)
        .args(["--fleet", &seeds[0], "--fleet", &seeds[1]])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tempmx runs");
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tempmx started without its cluster");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(!status.success(), "non-zero exit: {status}");
    for s in &seeds {
        assert!(err.contains(s.as_str()), "error names {s}: {err}");
    }
    assert!(err.contains("cannot reach the Redis Cluster"), "{err}");

    let from_file = dir.path().join("fleet.toml");
    let section = format!("[fleet]\nredis = [{:?}]\n", seeds[0]);
    std::fs::write(&from_file, binary_support::config_text(None, 60, &section)).expect("config");
    let err = binary_support::start_fails(&from_file);
    assert!(
        err.contains(seeds[0].as_str()),
        "error names the seed: {err}"
    );
}

#[test]
fn serve_starts_on_a_real_cluster_and_rejects_bad_fleet_settings() {
    // Goal: with a reachable cluster the appliance starts in fleet mode (node name and ack
    // from `[fleet]`) and stops cleanly; a bad `ack` or a non-redis URL is a config error
    // naming its key. Method: a real 6-node cluster, the real binary, `check-config`.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let seeds: Vec<String> = tc.seeds().iter().map(|s| format!("{s:?}")).collect();
    let section = format!(
        "[fleet]\nredis = [{}]\nnode = \"mx-a\"\nack = \"replicas:1\"\n",
        seeds.join(", ")
    );
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, binary_support::config_text(None, 60, &section)).expect("config");
    let running = binary_support::start(&path);
    let connected = running
        .log
        .lock()
        .expect("log lock")
        .iter()
        .any(|l| l.contains("connected to the Redis Cluster"));
    assert!(connected, "fleet mode connected before serving");
    // The appliance answers its admin API in fleet mode (and has its signal handler set up
    // by the time it does, so the SIGTERM below is a graceful stop).
    let (status, _) = running.admin("GET", "/admin/v1/blocklists", None);
    assert_eq!(status, 200);
    running.stop();

    for (bad, key) in [
        (
            "[fleet]\nredis = [\"redis://127.0.0.1:1\"]\nack = \"replicas:0\"\n",
            "ack",
        ),
        ("[fleet]\nredis = [\"http://127.0.0.1:1\"]\n", "fleet.redis"),
        (
            "[pool]\nrecipients = \"registered\"\n[fleet]\nredis = [\"redis://127.0.0.1:1\"]\n",
            "pool.recipients",
        ),
    ] {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, binary_support::config_text(None, 60, bad)).expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_tempmx"))
            .args(["check-config", "--config"])
            .arg(&p)
            .output()
            .expect("tempmx runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} refused");
        assert!(err.contains(key), "{bad}: {err}");
    }
}
