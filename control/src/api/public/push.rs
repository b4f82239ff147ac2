//! Live push of new messages: Server-Sent Events and WebSocket, one feed behind both.
//!
//! A feed subscribes first and then replays from the store what came after
//! `Last-Event-ID`, so nothing falls in between. When the store reports that the
//! subscriber lagged, the feed re-lists the mailbox and sends what it missed. Every
//! connection is admitted per mailbox and per client IP, and lives at most
//! `api.push_duration_secs_max` (clients reconnect and resume).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tempmx_store::cluster::{Announced, ClusterError, Heard};
use tempmx_store::{
    Event, MailRead, Mailbox, MessageId, MessageRef, MessageSummary, Reader, Subscription,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::PublicState;
use super::access::{open, token};
use super::error::{ApiError, ApiResult, Problem};
use super::guard::ClientIp;
use super::messages::item;
use super::subscribers::{Admission, Refused, Transport};
use super::types::{MessageItem, PushQuery};
use crate::api::problem::{PathParams, QueryParams};
use crate::mailboxes::now_ms;
use crate::verify::VerifyCache;

/// Ids remembered to drop duplicates between replay and live events (shards publish
/// slightly out of id order, so "greater than the last id" would lose messages).
const SENT_IDS_MAX: usize = 512;
/// Messages one re-list reads at a time.
const REPLAY_PAGE: usize = 32;
/// Already-sent ids in a row after which a re-list stops looking further back.
const SENT_RUN_STOP: usize = 16;
/// SSE event name of a new message.
pub const NEW_MESSAGE: &str = "new_message";

/// New messages of one mailbox, replayed then live, until the deadline.
pub struct Feed {
    mail: Reader,
    /// Where announced messages' verifications are cached for their items.
    verify: Arc<VerifyCache>,
    sub: Source,
    mailbox: Mailbox,
    pending: VecDeque<MessageSummary>,
    sent: VecDeque<MessageId>,
    /// Messages at or below this id were there before the feed (or before the resume
    /// point); a re-list after a lag starts above it.
    floor: MessageId,
    deadline: Instant,
    closing: watch::Receiver<bool>,
    _admission: Admission,
}

impl Feed {
    /// Subscribes, then queues what arrived after `resume_after`.
    pub async fn start(
        state: &PublicState,
        mailbox: Mailbox,
        ip: ClientIp,
        transport: Transport,
        resume_after: Option<MessageId>,
        expires_at_ms: Option<u64>,
    ) -> ApiResult<Self> {
        let closing = state.closing.subscribe();
        if *closing.borrow() {
            return Err(ApiError::Unavailable("shutting down".into()));
        }
        let admission = state
            .subscribers
            .admit(mailbox.as_str(), ip.0, transport)
            .map_err(|r| {
                ApiError::TooManySubscribers(match r {
                    Refused::Mailbox(n) => format!("at most {n} live subscribers per mailbox"),
                    Refused::Ip(n) => format!("at most {n} live subscribers per client"),
                })
            })?;
        let sub = match &state.fleet {
            Some(fleet) => Source::Fleet(fleet.0.subscribe(&mailbox).await?),
            None => Source::Local(
                state
                    .local_store()?
                    .subscribe(&mailbox)
                    .map_err(|e| ApiError::Unavailable(e.to_string()))?,
            ),
        };
        let mut life = Duration::from_secs(state.config.push_duration_secs_max);
        if let Some(exp) = expires_at_ms {
            life = life.min(Duration::from_millis(exp.saturating_sub(now_ms())));
        }
        let newest = state
            .mail
            .list(&mailbox, None, 1)
            .await?
            .first()
            .map_or(MessageId(0), |s| s.id);
        let mut feed = Self {
            floor: resume_after.unwrap_or(newest),
            mail: state.mail.clone(),
            verify: Arc::clone(&state.verify),
            sub,
            mailbox,
            pending: VecDeque::new(),
            sent: VecDeque::new(),
            deadline: Instant::now() + life,
            closing,
            _admission: admission,
        };
        if let Some(after) = resume_after {
            feed.replay_after(after).await?;
        }
        Ok(feed)
    }

    /// Queues stored messages newer than `after` that were not sent yet, oldest first. It
    /// pages from the newest and stops at `after` or after a run of already-sent ids (ids
    /// are published slightly out of order, so one sent id does not end the search), so a
    /// wake costs a page, not the whole mailbox.
    async fn replay_after(&mut self, after: MessageId) -> Result<(), tempmx_store::StoreError> {
        let mut newer: Vec<MessageSummary> = Vec::new();
        let mut before = None;
        let mut sent_run = 0;
        'pages: loop {
            let page = self.mail.list(&self.mailbox, before, REPLAY_PAGE).await?;
            let last_page = page.len() < REPLAY_PAGE;
            for s in page {
                if s.id <= after {
                    break 'pages;
                }
                before = Some(s.id);
                if self.sent.contains(&s.id) {
                    sent_run += 1;
                    if sent_run >= SENT_RUN_STOP {
                        break 'pages;
                    }
                } else {
                    sent_run = 0;
                    newer.push(s);
                }
            }
            if last_page {
                break;
            }
        }
        newer.reverse();
        self.pending.extend(newer);
        Ok(())
    }

    /// The next new message, or `None` when the connection's life is over.
    pub async fn next(&mut self) -> Option<MessageSummary> {
        loop {
            while let Some(s) = self.pending.pop_front() {
                if self.mark_sent(s.id) {
                    return Some(s);
                }
            }
            let ev = tokio::select! {
                ev = self.sub.next() => ev,
                () = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.closing.wait_for(|c| *c) => return None,
            };
            let stored = match ev {
                Some(News::Summary(s)) => {
                    self.pending.push_back(s);
                    continue;
                }
                Some(News::Stored(id)) if self.sent.contains(&id) => continue,
                Some(News::Stored(id)) => Some(id),
                Some(News::Carried(a)) if self.sent.contains(&a.id()) => continue,
                Some(News::Carried(a)) => match self.take_carried(&a) {
                    Ok(()) => continue,
                    // Cannot happen for a record the channel checked; its read can tell.
                    Err(e) => {
                        tracing::warn!(error = %e, "live push: a carried record unreadable; reading it");
                        Some(a.id())
                    }
                },
                Some(News::Missed) => None,
                // The cluster client stopped (shutdown): the connection ends.
                None => return None,
            };
            // A read of the cluster ends with the connection too, not after it.
            let deadline = self.deadline;
            let mut closing = self.closing.clone();
            tokio::select! {
                () = self.catch_up(stored) => {}
                () = tokio::time::sleep_until(deadline) => return None,
                _ = closing.wait_for(|c| *c) => return None,
            }
        }
    }

    /// Queues the announced message `stored`, or re-lists when news may have been lost.
    async fn catch_up(&mut self, stored: Option<MessageId>) {
        match stored {
            Some(id) => self.read_stored(id).await,
            None => self.relist().await,
        }
    }

    /// Queues announced message `id`, read once for both its listing item and its
    /// verifications (cached for the item); gone already (expired, deleted) is nothing to
    /// send, and a failed read falls back to a re-list.
    async fn read_stored(&mut self, id: MessageId) {
        let read = self
            .mail
            .read_for(&self.mailbox, id, shown(&self.verify, id))
            .await;
        match read {
            Ok(Some(s)) => self.pending.push_back(s),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "live push read failed; re-listing");
                self.relist().await;
            }
        }
    }

    /// Queues a message whose announcement carried its record (no read), with its
    /// verifications cached for the item like [`Feed::read_stored`]; an expired one is
    /// nothing to send.
    fn take_carried(&mut self, a: &Announced) -> Result<(), ClusterError> {
        let summary = a.read_for(&self.mailbox, shown(&self.verify, a.id()))?;
        self.pending.extend(summary);
        Ok(())
    }

    /// Queues what may have been missed since the feed started.
    async fn relist(&mut self) {
        if let Err(e) = self.replay_after(self.floor).await {
            // The next event or the client's resume re-lists again.
            tracing::warn!(error = %e, "live push re-list failed");
        }
    }

    /// Records `id` as sent; false if it was sent already.
    fn mark_sent(&mut self, id: MessageId) -> bool {
        if self.sent.contains(&id) {
            return false;
        }
        if self.sent.len() >= SENT_IDS_MAX {
            self.sent.pop_front();
        }
        self.sent.push_back(id);
        true
    }
}

