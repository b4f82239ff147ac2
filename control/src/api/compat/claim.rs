//! Taking a mailbox for a compatible API's account, session or inbox: registered in the
//! one registry (so tokens, registered-only SMTP and the admin counts see it) for
//! `api.ttl_secs_max`, with mail left by an earlier owner of the address removed.

use rand::seq::IndexedRandom;
use tempmx_store::{Domain, Mailbox};

use crate::api::public::PublicState;
use crate::api::public::address::random_local_part;
use crate::mailboxes::{Registered, RegistryError, now_ms};

/// Random local parts tried before giving up on a (practically impossible) collision.
const RANDOM_TRIES_MAX: usize = 4;

/// Registers `mailbox` for the longest lifetime the API allows.
pub fn claim(state: &PublicState, mailbox: &Mailbox) -> Result<Registered, RegistryError> {
    let now = now_ms();
    let ttl = state.config.ttl_secs_max;
    let reg = state.registry.register(mailbox, now, now + ttl * 1000)?;
    // Mail left by an earlier owner of this address must not reach the new one.
    state.store.delete_mailbox(mailbox);
    if let Err(e) = state.store.set_mailbox_ttl(mailbox, Some(ttl)) {
        tracing::warn!(error = %e, "mailbox ttl not applied; store default ttl holds");
    }
    Ok(reg)
}

/// Registers a fresh address `prefix` + random part on `domain` (a random offered domain
/// when `None`); `None` when no domain is offered or every try collided.
pub fn claim_random(
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
        match claim(state, &mailbox) {
            Ok(reg) => return Ok(Some((mailbox, reg))),
            Err(RegistryError::Taken) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Removes a mailbox a compatible API had claimed: its mail, registration and TTL.
pub fn release(state: &PublicState, mailbox: &Mailbox) {
    state.store.delete_mailbox(mailbox);
    state.registry.remove(mailbox);
    if let Err(e) = state.store.set_mailbox_ttl(mailbox, None) {
        tracing::warn!(error = %e, "mailbox ttl override not cleared");
    }
}
