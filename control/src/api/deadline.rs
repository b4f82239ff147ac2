//! Deadlines of the HTTP listeners: hyper bounds the time to send a request head
//! (`http.header_read_ms_max`, then it closes the connection); the middleware here bounds
//! the time to send its body (`http.body_read_ms_max`, then the answer is 408), and says
//! `Connection: close` on any answer that left the body unread.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use super::problem::Problem;

/// How long a client may take to send a request, on both listeners.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// From the connection's start, or the end of the previous response, to the end of
    /// the request head.
    pub header_read: Duration,
    /// From the end of the head to the end of the body.
    pub body_read: Duration,
}

/// What became of a request body while its handler ran.
#[derive(Default)]
struct BodyState {
    /// The deadline passed before its end.
    expired: AtomicBool,
    /// Its end was read.
    ended: AtomicBool,
}

/// Gives the handler a body that fails once `limit` has passed since the head arrived,
/// and answers 408 (closing the connection) when that happened. An answer that left the
/// body unread (an extractor refused the request first) says `Connection: close`: hyper
/// closes such a connection after the answer anyway, and a client that reused it would
/// fail its next request.
pub async fn body_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let state = Arc::new(BodyState::default());
    let seen = state.clone();
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            state: seen,
        })
    });
    let mut response = next.run(req).await;
    if !state.expired.load(Ordering::Relaxed) {
        if !state.ended.load(Ordering::Relaxed) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
    }
    let detail = format!(
        "the request body did not arrive within {} ms",
        limit.as_millis()
    );
    let mut response = Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "body-timeout",
        "Request body too slow",
        detail,
    )
    .into_response();
    // The rest of the body may still be on its way; the connection cannot be reused.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline has passed, however it trickles in.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    state: Arc<BodyState>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        // Checked before every frame: a client dripping bytes always has one ready.
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.state.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("request body deadline passed"))));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.state.ended.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
