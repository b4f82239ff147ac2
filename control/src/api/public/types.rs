//! JSON shapes of the public API (request and response bodies, query strings).

use serde::{Deserialize, Serialize};
use tempmx_store::{AuthResult, MessageSummary};
use utoipa::{IntoParams, ToSchema};

use crate::verify::Verification;

/// `GET /api/v1/domains`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DomainList {
    /// Domains a new address may use now.
    pub domains: Vec<String>,
}

/// `POST /api/v1/mailboxes` body; every field is optional.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMailbox {
    /// One of the offered domains; a random one if absent.
    pub domain: Option<String>,
    /// Wanted local part; a random unguessable one if absent.
    pub local_part: Option<String>,
    /// Lifetime in seconds (capped by `api.ttl_secs_max`).
    pub ttl_seconds: Option<u64>,
}

/// A created mailbox: the only time its token is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MailboxCreated {
    /// The address.
    pub address: String,
    /// Bearer token that opens it (`Authorization: Bearer …`).
    pub token: String,
    /// When the mailbox expires (RFC 3339, UTC).
    pub expires_at: String,
    /// Messages kept; older ones are dropped first.
    pub max_messages: usize,
}

/// `POST /api/v1/mailboxes/{address}/extend` body; may be empty.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendMailbox {
    /// Seconds added to the current expiry (default `api.ttl_secs_default`); the new
    /// expiry is never more than `api.ttl_secs_max` from now.
    pub ttl_seconds: Option<u64>,
}

/// An extended mailbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MailboxExtended {
    /// The address.
    pub address: String,
    /// When the mailbox expires now (RFC 3339, UTC).
    pub expires_at: String,
}

/// Token passed in the query string (for `EventSource`, iframes and download links,
/// which cannot send headers).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The mailbox token, when not sent as `Authorization: Bearer`.
    pub token: Option<String>,
}

/// Listing query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only messages newer than this id.
    pub since: Option<String>,
    /// Only messages older than this id (the cursor of the next page).
    pub before: Option<String>,
    /// Page size, 1 to `api.page_limit_max` (default 20).
    pub limit: Option<usize>,
    /// The mailbox token, when not sent as a header.
    pub token: Option<String>,
}

/// Message view query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// Load remote images in the HTML (default: `api.remote_images`).
    pub remote_images: Option<bool>,
    /// The mailbox token, when not sent as a header.
    pub token: Option<String>,
}

/// Live-push query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// Resume after this message id (like the `Last-Event-ID` header).
    pub last_event_id: Option<String>,
    /// The mailbox token, when not sent as a header.
    pub token: Option<String>,
}

/// One authentication result (SPF, DKIM, DMARC).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthItem {
    /// `spf`, `dkim`, `dmarc`, `arc`.
    pub method: String,
    /// `pass`, `fail`, `none`, `temperror`, …
    pub result: String,
    /// What was checked, RFC 8601 properties (`smtp.mailfrom=…`, `header.d=…`).
    pub props: String,
}

/// A message in a listing or a live-push event.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageItem {
    /// Message id (16 hex digits, time ordered).
    pub id: String,
    /// Decoded `From:`.
    pub from: String,
    /// Decoded `Subject:`.
    pub subject: String,
    /// When it was accepted (RFC 3339, UTC).
    pub received_at: String,
    /// When it expires (RFC 3339, UTC).
    pub expires_at: String,
    /// Raw size in bytes.
    pub size: u64,
    /// Whether it has attachments.
    pub has_attachments: bool,
    /// Authentication summary.
    pub auth: Vec<AuthItem>,
    /// One-time codes and verification links found in it, best first.
    #[serde(default)]
    pub verifications: Vec<Verification>,
}

impl From<&MessageSummary> for MessageItem {
    fn from(s: &MessageSummary) -> Self {
        Self {
            id: s.id.to_string(),
            from: s.from.clone(),
            subject: s.subject.clone(),
            received_at: rfc3339(s.received_at_ms),
            expires_at: rfc3339(s.expires_at_ms),
            size: s.size,
            has_attachments: s.has_attachments,
            auth: auth_items(&s.auth),
            verifications: Vec::new(),
        }
    }
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<MessageItem>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<String>,
}

