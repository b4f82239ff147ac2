//! `tempmx domains …` against the admin API of a real `tempmx serve`: every command, as a
//! table and with `--json`, `--admin` before or after the command and from
//! `TEMPMX_ADMIN_URL`, and the error paths (no scheme, wrong token, unknown domain, bad
//! policy field), each exiting non-zero with a message that says what to do.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;

use std::process::Command;

use binary_support::{ADMIN_TOKEN, Running, config_text, start};
use serde_json::Value;

/// Runs `tempmx domains <args>` with the admin token and extra environment; returns
/// (success, stdout, stderr).
fn cli(env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .arg("domains")
        .args(args)
        .env("TEMPMX_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("TEMPMX_ADMIN_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CLI against one server: the URL is passed after the subcommand's arguments.
struct Cli {
    url: String,
}

impl Cli {
    /// Runs a command expected to succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--admin", &self.url]);
        let (ok, out, err) = cli(&[], &all);
        assert!(ok, "tempmx domains {args:?}: {err}");
        out
    }

    /// Runs a command with `--json` (placed first) and parses its output.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// Runs a command expected to fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--admin", &self.url]);
        let (ok, out, err) = cli(&[], &all);
        assert!(!ok, "tempmx domains {args:?} should fail: {out}");
        err
    }
}

fn serve() -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tempmx.toml");
    std::fs::write(&path, config_text(None, 3600, "")).unwrap();
    let running = start(&path);
    (dir, running)
}

