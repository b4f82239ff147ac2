//! 1secmail compatible API under `/compat/1secmail/api/v1/?action=…`: `genRandomMailbox`,
//! `getDomainList`, `getMessages`, `readMessage`, `download`, with 1secmail's field names
//! (`id` as a number, `from`, `subject`, `date` as `YYYY-MM-DD HH:MM:SS`, `textBody`,
//! `htmlBody`, `attachments[{filename, contentType, size}]`). 1secmail has no tokens: any
//! address is readable by anyone who knows it, so the API is served only when
//! `api.access = "public"` (answering 404 otherwise), and the reserved role names
//! (abuse, postmaster, …) are never readable.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::seq::IndexedRandom;
use serde::Deserialize;
use serde_json::{Value, json};
use tempmx_store::{Mailbox, MessageId};

use super::mail::{self, Shown};
use crate::api::public::PublicState;
use crate::api::public::address::{random_local_part, validate_local_part};
use crate::api::public::config::AccessMode;
use crate::api::public::error::ApiError;

/// Where the API is served.
pub const PREFIX: &str = "/compat/1secmail";
/// Addresses one `genRandomMailbox` may ask for (1secmail's own bound).
pub const RANDOM_MAILBOXES_MAX: usize = 500;
/// Bytes of a `file` name looked at; longer ones name no attachment.
pub const FILE_NAME_BYTES_MAX: usize = 255;

/// The query of every call.
#[derive(Deserialize)]
pub struct Params {
    action: Option<String>,
    count: Option<String>,
    login: Option<String>,
    domain: Option<String>,
    id: Option<String>,
    file: Option<String>,
}

/// The routes, relative to [`PREFIX`] (1secmail's clients use both spellings).
pub fn routes() -> Router<PublicState> {
    Router::new()
        .route("/api/v1/", get(call))
        .route("/api/v1", get(call))
}

/// A 1secmail error: a status and a plain-text body, as 1secmail answers them.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn text(status: StatusCode, body: &str) -> Refusal {
    Refusal(status, body.to_owned())
}

/// `GET /api/v1/?action=…`: dispatches on `action`.
async fn call(State(state): State<PublicState>, Query(p): Query<Params>) -> Response {
    if state.config.access != AccessMode::Public {
        return ApiError::NoRoute.into_response();
    }
    match p.action.as_deref() {
        Some("genRandomMailbox") => random_mailboxes(&state, p.count.as_deref()),
        Some("getDomainList") => {
            let domains: Vec<String> = state
                .domains
                .active()
                .iter()
                .map(|d| d.to_string())
                .collect();
            axum::Json(domains).into_response()
        }
        Some("getMessages") => match mailbox(&state, &p) {
            Ok(m) => match messages(&state, &m).await {
                Ok(list) => axum::Json(list).into_response(),
                Err(e) => e.into_response(),
            },
            Err(e) => e.into_response(),
        },
        Some("readMessage") => match mailbox(&state, &p) {
            Ok(m) => match message(&state, &m, &p).await {
                Ok((_, shown)) => axum::Json(read_json(&shown)).into_response(),
                Err(e) => e.into_response(),
            },
            Err(e) => e.into_response(),
        },
        Some("download") => match mailbox(&state, &p) {
            Ok(m) => download(&state, &m, &p)
                .await
                .unwrap_or_else(|e| e.into_response()),
            Err(e) => e.into_response(),
        },
        _ => text(StatusCode::BAD_REQUEST, "Wrong action").into_response(),
    }
}

/// `genRandomMailbox&count=N`: N fresh addresses on offered domains (nothing is
/// registered: in public mode any address on a pool domain receives and is readable).
fn random_mailboxes(state: &PublicState, count: Option<&str>) -> Response {
    let n = match count {
        None | Some("") => 1,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if (1..=RANDOM_MAILBOXES_MAX).contains(&n) => n,
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("count must be 1 to {RANDOM_MAILBOXES_MAX}"),
                )
                .into_response();
            }
        },
    };
    let domains = state.domains.active();
    let mut rng = rand::rng();
    let list: Vec<String> = (0..n)
        .filter_map(|_| domains.choose(&mut rng))
        .map(|d| format!("{}@{d}", random_local_part()))
        .collect();
    if list.is_empty() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "No domain is offered").into_response();
    }
    axum::Json(list).into_response()
}

