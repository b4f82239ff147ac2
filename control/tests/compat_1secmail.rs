//! The 1secmail compatible API (`/compat/1secmail/api/v1/`) through the real
//! `tempmx serve` binary in public mode: the published PyPI client `tempmail-python`
//! (pinned with hashes by `tests/compat/1secmail/requirements.txt`, installed into a venv
//! by `ops/ci/test.sh`) with only its base URL changed, real SMTP delivery with lettre,
//! and what that client does not call (`genRandomMailbox`, the limits, token mode's 404)
//! checked with a plain HTTP client against 1secmail's documented shapes.

mod binary_support;
mod compat_support;

use std::path::{Path, PathBuf};

use compat_support::{call, call_text, run_client, send_mail, server};
use serde_json::{Value, json};

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/1secmail")
}

#[test]
fn tempmail_python_client_end_to_end() {
    // Goal: the published 1secmail client works against tempmx (public mode) with only
    // its base URL changed: the domain list, an empty inbox, a mail with an attachment
    // delivered over SMTP found by its wait loop, read with 1secmail's fields, listed,
    // and its attachment downloaded. Method: run tests/compat/1secmail/drive.py with the
    // venv's python; deliver the mail when it says READY; check everything it reports.
    let py = compat_support::python();
    assert!(
        py.exists(),
        "{} missing: ops/ci/test.sh installs tests/compat/1secmail/requirements.txt",
        py.display()
    );
    let (_dir, srv) = server("access = \"public\"\n");
    let py = py.to_string_lossy().into_owned();
    let r = run_client(&srv, &client_dir(), &py, &["drive.py"], |address| {
        send_mail(
            &srv,
            address,
            "Your receipt",
            "Thanks for your order.\r\n",
            "<p>Thanks for your <b>order</b>.</p><script>x()</script>",
            Some(("receipt.txt", "total 12.50 EUR")),
        );
    });
    assert_eq!(r["domains"], json!(["tempmx.test"]), "{r}");
    let address = r["address"].as_str().expect("address");
    assert!(address.ends_with("@tempmx.test"), "{r}");
    assert_eq!(r["emptyInbox"], 0, "{r}");
    let m = &r["message"];
    assert!(m["id"].as_u64().is_some(), "id is a number: {r}");
    assert_eq!(m["from"], "orders@shop.example", "{r}");
    assert_eq!(m["subject"], "Your receipt", "{r}");
    assert_eq!(
        m["textBody"].as_str().map(str::trim),
        Some("Thanks for your order."),
        "{r}"
    );
    let html = m["htmlBody"].as_str().expect("html");
    assert!(
        html.contains("<b>order</b>") && !html.contains("<script"),
        "{r}"
    );
    assert_eq!(m["body"], m["htmlBody"], "{r}");
    assert_eq!(r["inbox"][0]["id"], m["id"], "{r}");
    assert_eq!(
        r["attachments"],
        json!([{"filename": "receipt.txt", "contentType": "text/plain", "size": 15}]),
        "{r}"
    );
    assert_eq!(r["download"], "total 12.50 EUR", "{r}");
    srv.stop();
}

#[test]
fn onesecmail_shapes_and_limits() {
    // Goal: what the client does not call, with 1secmail's documented shapes (plain
    // HTTP, no client library): genRandomMailbox answers 500 addresses at its bound and
    // 400 past it; reserved names and foreign domains are not readable; unknown
    // messages and files are 404; a name past the file bound is 404; an unknown action
    // is 400; and in token mode the whole API is 404. Method: plain HTTP against two
    // real binaries (public and token mode).
    let (_dir, srv) = server("access = \"public\"\n");
    let base = format!("http://{}/compat/1secmail/api/v1/", srv.http);
    let get = |q: &str| call("GET", &format!("{base}?{q}"), &[], None);
    let (status, _, v) = get("action=genRandomMailbox&count=500");
    assert_eq!(status, 200);
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 500);
    assert!(
        list.iter()
            .all(|a| a.as_str().is_some_and(|a| a.ends_with("@tempmx.test")))
    );
    let (status, _, _) = get("action=genRandomMailbox&count=501");
    assert_eq!(status, 400);
    let (_, _, v) = get("action=genRandomMailbox");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    let (status, _, v) = get("action=getMessages&login=someone&domain=tempmx.test");
    assert_eq!((status, v), (200, json!([])));
    for q in [
        "action=getMessages&login=postmaster&domain=tempmx.test",
        "action=getMessages&login=someone&domain=elsewhere.example",
        "action=getMessages&login=someone",
        "action=nope",
    ] {
        let (status, _, text) = call_text("GET", &format!("{base}?{q}"), &[], None);
        assert_eq!(status, 400, "{q}: {text}");
    }
    send_mail(
        &srv,
        "someone@tempmx.test",
        "Hi",
        "Text.\r\n",
        "<p>Text.</p>",
        Some(("a.txt", "abc")),
    );
    let id = binary_support::wait_for(std::time::Duration::from_secs(10), "listed", || {
        let (_, _, v) = get("action=getMessages&login=someone&domain=tempmx.test");
        v[0]["id"].as_u64()
    });
    let (_, _, v) = get(&format!(
        "action=readMessage&login=someone&domain=tempmx.test&id={id}"
    ));
    assert_eq!(v["date"].as_str().map(str::len), Some(19), "{v}");
    let (status, _, _) = get("action=readMessage&login=someone&domain=tempmx.test&id=1");
    assert_eq!(status, 404);
    let (status, _, _) = get(&format!(
        "action=readMessage&login=other&domain=tempmx.test&id={id}"
    ));
    assert_eq!(status, 404, "another mailbox's message");
    let file = |name: &str| {
        call_text(
            "GET",
            &format!("{base}?action=download&login=someone&domain=tempmx.test&id={id}&file={name}"),
            &[],
            None,
        )
    };
    assert_eq!(file("a.txt").2, "abc");
    assert_eq!(file("b.txt").0, 404);
    assert_eq!(file(&"a".repeat(256)).0, 404);
    srv.stop();

    let (_dir, srv) = server("");
    let (status, _, v): (u16, String, Value) = call(
        "GET",
        &format!(
            "http://{}/compat/1secmail/api/v1/?action=getDomainList",
            srv.http
        ),
        &[],
        None,
    );
    assert_eq!(status, 404, "token mode: {v}");
    srv.stop();
}
