//! Start-up refusals through the real binary: `tempmx check-config` refuses every
//! configuration `tempmx serve` refuses (with the same message), and a store whose commit
//! thread cannot start fails the start instead of answering every message 451.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;
mod safety_support;

use std::path::Path;
use std::process::{Command, Output};

use binary_support::{start, start_fails};
use safety_support::{config_with, stop_when_serving};

/// One refused configuration: what it shows, the keys it sets, a part of the message.
type Case = (&'static str, Vec<(&'static str, toml::Value)>, &'static str);

fn check_config(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("TEMPMX_ADMIN_TOKEN")
        .output()
        .expect("tempmx check-config runs")
}

/// A loopback address with a port nothing listens on now.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

// Goal: each configuration `serve` refuses (store sizing, a segment smaller than the
// message limit, disk persistence without a directory, missing TLS files, HTTP and admin
// on one address) is refused by `check-config` too, with the same message naming the key,
// while the base configuration passes both. Method: write each config to a file, run
// `tempmx check-config` and `tempmx serve` on it, compare exit status and stderr.
#[test]
fn check_config_refuses_what_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(&base, config_with(None, &[])).unwrap();
    let ok = check_config(&base);
    assert!(ok.status.success(), "{ok:?}");
    stop_when_serving(start(&base));

    let shared = free_addr();
    let cases: Vec<Case> = vec![
        (
            "store sizing",
            vec![("store.memory_bytes_max", 1_048_576.into())],
            "need at least two segments",
        ),
        (
            "segment smaller than the message limit",
            vec![("ingress.limits.message_bytes_max", 2_097_152.into())],
            "ingress.limits.message_bytes_max (2097152) plus",
        ),
        (
            "disk persistence without a directory",
            vec![("store.persistence", "disk".into())],
            "store.dir is required",
        ),
        (
            "missing TLS files",
            vec![
                (
                    "ingress.tls.cert_path",
                    "/nonexistent/tempmx-cert.pem".into(),
                ),
                ("ingress.tls.key_path", "/nonexistent/tempmx-key.pem".into()),
            ],
            "ingress.tls:",
        ),
        (
            "HTTP and admin on one address",
            vec![
                ("http.listen", shared.clone().into()),
                ("admin.listen", shared.clone().into()),
            ],
            "http.listen",
        ),
    ];
    for (i, (what, edits, expected)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.toml"));
        std::fs::write(&path, config_with(None, &edits)).unwrap();
        let checked = check_config(&path);
        let check_err = String::from_utf8_lossy(&checked.stderr).into_owned();
        assert!(!checked.status.success(), "{what}: check-config passed");
        assert!(check_err.contains(expected), "{what}: {check_err}");
        let serve_err = start_fails(&path);
        assert!(serve_err.contains(expected), "{what}: {serve_err}");
        // One validation: the problem list `serve` prints is the one `check-config` prints.
        let problems = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| l.trim_start().starts_with("- "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(problems(&check_err), problems(&serve_err), "{what}");
        assert!(!problems(&check_err).is_empty(), "{what}: {check_err}");
    }
}

// Goal: when the store's group-commit thread cannot be created, `serve` fails at start
// with an error naming it (before this, it started and answered every message 451).
// Method: run `tempmx serve` on a data directory (disk store, batch commits) with
// RUST_MIN_STACK set beyond the address space, so the first thread it spawns (the commit
// thread; nothing spawns one earlier) cannot get a stack; expect a non-zero exit and the
// message. The same config without the variable starts and stops cleanly.
#[test]
fn commit_thread_spawn_failure_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = dir.path().join("disk.toml");
    std::fs::write(&path, config_with(Some(&data), &[])).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_MIN_STACK", (1u64 << 50).to_string())
        .env_remove("TEMPMX_ADMIN_TOKEN")
        .output()
        .expect("tempmx serve runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve must fail: {stderr}");
    assert!(
        stderr.contains("cannot start the commit thread of shard 0"),
        "{stderr}"
    );
    stop_when_serving(start(&path));
}
