//! mail.tm's JSON: resources in JSON-LD (`@context`, `@id`, `@type`) or plain JSON as the
//! `Accept` header asks (API Platform's negotiation), Hydra collections, and its error
//! bodies.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// mail.tm's page size of `GET /messages`.
pub const PAGE_SIZE: usize = 30;

/// The representation a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/ld+json` (the default): JSON-LD resources, Hydra collections.
    JsonLd,
    /// `application/json`: bare resources and bare arrays.
    Json,
}

impl Format {
    /// Picks the format from `Accept`: plain JSON only when asked for and JSON-LD is not.
    pub fn of(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if accept.contains("application/json") && !accept.contains("application/ld+json") {
            Self::Json
        } else {
            Self::JsonLd
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::JsonLd => "application/ld+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }

    /// A resource: `body` plus the JSON-LD keys in JSON-LD.
    pub fn resource(self, kind: &str, iri: &str, mut body: Map<String, Value>) -> Value {
        if self == Self::JsonLd {
            body.insert("@context".into(), json!(format!("/contexts/{kind}")));
            body.insert("@id".into(), json!(iri));
            body.insert("@type".into(), json!(kind));
        }
        Value::Object(body)
    }

    /// A collection page: a Hydra collection in JSON-LD, a bare array in JSON.
    pub fn collection(
        self,
        kind: &str,
        path: &str,
        members: Vec<Value>,
        total: usize,
        page: Option<(usize, usize)>,
    ) -> Value {
        if self == Self::Json {
            return Value::Array(members);
        }
        let mut c = json!({
            "@context": format!("/contexts/{kind}"),
            "@id": path,
            "@type": "hydra:Collection",
            "hydra:member": members,
            "hydra:totalItems": total,
        });
        if let Some((page, last)) = page {
            let mut view = json!({
                "@id": format!("{path}?page={page}"),
                "@type": "hydra:PartialCollectionView",
                "hydra:first": format!("{path}?page=1"),
                "hydra:last": format!("{path}?page={last}"),
            });
            if page > 1 {
                view["hydra:previous"] = json!(format!("{path}?page={}", page - 1));
            }
            if page < last {
                view["hydra:next"] = json!(format!("{path}?page={}", page + 1));
            }
            c["hydra:view"] = view;
        }
        c
    }

    /// A JSON answer with this format's content type.
    pub fn reply(self, status: StatusCode, body: &Value) -> Response {
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        resp
    }
}

/// A 200 with `v`, or the error, in the request's format.
pub fn answer(f: Format, r: Result<Value, MtError>) -> Response {
    match r {
        Ok(v) => f.reply(StatusCode::OK, &v),
        Err(e) => e.reply(f),
    }
}

/// An error as mail.tm answers it.
#[derive(Debug)]
pub enum MtError {
    /// 401 without a token (`JWT Token not found`).
    NoToken,
    /// 401 with a token that opens nothing (`Invalid JWT Token`).
    BadToken,
    /// 401 at `POST /token` (`Invalid credentials.`).
    BadCredentials,
    /// 400 with a message (unreadable body).
    BadRequest(String),
    /// 404.
    NotFound,
    /// 415 for a PATCH that is not `application/merge-patch+json`.
    UnsupportedMedia(String),
    /// 422 with the property and the violation.
    Invalid(&'static str, String),
    /// 503 when a capacity limit is reached.
    Unavailable(String),
}

impl MtError {
    /// The answer in the request's format.
    pub fn reply(&self, format: Format) -> Response {
        let (status, detail) = match self {
            Self::NoToken => {
                return jwt(StatusCode::UNAUTHORIZED, "JWT Token not found");
            }
            Self::BadToken => return jwt(StatusCode::UNAUTHORIZED, "Invalid JWT Token"),
            Self::BadCredentials => {
                return jwt(StatusCode::UNAUTHORIZED, "Invalid credentials.");
            }
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            Self::NotFound => (StatusCode::NOT_FOUND, "Not Found".to_owned()),
            Self::UnsupportedMedia(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m.clone()),
            Self::Invalid(prop, m) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{prop}: {m}")),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
        };
        let violations = match self {
            Self::Invalid(prop, m) => Some(json!([{ "propertyPath": prop, "message": m }])),
            _ => None,
        };
        let mut body = match format {
            Format::JsonLd => json!({
                "@context": if violations.is_some() { "/contexts/ConstraintViolationList" } else { "/contexts/Error" },
                "@type": if violations.is_some() { "ConstraintViolationList" } else { "hydra:Error" },
                "hydra:title": "An error occurred",
                "hydra:description": detail,
            }),
            Format::Json => json!({
                "type": "https://tools.ietf.org/html/rfc2616#section-10",
                "title": "An error occurred",
                "detail": detail,
            }),
        };
        if let Some(v) = violations {
            body["violations"] = v;
        }
        format.reply(status, &body)
    }
}

/// The JWT layer's own error shape (it answers before content negotiation).
fn jwt(status: StatusCode, message: &str) -> Response {
    Format::Json.reply(
        status,
        &json!({ "code": status.as_u16(), "message": message }),
    )
}
