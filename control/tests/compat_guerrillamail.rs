//! The Guerrilla Mail compatible API (`/compat/guerrillamail/ajax.php`) through the real
//! `tempmx serve` binary: the Guerrilla Mail client of the published npm package
//! `e2e-mailbox` (pinned by `tests/compat/guerrillamail/package-lock.json`, installed by
//! `ops/ci/test.sh`) with only its base URL changed, real SMTP delivery with lettre, and
//! what that client does not call (`check_email`, the limits, token-mode refusals)
//! checked with a plain HTTP client against Guerrilla Mail's documented shapes.

mod binary_support;
mod compat_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use compat_support::{call, run_client, send_mail, server};
use serde_json::{Value, json};

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/guerrillamail")
}

#[test]
fn e2e_mailbox_guerrilla_client_end_to_end() {
    // Goal: the published client works against tempmx with only its base URL changed:
    // a session and address from get_email_address, a mail delivered over SMTP listed
    // with Guerrilla Mail's string-typed fields and fetched with its body, `false` for an
    // unknown id, del_email, set_email_user onto a chosen name, forget_me. Method: run
    // tests/compat/guerrillamail/drive.cjs under node; deliver the mail when it says
    // READY; check everything it reports.
    assert!(
        client_dir().join("node_modules/e2e-mailbox").exists(),
        "run `npm ci --prefix control/tests/compat/guerrillamail` (ops/ci/test.sh does)"
    );
    let (_dir, srv) = server("");
    let r = run_client(&srv, &client_dir(), "node", &["drive.cjs"], |address| {
        send_mail(
            &srv,
            address,
            "Confirm <your> account",
            "Confirm with code 551207 please.\r\n",
            "<p>Confirm with code <b>551207</b> please.</p><script>x()</script>",
            None,
        );
    });
    let address = r["address"].as_str().expect("address");
    assert!(address.ends_with("@tempmx.test"), "{r}");
    assert_eq!(r["emptyList"], json!([]), "{r}");
    let m = &r["list"][0];
    let id = m["mail_id"].as_str().expect("mail_id is a string");
    assert!(id.parse::<u64>().is_ok(), "{r}");
    assert_eq!(m["mail_from"], "orders@shop.example", "{r}");
    assert_eq!(m["mail_subject"], "Confirm &lt;your&gt; account", "{r}");
    assert!(
        m["mail_excerpt"]
            .as_str()
            .expect("excerpt")
            .starts_with("Confirm with code 551207"),
        "{r}"
    );
    assert_eq!(m["mail_read"], "0", "{r}");
    assert!(
        m["mail_timestamp"]
            .as_str()
            .expect("ts")
            .parse::<u64>()
            .is_ok(),
        "{r}"
    );
    assert_eq!(m["att"], "0", "{r}");
    let e = &r["email"];
    assert_eq!(e["mail_id"], id, "{r}");
    assert_eq!(e["content_type"], "text/html", "{r}");
    let body = e["mail_body"].as_str().expect("body");
    assert!(body.contains("551207") && !body.contains("<script"), "{r}");
    assert_eq!(e["mail_recipient"], address, "{r}");
    assert_eq!(r["unknown"], false, "{r}");
    assert_eq!(r["deleted"], true, "{r}");
    assert_eq!(r["afterDelete"], json!([]), "{r}");
    assert_eq!(r["set"]["email_addr"], "chosen.name@tempmx.test", "{r}");
    assert_eq!(r["set"]["auth"]["success"], true, "{r}");
    assert_eq!(r["afterSet"], json!([]), "{r}");
    assert_eq!(r["forgot"], true, "{r}");
    assert!(
        r["afterForget"].is_null(),
        "no list without an address: {r}"
    );
    srv.stop();
}

fn ajax(base: &str, query: &str) -> (u16, Value) {
    let (status, _, v) = call("GET", &format!("{base}?{query}"), &[], None);
    (status, v)
}

#[test]
fn guerrilla_shapes_limits_and_sessions() {
    // Goal: what the published client does not call, with Guerrilla Mail's documented
    // shapes (plain HTTP, no client library): check_email with `seq`, `count` as a
    // string, the PHPSESSID cookie standing in for `sid_token`, `false` without a
    // session, del_email at its bound of 100 ids and a 400 past it, and in token mode a
    // name another session holds refused (`auth.success` false, the old address kept).
    // Method: plain HTTP requests against the real binary, one SMTP delivery.
    let (_dir, srv) = server("");
    let base = format!("http://{}/compat/guerrillamail/ajax.php", srv.http);
    let (status, a) = ajax(&base, "f=get_email_address&lang=en");
    assert_eq!(status, 200, "{a}");
    let sid = a["sid_token"].as_str().expect("sid").to_owned();
    let address = a["email_addr"].as_str().expect("address").to_owned();
    assert!(a["email_timestamp"].is_u64(), "{a}");
    let (_, v) = ajax(&base, "f=check_email&seq=0");
    assert_eq!(v, json!(false), "no session");
    send_mail(
        &srv,
        &address,
        "Hello",
        "Body one.\r\n",
        "<p>Body one.</p>",
        None,
    );
    let first = binary_support::wait_for(Duration::from_secs(10), "mail listed", || {
        let (_, v) = ajax(&base, &format!("f=check_email&seq=0&sid_token={sid}"));
        (v["count"] == "1").then_some(v)
    });
    assert_eq!(first["email"], address.as_str(), "{first}");
    let id = first["list"][0]["mail_id"].as_str().expect("id").to_owned();
    let (_, v) = ajax(&base, &format!("f=check_email&seq={id}&sid_token={sid}"));
    assert_eq!((&v["count"], &v["list"]), (&json!("0"), &json!([])), "{v}");
    // The cookie alone opens the session.
    let cookie = format!("PHPSESSID={sid}");
    let (_, _, v) = call(
        "GET",
        &format!("{base}?f=get_email_list&offset=0"),
        &[("cookie", cookie.as_str())],
        None,
    );
    assert_eq!(v["list"][0]["mail_id"], id.as_str(), "{v}");
    let ids = |n: usize| {
        (0..n)
            .map(|i| format!("&email_ids[]={i}"))
            .collect::<String>()
    };
    let (status, v) = ajax(&base, &format!("f=del_email&sid_token={sid}{}", ids(101)));
    assert_eq!(status, 400, "{v}");
    let (status, v) = ajax(
        &base,
        &format!("f=del_email&sid_token={sid}{}&email_ids[]={id}", ids(99)),
    );
    assert_eq!((status, &v["deleted_ids"]), (200, &json!([id])), "{v}");
    // Another session may not take this session's name in token mode.
    let local = address.split('@').next().expect("local");
    let (_, other) = ajax(&base, "f=get_email_address");
    let other_sid = other["sid_token"].as_str().expect("sid");
    let (_, v) = ajax(
        &base,
        &format!("f=set_email_user&email_user={local}&sid_token={other_sid}"),
    );
    assert_eq!(v["auth"]["success"], false, "{v}");
    assert_eq!(v["email_addr"], other["email_addr"], "{v}");
    let (status, v) = ajax(&base, "f=set_email_user&email_user=postmaster");
    assert_eq!(status, 400, "reserved name: {v}");
    let (status, _) = ajax(&base, "f=nonsense");
    assert_eq!(status, 400);
    srv.stop();
}
