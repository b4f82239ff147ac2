//! The mail.tm compatible API (`/compat/mailtm`) through the real `tempmx serve` binary:
//! the published client `@cemalgnlts/mailjs` (pinned by `tests/compat/mailtm/
//! package-lock.json`, installed by `ops/ci/test.sh`) with only its base URLs changed,
//! real SMTP delivery with lettre, and the HTTP shapes (Hydra negotiation, error codes)
//! checked with a plain HTTP client.

mod binary_support;
mod compat_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use binary_support::Running;
use compat_support::{call, deliver, run_client, server};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use serde_json::json;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/mailtm")
}

fn send_code_mail(srv: &Running, rcpt: &str) {
    let msg = Message::builder()
        .from("GitHub <noreply@github.example>".parse::<Mailbox>().expect("from"))
        .to(rcpt.parse::<Mailbox>().expect("rcpt"))
        .subject("Your GitHub launch code")
        .multipart(MultiPart::alternative_plain_html(
            "Here is your GitHub launch code: 73914602\r\n\r\nIf you didn't try to sign in, ignore this.\r\n"
                .to_owned(),
            "<p>Here is your GitHub launch code:</p><p style=\"font-size:24px\">73914602</p>\
             <script>alert(1)</script>"
                .to_owned(),
        ))
        .expect("message");
    deliver(srv, &msg);
}

#[test]
fn mailjs_client_end_to_end() {
    // Goal: the published mail.tm client works against tempmx unchanged apart from its
    // base URLs: domains, account creation and login, the duplicate and wrong-password
    // errors, the Mercure `arrive` event for a mail delivered over SMTP, reading it (with
    // its verification code), `seen` and `delete` events, source, account deletion.
    // Method: run tests/compat/mailtm/drive.mjs under node; deliver the mail when it says
    // READY; check everything it reports.
    let modules = client_dir().join("node_modules/@cemalgnlts/mailjs");
    assert!(
        modules.exists(),
        "run `npm ci --prefix control/tests/compat/mailtm` (ops/ci/test.sh does)"
    );
    let (_dir, srv) = server("");
    let r = run_client(&srv, &client_dir(), "node", &["drive.mjs"], |address| {
        send_code_mail(&srv, address);
    });
    let address = r["address"].as_str().expect("address");
    assert_eq!(r["domains"]["status"], 200, "{r}");
    assert_eq!(r["domains"]["list"][0]["domain"], "tempmx.test", "{r}");
    assert_eq!(r["domain"]["domain"], "tempmx.test", "{r}");
    assert_eq!(r["created"]["status"], true, "{r}");
    assert!(address.ends_with("@tempmx.test"), "{r}");
    assert_eq!(r["duplicate"]["statusCode"], 422, "{r}");
    assert_eq!(
        r["duplicate"]["message"], "address: This value is already used.",
        "{r}"
    );
    assert_eq!(r["badLogin"]["statusCode"], 401, "{r}");
    assert_eq!(r["badLogin"]["message"], "Invalid credentials.", "{r}");
    assert_eq!(r["me"]["address"], address, "{r}");
    assert_eq!(r["me"]["quota"], 40_000_000, "{r}");
    assert_eq!(r["arrive"]["type"], "Message", "{r}");
    assert_eq!(r["arrive"]["subject"], "Your GitHub launch code", "{r}");
    assert_eq!(
        r["arrive"]["from"],
        json!({"address": "noreply@github.example", "name": "GitHub"}),
        "{r}"
    );
    assert!(
        r["arrive"]["intro"]
            .as_str()
            .expect("intro")
            .starts_with("Here is your GitHub launch code"),
        "{r}"
    );
    let id = r["arrive"]["id"].as_str().expect("id");
    assert_eq!(r["list"]["ids"], json!([id]), "{r}");
    assert_eq!(r["message"]["verifications"][0], "73914602", "{r}");
    let html = r["message"]["html"][0]
        .as_str()
        .expect("html array of strings");
    assert!(
        html.contains("73914602") && !html.contains("<script"),
        "{r}"
    );
    assert_eq!(r["message"]["to"][0]["address"], address, "{r}");
    assert_eq!(r["message"]["seen"], false, "{r}");
    assert_eq!(
        r["message"]["downloadUrl"],
        format!("/messages/{id}/download"),
        "{r}"
    );
    compat_support::assert_mailtm_ending(&r, id);
    srv.stop();
}

