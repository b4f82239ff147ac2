//! Reading and deleting messages: listing, detail, raw, sanitised HTML, attachments.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tempmx_store::{Mailbox, MessageId, MessageRef, MessageSummary};

use super::PublicState;
use super::access::{open, token};
use super::error::{ApiError, ApiResult, Problem};
use super::render::{self, MimeLimits, attachment_info};
use super::sanitize::sanitize;
use super::types::{
    AddressItem, AttachmentItem, EnvelopeItem, HeaderItem, ListQuery, MessageDetail, MessageItem,
    MessagePage, TokenQuery, ViewQuery, auth_items, rfc3339,
};
use crate::api::problem::{PathParams, QueryParams};

/// Page size when the request names none.
const PAGE_LIMIT_DEFAULT: usize = 20;

/// Lists a mailbox, newest first, with cursor paging.
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/messages", tag = "messages",
    params(("address" = String, Path, description = "The mailbox address"), ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MessagePage), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 429, body = Problem)))]
pub async fn list_messages(
    State(state): State<PublicState>,
    PathParams(address): PathParams<String>,
    QueryParams(q): QueryParams<ListQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<MessagePage>> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref()))?;
    let limit = q.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if limit == 0 || limit > state.config.page_limit_max {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {}",
            state.config.page_limit_max
        )));
    }
    let before = q.before.as_deref().map(parse_id).transpose()?;
    let since = q.since.as_deref().map(parse_id).transpose()?;
    // One more than the page tells whether an older page exists.
    let mut items = state.store.list(&opened.address, before, limit + 1);
    if let Some(since) = since {
        items.retain(|s| s.id > since);
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next_before = if more {
        items.last().map(|s| s.id.to_string())
    } else {
        None
    };
    Ok(Json(MessagePage {
        messages: items
            .iter()
            .map(|s| item(&state, &opened.address, s))
            .collect(),
        next_before,
    }))
}

/// One message: headers, text, sanitised HTML, attachments, authentication results.
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/messages/{id}", tag = "messages",
    params(("address" = String, Path, description = "The mailbox address"),
        ("id" = String, Path, description = "Message id"), ViewQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MessageDetail), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 429, body = Problem)))]
pub async fn get_message(
    State(state): State<PublicState>,
    PathParams((address, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<ViewQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<MessageDetail>> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref()))?;
    let id = id.parse::<MessageId>().map_err(|_| ApiError::NotFound)?;
    let remote = q.remote_images.unwrap_or(state.config.remote_images);
    let limits = MimeLimits::from(state.config.as_ref());
    // Parsed and rendered in place (bounded by the MIME limits); sanitised after the
    // shard's lock is released.
    let (mut detail, rendered) = state
        .store
        .read_for(&opened.address, id, |m| {
            let mut detail = skeleton(m, id);
            detail.verifications = state.verify.of_raw(id, m.raw()).to_vec();
            let rendered = render::parse(m.raw(), limits)
                .map(|msg| (render::render(&msg), render::inline_images(&msg)));
            (detail, rendered)
        })
        .ok_or(ApiError::NotFound)?;
    match rendered {
        Ok((r, inline)) => {
            let base = format!("/api/v1/mailboxes/{}/messages/{id}", opened.address);
            fill(&mut detail, &r, remote, &inline, &base)
        }
        Err(e) => detail.render_error = Some(e.to_string()),
    }
    Ok(Json(detail))
}

