//! The store hand-off both backends share: a finished message goes to the core's sink.

use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use tempmx_store::{Accepted, Commit, MessageId, NewMessage, StoreError};
use tokio::sync::oneshot;

use super::core::Core;
use super::counters::bump;
use crate::session::{DeliveryFailure, PendingMessage};

/// A message handed to the store: its verdict, or a group commit to wait for.
pub(super) enum Handed {
    /// Stored (and counted), or refused.
    Now(Result<MessageId, DeliveryFailure>),
    /// Appended as `id`; [`committed`] tells the verdict once `done` fires.
    Pending {
        /// The id the store gave it.
        id: MessageId,
        /// Its size, counted once the commit is done.
        bytes: u64,
        /// The store's commit signal.
        done: oneshot::Receiver<Result<(), StoreError>>,
    },
}

/// Hands `pending` to the core's store shard (a memory append) and counts a verdict known now.
pub(super) fn hand_off(core: &Core, pending: &PendingMessage<'_>, client_ip: IpAddr) -> Handed {
    let bytes = pending.body.len() as u64;
    let result = match store(core, pending, client_ip) {
        Ok(Accepted {
            id,
            commit: Commit::Done,
        }) => Ok(id),
        Ok(Accepted {
            id,
            commit: Commit::Pending(done),
        }) => return Handed::Pending { id, bytes, done },
        Err(e) => {
            tracing::warn!(core = core.id, error = %e, "store refused message");
            Err(failure_of(&e))
        }
    };
    count(core, bytes, &result);
    Handed::Now(result)
}

/// The verdict on message `id` once its group commit ended (`None`: it never completed, or
/// not in time); counted.
pub(super) fn committed(
    core: &Core,
    id: MessageId,
    bytes: u64,
    outcome: Option<Result<(), StoreError>>,
) -> Result<MessageId, DeliveryFailure> {
    let result = match outcome {
        Some(Ok(())) => Ok(id),
        Some(Err(e)) => {
            tracing::warn!(core = core.id, error = %e, "store commit failed");
            Err(failure_of(&e))
        }
        None => {
            tracing::warn!(core = core.id, "store commit did not complete");
            Err(DeliveryFailure::Temporary)
        }
    };
    count(core, bytes, &result);
    result
}

/// Appends `pending` to the core's store shard.
fn store(
    core: &Core,
    pending: &PendingMessage<'_>,
    client_ip: IpAddr,
) -> Result<Accepted, StoreError> {
    let received_at_ms = pending
        .received_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let msg = NewMessage {
        received_at_ms,
        client_ip,
        helo: pending.helo,
        mail_from: pending.mail_from,
        recipients: pending.recipients,
        tls: pending.tls,
        trace_headers: pending.trace_headers,
        auth: pending.auth,
        body: pending.body,
    };
    core.sink.borrow_mut().accept(&msg)
}

/// How a store error is answered.
fn failure_of(e: &StoreError) -> DeliveryFailure {
    match e {
        StoreError::TooLarge { .. } => DeliveryFailure::TooLarge,
        _ => DeliveryFailure::Temporary,
    }
}

/// Counts the store's verdict on a message of `bytes` bytes.
fn count(core: &Core, bytes: u64, result: &Result<MessageId, DeliveryFailure>) {
    match result {
        Ok(_) => core.counters().message_stored(bytes),
        Err(_) => bump(&core.counters().messages_store_failed, 1),
    }
}
