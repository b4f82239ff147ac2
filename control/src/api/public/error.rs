//! The public API's errors: each maps to one RFC 9457 [`Problem`] with a stable `type`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use crate::api::problem::Problem;

/// Everything the public API can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is malformed (bad JSON, bad id, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// The requested local part is invalid (length, characters, reserved name).
    #[error("{0}")]
    InvalidAddress(String),
    /// The domain is not offered for new addresses.
    #[error("domain `{0}` is not offered")]
    UnknownDomain(String),
    /// The address is already registered.
    #[error("address `{0}` is taken")]
    AddressTaken(String),
    /// Unknown mailbox, wrong token, or unknown message: deliberately one answer.
    #[error("not found")]
    NotFound,
    /// No route for this path.
    #[error("no such route")]
    NoRoute,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body is over `api.body_bytes_max`.
    #[error("request body too large (limit {0} bytes)")]
    BodyTooLarge(usize),
    /// The request headers are over `api.headers_bytes_max`.
    #[error("request headers too large (limit {0} bytes)")]
    HeadersTooLarge(usize),
    /// A per-IP rate limit is exhausted; retry after this many seconds.
    #[error("rate limit exceeded")]
    RateLimited(u64),
    /// Too many live-push subscribers for this mailbox or client.
    #[error("{0}")]
    TooManySubscribers(String),
    /// The mailbox has `api.webhooks.webhooks_per_mailbox_max` webhooks already.
    #[error("at most {0} webhooks per mailbox")]
    WebhookLimit(usize),
    /// A webhook URL is too long, not http(s), or reaches a refused address.
    #[error("{0}")]
    InvalidWebhook(String),
    /// A capacity limit of the appliance is reached (registry, store subscriptions).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::BadRequest(_) => (S::BAD_REQUEST, "bad-request", "Bad request"),
            Self::InvalidAddress(_) => (
                S::UNPROCESSABLE_ENTITY,
                "invalid-address",
                "Invalid address",
            ),
            Self::UnknownDomain(_) => (
                S::UNPROCESSABLE_ENTITY,
                "unknown-domain",
                "Domain not offered",
            ),
            Self::AddressTaken(_) => (S::CONFLICT, "address-taken", "Address taken"),
            Self::NotFound => (S::NOT_FOUND, "not-found", "Not found"),
            Self::NoRoute => (S::NOT_FOUND, "no-route", "No such route"),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::BodyTooLarge(_) => (
                S::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            Self::HeadersTooLarge(_) => (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request headers too large",
            ),
            Self::RateLimited(_) => (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Self::TooManySubscribers(_) => (
                S::TOO_MANY_REQUESTS,
                "too-many-subscribers",
                "Too many subscribers",
            ),
            Self::WebhookLimit(_) => (S::CONFLICT, "webhook-limit", "Webhook limit reached"),
            Self::InvalidWebhook(_) => (
                S::UNPROCESSABLE_ENTITY,
                "invalid-webhook",
                "Webhook URL not usable",
            ),
            Self::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "unavailable", "Service at capacity"),
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        Problem::new(status, slug, title, self.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.problem().into_response();
        if let Self::RateLimited(secs) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

impl From<tempmx_store::StoreError> for ApiError {
    /// A read the backend could not serve (fleet mode: the cluster did not answer in time,
    /// or a value failed its checks): 503, and the cause in the log, not in the reply.
    fn from(e: tempmx_store::StoreError) -> Self {
        tracing::warn!(error = %e, "message store read failed");
        Self::Unavailable("messages cannot be read right now".into())
    }
}

impl From<tempmx_store::cluster::ClusterError> for ApiError {
    /// The fleet's cluster did not answer a registry call: 503, the cause in the log.
    fn from(e: tempmx_store::cluster::ClusterError) -> Self {
        tracing::warn!(error = %e, "fleet registry call failed");
        Self::Unavailable("mailboxes cannot be reached right now".into())
    }
}

/// Result alias of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: each error maps to a stable type and status; 429 carries Retry-After.
    #[test]
    fn problems_have_stable_types() {
        let p = ApiError::NotFound.problem();
        assert_eq!(p.kind, "urn:tempmx:problem:not-found");
        assert_eq!(p.status, 404);
        let r = ApiError::RateLimited(7).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