/// A decoded address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AddressItem {
    /// Display name.
    pub name: Option<String>,
    /// The address.
    pub address: Option<String>,
}

/// A header field as received.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeaderItem {
    /// Field name.
    pub name: String,
    /// Raw value.
    pub value: String,
}

/// An attachment of a message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttachmentItem {
    /// Download index.
    pub index: usize,
    /// File name, if the sender gave one.
    pub filename: Option<String>,
    /// `type/subtype`.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: usize,
    /// Download URL (add the token).
    pub url: String,
}

/// SMTP envelope and session facts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvelopeItem {
    /// `MAIL FROM`; empty for `<>`.
    pub mail_from: String,
    /// Recipients of the record.
    pub rcpt_to: Vec<String>,
    /// Client IP.
    pub client_ip: String,
    /// EHLO name.
    pub helo: String,
    /// TLS version, if TLS was used.
    pub tls: Option<String>,
}

/// A whole message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageDetail {
    /// Message id.
    pub id: String,
    /// Decoded `Subject:`.
    pub subject: Option<String>,
    /// Decoded `From:`.
    pub from: Vec<AddressItem>,
    /// Decoded `To:`.
    pub to: Vec<AddressItem>,
    /// Decoded `Cc:`.
    pub cc: Vec<AddressItem>,
    /// `Date:` (RFC 3339).
    pub date: Option<String>,
    /// Top-level header fields.
    pub headers: Vec<HeaderItem>,
    /// Text body.
    pub text: Option<String>,
    /// Sanitised HTML body; show it only through `html_url` (CSP + sandbox).
    pub html: Option<String>,
    /// URL of the sanitised HTML document for a sandboxed iframe (add the token).
    pub html_url: Option<String>,
    /// Remote images removed from the HTML.
    pub remote_images_blocked: usize,
    /// Attachments.
    pub attachments: Vec<AttachmentItem>,
    /// Authentication results.
    pub auth: Vec<AuthItem>,
    /// One-time codes and verification links found in it, best first.
    #[serde(default)]
    pub verifications: Vec<Verification>,
    /// Envelope.
    pub envelope: EnvelopeItem,
    /// Raw size in bytes.
    pub size: u64,
    /// Accepted at (RFC 3339).
    pub received_at: String,
    /// Expires at (RFC 3339).
    pub expires_at: String,
    /// Why the body is not rendered (a MIME bound); the raw message stays downloadable.
    pub render_error: Option<String>,
}

/// Converts the store's auth results.
pub fn auth_items(a: &[AuthResult]) -> Vec<AuthItem> {
    a.iter()
        .map(|r| AuthItem {
            method: r.method.clone(),
            result: r.result.clone(),
            props: r.props.clone(),
        })
        .collect()
}

/// Milliseconds since the epoch as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: timestamps format correctly across epoch, leap days and millis.
    #[test]
    fn rfc3339_table() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }
}

/// `POST /api/v1/mailboxes/{address}/webhooks` body.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where new messages are POSTed: `http` or `https`, at most
    /// `api.webhooks.url_bytes_max` bytes, resolving to a public address.
    pub url: String,
}

/// A registered webhook: the only time its secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    /// Id of the webhook (for `DELETE`).
    pub id: String,
    /// The URL, normalised.
    pub url: String,
    /// HMAC-SHA256 key of `X-Tempmx-Signature` (`sha256=<hex>` over `<timestamp>.<body>`).
    pub secret: String,
}

/// One webhook in a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookItem {
    /// Id of the webhook.
    pub id: String,
    /// The URL.
    pub url: String,
}

/// `GET /api/v1/mailboxes/{address}/webhooks`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// The mailbox's webhooks.
    pub webhooks: Vec<WebhookItem>,
}
