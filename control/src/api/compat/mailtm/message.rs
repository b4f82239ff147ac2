//! mail.tm's Message and Source resources over the store: list (30 a page), read, mark
//! seen, delete, the raw source and attachment downloads.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

use tempmx_store::{MessageId, MessageSummary, summary};

use super::accounts::Account;
use super::json::{Format, MtError, PAGE_SIZE, answer};
use super::{Authed, MailTm, PageQuery, page_of, parse_id};
use crate::api::compat::{claim, mail};
use crate::api::public::PublicState;
use crate::api::public::render::{self, MimeLimits};
use crate::api::public::sanitize::sanitize;
use crate::api::public::types::rfc3339;
use tempmx_store::MailRead;

/// Characters of a message's `intro`.
const INTRO_CHARS_MAX: usize = 120;
/// Bytes of a PATCH body.
const PATCH_BYTES_MAX: usize = 1024;

fn address_json(name: &Option<String>, address: &Option<String>) -> Value {
    json!({
        "address": address.clone().unwrap_or_default(),
        "name": name.clone().unwrap_or_default(),
    })
}

/// The Message resource of `id` in `a`'s mailbox, read and rendered in place; `detail`
/// adds the body fields of `GET /messages/{id}`. `None` when the mailbox does not hold it
/// (or the backend could not be read, which is logged).
pub async fn message_json(
    f: Format,
    state: &PublicState,
    a: &Account,
    mt: &MailTm,
    id: MessageId,
    detail: bool,
) -> Option<Value> {
    let limits = MimeLimits::from(state.config.as_ref());
    let read = state
        .mail
        .read_for(&a.address, id, |m| {
            let parsed = render::parse(m.raw(), limits).ok();
            let r = parsed.as_ref().map(render::render).unwrap_or_default();
            let inline = parsed
                .as_ref()
                .filter(|_| detail)
                .map(render::inline_images);
            let found = detail.then(|| state.verify.of_raw(id, m.raw()));
            (m.summary().clone(), r, inline, found)
        })
        .await;
    let (s, r, inline, found) = read
        .inspect_err(|e| tracing::warn!(error = %e, "message read failed"))
        .ok()
        .flatten()?;
    let seen = mt.seen(a).await;
    let text = r.text.clone().unwrap_or_default();
    let intro: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(INTRO_CHARS_MAX)
        .collect();
    let (from_name, from_addr) = r.from.first().cloned().unwrap_or_default();
    let to: Vec<Value> = r.to.iter().map(|(n, ad)| address_json(n, ad)).collect();
    let subject = r.subject.clone().unwrap_or_default();
    let from = address_json(&from_name, &from_addr);
    let mut m = head(a, &seen, &s, from, to, &subject, &intro);
    if detail {
        let cc: Vec<String> = r.cc.iter().filter_map(|(_, ad)| ad.clone()).collect();
        m.insert("cc".into(), json!(cc));
        m.insert("bcc".into(), json!([]));
        m.insert("flagged".into(), json!(false));
        let values: Vec<&str> = found
            .iter()
            .flat_map(|v| v.iter())
            .map(|v| v.value.as_str())
            .collect();
        m.insert("verifications".into(), json!(values));
        m.insert("retention".into(), json!(true));
        m.insert("retentionDate".into(), json!(rfc3339(s.expires_at_ms)));
        m.insert("text".into(), json!(text));
        let inline = inline.unwrap_or_default();
        let html: Vec<String> = r
            .html
            .iter()
            .map(|h| sanitize(h, state.config.remote_images, &inline).html)
            .collect();
        m.insert("html".into(), json!(html));
        let sid = id.to_string();
        let atts: Vec<Value> = r
            .attachments
            .iter()
            .enumerate()
            .map(|(i, at)| {
                let att_id = format!("ATTACH{:06}", i + 1);
                json!({
                    "id": att_id,
                    "filename": at.filename.clone().unwrap_or_default(),
                    "contentType": at.content_type,
                    "disposition": "attachment",
                    "transferEncoding": "base64",
                    "related": false,
                    "size": at.size.div_ceil(1024),
                    "downloadUrl": format!("/messages/{sid}/attachment/{att_id}"),
                })
            })
            .collect();
        m.insert("attachments".into(), json!(atts));
    }
    Some(f.resource("Message", &format!("/messages/{id}"), m))
}

