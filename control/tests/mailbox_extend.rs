//! `POST /api/v1/mailboxes/{address}/extend` through the running `tempmx serve` binary:
//! the expiry moves by the asked lifetime within `api.ttl_secs_max`, the token stays, the
//! extension survives a restart, and extensions share the creation rate limit.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;

use std::path::Path;

use binary_support::{Running, config_text, start};
use serde_json::Value;
use tempmx::mailboxes::now_ms;

const DOMAIN: &str = "x.extend.test";

/// A config with mailboxes living 60 s by default and 300 s at most; `api` adds keys.
fn write_config(dir: &Path, data_dir: Option<&Path>, api: &str) -> std::path::PathBuf {
    let pool = format!("[pool]\ndomains = [\"{DOMAIN}\"]\n");
    let text = config_text(data_dir, 300, &pool).replacen(
        "ttl_secs_default = 300\n",
        &format!("ttl_secs_default = 60\n{api}"),
        1,
    );
    let path = dir.join("tempmx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn create(app: &Running) -> (String, String, String) {
    let (status, v) = app.public("POST", "/api/v1/mailboxes", None, Some("{}"));
    assert_eq!(status, 201, "{v}");
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    (s("address"), s("token"), s("expires_at"))
}

fn extend(app: &Running, address: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    app.public(
        "POST",
        &format!("/api/v1/mailboxes/{address}/extend"),
        token,
        body,
    )
}

/// Milliseconds since the epoch of the API's RFC 3339 form (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
fn ms(rfc3339: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| rfc3339[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant), the inverse of the server's formatting.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) * 1000) + n(20..23)
}

#[test]
fn extend_moves_expiry_within_the_maximum_and_survives_restart() {
    // Goal: extend adds the default (or asked) lifetime to the expiry, never beyond
    // `ttl_secs_max` from now; a bad lifetime is 400, a wrong token 404; the mailbox keeps
    // its token and mail, and the new expiry survives a restart. Method: the real binary
    // on a data directory, ureq for HTTP, lettre for SMTP.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Every extension, good or bad, takes a creation token: room for all of them.
    let config = write_config(dir.path(), Some(&data), "create_burst = 50\n");
    let app = start(&config);
    let (address, token, created) = create(&app);

    let (status, v) = extend(&app, &address, Some(&token), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["address"], address.as_str());
    let once = v["expires_at"].as_str().unwrap().to_owned();
    assert_eq!(ms(&once) - ms(&created), 60_000, "default lifetime added");

    for (body, want) in [
        ("{\"ttl_seconds\": 0}", 400),
        ("{\"ttl_seconds\": 301}", 400),
        ("{\"ttl\": 5}", 400),
        ("not json", 400),
    ] {
        let (status, v) = extend(&app, &address, Some(&token), Some(body));
        assert_eq!(status, want, "{body}: {v}");
        assert_eq!(v["type"], "urn:tempmx:problem:bad-request", "{body}");
    }
    let (status, _) = extend(&app, &address, Some("wrong-token"), None);
    assert_eq!(status, 404, "a wrong token cannot extend");
    let (status, _) = extend(&app, &address, None, None);
    assert_eq!(status, 404, "no token cannot extend");
    let (status, _) = extend(&app, &format!("nobody@{DOMAIN}"), Some(&token), None);
    assert_eq!(status, 404, "unknown mailbox");

    let before = now_ms() as i64;
    let (status, v) = extend(&app, &address, Some(&token), Some("{\"ttl_seconds\": 300}"));
    let after = now_ms() as i64;
    assert_eq!(status, 200, "{v}");
    let capped = v["expires_at"].as_str().unwrap().to_owned();
    let capped_ms = ms(&capped);
    assert!(
        capped_ms >= before + 299_000 && capped_ms <= after + 300_000,
        "capped at ttl_secs_max from now: {capped} ({before}..{after})"
    );
    let (status, v) = extend(&app, &address, Some(&token), Some("{\"ttl_seconds\": 300}"));
    assert_eq!(status, 200, "{v}");
    assert!(
        ms(v["expires_at"].as_str().unwrap()) <= now_ms() as i64 + 300_000,
        "a second extension stays within the maximum: {v}"
    );

    app.send(&address).expect("250 for the extended mailbox");
    let (status, page) = app.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/messages"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    app.stop();

    let app = start(&config);
    let (status, v) = extend(&app, &address, Some(&token), Some("{\"ttl_seconds\": 1}"));
    assert_eq!(
        status, 200,
        "the token still opens the mailbox after a restart: {v}"
    );
    assert!(
        ms(v["expires_at"].as_str().unwrap()) >= capped_ms,
        "the extended expiry was saved: {v} (extended to {capped})"
    );
    app.stop();
}

#[test]
fn extensions_share_the_creation_rate_limit() {
    // Goal: extending is rate-limited per client IP with creations (both keep a registry
    // slot), while reads keep their own bucket. Method: a creation burst of 2 at 1 per
    // minute; create, extend, then both extend and create are refused with 429.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        None,
        "create_burst = 2\ncreate_per_minute = 1\n",
    );
    let app = start(&config);
    let (address, token, _) = create(&app);
    let (status, v) = extend(&app, &address, Some(&token), None);
    assert_eq!(status, 200, "{v}");
    let (status, v) = extend(&app, &address, Some(&token), None);
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["type"], "urn:tempmx:problem:rate-limited");
    let (status, _) = app.public("POST", "/api/v1/mailboxes", None, Some("{}"));
    assert_eq!(status, 429, "the same bucket as creations");
    let (status, _) = app.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/messages"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "reads have their own bucket");
    app.stop();
}
