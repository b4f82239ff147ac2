//! Guerrilla Mail compatible API under `/compat/guerrillamail/ajax.php?f=…`:
//! `get_email_address`, `set_email_user`, `check_email`, `get_email_list`, `fetch_email`,
//! `del_email`, `forget_me`. Its session model maps onto tempmx mailboxes: a session
//! (`sid_token`, or the `PHPSESSID` cookie) holds one mailbox it registered in the one
//! registry. Its quirks are kept: numbers in messages are strings, every answer carries
//! the `sid_token`, and an unknown message id or a call without a session is HTTP 200
//! with `false`.
//!
//! In token mode a session may only take an address nobody holds; in public mode
//! (`api.access = "public"`, as on Guerrilla Mail itself) it may read any address.

mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tempmx_store::{Mailbox, MessageId};

use self::session::{Session, Sessions};
use super::claim::{self, claim, claim_random, release};
use super::mail::{self, Shown};
use crate::api::public::PublicState;
use crate::api::public::address::validate_local_part;
use crate::api::public::config::AccessMode;
use crate::mailboxes::{RegistryError, now_ms};

/// Where the API is served.
pub const PREFIX: &str = "/compat/guerrillamail";
/// Messages one `get_email_list` / `check_email` answer holds (Guerrilla Mail's 20).
pub const LIST_MAX: usize = 20;
/// Message ids one `del_email` may name.
pub const DELETE_IDS_MAX: usize = 100;
/// Characters of a message's `mail_excerpt`.
const EXCERPT_CHARS_MAX: usize = 100;

/// The routes, relative to [`PREFIX`]; sessions bounded by `api.mailboxes_max` (in
/// fleet mode kept in the cluster, so every node knows them).
pub fn routes(state: &PublicState) -> Router<PublicState> {
    let sessions = Arc::new(match &state.fleet {
        Some(fleet) => Sessions::fleet(fleet.0.clone(), state.config.ttl_secs_max),
        None => Sessions::new(state.config.mailboxes_max),
    });
    Router::new()
        .route("/ajax.php", get(call).post(call))
        .layer(Extension(sessions))
}

/// Whether a call takes a mailbox (so it counts against the per-IP creation limit).
pub fn creates(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "f" && (v == "get_email_address" || v == "set_email_user"))
}

/// The query of a call: single values by name, and `email_ids[]` in order.
#[derive(Default)]
struct Params {
    one: Vec<(String, String)>,
    ids: Vec<String>,
}

impl Params {
    fn parse(query: Option<&str>) -> Self {
        let mut p = Self::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if k == "email_ids" || k.starts_with("email_ids[") {
                p.ids.push(v.into_owned());
            } else {
                p.one.push((k.into_owned(), v.into_owned()));
            }
        }
        p
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.one
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One call's context.
struct Call<'a> {
    state: &'a PublicState,
    sessions: &'a Sessions,
    params: Params,
    /// The session named by `sid_token` or the cookie, if it exists.
    sid: Option<String>,
    /// What that session held when the call came in.
    session: Option<Session>,
}