/// The Message resource a listing shows, from the summary taken at ingest (no parse):
/// `to` is the account's address and `intro` is empty (`GET /messages/{id}` has both).
fn listed_json(f: Format, a: &Account, seen: &HashSet<MessageId>, s: &MessageSummary) -> Value {
    let (name, address) = summary::split_from(&s.from);
    let from = address_json(&name.map(str::to_owned), &address.map(str::to_owned));
    let to = vec![json!({"address": a.address.as_str(), "name": ""})];
    let m = head(a, seen, s, from, to, &s.subject, "");
    f.resource("Message", &format!("/messages/{}", s.id), m)
}

/// The fields of a Message resource that listing and reading share.
fn head(
    a: &Account,
    seen: &HashSet<MessageId>,
    s: &MessageSummary,
    from: Value,
    to: Vec<Value>,
    subject: &str,
    intro: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    let sid = s.id.to_string();
    m.insert("id".into(), json!(sid));
    m.insert("accountId".into(), json!(format!("/accounts/{}", a.id)));
    m.insert("msgid".into(), json!(s.message_id));
    m.insert("from".into(), from);
    m.insert("to".into(), json!(to));
    m.insert("subject".into(), json!(subject));
    m.insert("intro".into(), json!(intro));
    m.insert("seen".into(), json!(seen.contains(&s.id)));
    m.insert("isDeleted".into(), json!(false));
    m.insert("hasAttachments".into(), json!(s.has_attachments));
    m.insert("size".into(), json!(s.size));
    m.insert(
        "downloadUrl".into(),
        json!(format!("/messages/{sid}/download")),
    );
    m.insert("sourceUrl".into(), json!(format!("/sources/{sid}")));
    m.insert("createdAt".into(), json!(rfc3339(s.received_at_ms)));
    m.insert("updatedAt".into(), json!(rfc3339(s.received_at_ms)));
    m
}

/// `GET /messages?page=N`: newest first, 30 a page.
pub async fn list(
    State(state): State<PublicState>,
    Authed { f, account: a, mt }: Authed,
    Query(q): Query<PageQuery>,
) -> Response {
    let run = async || -> Result<Value, MtError> {
        let page = page_of(&q)?;
        let all = mail::list(&state, &a.address)
            .await
            .map_err(|e| MtError::Unavailable(e.to_string()))?;
        let seen = mt.seen(&a).await;
        let total = all.len();
        let last = total.div_ceil(PAGE_SIZE).max(1);
        let members: Vec<Value> = all
            .iter()
            .skip((page - 1).saturating_mul(PAGE_SIZE))
            .take(PAGE_SIZE)
            .map(|s| listed_json(f, &a, &seen, s))
            .collect();
        Ok(f.collection("Message", "/messages", members, total, Some((page, last))))
    };
    answer(f, run().await)
}

/// The message `id` names, if the account's mailbox shows it (for requests that act on
/// the message without reading it).
async fn one(state: &PublicState, a: &Account, id: &str) -> Result<MessageId, MtError> {
    let id = parse_id(id)?;
    if !claim::contains(state, &a.address, id).await {
        return Err(MtError::NotFound);
    }
    Ok(id)
}

/// `GET /messages/{id}` (the read checks the mailbox shows it, under one lock).
pub async fn get(
    State(state): State<PublicState>,
    Authed { f, account: a, mt }: Authed,
    Path(id): Path<String>,
) -> Response {
    let found = match parse_id(&id) {
        Ok(id) => message_json(f, &state, &a, &mt, id, true)
            .await
            .ok_or(MtError::NotFound),
        Err(e) => Err(e),
    };
    answer(f, found)
}