// Goal: each pool command does what it says through the admin API, prints a table, and
// prints the API's JSON with --json. Method: one real server; run every command in both
// forms and read the effect back through the admin API.
#[test]
fn every_command_as_table_and_json() {
    let (_dir, server) = serve();
    let c = Cli {
        url: format!("http://{}", server.admin),
    };
    assert_eq!(
        c.ok(&["add", "B.test", "c.test", "--reason", "cli"]),
        "b.test\tadded\nc.test\tadded\n"
    );
    let j = c.json(&["add", "c.test", "d.test"]);
    assert_eq!(j["results"][0]["added"], false, "{j}");
    assert_eq!(j["results"][1]["added"], true, "{j}");

    let table = c.ok(&["list"]);
    assert!(table.starts_with("NAME\tSTATE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("b.test\tpending\t-\t0\t0")),
        "{table}"
    );
    let j = c.json(&["list", "--state", "pending"]);
    assert_eq!(j["domains"].as_array().unwrap().len(), 3, "{j}");

    assert_eq!(c.ok(&["activate", "b.test"]), "b.test\tactive\t-\n");
    let j = c.json(&["drain", "b.test", "--reason", "enough"]);
    assert_eq!(j["state"], "draining", "{j}");
    assert_eq!(
        c.ok(&["activate", "b.test", "--reason", "back"]),
        "b.test\tactive\t-\n"
    );

    // Marked listed, the active tempmx.test leaves the active set at once (the default
    // policy retires on listing); clearing the listing lets it be offered again later.
    let out = c.ok(&[
        "mark-listed",
        "tempmx.test",
        "--list",
        "manual",
        "--reason",
        "spam",
    ]);
    assert!(out.starts_with("tempmx.test\t"), "{out}");
    assert!(out.ends_with("\tmanual\n"), "{out}");
    let (_, d) = server.admin("GET", "/admin/v1/domains/tempmx.test", None);
    assert_ne!(d["state"], "active", "{d}");
    assert_eq!(d["listing"]["list"], "manual", "{d}");
    let j = c.json(&["clear-listing", "tempmx.test", "--reason", "false positive"]);
    assert!(j["listing"].is_null(), "{j}");
    // A listed pending domain is never offered: the rules retire it at once.
    let j = c.json(&["mark-listed", "d.test", "--reason", "seen"]);
    assert_eq!(j["listing"]["list"], "operator", "{j}");
    assert_eq!(j["state"], "retired", "{j}");

    assert_eq!(c.ok(&["retire", "c.test"]), "c.test\tretired\t-\n");
    assert_eq!(c.ok(&["delete", "c.test"]), "c.test\tdeleted\n");
    let j = c.json(&["delete", "d.test", "--reason", "gone"]);
    assert_eq!(j["deleted"], true, "{j}");
    let (status, _) = server.admin("GET", "/admin/v1/domains/c.test", None);
    assert_eq!(status, 404);

    let stats = c.ok(&["stats", "b.test"]);
    assert!(stats.contains("name\tb.test\n"), "{stats}");
    assert!(stats.contains("state\tactive\n"), "{stats}");
    let j = c.json(&["stats", "b.test"]);
    assert_eq!(j["messages"], 0, "{j}");

    let policy = c.ok(&["policy", "get"]);
    assert!(policy.contains("active_target\t1\n"), "{policy}");
    let j = c.json(&[
        "policy",
        "set",
        "active_target=2",
        "drain_secs=90000",
        "messages_max=none",
    ]);
    assert_eq!(
        (j["active_target"].as_u64(), j["drain_secs"].as_u64()),
        (Some(2), Some(90000))
    );
    let (_, p) = server.admin("GET", "/admin/v1/policy", None);
    assert_eq!(p["active_target"], 2, "{p}");
    let err = c.fails(&["policy", "set", "bogus=1"]);
    assert!(
        err.contains("`bogus` is not a policy field") && err.contains("active_target"),
        "{err}"
    );
    let err = c.fails(&["policy", "set", "active_target=0"]);
    assert!(
        err.contains("422") && err.contains("active_target"),
        "{err}"
    );

    let audit = c.ok(&["audit", "--limit", "3"]);
    assert!(audit.starts_with("ID\tAT\tDOMAIN\tACTION"), "{audit}");
    assert!(audit.contains("more: --after 3"), "{audit}");
    let j = c.json(&["audit", "--after", "0", "--limit", "1000"]);
    let events = j["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["action"]["kind"].as_str())
        .collect();
    for kind in [
        "added",
        "state_changed",
        "listed",
        "unlisted",
        "deleted",
        "policy_changed",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // No blocklist is configured: the check succeeds with no results.
    let j = c.json(&["check", "b.test"]);
    assert_eq!(j["in_pool"], true, "{j}");
    c.ok(&["check", "b.test"]);
    server.stop();
}

// Goal: the admin URL can come before or after the command or from TEMPMX_ADMIN_URL, and
// bad URLs, tokens and names give errors that say what to do. Method: one real server.
#[test]
fn admin_url_token_and_errors() {
    let (_dir, server) = serve();
    let url = format!("http://{}/", server.admin);
    let (ok, out, err) = cli(&[], &["--admin", &url, "list"]);
    assert!(ok && out.contains("tempmx.test"), "{err}");
    let (ok, out, err) = cli(&[("TEMPMX_ADMIN_URL", &url)], &["list", "--json"]);
    assert!(ok, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["domains"][0]["name"], "tempmx.test");
    // The flag wins over the environment.
    let (ok, _, err) = cli(
        &[("TEMPMX_ADMIN_URL", "http://127.0.0.1:9")],
        &["list", "--admin", &url],
    );
    assert!(ok, "{err}");

    let bare = server.admin.to_string();
    let (ok, _, err) = cli(&[], &["list", "--admin", &bare]);
    assert!(!ok);
    assert!(
        err.contains(&format!("has no scheme; write http://{bare}")),
        "{err}"
    );
    let (ok, _, err) = cli(&[("TEMPMX_ADMIN_URL", "https://x.test")], &["list"]);
    assert!(!ok && err.contains("plain HTTP only"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["domains", "list", "--admin", &url])
        .env("TEMPMX_ADMIN_TOKEN", "wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("401") && err.contains("set TEMPMX_ADMIN_TOKEN"),
        "{err}"
    );

    let (ok, _, err) = cli(&[], &["retire", "nope.test", "--admin", &url]);
    assert!(!ok);
    assert!(err.contains("404") && err.contains("nope.test"), "{err}");
    server.stop();
}
