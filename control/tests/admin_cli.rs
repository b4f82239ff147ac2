//! `tempmx domains …` against a real admin API on loopback: list, add, retire, check, and
//! the error path (a problem detail on stderr, non-zero exit).

mod admin_support;

use admin_support::{Harness, plane_config};
use tempmx::api::admin::AdminAuth;
use tempmx_ingress::policy::DomainStatus;

const TOKEN: &str = "cli-token";

/// Runs the binary with the admin token in its environment; returns (success, stdout, stderr).
async fn tempmx(base: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tempmx"));
    cmd.arg("domains")
        .arg("--admin")
        .arg(base)
        .args(args)
        .env("TEMPMX_ADMIN_TOKEN", TOKEN);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Goal: each subcommand does what it says through the API; errors exit non-zero with the detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_subcommand() {
    let auth = AdminAuth {
        token: Some(TOKEN.into()),
        read_token: None,
        loopback: true,
    };
    let h = Harness::start(plane_config(&["a.test"]), auth).await;
    let (ok, out, err) = tempmx(&h.base, &["add", "B.test", "c.test", "--reason", "cli"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "b.test\tadded\nc.test\tadded\n");
    let (ok, out, _) = tempmx(&h.base, &["list"]).await;
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("b.test\tpending\t-\t0\t0")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 4, "header and three domains: {out}");
    let (ok, out, _) = tempmx(&h.base, &["list", "--state", "active"]).await;
    assert!(
        ok && out.contains("a.test") && !out.contains("b.test"),
        "{out}"
    );
    let (ok, out, err) = tempmx(&h.base, &["retire", "a.test", "--reason", "burned"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "a.test\tretired\n");
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("a.test").expect("test domain")),
        Some(DomainStatus::Retired)
    );
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("b.test").expect("test domain")),
        Some(DomainStatus::Active),
        "promoted"
    );
    let (ok, _, err) = tempmx(&h.base, &["check", "b.test"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = tempmx(&h.base, &["retire", "nope.test"]).await;
    assert!(!ok);
    assert!(err.contains("404") && err.contains("nope.test"), "{err}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tempmx"));
    cmd.args(["domains", "--admin", &h.base, "list"])
        .env("TEMPMX_ADMIN_TOKEN", "wrong");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}