/// `GET|POST /ajax.php?f=…`: dispatches on `f`.
async fn call(
    State(state): State<PublicState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query.as_deref());
    let named = params
        .get("sid_token")
        .map(str::to_owned)
        .or_else(|| cookie_sid(&headers));
    let (sid, session) = match named {
        Some(s) => match sessions.get(&s).await {
            Some(found) => (Some(s), Some(found)),
            None => (None, None),
        },
        None => (None, None),
    };
    let c = Call {
        state: &state,
        sessions: &sessions,
        params,
        sid,
        session,
    };
    let f = c.params.get("f").unwrap_or_default().to_owned();
    let (sid, body) = match f.as_str() {
        "get_email_address" => c.get_email_address().await,
        "set_email_user" => c.set_email_user().await,
        "check_email" | "get_email_list" | "fetch_email" | "del_email" | "forget_me" => {
            let Some((sid, m)) = c.with_session().await else {
                return answer(c.sid.as_deref(), Ok(Value::Bool(false)));
            };
            let r = match f.as_str() {
                "check_email" => c.list(&sid, &m, true).await,
                "get_email_list" => c.list(&sid, &m, false).await,
                "fetch_email" => c.fetch(&sid, &m).await,
                "del_email" => c.delete(&sid, &m).await,
                _ => c.forget(&sid, &m).await,
            };
            (Some(sid), r)
        }
        _ => {
            let body = json!({ "error": "unknown function f" });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    answer(sid.as_deref(), body)
}

/// A JSON answer with the session cookie Guerrilla Mail sets.
fn answer(sid: Option<&str>, body: Result<Value, (StatusCode, String)>) -> Response {
    let mut resp = match body {
        Ok(v) => axum::Json(v).into_response(),
        Err((status, error)) => (status, axum::Json(json!({ "error": error }))).into_response(),
    };
    if let Some(cookie) =
        sid.and_then(|s| HeaderValue::from_str(&format!("PHPSESSID={s}; path=/")).ok())
    {
        resp.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    resp
}

fn cookie_sid(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("PHPSESSID=").map(str::to_owned))
}

type Answer = (Option<String>, Result<Value, (StatusCode, String)>);

fn unavailable(e: &RegistryError) -> (StatusCode, String) {
    match e {
        RegistryError::Full(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("mailbox limit reached ({n})"),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "mailbox could not be saved".to_owned(),
        ),
    }
}

/// HTML entities for the fields Guerrilla Mail escapes (subject, excerpt).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            _ => out.push(ch),
        }
    }
    out
}

