//! Taking a mailbox for a compatible API's account, session or inbox: registered in the
//! one registry (so tokens, registered-only SMTP and the admin counts see it; in fleet
//! mode the cluster's, so every node sees it) for `api.ttl_secs_max`, with mail left by
//! an earlier owner of the address removed.

use rand::seq::IndexedRandom;
use tempmx_store::{Domain, MailRead, Mailbox};

use crate::api::public::PublicState;
use crate::api::public::address::random_local_part;
use crate::mailboxes::{Registered, RegistryError, now_ms};

/// Random local parts tried before giving up on a (practically impossible) collision.
const RANDOM_TRIES_MAX: usize = 4;

/// Registers `mailbox` for the longest lifetime the API allows.
pub async fn claim(state: &PublicState, mailbox: &Mailbox) -> Result<Registered, RegistryError> {
    let now = now_ms();
    let ttl = state.config.ttl_secs_max;
    if let Some(fleet) = &state.fleet {
        // The cluster's create-if-absent also drops mail the address got before.
        return fleet
            .register(mailbox, now + ttl * 1000, ttl)
            .await
            .map_err(|e| RegistryError::Unsaved(e.to_string()))?
            .ok_or(RegistryError::Taken);
    }
    let reg = state.registry.register(mailbox, now, now + ttl * 1000)?;
    if let Some(store) = &state.store {
        // Mail left by an earlier owner of this address must not reach the new one.
        store.delete_mailbox(mailbox);
        if let Err(e) = store.set_mailbox_ttl(mailbox, Some(ttl)) {
            tracing::warn!(error = %e, "mailbox ttl not applied; store default ttl holds");
        }
    }
    Ok(reg)
}

/// Registers a fresh address `prefix` + random part on `domain` (a random offered domain
/// when `None`); `None` when no domain is offered or every try collided.
pub async fn claim_random(
    state: &PublicState,
    prefix: &str,
    domain: Option<Domain>,
) -> Result<Option<(Mailbox, Registered)>, RegistryError> {
    let Some(domain) = domain.or_else(|| state.domains.active().choose(&mut rand::rng()).cloned())
    else {
        return Ok(None);
    };
    for _ in 0..RANDOM_TRIES_MAX {
        let local = format!("{prefix}{}", random_local_part());
        let Ok(mailbox) = Mailbox::new(&local, &domain) else {
            return Ok(None);
        };
        match claim(state, &mailbox).await {
            Ok(reg) => return Ok(Some((mailbox, reg))),
            Err(RegistryError::Taken) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Removes a mailbox a compatible API had claimed: its mail, registration and TTL.
pub async fn release(state: &PublicState, mailbox: &Mailbox) {
    state.webhooks.remove_mailbox(mailbox);
    if let Some(fleet) = &state.fleet {
        if let Err(e) = fleet.remove(mailbox).await {
            tracing::warn!(error = %e, "fleet mailbox not released; it lapses at its expiry");
        }
        return;
    }
    state.registry.remove(mailbox);
    if let Some(store) = &state.store {
        store.delete_mailbox(mailbox);
        if let Err(e) = store.set_mailbox_ttl(mailbox, None) {
            tracing::warn!(error = %e, "mailbox ttl override not cleared");
        }
    }
}

/// Whether `mailbox` is registered and live (on any node, in fleet mode); a cluster that
/// does not answer counts as not live (the caller answers as for an unknown mailbox).
pub async fn is_live(state: &PublicState, mailbox: &Mailbox) -> bool {
    expires_at(state, mailbox).await.is_some()
}

/// Expiry of a live registered `mailbox` (ms since epoch).
pub async fn expires_at(state: &PublicState, mailbox: &Mailbox) -> Option<u64> {
    match &state.fleet {
        Some(fleet) => fleet.expires_at(mailbox).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "fleet registry lookup failed");
            None
        }),
        None => state.registry.expires_at(mailbox, now_ms()),
    }
}

/// Whether registry token `token` opens `mailbox` now.
pub async fn verify(state: &PublicState, mailbox: &Mailbox, token: &str) -> bool {
    match &state.fleet {
        Some(fleet) => fleet
            .verify(mailbox, token)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "fleet registry lookup failed"))
            .is_ok_and(|r| r.is_some()),
        None => state.registry.verify(mailbox, token, now_ms()),
    }
}

/// Whether `mailbox` shows message `id` (read through the backend in force).
pub async fn contains(state: &PublicState, mailbox: &Mailbox, id: tempmx_store::MessageId) -> bool {
    match &state.fleet {
        Some(_) => state
            .mail
            .read_for(mailbox, id, |_| ())
            .await
            .is_ok_and(|r| r.is_some()),
        None => state
            .store
            .as_ref()
            .is_some_and(|s| s.contains(mailbox, id)),
    }
}

/// Deletes message `id` of `mailbox`; whether it was there.
pub async fn delete_message(
    state: &PublicState,
    mailbox: &Mailbox,
    id: tempmx_store::MessageId,
) -> bool {
    state
        .mail
        .delete_message(mailbox, id)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "message delete failed"))
        .unwrap_or(false)
}