/// The message as received (`message/rfc822`).
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/messages/{id}/raw", tag = "messages",
    params(("address" = String, Path, description = "The mailbox address"),
        ("id" = String, Path, description = "Message id"), TokenQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "message/rfc822", body = Vec<u8>), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn get_raw(
    State(state): State<PublicState>,
    PathParams((address, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (id, raw) = read(
        &state,
        &address,
        &id,
        token(&headers, q.token.as_deref()),
        |m| Some((m.summary().id, m.raw().to_vec())),
    )?;
    let disposition = format!("attachment; filename=\"{id}.eml\"");
    Ok(download(raw, "message/rfc822", &disposition))
}

/// The sanitised HTML body as a document for a sandboxed iframe, under a strict CSP.
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/messages/{id}/html", tag = "messages",
    params(("address" = String, Path, description = "The mailbox address"),
        ("id" = String, Path, description = "Message id"), ViewQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn get_html(
    State(state): State<PublicState>,
    PathParams((address, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<ViewQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let remote = q.remote_images.unwrap_or(state.config.remote_images);
    let token = token(&headers, q.token.as_deref());
    let (html, inline) = read_parsed(&state, &address, &id, token, |msg| {
        Some((render::render(msg).html?, render::inline_images(msg)))
    })?;
    let clean = sanitize(&html, remote, &inline).html;
    let doc = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"></head><body>{clean}</body></html>"
    );
    let img = if remote {
        "img-src data: https: http:"
    } else {
        "img-src data:"
    };
    let csp = format!(
        "default-src 'none'; {img}; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    );
    let mut resp = (StatusCode::OK, doc).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(resp)
}

/// One attachment, always as a download.
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/messages/{id}/attachments/{n}", tag = "messages",
    params(("address" = String, Path, description = "The mailbox address"),
        ("id" = String, Path, description = "Message id"), ("n" = usize, Path, description = "Attachment index"),
        TokenQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn get_attachment(
    State(state): State<PublicState>,
    PathParams((address, id, n)): PathParams<(String, String, String)>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let n: u32 = n.parse().map_err(|_| ApiError::NotFound)?;
    let token = token(&headers, q.token.as_deref());
    let (contents, info) = read_parsed(&state, &address, &id, token, |msg| {
        let part = msg.attachment(n)?;
        Some((part.contents().to_vec(), attachment_info(part)))
    })?;
    let name = info.filename.unwrap_or_else(|| format!("attachment-{n}"));
    Ok(download(contents, &info.content_type, &disposition(&name)))
}

/// Deletes one message.
#[utoipa::path(delete, path = "/api/v1/mailboxes/{address}/messages/{id}", tag = "messages",
    params(("address" = String, Path, description = "The mailbox address"),
        ("id" = String, Path, description = "Message id"), TokenQuery),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 429, body = Problem)))]
pub async fn delete_message(
    State(state): State<PublicState>,
    PathParams((address, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref()))?;
    let id = id.parse::<MessageId>().map_err(|_| ApiError::NotFound)?;
    if state.store.delete_message(&opened.address, id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// The listing item of a message in `mailbox`, with its verifications (extracted on first
/// read).
pub fn item(state: &PublicState, mailbox: &Mailbox, s: &MessageSummary) -> MessageItem {
    let mut item = MessageItem::from(s);
    item.verifications = state.verify.get(&state.store, mailbox, s.id).to_vec();
    item
}

/// Opens the mailbox and runs `f` on a message it holds, in place; a message it does not
/// hold and `f` finding nothing are the same 404.
fn read<R>(
    state: &PublicState,
    address: &str,
    id: &str,
    token: Option<&str>,
    f: impl FnOnce(&MessageRef<'_>) -> Option<R>,
) -> ApiResult<R> {
    let opened = open(state, address, token)?;
    let id = id.parse::<MessageId>().map_err(|_| ApiError::NotFound)?;
    state
        .store
        .read_for(&opened.address, id, f)
        .flatten()
        .ok_or(ApiError::NotFound)
}

/// [`read`] with the message parsed within the MIME limits; one over a limit is a 404
/// here (its raw download still works).
fn read_parsed<R>(
    state: &PublicState,
    address: &str,
    id: &str,
    token: Option<&str>,
    f: impl FnOnce(&mail_parser::Message<'_>) -> Option<R>,
) -> ApiResult<R> {
    let limits = MimeLimits::from(state.config.as_ref());
    read(state, address, id, token, |m| {
        f(&render::parse(m.raw(), limits).ok()?)
    })
}

fn parse_id(s: &str) -> ApiResult<MessageId> {
    s.parse()
        .map_err(|_| ApiError::BadRequest(format!("`{s}` is not a message id")))
}

fn skeleton(m: &MessageRef<'_>, id: MessageId) -> MessageDetail {
    let s = m.summary();
    MessageDetail {
        id: id.to_string(),
        subject: None,
        from: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        date: None,
        headers: Vec::new(),
        text: None,
        html: None,
        html_url: None,
        remote_images_blocked: 0,
        attachments: Vec::new(),
        auth: auth_items(&s.auth),
        verifications: Vec::new(),
        envelope: EnvelopeItem {
            mail_from: m.mail_from().to_owned(),
            rcpt_to: m.mailboxes().map(str::to_owned).collect(),
            client_ip: m.client_ip().to_owned(),
            helo: m.helo().to_owned(),
            tls: m.tls_version().map(str::to_owned),
        },
        size: s.size,
        received_at: rfc3339(s.received_at_ms),
        expires_at: rfc3339(s.expires_at_ms),
        render_error: None,
    }
}

fn fill(
    d: &mut MessageDetail,
    r: &render::Rendered,
    remote: bool,
    inline: &render::InlineImages,
    base: &str,
) {
    let addrs = |v: &[(Option<String>, Option<String>)]| {
        v.iter()
            .map(|(name, address)| AddressItem {
                name: name.clone(),
                address: address.clone(),
            })
            .collect()
    };
    d.subject = r.subject.clone();
    d.from = addrs(&r.from);
    d.to = addrs(&r.to);
    d.cc = addrs(&r.cc);
    d.date = r.date.clone();
    d.headers = r
        .headers
        .iter()
        .map(|(n, v)| HeaderItem {
            name: n.clone(),
            value: v.clone(),
        })
        .collect();
    d.text = r.text.clone();
    if let Some(html) = &r.html {
        let s = sanitize(html, remote, inline);
        d.html = Some(s.html);
        d.remote_images_blocked = s.remote_images_blocked;
        d.html_url = Some(format!("{base}/html"));
    }
    d.attachments = r
        .attachments
        .iter()
        .enumerate()
        .map(|(index, a)| AttachmentItem {
            index,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            url: format!("{base}/attachments/{index}"),
        })
        .collect();
}

/// A file answer with `disposition`: private, uncached, and sandboxed so nothing in it
/// runs (also the compatible APIs' downloads).
pub fn download(body: Vec<u8>, content_type: &str, disposition: &str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    let ct = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    if let Ok(v) = HeaderValue::from_str(disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // Even if a browser renders it, nothing in it may run or load.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    resp
}

/// `Content-Disposition: attachment` with an ASCII fallback name and the RFC 6266
/// `filename*` form for the real one.
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let encoded: String = name
        .bytes()
        .take(255)
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: hostile file names cannot break out of the header or the quotes.
    #[test]
    fn disposition_is_safe() {
        let d = disposition("a\"b\r\nX: y;é.pdf");
        assert!(
            d.starts_with("attachment; filename=\"a_b__X_ y__.pdf\""),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''a%22b%0D%0AX%3A%20y%3B%C3%A9.pdf"),
            "{d}"
        );
        assert!(HeaderValue::from_str(&d).is_ok());
    }
}
