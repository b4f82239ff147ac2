//! HTTP servers: the public API and web inbox, and the admin API with `/metrics`.
//! They run on the control runtime, never on the ingress cores.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;
use tracing::warn;

use crate::app::Shared;

pub mod admin;
pub mod compat;
pub mod problem;
pub mod public;

/// Serves `router` on `listener` until `stop` turns true, then finishes open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    // Connect info gives the handlers the client address (per-IP rate limits).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!(error = %e, "http server stopped with an error");
    }
}

/// The public listener's routes: the mailbox API, live push and the web inbox.
pub fn public_router(state: public::PublicState, shared: Arc<Shared>) -> Router {
    let router = public::router(state).merge(Router::new().route("/healthz", get(healthz)));
    with_request_metrics(router, shared, "public")
}

/// The admin listener's routes.
pub fn admin_router(shared: Arc<Shared>) -> Router {
    let cfg = &shared.config.admin;
    let auth = admin::AdminAuth {
        token: cfg.token.clone(),
        read_token: cfg.read_token.clone(),
        loopback: cfg.listen.ip().is_loopback(),
    };
    // With `metrics_need_token`, a scrape passes the admin API's own read check (either
    // token); config validation makes sure a token exists then.
    let scrape = MetricsState {
        shared: shared.clone(),
        auth: cfg.metrics_need_token.then(|| auth.clone()),
    };
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(scrape)
        .merge(admin::router(shared.plane.clone(), auth));
    with_request_metrics(router, shared, "admin")
}

/// Counts every request by route template (never the raw path: addresses are secrets)
/// and status, and records its latency.
fn with_request_metrics(router: Router, shared: Arc<Shared>, listener: &'static str) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let shared = shared.clone();
        async move {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
            let started = Instant::now();
            let response = next.run(req).await;
            let status = response.status().as_u16().to_string();
            let m = &shared.metrics;
            m.http_requests
                .with_label_values(&[listener, &route, &status])
                .inc();
            m.http_duration
                .with_label_values(&[listener, &route])
                .observe(started.elapsed().as_secs_f64());
            response
        }
    }))
}

/// State of the `/metrics` route: the registry, and the admin check when scrapes need a token.
#[derive(Clone)]
struct MetricsState {
    shared: Arc<Shared>,
    auth: Option<admin::AdminAuth>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> impl IntoResponse {
    if let Some(auth) = &state.auth
        && let Err(problem) = auth.check(&headers, false)
    {
        return problem.into_response();
    }
    match state.shared.metrics.render() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}\n")).into_response(),
    }
}
