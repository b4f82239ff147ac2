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

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
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
