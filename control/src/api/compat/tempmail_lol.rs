//! tempmail.lol v2 compatible API under `/compat/tempmail-lol/v2`: `POST /inbox/create`
//! (optional JSON `{domain, prefix, community}`) answers `{address, token}`, and
//! `GET /inbox?token=` answers `{emails: [{from, to, subject, body, html, date, ip}],
//! expired}` with `date` in ms since the epoch and `html` null for text-only mail.
//!
//! The token carries its inbox: `base64url(address) "." registry token`, so no table of
//! its own is kept and inboxes live exactly as long as their registry entry (persisted
//! with the registry when a data directory is set).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use tempmx_store::{Domain, Mailbox};

use super::claim::{claim_random, verify};
use super::mail;
use crate::api::public::PublicState;
use crate::api::public::address::validate_local_part;
use crate::mailboxes::RegistryError;

/// Where the API is served.
pub const PREFIX: &str = "/compat/tempmail-lol/v2";
/// Characters of a requested address prefix (the random part follows it).
pub const ADDRESS_PREFIX_CHARS_MAX: usize = 32;
/// Bytes of a token looked at; longer ones open nothing.
pub const TOKEN_BYTES_MAX: usize = 512;

/// The routes, relative to [`PREFIX`].
pub fn routes() -> Router<PublicState> {
    Router::new()
        .route("/inbox/create", post(create))
        .route("/inbox", get(inbox))
}

/// `POST /inbox/create`'s optional body.
#[derive(Default, Deserialize)]
struct CreateOptions {
    domain: Option<String>,
    prefix: Option<String>,
    /// Community ("rush mode") domains: every tempmx domain is one, so it changes nothing.
    #[serde(rename = "community")]
    _community: Option<bool>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// `POST /inbox/create`.
async fn create(State(state): State<PublicState>, body: Bytes) -> Response {
    let opts: CreateOptions = if body.iter().all(u8::is_ascii_whitespace) {
        CreateOptions::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(o) => o,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")),
        }
    };
    let domain = match opts.domain.as_deref() {
        None => None,
        Some(d) => match Domain::parse(d)
            .ok()
            .filter(|d| state.domains.active().contains(d))
        {
            Some(d) => Some(d),
            None => return error(StatusCode::BAD_REQUEST, "domain is not offered"),
        },
    };
    let prefix = match opts.prefix.as_deref().filter(|p| !p.is_empty()) {
        None => String::new(),
        Some(p) if p.chars().count() > ADDRESS_PREFIX_CHARS_MAX => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("prefix must be at most {ADDRESS_PREFIX_CHARS_MAX} characters"),
            );
        }
        Some(p) => match validate_local_part(p) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        },
    };
    match claim_random(&state, &prefix, domain).await {
        Ok(Some((mailbox, reg))) => {
            let token = format!("{}.{}", URL_SAFE_NO_PAD.encode(mailbox.as_str()), reg.token);
            let body = json!({ "address": mailbox.as_str(), "token": token });
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Ok(None) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no address could be created",
        ),
        Err(RegistryError::Full(n)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("inbox limit reached ({n})"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "tempmail.lol inbox creation refused");
            error(StatusCode::SERVICE_UNAVAILABLE, "inbox could not be saved")
        }
    }
}

/// The inbox a token opens, if it is live.
async fn opened(state: &PublicState, token: &str) -> Option<Mailbox> {
    if token.len() > TOKEN_BYTES_MAX {
        return None;
    }
    let (address, secret) = token.split_once('.')?;
    let address = String::from_utf8(URL_SAFE_NO_PAD.decode(address).ok()?).ok()?;
    let mailbox = Mailbox::parse(&address).ok()?;
    verify(state, &mailbox, secret).await.then_some(mailbox)
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /inbox?token=`: every message, oldest first; an unknown or expired token is
/// `{emails: [], expired: true}` as tempmail.lol answers it.
async fn inbox(State(state): State<PublicState>, Query(q): Query<TokenQuery>) -> Response {
    let opened = match q.token.as_deref() {
        Some(t) => opened(&state, t).await,
        None => None,
    };
    let Some(mailbox) = opened else {
        return axum::Json(json!({ "emails": [], "expired": true })).into_response();
    };
    let Ok(listed) = mail::list(&state, &mailbox).await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "inbox could not be read");
    };
    let mut emails: Vec<Value> = Vec::with_capacity(listed.len());
    for s in &listed {
        if let Some(shown) = mail::show(&state, &mailbox, s.id).await {
            emails.push(json!({
                "from": shown.sender().1,
                "to": mailbox.as_str(),
                "subject": shown.subject(),
                "body": shown.text(),
                "html": shown.html,
                "date": shown.summary.received_at_ms,
                "ip": shown.client_ip,
            }));
        }
    }
    emails.reverse();
    axum::Json(json!({ "emails": emails, "expired": false })).into_response()
}