/// What a feed takes from message `id` it is about to show: the listing summary, with the
/// verifications cached for the item (one pass over the bytes for both).
fn shown(verify: &VerifyCache, id: MessageId) -> impl FnOnce(&MessageRef<'_>) -> MessageSummary {
    move |m| {
        verify.of_raw(id, m.raw());
        m.summary().clone()
    }
}

/// Where a feed hears of new messages.
enum Source {
    /// The embedded store's subscription: each new summary, or a lag notice.
    Local(Subscription),
    /// Fleet mode: each new record's id from the mailbox's shard channel, or a notice that
    /// some may have been lost (pub/sub may lose them, the index does not).
    Fleet(tempmx_store::cluster::FleetSubscription),
}

/// What a feed's source reports.
enum News {
    /// A new message's listing summary (the embedded store hands it over).
    Summary(MessageSummary),
    /// A new message's id (a fleet node stored it): read it.
    Stored(MessageId),
    /// A new message a fleet node stored, its record carried by the announcement.
    Carried(Announced),
    /// News may have been lost: re-list.
    Missed,
}

impl Source {
    async fn next(&mut self) -> Option<News> {
        match self {
            Self::Local(sub) => Some(match sub.recv().await {
                Event::New(s) => News::Summary(s),
                Event::Lagged { .. } => News::Missed,
            }),
            Self::Fleet(sub) => Some(match sub.next().await? {
                Heard::Stored(id) => News::Stored(id),
                Heard::Carried(a) => News::Carried(a),
                Heard::Missed => News::Missed,
            }),
        }
    }
}

