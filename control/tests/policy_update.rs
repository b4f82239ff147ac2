//! The rotation policy and pool through the running `tempmx serve` binary: the admin
//! API's policy change is a partial update checked by the config file's rules, and a
//! start on saved state says which source wins and what the config file changed.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;
mod safety_support;

use std::time::Duration;

use binary_support::{config_text, start, wait_for};
use safety_support::stop_when_serving;
use serde_json::{Value, json};

// Goal: `PUT /admin/v1/policy` with one field changes that field only; `null` unsets an
// optional limit; a value the config file refuses (`drain_secs` below the longest mailbox
// TTL) is refused with 422 and leaves the policy as it was. Method: a real binary with
// mailbox TTLs of 3600 s, driven over the admin API with ureq.
#[test]
fn policy_put_is_a_validated_partial_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tempmx.toml");
    let extra = "[pool.policy]\nactive_target = 2\nmessages_max = 500\n";
    std::fs::write(&path, config_text(None, 3600, extra)).unwrap();
    let app = start(&path);
    let (status, before) = app.admin("GET", "/admin/v1/policy", None);
    assert_eq!(status, 200);
    assert_eq!(before["active_target"], 2);

    let (status, after) = app.admin(
        "PUT",
        "/admin/v1/policy",
        Some(r#"{"listing_confirmations": 4}"#),
    );
    assert_eq!(status, 200, "{after}");
    let mut expected = before.clone();
    expected["listing_confirmations"] = json!(4);
    assert_eq!(after, expected);

    let (status, problem) = app.admin("PUT", "/admin/v1/policy", Some(r#"{"drain_secs": 1}"#));
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "urn:tempmx:problem:invalid-policy");
    let errors = problem["errors"].to_string();
    assert!(
        errors.contains("drain_secs: must be at least 3600"),
        "{errors}"
    );
    assert_eq!(app.admin("GET", "/admin/v1/policy", None).1, expected);

    // The boundary itself is accepted.
    let (status, at_limit) = app.admin("PUT", "/admin/v1/policy", Some(r#"{"drain_secs": 3600}"#));
    assert_eq!((status, &at_limit["drain_secs"]), (200, &json!(3600)));

    let (status, unset) = app.admin("PUT", "/admin/v1/policy", Some(r#"{"messages_max": null}"#));
    assert_eq!(status, 200);
    assert_eq!(unset["messages_max"], Value::Null);
    assert_eq!(unset["active_target"], 2);
    assert_eq!(unset["listing_confirmations"], 4);

    let (status, problem) = app.admin("PUT", "/admin/v1/policy", Some(r#"{"bogus": 1}"#));
    assert_eq!(status, 422, "{problem}");
    app.stop();
}

/// The JSON log line whose message contains `needle`, once the binary printed it.
fn log_line(app: &binary_support::Running, needle: &str) -> String {
    wait_for(Duration::from_secs(10), needle, || {
        app.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    })
}

// Goal: after a first start on a data directory, edits of `pool.domains` and
// `pool.policy` in the config file are reported at the next start (which source wins and
// every difference), and the saved state stays in force. Method: start the binary on a
// data directory, stop it, edit the config (one more domain, another drain), start again
// and read its log and admin API; a third start with the saved values logs no warning.
#[test]
fn config_edits_after_first_start_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = dir.path().join("tempmx.toml");
    let first = "[pool]\ndomains = [\"a.pool.test\"]\n";
    std::fs::write(&path, config_text(Some(&data), 3600, first)).unwrap();
    stop_when_serving(start(&path));

    let edited =
        "[pool]\ndomains = [\"a.pool.test\", \"b.pool.test\"]\n[pool.policy]\ndrain_secs = 7200\n";
    std::fs::write(&path, config_text(Some(&data), 3600, edited)).unwrap();
    let app = start(&path);
    let line = log_line(&app, "saved pool state wins");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert!(
        v["domains_only_in_config"]
            .as_str()
            .unwrap()
            .contains("b.pool.test"),
        "{line}"
    );
    assert!(
        v["policy"]
            .as_str()
            .unwrap()
            .contains("drain_secs: file 7200, saved 86400"),
        "{line}"
    );
    let (_, domains) = app.admin("GET", "/admin/v1/domains", None);
    let names: Vec<&str> = domains["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.pool.test"]);
    assert_eq!(
        app.admin("GET", "/admin/v1/policy", None).1["drain_secs"],
        86400
    );
    app.stop();

    std::fs::write(&path, config_text(Some(&data), 3600, first)).unwrap();
    let app = start(&path);
    log_line(&app, "it matches pool.domains and pool.policy");
    assert!(
        !app.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("saved pool state wins"))
    );
    stop_when_serving(app);
}
