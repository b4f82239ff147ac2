//! HTTP servers: the public API and web inbox, and the admin API with `/metrics`.
//! They run on the control runtime, never on the ingress cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tracing::warn;

pub use self::deadline::Deadlines;

use self::problem::Problem;
use crate::app::Shared;

pub mod admin;
pub mod compat;
pub mod deadline;
pub mod problem;
pub mod public;

/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `stop` turns true, then finishes open requests.
/// A client has `deadlines.header_read` to send a request head (hyper then closes the
/// connection) and `deadlines.body_read` for its body (then the answer is 408).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    deadlines: Deadlines,
    mut stop: watch::Receiver<bool>,
) {
    let router = router.layer(middleware::from_fn_with_state(
        deadlines.body_read,
        deadline::body_deadline,
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(deadlines.header_read);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "http accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // The client address, for per-IP rate limits (what axum's connect info gives).
            req.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut router.clone(), req)
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stop = stop.clone();
        conns.spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    while conns.join_next().await.is_some() {}
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
        .merge(admin::router(
            shared.plane.clone(),
            shared.blocklists.clone(),
            auth,
            shared.fleet.clone(),
        ))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "no-route",
                "No such route",
                "no such route",
            )
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "method not allowed",
            )
        });
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
        Err(e) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics-unavailable",
            "Metrics could not be rendered",
            e.to_string(),
        )
        .into_response(),
    }
}