/// Server-Sent Events: `new_message` events carrying the listing item, `id` = message id.
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/events", tag = "push",
    params(("address" = String, Path, description = "The mailbox address"), PushQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this message id")),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = MessageItem,
        description = "`event: new_message`, `id: <message id>`, `data: <MessageItem JSON>`"),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
pub async fn events(
    State(state): State<PublicState>,
    Extension(ip): Extension<ClientIp>,
    PathParams(address): PathParams<String>,
    QueryParams(q): QueryParams<PushQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    let resume = resume_id(&headers, q.last_event_id.as_deref())?;
    let feed = Feed::start(
        &state,
        opened.address,
        ip,
        Transport::Sse,
        resume,
        opened.expires_at_ms,
    )
    .await?;
    let keepalive = KeepAlive::new().interval(Duration::from_secs(state.config.keepalive_secs));
    let mut resp = Sse::new(sse_stream(state.clone(), feed))
        .keep_alive(keepalive)
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(resp)
}

fn sse_stream(state: PublicState, feed: Feed) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold((state, feed), |(state, mut feed)| async move {
        let s = feed.next().await?;
        let item = item(&state, &feed.mailbox, &s).await;
        let ev = SseEvent::default()
            .event(NEW_MESSAGE)
            .id(item.id.clone())
            .json_data(&item)
            .unwrap_or_default();
        Some((Ok(ev), (state, feed)))
    })
}

/// WebSocket with the same events as text frames:
/// `{"event":"new_message","id":"…","message":{MessageItem}}`.
#[utoipa::path(get, path = "/api/v1/mailboxes/{address}/ws", tag = "push",
    params(("address" = String, Path, description = "The mailbox address"), PushQuery),
    security(("bearer" = [])),
    responses((status = 101, description = "Switching to WebSocket"),
        (status = 400, body = Problem, description = "Not a WebSocket handshake, or a bad query"),
        (status = 404, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn websocket(
    State(state): State<PublicState>,
    Extension(ip): Extension<ClientIp>,
    PathParams(address): PathParams<String>,
    QueryParams(q): QueryParams<PushQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let opened = open(&state, &address, token(&headers, q.token.as_deref())).await?;
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let resume = resume_id(&headers, q.last_event_id.as_deref())?;
    let feed = Feed::start(
        &state,
        opened.address,
        ip,
        Transport::WebSocket,
        resume,
        opened.expires_at_ms,
    )
    .await?;
    let keepalive = Duration::from_secs(state.config.keepalive_secs);
    // Clients only listen; anything bigger than a control frame is not expected.
    Ok(upgrade
        .max_message_size(4096)
        .on_upgrade(move |socket| run_socket(socket, state, feed, keepalive)))
}

async fn run_socket(
    mut socket: WebSocket,
    state: PublicState,
    mut feed: Feed,
    keepalive: Duration,
) {
    let mut ping = tokio::time::interval(keepalive);
    ping.tick().await;
    let mailbox = feed.mailbox.clone();
    loop {
        tokio::select! {
            next = feed.next() => {
                let Some(s) = next else { break };
                let item = item(&state, &mailbox, &s).await;
                let frame = serde_json::json!({ "event": NEW_MESSAGE, "id": item.id, "message": item });
                if socket.send(WsMessage::Text(frame.to_string().into())).await.is_err() {
                    return;
                }
            }
            _ = ping.tick() => {
                if socket.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}

fn resume_id(headers: &HeaderMap, query: Option<&str>) -> ApiResult<Option<MessageId>> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query);
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse::<MessageId>()
                .map_err(|_| ApiError::BadRequest(format!("`{s}` is not a message id")))
        })
        .transpose()
}
