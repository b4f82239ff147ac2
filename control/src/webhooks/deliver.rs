//! The delivery queue (one per node, bounded) and its worker: sign, POST to the pinned
//! address with a per-attempt timeout, retry with exponential backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use parking_lot::Mutex;
use ring::hmac;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use super::Webhooks;
use super::target::{Target, TargetError};

/// Header with the unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-tempmx-timestamp";
/// Header `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-tempmx-signature";
/// Backoff doublings at most (the longest wait is `backoff_ms_min` × 2^this).
const BACKOFF_DOUBLINGS_MAX: u32 = 10;

/// One delivery: a body for one hook.
#[derive(Debug)]
pub struct Job {
    /// The hook's URL (checked at registration; resolved and checked again here).
    pub target: Target,
    /// The hook's HMAC key.
    pub secret: String,
    /// The JSON body, shared by every hook of the mailbox.
    pub body: Bytes,
}

/// The bounded queue; `push` never waits.
pub struct Queue {
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl Queue {
    /// A queue of `max` jobs.
    pub fn new(max: usize) -> Self {
        let (tx, rx) = mpsc::channel(max.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Queues `job`; false when the queue is full (or no worker runs any more).
    pub fn push(&self, job: Job) -> bool {
        self.tx.try_send(job).is_ok()
    }
}

/// The signature header value of `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign()))
}

/// Runs the worker until the queue closes: at most `deliveries_concurrent_max` deliveries
/// in flight; while all are busy the queue fills and further jobs are dropped.
pub async fn run(hooks: Arc<Webhooks>) {
    let Some(mut rx) = hooks.queue.rx.lock().take() else {
        return;
    };
    let slots = Arc::new(Semaphore::new(hooks.config.deliveries_concurrent_max));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(job) = rx.recv().await else {
            return;
        };
        let hooks = Arc::clone(&hooks);
        tokio::spawn(async move {
            deliver(&hooks, &job).await;
            drop(permit);
        });
    }
}

/// Delivers one job with retries and counts the result.
async fn deliver(hooks: &Webhooks, job: &Job) {
    let cfg = &hooks.config;
    let stats = &hooks.stats;
    let timeout = Duration::from_millis(cfg.attempt_timeout_ms);
    for attempt in 0..cfg.attempts_max {
        if attempt > 0 {
            let factor = 1u64 << (attempt - 1).min(BACKOFF_DOUBLINGS_MAX);
            tokio::time::sleep(Duration::from_millis(
                cfg.backoff_ms_min.saturating_mul(factor),
            ))
            .await;
        }
        let addr = match job.target.resolve(&hooks.allow, timeout).await {
            Ok(a) => a,
            Err(e @ TargetError::Refused(_)) => {
                warn!(error = %e, "webhook delivery refused");
                stats.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                debug!(error = %e, attempt, "webhook target unresolved");
                continue;
            }
        };
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        match post(job, addr, timeout).await {
            Ok(status) if status.is_success() => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(status) => debug!(%status, attempt, "webhook answered non-2xx"),
            Err(e) => debug!(error = %e, attempt, "webhook attempt failed"),
        }
    }
    stats.failed.fetch_add(1, Ordering::Relaxed);
}

/// One POST to `addr` (the checked address) under the URL's host name.
async fn post(
    job: &Job,
    addr: std::net::SocketAddr,
    timeout: Duration,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    // A client per attempt: `resolve` pins this attempt's checked address, and nothing
    // (proxy, redirect) may send the request elsewhere.
    let client = reqwest::Client::builder()
        .resolve(job.target.host(), addr)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .build()?;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let resp = client
        .post(job.target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, timestamp)
        .header(
            SIGNATURE_HEADER,
            signature(&job.secret, timestamp, &job.body),
        )
        .body(job.body.clone())
        .send()
        .await?;
    Ok(resp.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the header is `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`.
    // Method: decode the hex and verify it with ring against that input.
    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let sig = signature("key", 1700000000, b"{}");
        let tag = sig.strip_prefix("sha256=").expect("prefix");
        assert_eq!(tag.len(), 64);
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"key");
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&tag[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        hmac::verify(&key, b"1700000000.{}", &raw).expect("valid tag");
    }
}
