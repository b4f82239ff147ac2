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
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared.clone())
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

/// Whether the request carries `Authorization: Bearer <token>` (constant-time compare).
fn bearer_matches(headers: &HeaderMap, token: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(token) = token else { return false };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> impl IntoResponse {
    let admin = &shared.config.admin;
    if admin.metrics_need_token && !bearer_matches(&headers, admin.token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "token required\n",
        )
            .into_response();
    }
    match shared.metrics.render() {
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

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: `/metrics` behind the token accepts exactly `Bearer <token>`.
    #[test]
    fn metrics_token_check() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, Some("s3cret")));
        h.insert(
            header::AUTHORIZATION,
            "Bearer s3cret".parse().expect("header"),
        );
        assert!(bearer_matches(&h, Some("s3cret")));
        assert!(!bearer_matches(&h, Some("s3cret2")));
        assert!(!bearer_matches(&h, None));
        h.insert(
            header::AUTHORIZATION,
            "Basic s3cret".parse().expect("header"),
        );
        assert!(!bearer_matches(&h, Some("s3cret")));
    }
}
