//! The public mailbox API (`/api/v1`), live push and the web inbox (`/`).
//!
//! Layout: `mailboxes` / `messages` / `push` (handlers), `access` (token or public
//! mode), `address` (local parts), `render` + `sanitize` (MIME and HTML on read),
//! `guard` (header bound, rate limits, security headers), `ratelimit`, `subscribers`,
//! `types` (JSON shapes), `error` (RFC 9457 problems), `web` (embedded inbox), `config`.
//! The OpenAPI document is generated from the handlers' annotations by utoipa, and the
//! router is built from the same list, so the two cannot disagree.

pub mod access;
pub mod address;
pub mod config;
pub mod error;
pub mod guard;
pub mod mailboxes;
pub mod messages;
pub mod push;
pub mod ratelimit;
pub mod render;
pub mod sanitize;
pub mod subscribers;
pub mod types;
pub mod wait;
pub mod web;
pub mod webhooks;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use tempmx_store::cluster::{Cluster, RateQuota};
use tempmx_store::{Reader, Store};
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::config::{AccessMode, PublicConfig};
use self::error::ApiError;
use self::ratelimit::{Class, FleetLimits, Limiter};
use self::subscribers::Subscribers;
use crate::api::compat::mailtm::MailTm;
use crate::fleet::registry::FleetRegistry;
use crate::mailboxes::Registry;
use crate::verify::VerifyCache;
use crate::webhooks::Webhooks;
use tempmx_store::Domain;

/// Messages whose extracted verifications are kept (about 100 bytes each).
pub const VERIFY_CACHE_ENTRIES_MAX: usize = 65_536;

/// Path of the generated OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The domain pool as the public API sees it (the pool itself is owned elsewhere).
pub trait DomainSource: Send + Sync + 'static {
    /// Domains offered for new addresses now (`active`).
    fn active(&self) -> Vec<Domain>;
    /// Whether mail for `domain` is still accepted (pending, active or draining).
    fn receives(&self, domain: &Domain) -> bool;
}

/// A fixed domain list (single-domain setups, tests).
pub struct StaticDomains(pub Vec<Domain>);

impl DomainSource for StaticDomains {
    fn active(&self) -> Vec<Domain> {
        self.0.clone()
    }

    fn receives(&self, domain: &Domain) -> bool {
        self.0.contains(domain)
    }
}

/// The two request classes with separate per-IP limits.
pub struct Limits {
    /// `POST /api/v1/mailboxes` and `POST /api/v1/mailboxes/{address}/extend`: the
    /// requests that take or keep a registry slot.
    pub create: Limiter,
    /// Every other `/api/v1` request.
    pub read: Limiter,
    /// Fleet mode: the same quotas held across every node (after this node's buckets).
    pub fleet: Option<FleetLimits>,
}

impl Limits {
    /// This node's buckets for `config`'s quotas, and the fleet's when `cluster` is given.
    pub fn new(config: &PublicConfig, cluster: Option<Arc<Cluster>>) -> Self {
        let create = RateQuota {
            per_sec: f64::from(config.create_per_minute) / 60.0,
            burst: config.create_burst,
        };
        let read = RateQuota {
            per_sec: f64::from(config.reads_per_second),
            burst: config.reads_burst,
        };
        let local = |q: RateQuota| Limiter::new(q.per_sec, q.burst, config.rate_ips_max);
        Self {
            create: local(create),
            read: local(read),
            fleet: cluster.map(|c| FleetLimits::new(c, create, read)),
        }
    }

