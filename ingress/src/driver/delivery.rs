//! The store hand-off both backends share: a finished message goes to the core's sink.

use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use tempmx_store::{Accepted, MessageId, NewMessage, StoreError};

use super::core::Core;
use super::counters::bump;
use crate::session::{DeliveryFailure, PendingMessage};

/// Appends `pending` to the core's store shard (a memory append; a group commit, if any, is
/// awaited by the caller).
pub(super) fn store(
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
pub(super) fn failure_of(e: &StoreError) -> DeliveryFailure {
    match e {
        StoreError::TooLarge { .. } => DeliveryFailure::TooLarge,
        _ => DeliveryFailure::Temporary,
    }
}

/// Counts the store's verdict on a message of `bytes` bytes.
pub(super) fn count(core: &Core, bytes: u64, result: &Result<MessageId, DeliveryFailure>) {
    match result {
        Ok(_) => core.counters().message_stored(bytes),
        Err(_) => bump(&core.counters().messages_store_failed, 1),
    }
}
