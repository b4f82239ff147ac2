//! Waiting for mail the way test scripts want it: one request held until a matching
//! message is there or the timeout ends (204). It is admitted like a live-push
//! connection (per mailbox and per client IP) and woken by the same store subscription.

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tempmx_store::{MailRead, Mailbox, MessageId, MessageSummary};
use utoipa::IntoParams;

use super::PublicState;
use super::access::{open, token};
use super::error::{ApiError, ApiResult, Problem};
use super::guard::ClientIp;
use super::messages::item;
use super::push::Feed;
use super::subscribers::Transport;
use super::types::MessageItem;

/// Longest wait a request may ask for, in seconds.
pub const WAIT_SECS_MAX: u64 = 120;
/// Wait when the request names none, in seconds.
pub const WAIT_SECS_DEFAULT: u64 = 30;
/// Bytes of a `from` or `subject` filter.
pub const FILTER_BYTES_MAX: usize = 256;

/// `messages/wait` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds to wait, 0 to 120 (default 30).
    pub timeout: Option<u64>,
    /// Only messages whose decoded `From:` contains this (any case).
    pub from: Option<String>,
    /// Only messages whose decoded `Subject:` contains this (any case).
    pub subject: Option<String>,
    /// Only messages newer than this id; the oldest such match is returned. Without it,
    /// the newest stored match is returned at once, else the next one to arrive.
    pub after: Option<String>,
    /// The mailbox token, when not sent as a header.
    pub token: Option<String>,
}

struct Filter {
    from: Option<String>,
    subject: Option<String>,
    after: Option<MessageId>,
}

impl Filter {
    fn matches(&self, item: &MessageItem, id: MessageId) -> bool {
        let has = |hay: &str, needle: &Option<String>| {
            needle
                .as_ref()
                .is_none_or(|n| hay.to_lowercase().contains(n.as_str()))
        };
        self.after.is_none_or(|a| id > a)
            && has(&item.from, &self.from)
            && has(&item.subject, &self.subject)
    }
}

/// Holds the request until a matching message is stored, then answers it (with its
/// verifications); 204 when the timeout ends first.
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/messages/wait", tag = "messages",
    params(("address" = String, Path, description = "The mailbox address"), WaitQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MessageItem), (status = 204, description = "No matching message before the timeout"),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
pub async fn wait(
    State(state): State<PublicState>,
    Extension(ip): Extension<ClientIp>,
    Path(address): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    let secs = q.timeout.unwrap_or(WAIT_SECS_DEFAULT);
    if secs > WAIT_SECS_MAX {
        return Err(ApiError::BadRequest(format!(
            "timeout must be 0 to {WAIT_SECS_MAX} seconds"
        )));
    }
    let filter = Filter {
        from: filter_text("from", q.from)?,
        subject: filter_text("subject", q.subject)?,
        after: q
            .after
            .as_deref()
            .map(|s| {
                s.parse::<MessageId>()
                    .map_err(|_| ApiError::BadRequest(format!("`{s}` is not a message id")))
            })
            .transpose()?,
    };
    // Subscribe before looking at what is stored, so nothing falls in between.
    let mut feed = Feed::start(
        &state,
        opened.address.clone(),
        ip,
        Transport::Wait,
        None,
        opened.expires_at_ms,
    )
    .await?;
    if let Some(found) = stored_match(&state, &opened.address, &filter).await? {
        return Ok(Json(found).into_response());
    }
    let next = async {
        while let Some(s) = feed.next().await {
            let it = item(&state, &opened.address, &s).await;
            if filter.matches(&it, s.id) {
                return Some(it);
            }
        }
        None
    };
    match tokio::time::timeout(Duration::from_secs(secs), next).await {
        Ok(Some(found)) => Ok(Json(found).into_response()),
        Ok(None) | Err(_) => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The stored message that answers at once: the oldest match above `after`, or the
/// newest match when there is no `after`.
async fn stored_match(
    state: &PublicState,
    mailbox: &Mailbox,
    filter: &Filter,
) -> ApiResult<Option<MessageItem>> {
    // Newest first; a mailbox holds at most `store_mailbox_max` messages.
    let stored: Vec<MessageSummary> = state
        .mail
        .list(mailbox, None, state.store_mailbox_max)
        .await?;
    let pick = |s: &&MessageSummary| filter.matches(&MessageItem::from(*s), s.id);
    let found = match filter.after {
        Some(_) => stored.iter().rev().find(pick),
        None => stored.iter().find(pick),
    };
    Ok(match found {
        Some(s) => Some(item(state, mailbox, s).await),
        None => None,
    })
}

fn filter_text(name: &str, v: Option<String>) -> ApiResult<Option<String>> {
    match v {
        Some(v) if v.len() > FILTER_BYTES_MAX => Err(ApiError::BadRequest(format!(
            "{name} must be at most {FILTER_BYTES_MAX} bytes"
        ))),
        Some(v) if v.is_empty() => Ok(None),
        v => Ok(v.map(|v| v.to_lowercase())),
    }
}
