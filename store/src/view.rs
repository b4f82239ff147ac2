//! Read-side types handed to the HTTP API: owned summaries and views, and messages
//! borrowed in place.

use std::borrow::Cow;

use crate::frame;
use crate::record::{ArchivedMessageRecord, AuthResult};
use crate::sink::{MessageId, TlsSummary};
use crate::summary;

/// What a listing shows of one message.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageSummary {
    /// Message id.
    pub id: MessageId,
    /// The mailbox this summary was listed for.
    pub mailbox: String,
    /// `From:` decoded at ingest: its first address as `Name <address>`, `address` or
    /// `Name` (empty when the message has none; see `summary::split_from`).
    pub from: String,
    /// `Subject:` decoded at ingest.
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
    /// Builds a summary from an archived record of the current format.
    pub fn from_archived(a: &ArchivedMessageRecord, mailbox: &str) -> Self {
        Self::from_frame(a, frame::FORMAT_VERSION, mailbox)
    }

    /// Builds a summary from an archived record of format `version`: a version 2 record
    /// holds `From:` and `Subject:` as received, so they are decoded here.
    pub fn from_frame(a: &ArchivedMessageRecord, version: u16, mailbox: &str) -> Self {
        let (from, subject) = if version < 3 {
            summary::decoded(&a.headers.from, &a.headers.subject)
        } else {
            (a.headers.from.to_string(), a.headers.subject.to_string())
        };
        Self {
            id: MessageId(a.id.to_native()),
            mailbox: mailbox.to_string(),
            from,
            subject,
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

/// A message borrowed in place under its shard's read lock (see `Store::read_for`): the
/// envelope and raw bytes are read from the record, not copied out.
pub struct MessageRef<'a> {
    summary: MessageSummary,
    record: &'a ArchivedMessageRecord,
    raw: Cow<'a, [u8]>,
}

impl<'a> MessageRef<'a> {
    /// Wraps a record of format `version`, listed for `mailbox`, with its raw bytes.
    pub(crate) fn new(
        record: &'a ArchivedMessageRecord,
        version: u16,
        mailbox: &str,
        raw: Cow<'a, [u8]>,
    ) -> Self {
        Self {
            summary: MessageSummary::from_frame(record, version, mailbox),
            record,
            raw,
        }
    }

    /// Sets the expiry shown (fleet mode: the one the cluster applies to the value).
    pub(crate) fn set_expires_at_ms(&mut self, ms: u64) {
        self.summary.expires_at_ms = ms;
    }

    /// Listing fields (`mailbox` is the mailbox it was read for).
    pub fn summary(&self) -> &MessageSummary {
        &self.summary
    }

    /// All recipient mailboxes of the record.
    pub fn mailboxes(&self) -> impl Iterator<Item = &str> {
        self.record.mailboxes.iter().map(|m| m.as_str())
    }

    /// Envelope sender; empty for `<>`.
    pub fn mail_from(&self) -> &str {
        &self.record.mail_from
    }

    /// Client IP address as text.
    pub fn client_ip(&self) -> &str {
        &self.record.client_ip
    }

    /// EHLO/HELO name.
    pub fn helo(&self) -> &str {
        &self.record.helo
    }

    /// TLS protocol version, if the session used TLS.
    pub fn tls_version(&self) -> Option<&str> {
        self.record.tls.as_ref().map(|t| t.version.as_str())
    }

    /// The RFC 5322 message: trace headers then the message as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// An owned copy of everything (copies the raw bytes).
    pub fn to_view(&self) -> MessageView {
        MessageView {
            summary: self.summary.clone(),
            mailboxes: self.mailboxes().map(str::to_owned).collect(),
            mail_from: self.mail_from().to_owned(),
            client_ip: self.client_ip().to_owned(),
            helo: self.helo().to_owned(),
            tls: self.record.tls.as_ref().map(|t| TlsSummary {
                version: t.version.to_string(),
                cipher: t.cipher.to_string(),
            }),
            raw: self.raw.to_vec(),
        }
    }
}