/// `PATCH /messages/{id}` with `application/merge-patch+json` `{"seen": bool}`.
pub async fn patch(
    State(state): State<PublicState>,
    Authed { f, account: a, mt }: Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async || -> Result<Value, MtError> {
        let id = one(&state, &a, &id).await?;
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/merge-patch+json") {
            return Err(MtError::UnsupportedMedia(format!(
                "The content-type \"{ct}\" is not supported. Supported MIME types are \"application/merge-patch+json\"."
            )));
        }
        if body.len() > PATCH_BYTES_MAX {
            return Err(MtError::BadRequest(format!(
                "body over {PATCH_BYTES_MAX} bytes"
            )));
        }
        let patch: Value = serde_json::from_slice(&body)
            .map_err(|e| MtError::BadRequest(format!("Syntax error: {e}")))?;
        if let Some(seen) = patch.get("seen") {
            let seen = seen.as_bool().ok_or(MtError::BadRequest(
                "The type of the \"seen\" attribute must be \"bool\".".into(),
            ))?;
            mt.set_seen(&state, &a, id, seen, state.store_mailbox_max)
                .await;
            if let Some(ev) = message_json(Format::JsonLd, &state, &a, &mt, id, false).await {
                mt.announce(&a, ev).await;
            }
        }
        message_json(f, &state, &a, &mt, id, true)
            .await
            .ok_or(MtError::NotFound)
    };
    answer(f, run().await)
}

/// `DELETE /messages/{id}`.
pub async fn delete(
    State(state): State<PublicState>,
    Authed { f, account: a, mt }: Authed,
    Path(id): Path<String>,
) -> Response {
    let id = match one(&state, &a, &id).await {
        Ok(x) => x,
        Err(e) => return e.reply(f),
    };
    let mut ev = message_json(Format::JsonLd, &state, &a, &mt, id, false).await;
    if !claim::delete_message(&state, &a.address, id).await {
        return MtError::NotFound.reply(f);
    }
    mt.set_seen(&state, &a, id, false, 0).await;
    if let Some(Value::Object(m)) = ev.as_mut() {
        m.insert("isDeleted".into(), json!(true));
    }
    if let Some(ev) = ev {
        mt.announce(&a, ev).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /sources/{id}`: the raw message inside a Source resource.
pub async fn source(
    State(state): State<PublicState>,
    Authed { f, account: a, .. }: Authed,
    Path(id): Path<String>,
) -> Response {
    let run = async || -> Result<Value, MtError> {
        let id = parse_id(&id)?;
        let data = state
            .mail
            .read_for(&a.address, id, |m| {
                String::from_utf8_lossy(m.raw()).into_owned()
            })
            .await
            .map_err(|e| MtError::Unavailable(e.to_string()))?
            .ok_or(MtError::NotFound)?;
        let sid = id.to_string();
        let mut m = Map::new();
        m.insert("id".into(), json!(sid));
        m.insert(
            "downloadUrl".into(),
            json!(format!("/messages/{sid}/download")),
        );
        m.insert("data".into(), json!(data));
        Ok(f.resource("Source", &format!("/sources/{sid}"), m))
    };
    answer(f, run().await)
}

/// `GET /messages/{id}/download`: the `.eml`.
pub async fn download(
    State(state): State<PublicState>,
    Authed { f, account: a, .. }: Authed,
    Path(id): Path<String>,
) -> Response {
    let view = match parse_id(&id) {
        Ok(id) => match state.mail.get_for(&a.address, id).await {
            Ok(v) => v.ok_or(MtError::NotFound),
            Err(e) => Err(MtError::Unavailable(e.to_string())),
        },
        Err(e) => Err(e),
    };
    match view {
        Ok(view) => mail::file(view.raw, "message/rfc822"),
        Err(e) => e.reply(f),
    }
}

/// `GET /messages/{id}/attachment/{ATTACH000001}`.
pub async fn attachment(
    State(state): State<PublicState>,
    Authed { f, account: a, .. }: Authed,
    Path((id, att)): Path<(String, String)>,
) -> Response {
    let run = async || -> Result<Response, MtError> {
        let id = parse_id(&id)?;
        let n: usize = att
            .strip_prefix("ATTACH")
            .and_then(|n| n.parse().ok())
            .filter(|&n| n >= 1)
            .ok_or(MtError::NotFound)?;
        let (bytes, info) = mail::attachment(&state, &a.address, id, n - 1)
            .await
            .ok_or(MtError::NotFound)?;
        Ok(mail::file(bytes, &info.content_type))
    };
    run().await.unwrap_or_else(|e| e.reply(f))
}