impl Call<'_> {
    /// The session's mailbox if it may still read it.
    async fn readable(&self, s: &Session) -> Option<Mailbox> {
        let m = s.address.clone()?;
        let ok = match self.state.config.access {
            AccessMode::Public => self.state.domains.receives(&m.to_domain()),
            AccessMode::Token => s.owns && claim::is_live(self.state, &m).await,
        };
        ok.then_some(m)
    }

    fn address_json(&self, sid: &str, s: &Session, taken: bool) -> Value {
        let addr = s.address.as_ref().map(Mailbox::as_str).unwrap_or_default();
        let error_codes: &[&str] = if taken { &["address-taken"] } else { &[] };
        json!({
            "email_addr": addr,
            "email_timestamp": s.since_secs,
            "alias": addr,
            "alias_error": "",
            "sid_token": sid,
            "auth": {
                "success": !taken,
                "error_codes": error_codes,
            },
        })
    }

    /// Stores `session` under the call's sid, or under a new one.
    async fn keep(&self, session: &Session) -> Result<String, (StatusCode, String)> {
        let unsaved = |e: session::SessionError| (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        if let Some(sid) = &self.sid {
            self.sessions
                .set(sid, session.clone())
                .await
                .map_err(unsaved)?;
            return Ok(sid.clone());
        }
        let now = now_ms();
        self.sessions
            .start(session.clone(), |m| self.state.registry.is_live(m, now))
            .await
            .map_err(unsaved)
    }

    /// `get_email_address`: the session's mailbox, or a fresh random one.
    async fn get_email_address(&self) -> Answer {
        if let (Some(sid), Some(s)) = (&self.sid, &self.session)
            && self.readable(s).await.is_some()
        {
            return (Some(sid.clone()), Ok(self.address_json(sid, s, false)));
        }
        let (mailbox, _) = match claim_random(self.state, "", None).await {
            Ok(Some(x)) => x,
            Ok(None) => {
                let e = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no address could be created".to_owned(),
                );
                return (self.sid.clone(), Err(e));
            }
            Err(e) => return (self.sid.clone(), Err(unavailable(&e))),
        };
        let session = Session {
            address: Some(mailbox),
            owns: true,
            since_secs: now_ms() / 1000,
        };
        match self.keep(&session).await {
            Ok(sid) => (
                Some(sid.clone()),
                Ok(self.address_json(&sid, &session, false)),
            ),
            Err(e) => (None, Err(e)),
        }
    }

    /// `set_email_user&email_user=NAME`: the session takes NAME on its current domain (a
    /// random offered one for a new session). A name held by someone else is refused in
    /// token mode (`auth.success` false, the old address kept).
    async fn set_email_user(&self) -> Answer {
        let bad = |m: String| (self.sid.clone(), Err((StatusCode::BAD_REQUEST, m)));
        let Some(user) = self.params.get("email_user") else {
            return bad("email_user is required".into());
        };
        let local = match validate_local_part(user.split('@').next().unwrap_or_default()) {
            Ok(l) => l,
            Err(e) => return bad(e.to_string()),
        };
        let old = self.session.clone().unwrap_or(Session {
            address: None,
            owns: false,
            since_secs: 0,
        });
        let active = self.state.domains.active();
        let domain = old
            .address
            .as_ref()
            .map(Mailbox::to_domain)
            .filter(|d| active.contains(d))
            .or_else(|| active.first().cloned());
        let Some(mailbox) = domain.and_then(|d| Mailbox::new(&local, &d).ok()) else {
            return bad("no domain is offered".into());
        };
        let now = now_ms() / 1000;
        let next = if old.address.as_ref() == Some(&mailbox) && self.readable(&old).await.is_some()
        {
            Ok(old.clone())
        } else {
            match claim(self.state, &mailbox).await {
                Ok(_) => Ok(Session {
                    address: Some(mailbox),
                    owns: true,
                    since_secs: now,
                }),
                Err(RegistryError::Taken) if self.state.config.access == AccessMode::Public => {
                    Ok(Session {
                        address: Some(mailbox),
                        owns: false,
                        since_secs: now,
                    })
                }
                Err(RegistryError::Taken) => Err(None),
                Err(e) => Err(Some(unavailable(&e))),
            }
        };
        let (session, taken) = match next {
            Ok(s) => (s, false),
            Err(None) => (old, true),
            Err(Some(e)) => return (self.sid.clone(), Err(e)),
        };
        match self.keep(&session).await {
            Ok(sid) => (
                Some(sid.clone()),
                Ok(self.address_json(&sid, &session, taken)),
            ),
            Err(e) => (None, Err(e)),
        }
    }

    /// The session's sid and readable mailbox; `None` without them (the call answers
    /// `false`).
    async fn with_session(&self) -> Option<(String, Mailbox)> {
        let sid = self.sid.clone()?;
        let m = self.readable(self.session.as_ref()?).await?;
        Some((sid, m))
    }

    fn number(&self, name: &str) -> Result<Option<u64>, (StatusCode, String)> {
        match self.params.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| (StatusCode::BAD_REQUEST, format!("{name} must be a number"))),
        }
    }

    /// `check_email&seq=ID` (`only_new`) and `get_email_list&offset=N[&seq=ID]`: newest
    /// first, at most [`LIST_MAX`], only ids above `seq` when given.
    async fn list(
        &self,
        sid: &str,
        m: &Mailbox,
        only_new: bool,
    ) -> Result<Value, (StatusCode, String)> {
        let seq = self.number("seq")?.unwrap_or(0);
        let offset = if only_new {
            0
        } else {
            self.number("offset")?.unwrap_or(0)
        };
        let listed = mail::list(self.state, m).await.map_err(|_| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "mailbox could not be read".to_owned(),
            )
        })?;
        let mut list: Vec<Value> = Vec::new();
        for s in listed
            .iter()
            .filter(|s| s.id.0 > seq)
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(LIST_MAX)
        {
            if let Some(shown) = mail::show(self.state, m, s.id).await {
                list.push(summary_json(&shown));
            }
        }
        Ok(json!({
            "list": list,
            "count": list.len().to_string(),
            "email": m.as_str(),
            "alias": m.as_str(),
            "ts": now_ms() / 1000,
            "sid_token": sid,
        }))
    }

    /// `fetch_email&email_id=ID`: the message with its body, or `false`.
    async fn fetch(&self, sid: &str, m: &Mailbox) -> Result<Value, (StatusCode, String)> {
        let id = self
            .params
            .get("email_id")
            .and_then(|i| i.parse::<u64>().ok());
        let shown = match id {
            Some(id) => mail::show(self.state, m, MessageId(id)).await,
            None => None,
        };
        let Some(shown) = shown else {
            return Ok(Value::Bool(false));
        };
        let mut v = summary_json(&shown);
        let (body, content_type) = match &shown.html {
            Some(h) => (h.clone(), "text/html"),
            None => (shown.text().to_owned(), "text/plain"),
        };
        v["mail_body"] = json!(body);
        v["content_type"] = json!(content_type);
        v["mail_recipient"] = json!(m.as_str());
        v["sid_token"] = json!(sid);
        Ok(v)
    }

    /// `del_email&email_ids[]=ID…`: deletes those of the session's mailbox.
    async fn delete(&self, sid: &str, m: &Mailbox) -> Result<Value, (StatusCode, String)> {
        if self.params.ids.len() > DELETE_IDS_MAX {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("at most {DELETE_IDS_MAX} email_ids per call"),
            ));
        }
        let mut deleted: Vec<&String> = Vec::new();
        for i in &self.params.ids {
            if let Ok(id) = i.parse::<u64>()
                && claim::delete_message(self.state, m, MessageId(id)).await
            {
                deleted.push(i);
            }
        }
        Ok(json!({ "deleted_ids": deleted, "sid_token": sid }))
    }

    /// `forget_me&email_addr=A`: the session lets its address go (and releases the
    /// mailbox with its mail when it had registered it); `true`.
    async fn forget(&self, sid: &str, m: &Mailbox) -> Result<Value, (StatusCode, String)> {
        let named = self
            .params
            .get("email_addr")
            .and_then(|a| Mailbox::parse(a).ok());
        if named.as_ref().is_some_and(|n| n != m) {
            return Ok(Value::Bool(false));
        }
        let owned = self.session.as_ref().is_some_and(|s| s.owns);
        if owned {
            release(self.state, m).await;
        }
        let cleared = Session {
            address: None,
            owns: false,
            since_secs: 0,
        };
        self.sessions
            .set(sid, cleared)
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        Ok(Value::Bool(true))
    }
}

