//! A stored message as every compatible API shows it: decoded headers, the text body,
//! the HTML body sanitised as `/api/v1` serves it, attachments, and file downloads.
//! Each API only maps these onto its own field names.

use axum::response::Response;
use tempmx_store::{MailRead, Mailbox, MessageId, MessageSummary, StoreError};

use crate::api::public::render::{self, AttachmentInfo, MimeLimits, Rendered};
use crate::api::public::sanitize::sanitize;
use crate::api::public::{PublicState, messages};

/// One message of a mailbox, rendered for reading.
pub struct Shown {
    /// The listing fields.
    pub summary: MessageSummary,
    /// Decoded headers, text, unsanitised HTML and attachments (empty when unparsable).
    pub rendered: Rendered,
    /// The HTML body, sanitised.
    pub html: Option<String>,
    /// The client IP the message came from.
    pub client_ip: String,
    /// The raw message.
    pub raw: Vec<u8>,
}

impl Shown {
    /// The text body, or "" when the message has none.
    pub fn text(&self) -> &str {
        self.rendered.text.as_deref().unwrap_or_default()
    }

    /// The first `From:` address and display name ("" when absent).
    pub fn sender(&self) -> (String, String) {
        let (name, address) = self.rendered.from.first().cloned().unwrap_or_default();
        (name.unwrap_or_default(), address.unwrap_or_default())
    }

    /// The decoded subject ("" when absent).
    pub fn subject(&self) -> &str {
        self.rendered.subject.as_deref().unwrap_or_default()
    }

    /// The first `chars` characters of the text body with whitespace runs folded.
    pub fn intro(&self, chars: usize) -> String {
        self.text()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(chars)
            .collect()
    }
}

/// Up to the store's mailbox size of `mailbox`'s messages, newest first, through the
/// backend in force (the embedded store, or the fleet's cluster).
pub async fn list(
    state: &PublicState,
    mailbox: &Mailbox,
) -> Result<Vec<MessageSummary>, StoreError> {
    state
        .mail
        .list(mailbox, None, state.store_mailbox_max)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "mailbox listing failed"))
}

/// Message `id` of `mailbox`, or `None` when the mailbox does not hold it (or the
/// backend could not be read, which is logged).
pub async fn show(state: &PublicState, mailbox: &Mailbox, id: MessageId) -> Option<Shown> {
    let view = state
        .mail
        .get_for(mailbox, id)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "message read failed"))
        .ok()
        .flatten()?;
    let parsed = render::parse(&view.raw, MimeLimits::from(state.config.as_ref())).ok();
    let rendered = parsed.as_ref().map(render::render).unwrap_or_default();
    let html = match (&rendered.html, &parsed) {
        (Some(h), Some(msg)) => {
            let inline = render::inline_images(msg);
            Some(sanitize(h, state.config.remote_images, &inline).html)
        }
        _ => None,
    };
    Some(Shown {
        summary: view.summary,
        rendered,
        html,
        client_ip: view.client_ip,
        raw: view.raw,
    })
}

/// Attachment `index` (0-based) of message `id` of `mailbox`: its bytes and description.
pub async fn attachment(
    state: &PublicState,
    mailbox: &Mailbox,
    id: MessageId,
    index: usize,
) -> Option<(Vec<u8>, AttachmentInfo)> {
    let limits = MimeLimits::from(state.config.as_ref());
    state
        .mail
        .read_for(mailbox, id, |m| {
            let msg = render::parse(m.raw(), limits).ok()?;
            let part = msg.attachment(u32::try_from(index).ok()?)?;
            Some((part.contents().to_vec(), render::attachment_info(part)))
        })
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "message read failed"))
        .ok()
        .flatten()
        .flatten()
}

/// A download answer: the bytes as an attachment that no browser runs (the headers
/// `/api/v1` downloads carry).
pub fn file(body: Vec<u8>, content_type: &str) -> Response {
    messages::download(body, content_type, "attachment")
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, the date format of 1secmail and Guerrilla Mail.
pub fn date_time(ms: u64) -> String {
    let iso = crate::api::public::types::rfc3339(ms);
    // "2026-11-18T11:06:40.000Z" -> "2026-11-18 11:06:40"
    format!("{} {}", &iso[..10], &iso[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the plain date format both older APIs use. Method: known instants.
    #[test]
    fn date_time_format() {
        assert_eq!(date_time(0), "1970-01-01 00:00:00");
        assert_eq!(date_time(1_795_000_000_999), "2026-11-18 11:06:40");
    }
}
