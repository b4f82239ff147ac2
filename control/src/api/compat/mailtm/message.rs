//! mail.tm's Message and Source resources over the store: list (30 a page), read, mark
//! seen, delete, the raw source and attachment downloads.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tempmx_store::MessageId;

use super::accounts::Account;
use super::json::{Format, MtError, PAGE_SIZE, answer};
use super::{Authed, MailTm, PageQuery, page_of, parse_id};
use crate::api::compat::mail;
use crate::api::public::PublicState;
use crate::api::public::types::rfc3339;

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

/// The Message resource of `id` in `a`'s mailbox; `detail` adds the body fields of
/// `GET /messages/{id}`. `None` when the mailbox does not hold it.
pub fn message_json(
    f: Format,
    state: &PublicState,
    a: &Account,
    mt: &MailTm,
    id: MessageId,
    detail: bool,
) -> Option<Value> {
    let shown = mail::show(state, &a.address, id)?;
    let s = &shown.summary;
    let r = &shown.rendered;
    let (from_name, from_addr) = shown.sender();
    let mut m = Map::new();
    let sid = id.to_string();
    m.insert("id".into(), json!(sid));
    m.insert("accountId".into(), json!(format!("/accounts/{}", a.id)));
    m.insert("msgid".into(), json!(s.message_id));
    m.insert(
        "from".into(),
        json!({ "address": from_addr, "name": from_name }),
    );
    let to: Vec<Value> = r.to.iter().map(|(n, ad)| address_json(n, ad)).collect();
    m.insert("to".into(), json!(to));
    m.insert("subject".into(), json!(shown.subject()));
    m.insert("intro".into(), json!(shown.intro(INTRO_CHARS_MAX)));
    m.insert("seen".into(), json!(mt.accounts.is_seen(&a.id, id)));
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
    if detail {
        let cc: Vec<String> = r.cc.iter().filter_map(|(_, ad)| ad.clone()).collect();
        m.insert("cc".into(), json!(cc));
        m.insert("bcc".into(), json!([]));
        m.insert("flagged".into(), json!(false));
        let found = state.verify.of_raw(id, &shown.raw);
        let values: Vec<&str> = found.iter().map(|v| v.value.as_str()).collect();
        m.insert("verifications".into(), json!(values));
        m.insert("retention".into(), json!(true));
        m.insert("retentionDate".into(), json!(rfc3339(s.expires_at_ms)));
        m.insert("text".into(), json!(shown.text()));
        let html: Vec<&String> = shown.html.iter().collect();
        m.insert("html".into(), json!(html));
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
    Some(f.resource("Message", &format!("/messages/{sid}"), m))
}

/// `GET /messages?page=N`: newest first, 30 a page.
pub async fn list(
    State(state): State<PublicState>,
    Authed { f, account: a, mt }: Authed,
    Query(q): Query<PageQuery>,
) -> Response {
    let run = || -> Result<Value, MtError> {
        let page = page_of(&q)?;
        let all = state.store.list(&a.address, None, state.store_mailbox_max);
        let total = all.len();
        let last = total.div_ceil(PAGE_SIZE).max(1);
        let members: Vec<Value> = all
            .iter()
            .skip((page - 1).saturating_mul(PAGE_SIZE))
            .take(PAGE_SIZE)
            .filter_map(|s| message_json(f, &state, &a, &mt, s.id, false))
            .collect();
        Ok(f.collection("Message", "/messages", members, total, Some((page, last))))
    };
    answer(f, run())
}

/// The message `id` names, if the account's mailbox holds it.
fn one(state: &PublicState, a: &Account, id: &str) -> Result<MessageId, MtError> {
    let id = parse_id(id)?;
    if !state.store.contains(&a.address, id) {
        return Err(MtError::NotFound);
    }
    Ok(id)
}

/// `GET /messages/{id}`.
pub async fn get(
    State(state): State<PublicState>,
    Authed { f, account: a, mt }: Authed,
    Path(id): Path<String>,
) -> Response {
    let found = one(&state, &a, &id)
        .and_then(|id| message_json(f, &state, &a, &mt, id, true).ok_or(MtError::NotFound));
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
    let run = || -> Result<Value, MtError> {
        let id = one(&state, &a, &id)?;
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
            mt.accounts
                .set_seen(&a.id, id, seen, state.store_mailbox_max);
            if let Some(ev) = message_json(Format::JsonLd, &state, &a, &mt, id, false) {
                let _ = mt.events.send((a.id.clone(), ev));
            }
        }
        message_json(f, &state, &a, &mt, id, true).ok_or(MtError::NotFound)
    };
    answer(f, run())
}

/// `DELETE /messages/{id}`.
pub async fn delete(
    State(state): State<PublicState>,
    Authed { f, account: a, mt }: Authed,
    Path(id): Path<String>,
) -> Response {
    let id = match one(&state, &a, &id) {
        Ok(x) => x,
        Err(e) => return e.reply(f),
    };
    let mut ev = message_json(Format::JsonLd, &state, &a, &mt, id, false);
    if !state.store.delete_message(&a.address, id) {
        return MtError::NotFound.reply(f);
    }
    mt.accounts.set_seen(&a.id, id, false, 0);
    if let Some(Value::Object(m)) = ev.as_mut() {
        m.insert("isDeleted".into(), json!(true));
    }
    if let Some(ev) = ev {
        let _ = mt.events.send((a.id, ev));
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /sources/{id}`: the raw message inside a Source resource.
pub async fn source(
    State(state): State<PublicState>,
    Authed { f, account: a, .. }: Authed,
    Path(id): Path<String>,
) -> Response {
    let run = || -> Result<Value, MtError> {
        let id = one(&state, &a, &id)?;
        let view = state.store.get(id).ok_or(MtError::NotFound)?;
        let sid = id.to_string();
        let mut m = Map::new();
        m.insert("id".into(), json!(sid));
        m.insert(
            "downloadUrl".into(),
            json!(format!("/messages/{sid}/download")),
        );
        m.insert("data".into(), json!(String::from_utf8_lossy(&view.raw)));
        Ok(f.resource("Source", &format!("/sources/{sid}"), m))
    };
    answer(f, run())
}

/// `GET /messages/{id}/download`: the `.eml`.
pub async fn download(
    State(state): State<PublicState>,
    Authed { f, account: a, .. }: Authed,
    Path(id): Path<String>,
) -> Response {
    match one(&state, &a, &id).and_then(|id| state.store.get(id).ok_or(MtError::NotFound)) {
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
    let run = || -> Result<Response, MtError> {
        let id = one(&state, &a, &id)?;
        let n: usize = att
            .strip_prefix("ATTACH")
            .and_then(|n| n.parse().ok())
            .filter(|&n| n >= 1)
            .ok_or(MtError::NotFound)?;
        let (bytes, info) =
            mail::attachment(&state, &a.address, id, n - 1).ok_or(MtError::NotFound)?;
        Ok(mail::file(bytes, &info.content_type))
    };
    run().unwrap_or_else(|e| e.reply(f))
}
