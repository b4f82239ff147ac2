//! Owned read-side types handed to the HTTP API.

use crate::record::{ArchivedMessageRecord, AuthResult};
use crate::sink::{MessageId, TlsSummary};

/// What a listing shows of one message.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageSummary {
    /// Message id.
    pub id: MessageId,
    /// The mailbox this summary was listed for.
    pub mailbox: String,
    /// `From:` header as received (undecoded).
    pub from: String,
    /// `Subject:` header as received (undecoded).
    pub subject: String,
    /// `Date:` header as received.
    pub date: String,
    /// `Message-ID:` header as received.
    pub message_id: String,
    /// Accepted at (ms since epoch).
    pub received_at_ms: u64,
    /// Expires at (ms since epoch).
    pub expires_at_ms: u64,
    /// Raw size in bytes.
    pub size: u64,
    /// Whether a part is marked as attachment.
    pub has_attachments: bool,
    /// Authentication results (empty when authentication is off).
    pub auth: Vec<AuthResult>,
}

impl MessageSummary {
    /// Builds a summary from an archived record.
    pub fn from_archived(a: &ArchivedMessageRecord, mailbox: &str) -> Self {
        Self {
            id: MessageId(a.id.to_native()),
            mailbox: mailbox.to_string(),
            from: a.headers.from.to_string(),
            subject: a.headers.subject.to_string(),
            date: a.headers.date.to_string(),
            message_id: a.headers.message_id.to_string(),
            received_at_ms: a.received_at_ms.to_native(),
            expires_at_ms: a.expires_at_ms.to_native(),
            size: a.headers.size.to_native(),
            has_attachments: a.headers.has_attachments,
            auth: a
                .auth
                .iter()
                .map(|r| AuthResult {
                    method: r.method.to_string(),
                    result: r.result.to_string(),
                    props: r.props.to_string(),
                })
                .collect(),
        }
    }
}

/// A whole message: summary, envelope and raw bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageView {
    /// Listing fields (`mailbox` is the first recipient).
    pub summary: MessageSummary,
    /// All recipient mailboxes of the record.
    pub mailboxes: Vec<String>,
    /// Envelope sender; empty for `<>`.
    pub mail_from: String,
    /// Client IP address as text.
    pub client_ip: String,
    /// EHLO/HELO name.
    pub helo: String,
    /// TLS parameters, if any.
    pub tls: Option<TlsSummary>,
    /// The RFC 5322 message: trace headers then the message as received.
    pub raw: Vec<u8>,
}
