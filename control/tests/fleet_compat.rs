//! The compatible APIs in fleet mode: each published client (the same ones and driver
//! scripts as `compat_*.rs`) talks to node A of a two-node fleet on one real 6-node Redis
//! Cluster, while its mail is delivered over SMTP to node B. Accounts, sessions and inboxes
//! made on A must see mail B accepted. One cluster serves every API (two node pairs: token
//! mode and public mode, as 1secmail needs).

mod binary_support;
mod compat_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use binary_support::{Running, config_text};
use compat_support::{run_client, run_client_env, send_mail};
use serde_json::{Value, json};
use tempmx_store::cluster::testkit::TestCluster;

fn clients() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// Starts node `name` of a fleet on `tc` with `api_extra` added to `[api]` and the
/// sections `extra` appended.
fn node(dir: &Path, tc: &TestCluster, name: &str, api_extra: &str, extra: &str) -> Running {
    let seeds: Vec<String> = tc.seeds().iter().map(|s| format!("{s:?}")).collect();
    let section = format!(
        "[fleet]\nredis = [{}]\nnode = \"{name}\"\n{extra}",
        seeds.join(", ")
    );
    let text =
        config_text(None, 600, &section).replacen("[api]\n", &format!("[api]\n{api_extra}"), 1);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("config");
    binary_support::start(&path)
}

