//! The write interface the SMTP ingress calls once per accepted message.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::address::Mailbox;
use crate::error::StoreError;
use crate::record::AuthResult;

/// A time-ordered, unique message id (milliseconds since the epoch in the high bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

impl MessageId {
    /// The id as 16 lowercase hex digits, as `Display` writes it, without a formatter (the
    /// 250 reply of every message carries it).
    pub fn hex(self) -> [u8; 16] {
        let mut out = [0; 16];
        // Eight bytes make exactly sixteen digits: the slice always fits.
        let fits = hex::encode_to_slice(self.0.to_be_bytes(), &mut out);
        debug_assert!(fits.is_ok());
        out
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&self.hex()).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for MessageId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(MessageId)
    }
}

/// TLS parameters of the session a message arrived on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSummary {
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// One accepted message as the ingress hands it to the store.
#[derive(Debug)]
pub struct NewMessage<'a> {
    /// When the final reply was due, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The connecting client's address.
    pub client_ip: IpAddr,
    /// The EHLO/HELO name the client gave.
    pub helo: &'a str,
    /// The envelope sender (reverse path); empty for the null sender `<>`.
    pub mail_from: &'a str,
    /// Recipient mailboxes, deduplicated.
    pub recipients: &'a [Mailbox],
    /// TLS parameters, if the session ran over TLS.
    pub tls: Option<&'a TlsSummary>,
    /// Header lines added by us (Authentication-Results:, Received:), CRLF-terminated.
    pub trace_headers: &'a [u8],
    /// Authentication results to keep with the record (empty when authentication is off).
    pub auth: &'a [AuthResult],
    /// The message as received after dot-unstuffing (RFC 5322 headers and body).
    pub body: &'a [u8],
}

/// Whether an accepted message is already durable or waits for a group commit.
#[derive(Debug)]
pub enum Commit {
    /// Stored under the configured policy; the 250 may go out now.
    Done,
    /// Waiting for an fsync that covers the record; send the 250 once this resolves to `Ok`.
    Pending(tokio::sync::oneshot::Receiver<Result<(), StoreError>>),
}

/// The store's answer to [`MessageSink::accept`].
#[derive(Debug)]
pub struct Accepted {
    /// The id the message is stored under.
    pub id: MessageId,
    /// When the 250 may be sent.
    pub commit: Commit,
}

/// Per-core write side of the store; one instance per ingress core, never shared.
pub trait MessageSink {
    /// Stores one message for all its recipients.
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_what_display_writes() {
        // Goal: the formatter-free hex of the 250 reply is the id's usual text. Method: ids
        // at the edges and in between, against `{:016x}`.
        for id in [0, 1, 0xf, 0x1a25_2472_61f0_1000, u64::MAX >> 1, u64::MAX] {
            let hex = MessageId(id).hex();
            assert_eq!(std::str::from_utf8(&hex), Ok(format!("{id:016x}").as_str()));
            assert_eq!(MessageId(id).to_string(), format!("{id:016x}"));
        }
    }
}
