//! The tempmail.lol v2 compatible API (`/compat/tempmail-lol/v2`) through the real
//! `tempmx serve` binary: the published client `tempmail.lol` (npm, pinned by
//! `tests/compat/tempmail-lol/package-lock.json`, installed by `ops/ci/test.sh`) with only
//! its base URL changed, real SMTP delivery with lettre, and the limits checked with a
//! plain HTTP client.

mod binary_support;
mod compat_support;

use std::path::{Path, PathBuf};

use compat_support::{call, run_client, send_mail, server};
use serde_json::json;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/tempmail-lol")
}

#[test]
fn tempmail_lol_client_end_to_end() {
    // Goal: the published tempmail.lol client works against tempmx with only its base
    // URL changed: inbox creation (plain, with a prefix, with a domain not offered), an
    // empty inbox, an unknown token read as expired, and a mail delivered over SMTP read
    // with tempmail.lol's fields. Method: run tests/compat/tempmail-lol/drive.cjs under
    // node; deliver the mail when it says READY; check everything it reports.
    assert!(
        client_dir().join("node_modules/tempmail.lol").exists(),
        "run `npm ci --prefix control/tests/compat/tempmail-lol` (ops/ci/test.sh does)"
    );
    let (_dir, srv) = server("");
    let r = run_client(&srv, &client_dir(), "node", &["drive.cjs"], |address| {
        send_mail(
            &srv,
            address,
            "Your sign-in code",
            "Your verification code is 482913.\r\n",
            "<p>Your verification code is <b>482913</b>.</p><script>x()</script>",
            None,
        );
    });
    let address = r["inbox"]["address"].as_str().expect("address");
    assert!(address.ends_with("@tempmx.test"), "{r}");
    assert!(
        r["inbox"]["token"].as_str().is_some_and(|t| t.len() > 32),
        "{r}"
    );
    let named = r["named"].as_str().expect("named");
    assert!(
        named.starts_with("shop") && named.ends_with("@tempmx.test"),
        "{r}"
    );
    assert!(
        r["badDomain"].as_str().expect("error").contains("[400]"),
        "{r}"
    );
    assert_eq!(r["empty"], json!([]), "{r}");
    assert_eq!(r["bogus"], "expired", "{r}");
    let e = &r["emails"][0];
    assert_eq!(r["emails"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(e["from"], "orders@shop.example", "{r}");
    assert_eq!(e["to"], address, "{r}");
    assert_eq!(e["subject"], "Your sign-in code", "{r}");
    assert_eq!(
        e["body"].as_str().map(str::trim),
        Some("Your verification code is 482913."),
        "{r}"
    );
    let html = e["html"].as_str().expect("html");
    assert!(html.contains("482913") && !html.contains("<script"), "{r}");
    assert!(
        e["date"].as_u64().is_some_and(|d| d > 1_700_000_000_000),
        "{r}"
    );
    assert_eq!(e["ip"], "127.0.0.1", "{r}");
    srv.stop();
}

#[test]
fn tempmail_lol_limits() {
    // Goal: the bounds of the API's inputs answer at their edge: a prefix of 32
    // characters is taken and one of 33 is a 400; a token of 512 bytes is read (as
    // expired) and a longer one too, never a 5xx; a malformed body is a 400; creation
    // shares the per-IP creation limit (429 past the burst of 5). Method: plain HTTP
    // requests against the real binary.
    let (_dir, srv) = server("");
    let base = format!("http://{}/compat/tempmail-lol/v2", srv.http);
    let create = |body: &str| {
        call(
            "POST",
            &format!("{base}/inbox/create"),
            &[("content-type", "application/json")],
            Some(body),
        )
    };
    let (status, _, v) = create(&json!({"prefix": "a".repeat(32)}).to_string());
    assert_eq!(status, 201, "{v}");
    assert!(
        v["address"]
            .as_str()
            .expect("address")
            .starts_with(&"a".repeat(32))
    );
    let (status, _, v) = create(&json!({"prefix": "a".repeat(33)}).to_string());
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().expect("error").contains("32"), "{v}");
    let (status, _, v) = create("{not json");
    assert_eq!(status, 400, "{v}");
    for token in ["x".repeat(512), "x".repeat(513)] {
        let (status, _, v) = call("GET", &format!("{base}/inbox?token={token}"), &[], None);
        assert_eq!((status, v), (200, json!({"emails": [], "expired": true})));
    }
    let statuses: Vec<u16> = (0..6).map(|_| create("").0).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    srv.stop();
}
