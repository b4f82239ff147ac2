//! Shared by the admin integration tests: a real control plane, the admin router served on
//! 127.0.0.1:0, and a blocking HTTP client (ureq) run off the async workers.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use tempmx::api::admin::{AdminAuth, router};
use tempmx::blocklist::{BlocklistConfig, BlocklistCycle};
use tempmx::config::RecipientMode;
use tempmx::mailboxes::Registry;
use tempmx::pool::{ControlPlane, ManualClock, PlaneConfig, PoolLimits, RotationPolicy};
use tempmx_dns::ZoneSnapshot;
use tempmx_ingress::policy::{MailboxRegistry, Policy};

/// Start of the test clock (any fixed unix time).
pub const T0: u64 = 1_800_000_000;

/// A plane config with the given active domains and no blocklists, memory only.
pub fn plane_config(domains: &[&str]) -> PlaneConfig {
    PlaneConfig {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        recipients: RecipientMode::CatchAll,
        policy: RotationPolicy::default(),
        limits: PoolLimits::default(),
        data_dir: None,
        drain_secs_min: 0,
    }
}

/// Live mailboxes the harness's registry holds.
pub const MAILBOXES_MAX: usize = 1_000;

/// Opens the plane as the app does: the mailbox registry of its data directory first.
pub fn open_plane(config: PlaneConfig, clock: Arc<ManualClock>) -> ControlPlane {
    let registry = Registry::open_in(MAILBOXES_MAX, config.data_dir.as_deref()).expect("registry");
    ControlPlane::open(config, clock, Arc::new(registry)).expect("plane opens")
}

/// A running plane with its data-plane targets and the admin API.
pub struct Harness {
    pub plane: Arc<ControlPlane>,
    pub blocklists: Arc<BlocklistCycle>,
    pub mailboxes: Arc<Registry>,
    pub clock: Arc<ManualClock>,
    pub policy: Arc<Policy>,
    pub zones: Arc<Mutex<Vec<ZoneSnapshot>>>,
    pub base: String,
}

impl Harness {
    /// Opens the plane, attaches an ingress policy and a DNS snapshot recorder, serves the admin API.
    pub async fn start(config: PlaneConfig, auth: AdminAuth) -> Self {
        Self::start_checking(config, BlocklistConfig::default(), auth).await
    }

    /// [`Harness::start`] with blocklists to check.
    pub async fn start_checking(
        config: PlaneConfig,
        blocklists: BlocklistConfig,
        auth: AdminAuth,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let mailboxes = Arc::new(
            Registry::open_in(MAILBOXES_MAX, config.data_dir.as_deref()).expect("registry"),
        );
        let plane = Arc::new(
            ControlPlane::open(config, clock.clone(), mailboxes.clone()).expect("plane opens"),
        );
        let blocklists =
            Arc::new(BlocklistCycle::new(blocklists, plane.clone()).expect("blocklists"));
        let policy = Arc::new(Policy::new(
            plane.ingress_snapshot(),
            Some(mailboxes.clone() as Arc<dyn MailboxRegistry>),
        ));
        let zones = Arc::new(Mutex::new(Vec::new()));
        let sink = zones.clone();
        plane.attach(policy.clone(), Some(Arc::new(move |z| sink.lock().push(z))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let app = router(plane.clone(), blocklists.clone(), auth, None);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            plane,
            blocklists,
            mailboxes,
            clock,
            policy,
            zones,
            base: format!("http://{addr}"),
        }
    }

    /// Sends a request; `body` is sent as JSON text when given.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        call(&self.base, method, path, token, body, "application/json").await
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub json: Value,
}

impl Reply {
    /// The problem `type` slug (after `urn:tempmx:problem:`), checking the media type.
    pub fn problem(&self) -> &str {
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        let t = self.json["type"].as_str().expect("problem type");
        assert_eq!(self.json["status"].as_u64(), Some(self.status as u64));
        t.strip_prefix("urn:tempmx:problem:")
            .expect("stable type prefix")
    }
}

/// Sends a request with ureq on a blocking thread.
pub async fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    content_type: &str,
) -> Reply {
    let url = format!("{base}{path}");
    let (method, token, body, ct) = (
        method.to_owned(),
        token.map(str::to_owned),
        body.map(str::to_owned),
        content_type.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        if let Some(t) = &token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("Content-Type", ct);
        }
        let req = req.body(body.unwrap_or_default()).expect("request");
        let mut resp = agent.run(req).expect("http exchange");
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let www_authenticate = header("www-authenticate");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        Reply {
            status,
            content_type,
            www_authenticate,
            json,
        }
    })
    .await
    .expect("client thread")
}
