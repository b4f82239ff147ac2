//! Webhook registration (`/api/v1/mailboxes/{address}/webhooks`) and the per-mailbox
//! listener that turns each new message into deliveries on the node's queue.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use tempmx_store::{Event, Mailbox, MessageSummary, Subscription};
use tracing::{info, warn};

use super::PublicState;
use super::access::{open, token};
use super::error::{ApiError, ApiResult, Problem};
use super::mailboxes::json_body;
use super::messages::item;
use super::types::{CreateWebhook, TokenQuery, WebhookCreated, WebhookItem, WebhookList};
use crate::api::problem::{PathParams, QueryParams};
use crate::mailboxes::now_ms;
use crate::webhooks::deliver::Job;
use crate::webhooks::fleet::FleetHooks;
use crate::webhooks::target::{Target, TargetError};
use crate::webhooks::{AddError, Hook};

/// How often a listener checks that its mailbox still exists.
const MAILBOX_CHECK: Duration = Duration::from_secs(1);

/// Registers a webhook; its secret is shown only in this reply.
#[utoipa::path(post, path = "/api/v1/mailboxes/{address}/webhooks", tag = "webhooks",
    params(("address" = String, Path, description = "The mailbox address"), TokenQuery),
    request_body(content = CreateWebhook), security(("bearer" = [])),
    responses((status = 201, body = WebhookCreated), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn create_webhook(
    State(state): State<PublicState>,
    PathParams(address): PathParams<String>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookCreated>)> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    // Only a registered mailbox has a life the hooks can end with.
    if opened.expires_at_ms.is_none() {
        return Err(ApiError::NotFound);
    }
    let req: CreateWebhook = json_body(&state, body)?;
    let hooks = &state.webhooks;
    let target = Target::parse(&req.url, hooks.config().url_bytes_max).map_err(invalid)?;
    let within = Duration::from_millis(hooks.config().attempt_timeout_ms);
    target
        .resolve(hooks.allow(), within)
        .await
        .map_err(invalid)?;
    if let Some(fleet) = &state.fleet {
        // Kept in the cluster; the node that accepts a message delivers it.
        let max = hooks.config().webhooks_per_mailbox_max;
        let hook = FleetHooks(fleet.0.clone())
            .add(&opened.address, target, max)
            .await?
            .ok_or(ApiError::NotFound)?
            .map_err(|AddError::Full(n)| ApiError::WebhookLimit(n))?;
        info!(webhook = %hook.id, "webhook registered in the fleet");
        return Ok((
            StatusCode::CREATED,
            Json(WebhookCreated {
                id: hook.id,
                url: hook.target.url.to_string(),
                secret: hook.secret,
            }),
        ));
    }
    // Subscribed before the hook exists, so no message falls between.
    let sub = state
        .local_store()?
        .subscribe(&opened.address)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let (hook, fresh) = hooks
        .add(&opened.address, target)
        .map_err(|AddError::Full(n)| ApiError::WebhookLimit(n))?;
    if let Some(generation) = fresh {
        tokio::spawn(listen(
            state.clone(),
            opened.address.clone(),
            sub,
            generation,
        ));
    }
    info!(webhook = %hook.id, "webhook registered");
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            id: hook.id,
            url: hook.target.url.to_string(),
            secret: hook.secret,
        }),
    ))
}

/// Lists a mailbox's webhooks (without their secrets).
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/webhooks", tag = "webhooks",
    params(("address" = String, Path, description = "The mailbox address"), TokenQuery),
    security(("bearer" = [])),
    responses((status = 200, body = WebhookList), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 429, body = Problem)))]
pub async fn list_webhooks(
    State(state): State<PublicState>,
    PathParams(address): PathParams<String>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<WebhookList>> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    let hooks = match &state.fleet {
        Some(fleet) => {
            let url_max = state.webhooks.config().url_bytes_max;
            FleetHooks(fleet.0.clone())
                .list(&opened.address, url_max)
                .await?
        }
        None => state.webhooks.list(&opened.address),
    };
    let webhooks = hooks
        .into_iter()
        .map(|h| WebhookItem {
            url: h.target.url.to_string(),
            id: h.id,
        })
        .collect();
    Ok(Json(WebhookList { webhooks }))
}

/// Removes a webhook.
#[utoipa::path(delete, path = "/api/v1/mailboxes/{address}/webhooks/{id}", tag = "webhooks",
    params(("address" = String, Path, description = "The mailbox address"),
        ("id" = String, Path, description = "Webhook id"), TokenQuery),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 429, body = Problem)))]
pub async fn delete_webhook(
    State(state): State<PublicState>,
    PathParams((address, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    let removed = match &state.fleet {
        Some(fleet) => {
            FleetHooks(fleet.0.clone())
                .remove(&opened.address, &id)
                .await?
        }
        None => state.webhooks.remove(&opened.address, &id),
    };
    if !removed {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

fn invalid(e: TargetError) -> ApiError {
    ApiError::InvalidWebhook(e.to_string())
}

/// Queues a delivery per hook for each new message, until the hooks are removed, the
/// mailbox expires or is deleted (the hooks go with it), or the server stops.
async fn listen(state: PublicState, mailbox: Mailbox, sub: Subscription, generation: u64) {
    let mut closing = state.closing.subscribe();
    loop {
        let event = tokio::select! {
            ev = sub.recv() => Some(ev),
            () = tokio::time::sleep(MAILBOX_CHECK) => None,
            _ = closing.wait_for(|c| *c) => return,
        };
        if state.registry.expires_at(&mailbox, now_ms()).is_none() {
            state.webhooks.remove_mailbox(&mailbox);
            return;
        }
        let Some(hooks) = state.webhooks.served(&mailbox, generation) else {
            return;
        };
        match event {
            Some(Event::New(s)) => enqueue(&state, &mailbox, &s, &hooks).await,
            Some(Event::Lagged { lost }) => {
                warn!(lost, "webhook listener lagged; deliveries lost");
                state
                    .webhooks
                    .count_dropped(lost.saturating_mul(hooks.len() as u64));
            }
            None => {}
        }
    }
}

/// Queues one delivery per hook; a full queue drops and counts, never waits.
pub(crate) async fn enqueue(
    state: &PublicState,
    mailbox: &Mailbox,
    s: &MessageSummary,
    hooks: &[Hook],
) {
    let message = item(state, mailbox, s).await;
    let body = serde_json::json!({ "mailbox": mailbox.as_str(), "message": message });
    let body = Bytes::from(body.to_string());
    for hook in hooks {
        let job = Job {
            target: hook.target.clone(),
            secret: hook.secret.clone(),
            body: body.clone(),
        };
        if !state.webhooks.queue.push(job) {
            state.webhooks.count_dropped(1);
        }
    }
}