    /// Takes a token of `class` for `ip`: this node's bucket, then the fleet's;
    /// `Err(secs)` with the wait when refused.
    pub async fn take(&self, class: Class, ip: IpAddr) -> Result<(), u64> {
        let local = match class {
            Class::Create => &self.create,
            Class::Read => &self.read,
        };
        local.check(ip, std::time::Instant::now())?;
        match &self.fleet {
            Some(fleet) => fleet.take(class, ip).await,
            None => Ok(()),
        }
    }
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct PublicState {
    /// The embedded message store (live push, TTL overrides; all reads in single-node
    /// mode); `None` in fleet mode, where no local store is opened and the cluster holds
    /// every message.
    pub store: Option<Arc<Store>>,
    /// Where messages are read and deleted: the embedded store, or the fleet's cluster.
    pub mail: Reader,
    /// The fleet's mailbox registry, when fleet mode is on (else `registry` answers).
    pub fleet: Option<FleetRegistry>,
    /// The pool's current domains.
    pub domains: Arc<dyn DomainSource>,
    /// Registered mailboxes and their token hashes.
    pub registry: Arc<Registry>,
    /// The `[api]` settings.
    pub config: Arc<PublicConfig>,
    /// Per-IP rate limits.
    pub limits: Arc<Limits>,
    /// Live-push admission.
    pub subscribers: Arc<Subscribers>,
    /// Messages a mailbox keeps at least (the store's `mailbox_records_max`).
    pub store_mailbox_max: usize,
    /// Verification codes and links by message id, extracted on first read.
    pub verify: Arc<VerifyCache>,
    /// Turns true when the server shuts down, so live-push connections end at once
    /// (a graceful shutdown would otherwise wait for them).
    pub closing: Arc<watch::Sender<bool>>,
    /// Registered webhooks and the node's delivery queue.
    pub webhooks: Arc<Webhooks>,
    /// The mail.tm compatible API's accounts and events (memory only unless replaced
    /// with [`PublicState::with_mailtm`]).
    pub mailtm: Arc<MailTm>,
}

impl PublicState {
    /// Builds the state reading through `mail`; `mailbox_records_max` is the store's
    /// `[store]` value of that name.
    pub fn new(
        mail: Reader,
        domains: Arc<dyn DomainSource>,
        registry: Arc<Registry>,
        config: PublicConfig,
        mailbox_records_max: usize,
    ) -> Self {
        let limits = Limits::new(&config, None);
        let webhooks = Arc::new(Webhooks::new(config.webhooks.clone()));
        let subscribers = Subscribers::new(
            config.subscribers_per_mailbox_max,
            config.subscribers_per_ip_max,
        );
        let config_mailboxes_max = config.mailboxes_max;
        let store = match &mail {
            Reader::Local(store) => Some(store.clone()),
            Reader::Fleet(_) => None,
        };
        Self {
            mail,
            fleet: None,
            store,
            domains,
            registry,
            config: Arc::new(config),
            limits: Arc::new(limits),
            subscribers: Arc::new(subscribers),
            store_mailbox_max: mailbox_records_max,
            verify: Arc::new(VerifyCache::new(VERIFY_CACHE_ENTRIES_MAX)),
            closing: Arc::new(watch::channel(false).0),
            webhooks,
            mailtm: Arc::new(MailTm::new(config_mailboxes_max)),
        }
    }

    /// The state with mail.tm accounts kept as `mt` keeps them (e.g. in the data directory).
    pub fn with_mailtm(mut self, mt: MailTm) -> Self {
        self.mailtm = Arc::new(mt);
        self
    }

    /// Fleet mode: messages and mailboxes are read from and registered in `cluster`, and
    /// the compatible APIs keep their accounts there.
    pub fn with_fleet(mut self, cluster: Arc<Cluster>) -> Self {
        self.mail = Reader::Fleet(cluster.clone());
        self.store = None;
        // Built before any request, so the fresh local buckets lose nothing.
        self.limits = Arc::new(Limits::new(&self.config, Some(cluster.clone())));
        self.mailtm = Arc::new(MailTm::fleet(cluster.clone()));
        self.fleet = Some(FleetRegistry(cluster));
        self
    }

    /// The embedded store of the single-node paths. Fleet mode opens none; its paths
    /// branch on `fleet` first, so this 503 is never reached there.
    pub fn local_store(&self) -> Result<&Arc<Store>, ApiError> {
        self.store
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("no local message store in fleet mode".into()))
    }

    /// Ends every live-push connection now and refuses new ones; call before the
    /// listener's graceful shutdown.
    pub fn stop_push(&self) {
        self.closing.send_replace(true);
    }
}

/// The generated OpenAPI document's fixed parts; paths come from the router below.
#[derive(OpenApi)]
#[openapi(
    info(title = "tempmx public API", version = "1", description = "Throwaway mailboxes: create, read, push, webhooks, delete."),
    modifiers(&BearerScheme),
    tags((name = "mailboxes"), (name = "messages"), (name = "push"), (name = "webhooks"))
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API routes with their OpenAPI description.
pub fn api_routes() -> OpenApiRouter<PublicState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(mailboxes::list_domains))
        .routes(routes!(mailboxes::create_mailbox))
        .routes(routes!(mailboxes::delete_mailbox))
        .routes(routes!(mailboxes::extend_mailbox))
        .routes(routes!(messages::list_messages))
        .routes(routes!(wait::wait))
        .routes(routes!(messages::get_message, messages::delete_message))
        .routes(routes!(messages::get_raw))
        .routes(routes!(messages::get_html))
        .routes(routes!(messages::get_attachment))
        .routes(routes!(push::events))
        .routes(routes!(push::websocket))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(webhooks::delete_webhook))
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    let mut doc = api_routes().into_openapi();
    crate::api::problem::document_media_type(&mut doc);
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The public listener's router: API, OpenAPI document and web inbox. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so limits key on the client IP.
pub fn router(state: PublicState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    let doc = Bytes::from(openapi_json());
    let mut router = api
        .merge(crate::api::compat::routes(&state))
        .route(
            OPENAPI_PATH,
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/app.css", get(web::app_css))
        .route("/icon.svg", get(web::icon))
        .fallback(|| async { ApiError::NoRoute.into_response() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() })
        .layer(DefaultBodyLimit::max(state.config.body_bytes_max))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard));
    if let Some(cors) = cors(&state.config.cors_origins) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::RETRY_AFTER]),
    )
}
