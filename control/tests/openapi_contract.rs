//! The public and admin OpenAPI documents of the running `tempmx serve` binary against
//! real tools (openapi-spec-validator, schemathesis), and problem+json for every error,
//! the extractor rejections included.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;
mod safety_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use binary_support::{ADMIN_TOKEN, Running, start};
use safety_support::{config_with, tool};
use serde_json::Value;

/// Examples schemathesis generates per operation: enough to reach every parameter and
/// error path, small enough for CI (about 20 operations per run).
const EXAMPLES_PER_OPERATION: &str = "20";
/// Longest a schemathesis run may take before the test fails.
const SCHEMATHESIS_RUN_MAX: Duration = Duration::from_secs(300);

/// A binary whose public rate limits the fuzzer does not reach.
fn start_app(dir: &Path) -> Running {
    let path = dir.join("tempmx.toml");
    let edits = [
        ("api.create_burst", 100_000.into()),
        ("api.create_per_minute", 100_000.into()),
        ("api.reads_burst", 100_000.into()),
        ("api.reads_per_second", 100_000.into()),
    ];
    std::fs::write(&path, config_with(None, &edits)).unwrap();
    start(&path)
}

/// GET `url`; returns status, content type and body.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), ct, body)
}

/// Every parameter of every operation: `(path, method, name, in, required)`.
fn parameters(doc: &Value) -> Vec<(String, String, String, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                out.push((
                    path.clone(),
                    method.clone(),
                    p["name"].as_str().unwrap().to_owned(),
                    p["in"].as_str().unwrap().to_owned(),
                    p["required"].as_bool().unwrap_or(false),
                ));
            }
        }
    }
    out
}

// Goal: both documents are valid OpenAPI (checked by openapi-spec-validator), every path
// parameter appears in its path template, and the query parameters (`token`, `limit`,
// `before`, `since`, `remote_images`, `last_event_id`, and the admin API's) are optional
// query parameters, not required path parameters. Method: fetch the documents from the
// running binary, write them to files, run the validator on them, inspect parameters.
#[test]
fn documents_are_valid_and_declare_query_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path());
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let docs = [
        ("public", format!("http://{}/api/v1/openapi.json", app.http)),
        (
            "admin",
            format!("http://{}/admin/v1/openapi.json", app.admin),
        ),
    ];
    let mut query_names = Vec::new();
    for (name, url) in &docs {
        let (status, _, body) = get(url, &[("Authorization", &auth)]);
        assert_eq!(status, 200, "{name}");
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, &body).unwrap();
        let out = Command::new(tool("openapi-spec-validator"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_str(&body).unwrap();
        for (path, method, param, place, required) in parameters(&doc) {
            match place.as_str() {
                "path" => {
                    assert!(
                        path.contains(&format!("{{{param}}}")),
                        "{method} {path}: {param}"
                    );
                    assert!(required, "{method} {path}: path parameter {param}");
                }
                "query" => {
                    assert!(!required, "{method} {path}: query parameter {param}");
                    query_names.push(param);
                }
                "header" => assert!(!required, "{method} {path}: header {param}"),
                other => panic!("{method} {path}: {param} in {other}"),
            }
        }
    }
    query_names.sort();
    query_names.dedup();
    let expected = [
        "after",
        "before",
        "from",
        "last_event_id",
        "limit",
        "reason",
        "remote_images",
        "since",
        "state",
        "subject",
        "timeout",
        "token",
    ];
    assert_eq!(query_names, expected);
    app.stop();
}

