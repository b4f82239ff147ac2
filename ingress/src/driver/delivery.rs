//! The store hand-off both backends share: a finished message goes to the core's sink.

use std::io;
use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use tempmx_store::{Accepted, NewMessage, StoreError};

use super::core::Core;
use crate::session::{DeliveryFailure, Session};

/// Appends the session's pending message to the core's store shard (a memory append; a
/// group commit, if any, is awaited by the caller).
pub(super) fn store(
    core: &Core,
    session: &Session,
    client_ip: IpAddr,
) -> Result<Accepted, StoreError> {
    let Some(pending) = session.pending_message() else {
        return Err(StoreError::Io(io::Error::other(
            "session signalled Deliver without a message",
        )));
    };
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