#[test]
fn hydra_negotiation_and_error_codes() {
    // Goal: the HTTP shapes the real service has: JSON-LD with a Hydra envelope by
    // default and for `application/ld+json`, bare arrays for `application/json`; 401 with
    // and without a token, 404, 415 for a PATCH that is not merge-patch, 422 for a
    // malformed, foreign-domain or taken address and a short password; 429 past
    // the per-IP rate. Method: plain HTTP requests against the real binary, one per case.
    let (_dir, srv) = server("");
    let base = format!("http://{}/compat/mailtm", srv.http);
    let ld = [("accept", "application/ld+json")];
    let js = [("accept", "application/json")];
    let (status, ct, v) = call("GET", &format!("{base}/domains"), &ld, None);
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/ld+json"), "{ct}");
    assert_eq!(v["@type"], "hydra:Collection", "{v}");
    assert_eq!(v["hydra:totalItems"], 1, "{v}");
    assert_eq!(v["hydra:member"][0]["@type"], "Domain", "{v}");
    assert_eq!(v["hydra:member"][0]["isActive"], true, "{v}");
    assert!(v["hydra:view"]["@id"].is_string(), "{v}");
    let (_, ct, v) = call("GET", &format!("{base}/domains"), &js, None);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(v.is_array() && v[0]["@id"].is_null(), "{v}");
    let (_, _, v) = call("GET", &format!("{base}/domains"), &[], None);
    assert_eq!(v["@type"], "hydra:Collection", "default is JSON-LD: {v}");

    let body = |a: &str, p: &str| json!({"address": a, "password": p}).to_string();
    let post = |path: &str, b: &str| {
        call(
            "POST",
            &format!("{base}{path}"),
            &[
                ("accept", "application/json"),
                ("content-type", "application/json"),
            ],
            Some(b),
        )
    };
    for (address, password, prop) in [
        ("not-an-address", "password1", "address"),
        ("someone@elsewhere.test", "password1", "address"),
        ("fine@tempmx.test", "short", "password"),
    ] {
        let (status, _, v) = post("/accounts", &body(address, password));
        assert_eq!(status, 422, "{address}: {v}");
        assert_eq!(v["violations"][0]["propertyPath"], prop, "{v}");
    }
    // (Creation shares the per-IP creation limit, burst 5 by default: five posts here.)
    let (status, _, acc) = post("/accounts", &body("Hydra.Test@tempmx.test", "password1"));
    assert_eq!(status, 201, "{acc}");
    assert_eq!(acc["address"], "hydra.test@tempmx.test", "{acc}");
    let (status, _, v) = post("/accounts", &body("hydra.test@tempmx.test", "password2"));
    assert_eq!(status, 422, "{v}");
    let (status, _, tok) = post("/token", &body("hydra.test@tempmx.test", "password1"));
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["id"], acc["id"]);
    let bearer = format!("Bearer {}", tok["token"].as_str().expect("token"));
    let auth = [
        ("accept", "application/ld+json"),
        ("authorization", bearer.as_str()),
    ];

    let (status, _, v) = call("GET", &format!("{base}/me"), &[], None);
    assert_eq!(
        (status, v["message"].as_str()),
        (401, Some("JWT Token not found"))
    );
    let (status, _, v) = call(
        "GET",
        &format!("{base}/me"),
        &[("authorization", "Bearer nope")],
        None,
    );
    assert_eq!(
        (status, v["message"].as_str()),
        (401, Some("Invalid JWT Token"))
    );
    let (status, _, v) = call("GET", &format!("{base}/messages?page=1"), &auth, None);
    assert_eq!(status, 200);
    assert_eq!(v["hydra:totalItems"], 0, "{v}");
    assert_eq!(v["hydra:member"], json!([]), "{v}");
    let (status, _, v) = call("GET", &format!("{base}/messages?page=0"), &auth, None);
    assert_eq!(status, 400, "{v}");
    let (status, _, v) = call(
        "GET",
        &format!("{base}/messages/0123456789abcdef"),
        &auth,
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(v["@type"], "hydra:Error", "{v}");
    let (status, _, _) = call(
        "GET",
        &format!("{base}/accounts/000000000000000000000000"),
        &auth,
        None,
    );
    assert_eq!(status, 404);

    // A delivered message: PATCH needs merge-patch+json.
    let address = "hydra.test@tempmx.test";
    send_code_mail(&srv, address);
    let id = binary_support::wait_for(Duration::from_secs(10), "message listed", || {
        let (_, _, v) = call("GET", &format!("{base}/messages"), &auth, None);
        v["hydra:member"][0]["id"].as_str().map(str::to_owned)
    });
    let (status, _, _) = call(
        "PATCH",
        &format!("{base}/messages/{id}"),
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        Some(r#"{"seen":true}"#),
    );
    assert_eq!(status, 415);
    let (status, _, v) = call(
        "PATCH",
        &format!("{base}/messages/{id}"),
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/merge-patch+json"),
        ],
        Some(r#"{"seen":true}"#),
    );
    assert_eq!((status, &v["seen"]), (200, &json!(true)), "{v}");
    let (status, ct, _) = call(
        "GET",
        &format!("{base}/messages/{id}/download"),
        &auth,
        None,
    );
    assert_eq!((status, ct.as_str()), (200, "message/rfc822"));

    // The per-IP read rate (`api.reads_per_second` / `reads_burst`) answers 429.
    let statuses: Vec<u16> = (0..400)
        .map(|_| call("GET", &format!("{base}/domains"), &js, None).0)
        .collect();
    assert!(statuses.contains(&429), "no 429 in 400 fast requests");
    srv.stop();
}

#[test]
fn accounts_survive_a_restart() {
    // Goal: with a data directory, a mail.tm account, its password and its token outlive
    // a restart of the binary, and a deleted account stays deleted across the next one.
    // Method: the real binary on a data directory; create an account and a token over
    // HTTP; stop it; start it again on the same directory; use the old token and the
    // password; delete the account; restart once more and find both refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let path = dir.path().join("tempmx.toml");
    std::fs::write(&path, binary_support::config_text(Some(&data), 600, "")).expect("config");
    let json_headers = [
        ("accept", "application/json"),
        ("content-type", "application/json"),
    ];
    let creds = json!({"address": "kept@tempmx.test", "password": "password1"}).to_string();
    let srv = binary_support::start(&path);
    let base = format!("http://{}/compat/mailtm", srv.http);
    let (status, _, acc) = call(
        "POST",
        &format!("{base}/accounts"),
        &json_headers,
        Some(&creds),
    );
    assert_eq!(status, 201, "{acc}");
    let (_, _, tok) = call(
        "POST",
        &format!("{base}/token"),
        &json_headers,
        Some(&creds),
    );
    let bearer = format!("Bearer {}", tok["token"].as_str().expect("token"));
    srv.stop();

    let srv = binary_support::start(&path);
    let base = format!("http://{}/compat/mailtm", srv.http);
    let auth = [
        ("accept", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    let (status, _, me) = call("GET", &format!("{base}/me"), &auth, None);
    assert_eq!((status, &me["id"]), (200, &acc["id"]), "{me}");
    assert_eq!(me["address"], "kept@tempmx.test", "{me}");
    let (status, _, again) = call(
        "POST",
        &format!("{base}/token"),
        &json_headers,
        Some(&creds),
    );
    assert_eq!(status, 200, "password still checks: {again}");
    let id = acc["id"].as_str().expect("id");
    let (status, _, _) = call("DELETE", &format!("{base}/accounts/{id}"), &auth, None);
    assert_eq!(status, 204);
    srv.stop();

    let srv = binary_support::start(&path);
    let base = format!("http://{}/compat/mailtm", srv.http);
    let (status, _, _) = call("GET", &format!("{base}/me"), &auth, None);
    assert_eq!(status, 401);
    let (status, _, _) = call(
        "POST",
        &format!("{base}/token"),
        &json_headers,
        Some(&creds),
    );
    assert_eq!(status, 401);
    assert!(data.join("control/mailtm-accounts.log").exists());
    srv.stop();
}