/// Runs schemathesis on the document at `doc_url` against the running server.
fn schemathesis(doc_url: &str, headers: &[String]) {
    let mut cmd = Command::new(tool("schemathesis"));
    cmd.args(["run", doc_url])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--hypothesis-max-examples", EXAMPLES_PER_OPERATION])
        // Deterministic: the same requests every run, and no example database.
        .arg("--hypothesis-derandomize")
        .args(["--experimental", "openapi-3.1"])
        // Bearer tokens are not generated: hyper itself answers a header value with
        // bytes HTTP forbids (a bare 400, before any handler), and a random token only
        // ever finds nothing; the admin token is passed as a fixed header instead.
        .args(["--generation-with-security-parameters", "false"])
        .args(["--request-timeout", "5000", "--no-color"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    // Its state (hypothesis database, reports) stays out of the source tree.
    let home = tempfile::tempdir().unwrap();
    let mut child = cmd
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + SCHEMATHESIS_RUN_MAX;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("schemathesis ran longer than {SCHEMATHESIS_RUN_MAX:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "schemathesis on {doc_url}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// Goal: the running server answers what its documents promise: no 5xx, only documented
// statuses and content types (problem+json for errors), bodies matching their schemas.
// Method: schemathesis generates a bounded number of requests per operation from each
// document (derandomized, so every run sends the same ones) and checks every answer of the real binary.
#[test]
fn server_conforms_to_its_documents() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path());
    schemathesis(&format!("http://{}/api/v1/openapi.json", app.http), &[]);
    schemathesis(
        &format!("http://{}/admin/v1/openapi.json", app.admin),
        &[format!("Authorization: Bearer {ADMIN_TOKEN}")],
    );
    app.stop();
}

// Goal: errors that axum's extractors used to answer in plain text (a path segment that
// is not UTF-8, a bad query value, a plain GET on the WebSocket route, an unknown admin
// route or method, a body that is not JSON) are `application/problem+json` with the RFC
// 9457 members. Method: real requests with ureq to the running binary.
#[test]
fn extractor_rejections_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path());
    let (status, created) = app.public("POST", "/api/v1/mailboxes", None, None);
    assert_eq!(status, 201);
    let address = created["address"].as_str().unwrap();
    let token = created["token"].as_str().unwrap();
    let bearer = format!("Bearer {token}");
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let public = |p: &str| format!("http://{}{p}", app.http);
    let admin_url = |p: &str| format!("http://{}{p}", app.admin);
    let cases = [
        (
            public("/api/v1/mailboxes/%FF/messages"),
            bearer.clone(),
            400,
        ),
        (
            public(&format!("/api/v1/mailboxes/{address}/messages?limit=many")),
            bearer.clone(),
            400,
        ),
        (
            public(&format!(
                "/api/v1/mailboxes/{address}/messages/1?remote_images=perhaps"
            )),
            bearer.clone(),
            400,
        ),
        (
            public(&format!("/api/v1/mailboxes/{address}/ws")),
            bearer.clone(),
            400,
        ),
        (
            admin_url("/admin/v1/domains?state=bogus"),
            admin.clone(),
            400,
        ),
        (admin_url("/admin/v1/domains/%FF"), admin.clone(), 400),
        (admin_url("/admin/v1/nothing-here"), admin.clone(), 404),
    ];
    for (url, auth, want) in cases {
        let (status, ct, body) = get(&url, &[("Authorization", &auth)]);
        assert_eq!(
            (status, ct.as_str()),
            (want, "application/problem+json"),
            "{url}: {body}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:tempmx:problem:"),
            "{url}: {body}"
        );
        assert_eq!(v["status"], want, "{url}");
        assert!(
            v["title"].is_string() && v["detail"].is_string(),
            "{url}: {body}"
        );
    }
    // A method the admin route does not have, and a body that is not JSON. The server
    // leaves such a body unread and then closes the connection, so it says
    // `Connection: close` (a client that reused the connection failed once under load);
    // one agent that reuses connections sends them all.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for (method, path, ct, want) in [
        ("DELETE", "/admin/v1/policy", None, 405),
        ("PUT", "/admin/v1/policy", Some("text/plain"), 415),
    ] {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(admin_url(path))
            .header("Authorization", &admin);
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        let mut resp = agent.run(req.body("x".to_owned()).unwrap()).unwrap();
        let header = |name: &str| resp.headers()[name].to_str().unwrap().to_owned();
        let (got, connection) = (header("content-type"), header("connection"));
        assert_eq!(resp.status().as_u16(), want, "{method} {path}");
        assert_eq!(got, "application/problem+json", "{method} {path}");
        assert_eq!(connection, "close", "{method} {path}");
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(v["status"], want);
        let healthy = agent
            .get(admin_url("/healthz"))
            .call()
            .expect("next request works");
        assert_eq!(healthy.status().as_u16(), 200);
    }
    // A body the handler read keeps the connection, whether the answer is an error (JSON
    // that is no policy) or not (a mailbox created).
    for (method, url, auth, body, want) in [
        (
            "PUT",
            admin_url("/admin/v1/policy"),
            &admin,
            "{\"nope\": 1}",
            422,
        ),
        ("POST", public("/api/v1/mailboxes"), &bearer, "{}", 201),
    ] {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", auth.as_str())
            .header("Content-Type", "application/json");
        let resp = agent.run(req.body(body.to_owned()).unwrap()).unwrap();
        assert_eq!(resp.status().as_u16(), want, "{method} {url}");
        assert!(resp.headers().get("connection").is_none(), "{method} {url}");
    }
    app.stop();
}