/// A message as Guerrilla Mail lists it: every number a string.
fn summary_json(shown: &Shown) -> Value {
    let s = &shown.summary;
    let date = mail::date_time(s.received_at_ms);
    json!({
        "mail_id": s.id.0.to_string(),
        "mail_from": shown.sender().1,
        "mail_subject": escape(shown.subject()),
        "mail_excerpt": escape(&shown.intro(EXCERPT_CHARS_MAX)),
        "mail_timestamp": (s.received_at_ms / 1000).to_string(),
        "mail_read": "0",
        "mail_date": date[11..].to_owned(),
        "att": shown.rendered.attachments.len().to_string(),
        "mail_size": s.size.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: `email_ids[]` is read in every spelling clients use, other keys singly; the
    // creating calls are recognised for the rate limit. Method: a table of queries.
    #[test]
    fn params_and_creation() {
        let p = Params::parse(Some(
            "f=del_email&email_ids%5B%5D=1&email_ids[]=2&email_ids[2]=3&sid_token=x",
        ));
        assert_eq!(p.ids, ["1", "2", "3"]);
        assert_eq!(p.get("f"), Some("del_email"));
        assert_eq!(p.get("sid_token"), Some("x"));
        assert!(creates("f=get_email_address&lang=en"));
        assert!(creates("email_user=bob&f=set_email_user"));
        assert!(!creates("f=check_email&seq=1"));
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#039;x&#039;&gt;&amp;&quot;"
        );
    }
}
