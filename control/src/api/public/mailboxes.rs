//! Domains, mailbox creation and deletion.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use rand::seq::IndexedRandom;
use tempmx_store::{Domain, Mailbox};
use tracing::info;

use super::PublicState;
use super::access::{open, token};
use super::address::{random_local_part, validate_local_part};
use super::error::{ApiError, ApiResult, Problem};
use super::types::{
    CreateMailbox, DomainList, ExtendMailbox, MailboxCreated, MailboxExtended, TokenQuery, rfc3339,
};
use crate::api::problem::{PathParams, QueryParams};
use crate::mailboxes::{RegistryError, now_ms};

/// Random local parts tried before giving up on a (practically impossible) collision.
const RANDOM_TRIES_MAX: usize = 4;

/// Domains offered for new addresses.
#[utoipa::path(get, path = "/api/v1/domains", tag = "mailboxes",
    responses((status = 200, body = DomainList), (status = 429, body = Problem)))]
pub async fn list_domains(State(state): State<PublicState>) -> Json<DomainList> {
    Json(DomainList {
        domains: state
            .domains
            .active()
            .iter()
            .map(Domain::to_string)
            .collect(),
    })
}

/// Creates a mailbox: a random or chosen address on an offered domain.
#[utoipa::path(post, path = "/api/v1/mailboxes", tag = "mailboxes", request_body(content = CreateMailbox),
    responses((status = 201, body = MailboxCreated), (status = 400, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
pub async fn create_mailbox(
    State(state): State<PublicState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<MailboxCreated>)> {
    let req: CreateMailbox = json_body(&state, body)?;
    let domain = pick_domain(&state, req.domain.as_deref())?;
    let ttl = ttl_seconds(&state, req.ttl_seconds)?;
    let chosen = req
        .local_part
        .as_deref()
        .map(validate_local_part)
        .transpose()?;
    let tries = if chosen.is_some() {
        1
    } else {
        RANDOM_TRIES_MAX
    };
    for _ in 0..tries {
        let local = chosen.clone().unwrap_or_else(random_local_part);
        let address =
            Mailbox::new(&local, &domain).map_err(|e| ApiError::InvalidAddress(e.to_string()))?;
        let now = now_ms();
        let registered = match &state.fleet {
            // The cluster's create-if-absent also drops mail the address got before.
            Some(fleet) => fleet
                .register(&address, now + ttl * 1000, ttl)
                .await?
                .ok_or(RegistryError::Taken),
            None => state.registry.register(&address, now, now + ttl * 1000),
        };
        match registered {
            Ok(reg) => {
                // An earlier owner's webhooks must not reach the new owner.
                state.webhooks.remove_mailbox(&address);
                if let Some(store) = &state.store {
                    // Mail left by an earlier owner of this address must not reach the new one.
                    store.delete_mailbox(&address);
                    if let Err(e) = store.set_mailbox_ttl(&address, Some(ttl)) {
                        tracing::warn!(error = %e, "mailbox ttl not applied; store default ttl holds");
                    }
                }
                info!(domain = %domain, ttl, chosen = chosen.is_some(), "mailbox created");
                let max_messages = state.store_mailbox_max;
                return Ok((
                    StatusCode::CREATED,
                    Json(MailboxCreated {
                        address: address.to_string(),
                        token: reg.token,
                        expires_at: rfc3339(reg.expires_at_ms),
                        max_messages,
                    }),
                ));
            }
            Err(RegistryError::Taken) if chosen.is_none() => continue,
            Err(RegistryError::Taken) => {
                return Err(ApiError::AddressTaken(address.to_string()));
            }
            Err(RegistryError::Full(n)) => {
                return Err(ApiError::Unavailable(format!(
                    "mailbox limit reached ({n})"
                )));
            }
            Err(e @ RegistryError::Unsaved(_)) => {
                tracing::error!(error = %e, "mailbox creation refused");
                return Err(ApiError::Unavailable("mailbox could not be saved".into()));
            }
        }
    }
    Err(ApiError::Unavailable(
        "could not find a free random address".into(),
    ))
}

/// Deletes a mailbox and all its messages.
#[utoipa::path(delete, path = "/api/v1/mailboxes/{address}", tag = "mailboxes",
    params(("address" = String, Path, description = "The mailbox address"), TokenQuery),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 429, body = Problem)))]