/// The mailbox of `login` and `domain`: a receiving pool domain and a local part anyone
/// may claim (reserved role names are never readable).
fn mailbox(state: &PublicState, p: &Params) -> Result<Mailbox, Refusal> {
    let (Some(login), Some(domain)) = (p.login.as_deref(), p.domain.as_deref()) else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "login and domain are required",
        ));
    };
    let bad = |e: String| text(StatusCode::BAD_REQUEST, &e);
    let local = validate_local_part(login).map_err(|e| bad(e.to_string()))?;
    let m =
        Mailbox::parse(&format!("{local}@{domain}")).map_err(|_| bad("Invalid domain".into()))?;
    if !state.domains.receives(&m.to_domain()) {
        return Err(bad("Invalid domain".into()));
    }
    Ok(m)
}

/// `getMessages`: the mailbox's messages, newest first.
async fn messages(state: &PublicState, m: &Mailbox) -> Result<Vec<Value>, Refusal> {
    let listed = mail::list(state, m)
        .await
        .map_err(|_| text(StatusCode::SERVICE_UNAVAILABLE, "Mailbox could not be read"))?;
    let mut out = Vec::with_capacity(listed.len());
    for s in &listed {
        if let Some(shown) = mail::show(state, m, s.id).await {
            out.push(json!({
                "id": shown.summary.id.0,
                "from": shown.sender().1,
                "subject": shown.subject(),
                "date": mail::date_time(shown.summary.received_at_ms),
            }));
        }
    }
    Ok(out)
}

/// The message `id` names in mailbox `m`.
async fn message(
    state: &PublicState,
    m: &Mailbox,
    p: &Params,
) -> Result<(MessageId, Shown), Refusal> {
    let not_found = || text(StatusCode::NOT_FOUND, "Message not found");
    let id =
        p.id.as_deref()
            .and_then(|i| i.parse::<u64>().ok())
            .map(MessageId)
            .ok_or_else(not_found)?;
    let shown = mail::show(state, m, id).await.ok_or_else(not_found)?;
    Ok((id, shown))
}

/// `readMessage`: 1secmail's message object (`body` is the HTML when there is some).
fn read_json(shown: &Shown) -> Value {
    let attachments: Vec<Value> = shown
        .rendered
        .attachments
        .iter()
        .map(|a| {
            json!({
                "filename": a.filename.clone().unwrap_or_default(),
                "contentType": a.content_type,
                "size": a.size,
            })
        })
        .collect();
    let html = shown.html.clone().unwrap_or_default();
    let body = if html.is_empty() {
        shown.text().to_owned()
    } else {
        html.clone()
    };
    json!({
        "id": shown.summary.id.0,
        "from": shown.sender().1,
        "subject": shown.subject(),
        "date": mail::date_time(shown.summary.received_at_ms),
        "attachments": attachments,
        "body": body,
        "textBody": shown.text(),
        "htmlBody": html,
    })
}

/// `download&file=NAME`: the first attachment of that name.
async fn download(state: &PublicState, m: &Mailbox, p: &Params) -> Result<Response, Refusal> {
    let (id, shown) = message(state, m, p).await?;
    let not_found = || text(StatusCode::NOT_FOUND, "File not found");
    let name = p
        .file
        .as_deref()
        .filter(|f| !f.is_empty() && f.len() <= FILE_NAME_BYTES_MAX)
        .ok_or_else(not_found)?;
    let index = shown
        .rendered
        .attachments
        .iter()
        .position(|a| a.filename.as_deref() == Some(name))
        .ok_or_else(not_found)?;
    let (bytes, info) = mail::attachment(state, m, id, index)
        .await
        .ok_or_else(not_found)?;
    Ok(mail::file(bytes, &info.content_type))
}
