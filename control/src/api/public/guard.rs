//! The middleware every public request passes: client IP, header-size bound, per-IP
//! rate limits (creation and reads separately), and security headers on every answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::PublicState;
use super::error::ApiError;
use super::ratelimit::Class;

/// The client address the limits key on, put into request extensions.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// Runs the checks, then the handler, then adds the security headers.
pub async fn guard(State(state): State<PublicState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&state, &req);
    req.extensions_mut().insert(ClientIp(ip));
    let limited = match check(&state, &req) {
        Ok(Some(class)) => state
            .limits
            .take(class, ip)
            .await
            .map_err(ApiError::RateLimited),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    let mut resp = match limited {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    resp
}

/// Checks the header bound; gives the rate-limit class the request is under, if any.
fn check(state: &PublicState, req: &Request) -> Result<Option<Class>, ApiError> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > state.config.headers_bytes_max {
        return Err(ApiError::HeadersTooLarge(state.config.headers_bytes_max));
    }
    let path = req.uri().path();
    let compat = path.starts_with(crate::api::compat::PREFIX);
    if !(path.starts_with("/api/") || compat) || path == "/api/v1/openapi.json" {
        return Ok(None);
    }
    let holds_slot = path == "/api/v1/mailboxes" || path.ends_with("/extend");
    let creates = (req.method() == Method::POST && holds_slot)
        || crate::api::compat::creates(req.method(), path, req.uri().query());
    Ok(Some(if creates { Class::Create } else { Class::Read }))
}

/// The peer address, or the configured proxy header's last hop when set and valid.
fn client_ip(state: &PublicState, req: &Request) -> IpAddr {
    if let Some(name) = &state.config.client_ip_header {
        let forwarded = req
            .headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    // Without connect info (a server not started with it) all clients share one bucket.
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}
