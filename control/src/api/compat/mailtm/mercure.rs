//! The Mercure hub mail.tm clients subscribe to: `GET /.well-known/mercure?topic=
//! /accounts/{id}` with the account's bearer token (header, or `authorization` query
//! parameter as Mercure allows), an SSE stream of unnamed events whose data is the
//! JSON-LD Message: on arrival, when marked seen (`seen: true`) and when deleted
//! (`isDeleted: true`). Arrivals come from the same store subscription and admission as
//! `/api/v1` live push.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::accounts::Account;
use super::json::{Format, MtError};
use super::message::message_json;
use super::{MailTm, authed, bearer};
use crate::api::public::PublicState;
use crate::api::public::guard::ClientIp;
use crate::api::public::push::Feed;
use crate::api::public::subscribers::Transport;

/// The subscription's query: Mercure's `topic` and optional `authorization` token.
#[derive(Deserialize)]
pub struct MercureQuery {
    topic: Option<String>,
    authorization: Option<String>,
}

/// `GET /.well-known/mercure`.
pub async fn subscribe(
    State(state): State<PublicState>,
    Extension(ip): Extension<ClientIp>,
    Query(q): Query<MercureQuery>,
    headers: HeaderMap,
) -> Response {
    let f = Format::Json;
    let mt = state.mailtm.clone();
    let account = match q.authorization.as_deref() {
        Some(t) if headers.get(header::AUTHORIZATION).is_none() => bearer(&state, &mt, t).await,
        _ => authed(&state, &mt, &headers).await,
    };
    let a = match account {
        Ok(a) => a,
        Err(e) => return e.reply(f),
    };
    let topic = q.topic.unwrap_or_default();
    if !topic.ends_with(&format!("/accounts/{}", a.id)) {
        return MtError::BadToken.reply(f);
    }
    let expires = crate::api::compat::claim::expires_at(&state, &a.address).await;
    let feed = match Feed::start(&state, a.address.clone(), ip, Transport::Sse, None, expires).await
    {
        Ok(feed) => feed,
        Err(e) => return e.into_response(),
    };
    let events = match mt.events_of(&a).await {
        Ok(events) => events,
        Err(e) => return crate::api::public::error::ApiError::from(e).into_response(),
    };
    let keepalive = KeepAlive::new().interval(Duration::from_secs(state.config.keepalive_secs));
    let hub = Hub {
        state,
        mt,
        account: a,
        feed,
        events,
    };
    let mut resp = Sse::new(stream(hub)).keep_alive(keepalive).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

struct Hub {
    state: PublicState,
    mt: Arc<MailTm>,
    account: Account,
    feed: Feed,
    events: Events,
}

/// Where a subscription's seen and delete events come from.
pub(super) enum Events {
    /// This node's channel: (account id, message JSON-LD) of every account.
    Local(broadcast::Receiver<(String, Value)>),
    /// Fleet mode: the account's mailbox's event channel, fed by every node.
    Fleet(tempmx_store::cluster::FleetSubscription),
}

impl Events {
    /// The next event of `account`; `None` when its source is gone.
    async fn next(&mut self, account: &str) -> Option<Value> {
        loop {
            match self {
                Self::Local(rx) => match rx.recv().await {
                    Ok((id, v)) if id == account => return Some(v),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                Self::Fleet(sub) => {
                    let payload = sub.payload().await?;
                    // Only nodes publish here; anything unreadable is skipped, not shown.
                    if let Ok(v) = serde_json::from_slice(&payload) {
                        return Some(v);
                    }
                }
            }
        }
    }
}

impl Hub {
    /// The next update for this account, or `None` when the connection's life is over.
    async fn next(&mut self) -> Option<Value> {
        loop {
            tokio::select! {
                s = self.feed.next() => {
                    let s = s?;
                    if let Some(v) = message_json(Format::JsonLd, &self.state, &self.account, &self.mt, s.id, false).await {
                        return Some(v);
                    }
                }
                ev = self.events.next(&self.account.id) => return ev,
            }
        }
    }
}

fn stream(hub: Hub) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(hub, |mut hub| async move {
        let v = hub.next().await?;
        let id = v["@id"].as_str().unwrap_or_default().to_owned();
        let ev = SseEvent::default().id(id).data(v.to_string());
        Some((Ok(ev), hub))
    })
}