#[test]
fn published_clients_on_node_a_read_mail_delivered_to_node_b() {
    // Goal: issue 15 for the compatible APIs. With each published client pointed at node
    // A (mail.tm's mailjs, Guerrilla Mail's e2e-mailbox, tempmail.lol's client, 1secmail's
    // tempmail-python), the account, session or inbox is made on A, the mail is delivered
    // over SMTP to node B, and the client reads it through A with the API's own fields.
    // mail.tm's Mercure `arrive` event on A fires for mail B accepted, and its `seen` and
    // `delete` events on A fire for the message marked seen and deleted through B (as
    // mail.tm's one hub would). Method: a real
    // cluster, four real `tempmx serve --fleet` nodes (a token-mode pair and a public-mode
    // pair), the driver scripts of `tests/compat/*` run to their RESULT, lettre for SMTP.
    for (dir, what) in [
        (
            "mailtm/node_modules/@cemalgnlts/mailjs",
            "npm ci --prefix control/tests/compat/mailtm",
        ),
        (
            "guerrillamail/node_modules/e2e-mailbox",
            "npm ci --prefix control/tests/compat/guerrillamail",
        ),
        (
            "tempmail-lol/node_modules/tempmail.lol",
            "npm ci --prefix control/tests/compat/tempmail-lol",
        ),
    ] {
        assert!(
            clients().join(dir).exists(),
            "run `{what}` (ops/ci/test.sh does)"
        );
    }
    let py = compat_support::python();
    assert!(py.exists(), "{}: ops/ci/test.sh installs it", py.display());
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    // Three clients create from one IP here: the creation limit must not get in the way.
    let burst = "create_burst = 100\n";
    let a = node(dir.path(), &tc, "mx-a", burst, "");
    let b = node(dir.path(), &tc, "mx-b", burst, "");

    // mail.tm: account, login, Mercure and reads through A; seen and delete through B.
    let r = run_client_env(
        &a,
        &clients().join("mailtm"),
        "node",
        &["drive.mjs"],
        &[("TEMPMX_ACT_BASE", format!("http://{}", b.http))],
        |address| {
            send_mail(
                &b,
                address,
                "Your GitHub launch code",
                "Here is your GitHub launch code: 73914602\r\n",
                "<p>Here is your GitHub launch code:</p><p>73914602</p><script>alert(1)</script>",
                None,
            );
        },
    );
    let address = r["address"].as_str().expect("address");
    assert_eq!(r["created"]["status"], true, "{r}");
    assert_eq!(r["duplicate"]["statusCode"], 422, "{r}");
    assert_eq!(r["badLogin"]["statusCode"], 401, "{r}");
    assert_eq!(r["me"]["address"], address, "{r}");
    assert_eq!(r["actorLogin"]["statusCode"], 200, "{r}");
    assert_eq!(r["arrive"]["subject"], "Your GitHub launch code", "{r}");
    let id = r["arrive"]["id"].as_str().expect("id");
    assert_eq!(r["list"]["ids"], json!([id]), "{r}");
    assert_eq!(r["message"]["verifications"][0], "73914602", "{r}");
    assert_eq!(r["message"]["to"][0]["address"], address, "{r}");
    compat_support::assert_mailtm_ending(&r, id);

    // Guerrilla Mail: a session on A, its mail delivered to B.
    let r = run_client(
        &a,
        &clients().join("guerrillamail"),
        "node",
        &["drive.cjs"],
        |address| {
            send_mail(
                &b,
                address,
                "Confirm <your> account",
                "Confirm with code 551207 please.\r\n",
                "<p>Confirm with code <b>551207</b> please.</p>",
                None,
            );
        },
    );
    let address = r["address"].as_str().expect("address");
    assert_eq!(r["emptyList"], json!([]), "{r}");
    let m = &r["list"][0];
    assert_eq!(m["mail_from"], "orders@shop.example", "{r}");
    assert_eq!(m["mail_subject"], "Confirm &lt;your&gt; account", "{r}");
    assert_eq!(r["email"]["mail_recipient"], address, "{r}");
    assert!(
        r["email"]["mail_body"]
            .as_str()
            .expect("body")
            .contains("551207"),
        "{r}"
    );
    assert_eq!(r["deleted"], true, "{r}");
    assert_eq!(r["afterDelete"], json!([]), "{r}");
    assert_eq!(r["set"]["auth"]["success"], true, "{r}");
    assert_eq!(r["forgot"], true, "{r}");

    // tempmail.lol: an inbox on A, its mail delivered to B.
    let r = run_client(
        &a,
        &clients().join("tempmail-lol"),
        "node",
        &["drive.cjs"],
        |address| {
            send_mail(
                &b,
                address,
                "Your sign-in code",
                "Your verification code is 482913.\r\n",
                "<p>Your verification code is <b>482913</b>.</p>",
                None,
            );
        },
    );
    let address = r["inbox"]["address"].as_str().expect("address");
    assert_eq!(r["empty"], json!([]), "{r}");
    assert_eq!(r["bogus"], "expired", "{r}");
    assert_eq!(r["emails"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["emails"][0]["to"], address, "{r}");
    assert_eq!(r["emails"][0]["subject"], "Your sign-in code", "{r}");
    a.stop();
    b.stop();

    // 1secmail (public mode): the client reads through A what B accepted.
    let a = node(dir.path(), &tc, "mx-pa", "access = \"public\"\n", "");
    let b = node(dir.path(), &tc, "mx-pb", "access = \"public\"\n", "");
    let py = py.to_string_lossy().into_owned();
    let r = run_client(
        &a,
        &clients().join("1secmail"),
        &py,
        &["drive.py"],
        |address| {
            send_mail(
                &b,
                address,
                "Your receipt",
                "Thanks for your order.\r\n",
                "<p>Thanks for your <b>order</b>.</p>",
                Some(("receipt.txt", "total 12.50 EUR")),
            );
        },
    );
    assert_eq!(r["emptyInbox"], 0, "{r}");
    assert_eq!(r["message"]["subject"], "Your receipt", "{r}");
    assert_eq!(r["inbox"][0]["id"], r["message"]["id"], "{r}");
    assert_eq!(r["download"], "total 12.50 EUR", "{r}");
    a.stop();
    b.stop();
}

/// Requests the test receiver answers at most.
const RECEIVER_REQUESTS_MAX: usize = 8;

/// A real HTTP/1.1 receiver on loopback answering 200; reports each request's signature
/// headers and body.
fn receiver() -> (
    std::net::SocketAddr,
    mpsc::Receiver<(String, String, Vec<u8>)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(RECEIVER_REQUESTS_MAX) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(&conn);
            let (mut len, mut ts, mut sig) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    let v = v.trim().to_owned();
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.parse().unwrap_or(0),
                        "x-tempmx-timestamp" => ts = v,
                        "x-tempmx-signature" => sig = v,
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = tx.send((ts, sig, body));
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (addr, rx)
}

#[test]
fn a_webhook_registered_on_a_fires_once_for_mail_delivered_to_b() {
    // Goal: webhooks in fleet mode. A hook registered through node A is listed through B;
    // mail delivered over SMTP to node B reaches the real HTTP receiver exactly once,
    // signed with the secret A handed out (the accepting node delivers; no node delivers
    // twice); the per-mailbox limit holds across nodes; a hook deleted through B no
    // longer fires. Method: a real cluster, two real `tempmx serve --fleet` nodes with
    // loopback allowed for hooks, lettre for SMTP, a real HTTP receiver on loopback
    // verifying the HMAC; every wait bounded.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let hooks =
        "[api.webhooks]\nwebhooks_per_mailbox_max = 1\nallow_networks = [\"127.0.0.0/8\"]\n";
    let a = node(dir.path(), &tc, "mx-a", "", hooks);
    let b = node(dir.path(), &tc, "mx-b", "", hooks);
    let (status, v) = a.public(
        "POST",
        "/api/v1/mailboxes",
        None,
        Some(r#"{"local_part":"hooked"}"#),
    );
    assert_eq!(status, 201, "{v}");
    let address = v["address"].as_str().expect("address").to_owned();
    let token = v["token"].as_str().expect("token").to_owned();
    let (addr, rx) = receiver();
    let path = format!("/api/v1/mailboxes/{address}/webhooks");
    let body = json!({ "url": format!("http://{addr}/in") }).to_string();
    let (status, hook) = a.public("POST", &path, Some(&token), Some(&body));
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    // The limit (1) holds on the other node too, and B lists A's hook without its secret.
    let (status, v) = b.public("POST", &path, Some(&token), Some(&body));
    assert_eq!(status, 409, "{v}");
    let (status, list) = b.public("GET", &path, Some(&token), None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["webhooks"][0]["id"], hook["id"], "{list}");
    assert!(list["webhooks"][0].get("secret").is_none(), "{list}");

    b.send_with_subject(&address, "Your verification code is 482913")
        .expect("B answers 250");
    let (ts, sig, got) = rx.recv_timeout(Duration::from_secs(30)).expect("delivery");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&got);
    let tag: String = ring::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sig, format!("sha256={tag}"));
    let got: Value = serde_json::from_slice(&got).expect("json body");
    assert_eq!(got["mailbox"], address.as_str(), "{got}");
    assert_eq!(
        got["message"]["subject"], "Your verification code is 482913",
        "{got}"
    );
    // Exactly once: no second delivery from the other node.
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_err(),
        "a second delivery arrived"
    );

    // Deleted through B: mail to A no longer fires it.
    let id = hook["id"].as_str().expect("id");
    let (status, _) = b.public("DELETE", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(status, 204);
    a.send_with_subject(&address, "after the delete")
        .expect("A answers 250");
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_err(),
        "a deleted hook fired"
    );
    a.stop();
    b.stop();
}