pub async fn delete_mailbox(
    State(state): State<PublicState>,
    PathParams(address): PathParams<String>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    state.webhooks.remove_mailbox(&opened.address);
    let n = match (&state.fleet, &state.store) {
        (Some(fleet), _) => fleet.remove(&opened.address).await?,
        (None, store) => {
            state.registry.remove(&opened.address);
            store.as_ref().map_or(0, |store| {
                let n = store.delete_mailbox(&opened.address);
                if let Err(e) = store.set_mailbox_ttl(&opened.address, None) {
                    tracing::warn!(error = %e, "mailbox ttl override not cleared");
                }
                n
            })
        }
    };
    info!(messages = n, "mailbox deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Extends a mailbox's life: `ttl_seconds` are added to its expiry, within
/// `api.ttl_secs_max` from now. Rate-limited with creations (it keeps a registry slot).
/// Mail already received keeps the expiry it was stored with.
#[utoipa::path(post, path = "/api/v1/mailboxes/{address}/extend", tag = "mailboxes",
    params(("address" = String, Path, description = "The mailbox address"), TokenQuery),
    request_body(content = ExtendMailbox), security(("bearer" = [])),
    responses((status = 200, body = MailboxExtended), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn extend_mailbox(
    State(state): State<PublicState>,
    PathParams(address): PathParams<String>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<MailboxExtended>> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    let req: ExtendMailbox = json_body(&state, body)?;
    let ttl = ttl_seconds(&state, req.ttl_seconds)?;
    // Public mode opens unregistered addresses too; only registered ones have a life.
    let current = opened.expires_at_ms.ok_or(ApiError::NotFound)?;
    let now = now_ms();
    let wanted = current
        .saturating_add(ttl * 1000)
        .min(now + state.config.ttl_secs_max * 1000);
    if let Some(fleet) = &state.fleet {
        // The cluster moves the message TTL with the expiry, in the same call.
        let expires_at_ms = fleet
            .extend(&opened.address, wanted)
            .await?
            .ok_or(ApiError::NotFound)?;
        info!(ttl, "mailbox extended");
        return Ok(Json(MailboxExtended {
            address: opened.address.to_string(),
            expires_at: rfc3339(expires_at_ms),
        }));
    }
    let expires_at_ms = match state.registry.extend(&opened.address, now, wanted) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(ApiError::NotFound),
        Err(e) => {
            tracing::error!(error = %e, "mailbox extension refused");
            return Err(ApiError::Unavailable("mailbox could not be saved".into()));
        }
    };
    // Mail arriving from now on lives as long as the mailbox.
    let left = expires_at_ms.saturating_sub(now).div_ceil(1000);
    if let Some(Err(e)) = state
        .store
        .as_ref()
        .map(|store| store.set_mailbox_ttl(&opened.address, Some(left)))
    {
        tracing::warn!(error = %e, "mailbox ttl not extended; new mail keeps the old ttl");
    }
    info!(ttl, "mailbox extended");
    Ok(Json(MailboxExtended {
        address: opened.address.to_string(),
        expires_at: rfc3339(expires_at_ms),
    }))
}

/// A JSON request body of type `T`; an empty or blank body is `T::default()`.
pub(super) fn json_body<T: Default + serde::de::DeserializeOwned>(
    state: &PublicState,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<T> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge(state.config.body_bytes_max),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// A requested lifetime, `api.ttl_secs_default` if absent; 1 to `api.ttl_secs_max`.
fn ttl_seconds(state: &PublicState, wanted: Option<u64>) -> ApiResult<u64> {
    let ttl = wanted.unwrap_or(state.config.ttl_secs_default);
    if ttl == 0 || ttl > state.config.ttl_secs_max {
        return Err(ApiError::BadRequest(format!(
            "ttl_seconds must be 1 to {}",
            state.config.ttl_secs_max
        )));
    }
    Ok(ttl)
}

fn pick_domain(state: &PublicState, wanted: Option<&str>) -> ApiResult<Domain> {
    let active = state.domains.active();
    match wanted {
        Some(w) => {
            let unknown = || ApiError::UnknownDomain(w.to_owned());
            let w = Domain::parse(w).map_err(|_| unknown())?;
            active.into_iter().find(|d| *d == w).ok_or_else(unknown)
        }
        None => active
            .choose(&mut rand::rng())
            .cloned()
            .ok_or_else(|| ApiError::Unavailable("no domain is offered right now".into())),
    }
}
