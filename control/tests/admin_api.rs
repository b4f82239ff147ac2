//! The admin API over real HTTP: every route, auth failures, limits and problem+json errors,
//! and the OpenAPI document against the routes.

mod admin_support;

use admin_support::{Harness, call, plane_config};
use serde_json::{Value, json};
use tempmx::api::admin::AdminAuth;
use tempmx::pool::{DomainState, PoolLimits};

const TOKEN: &str = "s3cret-admin-token";
const READ: &str = "read-only-token";

fn token_auth() -> AdminAuth {
    AdminAuth {
        token: Some(TOKEN.into()),
        read_token: Some(READ.into()),
        loopback: true,
    }
}

fn names(reply: &Value) -> Vec<String> {
    reply["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

// Goal: 401 with a Bearer challenge for a missing or wrong token, 403 for the read-only
// token on a change, and the no-token rules for loopback and non-loopback listeners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures() {
    let h = Harness::start(plane_config(&["a.test"]), token_auth()).await;
    let r = h.call("GET", "/admin/v1/domains", None, None).await;
    assert_eq!((r.status, r.problem()), (401, "unauthorized"));
    assert!(
        r.www_authenticate
            .as_deref()
            .is_some_and(|w| w.starts_with("Bearer")),
        "{r:?}"
    );
    let r = h
        .call("GET", "/admin/v1/domains", Some("wrong"), None)
        .await;
    assert_eq!((r.status, r.problem()), (401, "unauthorized"));
    let r = h
        .call("GET", "/admin/v1/domains", Some(&format!("{TOKEN}x")), None)
        .await;
    assert_eq!(
        r.status, 401,
        "a longer token with the right prefix is refused"
    );
    let r = h.call("GET", "/admin/v1/domains", Some(READ), None).await;
    assert_eq!(r.status, 200);
    let add = r#"{"domains":["b.test"]}"#;
    let r = h
        .call("POST", "/admin/v1/domains", Some(READ), Some(add))
        .await;
    assert_eq!((r.status, r.problem()), (403, "read-only-token"));
    let r = h
        .call("POST", "/admin/v1/domains", Some(TOKEN), Some(add))
        .await;
    assert_eq!(r.status, 201);

    let open = Harness::start(
        plane_config(&["a.test"]),
        AdminAuth {
            loopback: false,
            ..AdminAuth::default()
        },
    )
    .await;
    assert_eq!(
        open.call("GET", "/admin/v1/domains", None, None)
            .await
            .status,
        200
    );
    let r = open
        .call("POST", "/admin/v1/domains", None, Some(add))
        .await;
    assert_eq!((r.status, r.problem()), (403, "admin-token-required"));
    let local = Harness::start(
        plane_config(&["a.test"]),
        AdminAuth {
            loopback: true,
            ..AdminAuth::default()
        },
    )
    .await;
    assert_eq!(
        local
            .call("POST", "/admin/v1/domains", None, Some(add))
            .await
            .status,
        201
    );
}

// Goal: domains can be listed, bulk-imported (all-or-nothing, limits at the edge), read,
// moved between states with reasons, and deleted only when retired and empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_routes() {
    let mut config = plane_config(&["a.test"]);
    config.limits = PoolLimits {
        domains_max: 4,
        import_batch_max: 2,
        reason_bytes_max: 16,
        ..PoolLimits::default()
    };
    let h = Harness::start(config, token_auth()).await;
    let t = Some(TOKEN);
    let r = h.call("GET", "/admin/v1/domains", t, None).await;
    assert_eq!(names(&r.json), vec!["a.test"]);
    assert_eq!(r.json["domains"][0]["state"], "active");

    let r = h
        .call(
            "POST",
            "/admin/v1/domains",
            t,
            Some(r#"{"domains":["B.test","bad name"]}"#),
        )
        .await;
    assert_eq!((r.status, r.problem()), (422, "invalid-domain"));
    assert_eq!(
        r.json["errors"],
        json!(["`bad name`: a domain label is 1 to 63 letters, digits or inner hyphens"])
    );
    let r = h
        .call(
            "POST",
            "/admin/v1/domains",
            t,
            Some(r#"{"domains":["b.test","c.test","d.test"]}"#),
        )
        .await;
    assert_eq!((r.status, r.problem()), (422, "batch-too-large"));
    let r = h
        .call(
            "POST",
            "/admin/v1/domains",
            t,
            Some(r#"{"domains":["B.test","c.test"],"reason":"import"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.json["results"],
        json!([{"name":"b.test","added":true},{"name":"c.test","added":true}])
    );
    let r = h
        .call(
            "POST",
            "/admin/v1/domains",
            t,
            Some(r#"{"domains":["b.test"]}"#),
        )
        .await;
    assert_eq!(
        (r.status, &r.json["results"][0]["added"]),
        (200, &json!(false))
    );
    let r = h
        .call(
            "POST",
            "/admin/v1/domains",
            t,
            Some(r#"{"domains":["d.test","e.test"]}"#),
        )
        .await;
    assert_eq!((r.status, r.problem()), (409, "pool-full"));
    let r = h
        .call("GET", "/admin/v1/domains?state=pending", t, None)
        .await;
    assert_eq!(names(&r.json), vec!["b.test", "c.test"]);
    let r = h
        .call("GET", "/admin/v1/domains?state=bogus", t, None)
        .await;
    assert_eq!((r.status, r.problem()), (400, "invalid-query"));

    let r = h.call("GET", "/admin/v1/domains/B.TEST", t, None).await;
    assert_eq!((r.status, &r.json["state"]), (200, &json!("pending")));
    let r = h.call("GET", "/admin/v1/domains/nope.test", t, None).await;
    assert_eq!((r.status, r.problem()), (404, "unknown-domain"));

    let r = h
        .call(
            "PUT",
            "/admin/v1/domains/b.test/state",
            t,
            Some(r#"{"state":"retired","reason":"x"}"#),
        )
        .await;
    assert_eq!((r.status, &r.json["state"]), (200, &json!("retired")));
    let r = h
        .call(
            "PUT",
            "/admin/v1/domains/b.test/state",
            t,
            Some(r#"{"state":"active","reason":"x"}"#),
        )
        .await;
    assert_eq!((r.status, r.problem()), (409, "invalid-transition"));
    let long = format!(r#"{{"state":"active","reason":"{}"}}"#, "r".repeat(17));
    let r = h
        .call("PUT", "/admin/v1/domains/c.test/state", t, Some(&long))
        .await;
    assert_eq!((r.status, r.problem()), (422, "reason-too-long"));
    let at_limit = format!(r#"{{"state":"active","reason":"{}"}}"#, "r".repeat(16));
    assert_eq!(
        h.call("PUT", "/admin/v1/domains/c.test/state", t, Some(&at_limit))
            .await
            .status,
        200
    );
    let r = h
        .call(
            "PUT",
            "/admin/v1/domains/c.test/state",
            t,
            Some(r#"{"state":"sideways","reason":"x"}"#),
        )
        .await;
    assert_eq!((r.status, r.problem()), (422, "invalid-body"));

    let r = h.call("DELETE", "/admin/v1/domains/c.test", t, None).await;
    assert_eq!((r.status, r.problem()), (409, "domain-not-retired"));
    let now = tempmx::mailboxes::now_ms();
    h.mailboxes
        .register(
            &tempmx_store::Mailbox::parse("user@c.test").expect("test address"),
            now,
            now + 60_000,
        )
        .expect("mailbox on c.test");
    h.plane
        .set_state(
            &tempmx_store::Domain::parse("c.test").expect("test domain"),
            DomainState::Retired,
            "test",
        )
        .expect("retire");
    let r = h.call("DELETE", "/admin/v1/domains/c.test", t, None).await;
    assert_eq!((r.status, r.problem()), (409, "domain-not-empty"));
    let r = h
        .call("DELETE", "/admin/v1/domains/b.test?reason=gone", t, None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        h.call("GET", "/admin/v1/domains/b.test", t, None)
            .await
            .status,
        404
    );

    let r = h
        .call("GET", "/admin/v1/domains/c.test/stats", t, None)
        .await;
    assert_eq!(
        (r.status, &r.json["mailboxes"], &r.json["state"]),
        (200, &json!(1), &json!("retired"))
    );
}

// Goal: the policy round-trips, is validated (every error listed) and bad bodies get the
// right problem; the audit log pages; blocklist routes answer with no list configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_audit_blocklists() {
    let h = Harness::start(plane_config(&["a.test"]), token_auth()).await;
    let t = Some(TOKEN);
    let r = h.call("GET", "/admin/v1/policy", t, None).await;
    assert_eq!((r.status, &r.json["active_target"]), (200, &json!(1)));
    let mut policy = r.json.clone();
    policy["listing_confirmations"] = json!(3);
    let r = h
        .call("PUT", "/admin/v1/policy", t, Some(&policy.to_string()))
        .await;
    assert_eq!(
        (r.status, &r.json["listing_confirmations"]),
        (200, &json!(3))
    );
    assert_eq!(h.plane.policy().listing_confirmations, 3);
    let r = h
        .call(
            "PUT",
            "/admin/v1/policy",
            t,
            Some(r#"{"active_target":0,"listing_confirmations":0}"#),
        )
        .await;
    assert_eq!((r.status, r.problem()), (422, "invalid-policy"));
    assert_eq!(r.json["errors"].as_array().map(Vec::len), Some(2));
    let r = h
        .call("PUT", "/admin/v1/policy", t, Some(r#"{"active_target":"#))
        .await;
    assert_eq!((r.status, r.problem()), (400, "malformed-body"));
    let r = h
        .call("PUT", "/admin/v1/policy", t, Some(r#"{"bogus":1}"#))
        .await;
    assert_eq!((r.status, r.problem()), (422, "invalid-body"));
    let r = call(
        &h.base,
        "PUT",
        "/admin/v1/policy",
        t,
        Some("{}"),
        "text/plain",
    )
    .await;
    assert_eq!((r.status, r.problem()), (415, "unsupported-media-type"));
    let huge = format!(r#"{{"domains":["{}"]}}"#, "a".repeat(1 << 20));
    let r = h.call("POST", "/admin/v1/domains", t, Some(&huge)).await;
    assert_eq!((r.status, r.problem()), (413, "body-too-large"));

    for d in ["b.test", "c.test", "d.test"] {
        h.call(
            "POST",
            "/admin/v1/domains",
            t,
            Some(&json!({"domains":[d]}).to_string()),
        )
        .await;
    }
    let r = h.call("GET", "/admin/v1/audit?limit=2", t, None).await;
    let first: Vec<u64> = r.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    assert_eq!(first.len(), 2);
    assert_eq!(r.json["events"][0]["actor"], "config");
    assert_eq!(r.json["events"][1]["action"]["kind"], "policy_changed");
    let next = r.json["next_after"]
        .as_u64()
        .expect("a full page has a next cursor");
    let r = h
        .call(
            "GET",
            &format!("/admin/v1/audit?after={next}&limit=1000"),
            t,
            None,
        )
        .await;
    let rest = r.json["events"].as_array().expect("events");
    assert!(rest.iter().all(|e| e["id"].as_u64() > Some(next)));
    assert_eq!(rest.len(), 3);
    assert!(
        rest.iter()
            .all(|e| e["action"]["kind"] == "added" && e["actor"] == "admin")
    );
    assert_eq!(r.json["next_after"], Value::Null);
    let r = h.call("GET", "/admin/v1/audit?limit=1001", t, None).await;
    assert_eq!((r.status, r.problem()), (400, "invalid-query"));

    let r = h.call("GET", "/admin/v1/blocklists", t, None).await;
    assert_eq!(
        (r.status, &r.json["lists"], &r.json["last_cycle"]),
        (200, &json!([]), &Value::Null)
    );
    let r = h
        .call(
            "POST",
            "/admin/v1/blocklists/check",
            t,
            Some(r#"{"domain":"a.test"}"#),
        )
        .await;
    assert_eq!(
        (r.status, &r.json["in_pool"], &r.json["results"]),
        (200, &json!(true), &json!([]))
    );
    let r = h
        .call(
            "POST",
            "/admin/v1/blocklists/check",
            t,
            Some(r#"{"domain":"not valid"}"#),
        )
        .await;
    assert_eq!((r.status, r.problem()), (422, "invalid-domain"));
}

// Goal: the OpenAPI document lists exactly the routes, and every documented (path, method)
// is served (no 404 from the router, no 405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_routes() {
    let h = Harness::start(plane_config(&["a.test"]), token_auth()).await;
    let r = h
        .call("GET", "/admin/v1/openapi.json", Some(TOKEN), None)
        .await;
    assert_eq!(r.status, 200);
    let paths = r.json["paths"].as_object().expect("paths");
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = [
        ("DELETE", "/admin/v1/domains/{name}"),
        ("DELETE", "/admin/v1/domains/{name}/listing"),
        ("GET", "/admin/v1/audit"),
        ("GET", "/admin/v1/blocklists"),
        ("GET", "/admin/v1/domains"),
        ("GET", "/admin/v1/domains/{name}"),
        ("GET", "/admin/v1/domains/{name}/stats"),
        ("GET", "/admin/v1/fleet"),
        ("GET", "/admin/v1/policy"),
        ("POST", "/admin/v1/blocklists/check"),
        ("POST", "/admin/v1/domains"),
        ("PUT", "/admin/v1/domains/{name}/listing"),
        ("PUT", "/admin/v1/domains/{name}/state"),
        ("PUT", "/admin/v1/policy"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    expected.sort();
    assert_eq!(documented, expected);
    for (method, path) in &documented {
        let concrete = path.replace("{name}", "a.test");
        let body = (method != "GET" && method != "DELETE").then_some("{}");
        let r = h.call(method, &concrete, Some(TOKEN), body).await;
        assert_ne!(r.status, 405, "{method} {path}");
        if r.status == 404 {
            // Without fleet mode the fleet route answers its own 404.
            let want = if path == "/admin/v1/fleet" {
                "fleet-off"
            } else {
                "unknown-domain"
            };
            assert_eq!(r.problem(), want, "{method} {path} is routed");
        }
    }
}

// Goal: an operator can mark a domain listed (the policy rotates it out as for a confirmed
// blocklist listing, and the audit log says who and why) and clear the listing again.
// Method: a pool of two domains over real HTTP; mark the active one, read state, audit and
// listing; clear it; errors for an unknown domain and a missing reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_routes() {
    let h = Harness::start(plane_config(&["a.test"]), token_auth()).await;
    let t = Some(TOKEN);
    let r = h
        .call(
            "POST",
            "/admin/v1/domains",
            t,
            Some(r#"{"domains":["b.test"]}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = h
        .call(
            "PUT",
            "/admin/v1/domains/a.test/listing",
            t,
            Some(r#"{"list":"manual-dbl","reason":"seen on a list"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["listing"]["list"], "manual-dbl");
    assert_eq!(r.json["listing"]["reason"], "seen on a list");
    assert_ne!(r.json["state"], "active", "rotated out: {r:?}");
    let r = h.call("GET", "/admin/v1/domains/b.test", t, None).await;
    assert_eq!(r.json["state"], "active", "promoted: {r:?}");
    let r = h.call("GET", "/admin/v1/audit", t, None).await;
    let listed = r.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| {
            e["domain"] == "a.test"
                && e["action"]["kind"] == "listed"
                && e["action"]["list"] == "manual-dbl"
                && e["actor"] == "admin"
        });
    assert!(listed, "{r:?}");
    let r = h
        .call(
            "DELETE",
            "/admin/v1/domains/a.test/listing?reason=false%20positive",
            t,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json["listing"].is_null(), "{r:?}");
    let r = h
        .call(
            "PUT",
            "/admin/v1/domains/nope.test/listing",
            t,
            Some(r#"{"reason":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = h
        .call("PUT", "/admin/v1/domains/a.test/listing", t, Some("{}"))
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    // The list name's limit (253 bytes, a zone name): at it accepted, past it refused.
    for (len, status) in [(253, 200), (254, 422), (0, 422)] {
        let body = json!({ "list": "l".repeat(len), "reason": "limit" }).to_string();
        let r = h
            .call("PUT", "/admin/v1/domains/a.test/listing", t, Some(&body))
            .await;
        assert_eq!(r.status, status, "{len}: {r:?}");
    }
    let r = h
        .call(
            "PUT",
            "/admin/v1/domains/a.test/listing",
            Some(READ),
            Some(r#"{"reason":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
}
