//! RFC 9457 problem details (`application/problem+json`) with stable `type` URIs.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::pool::ControlError;

/// Prefix of every problem `type`; the slug after it never changes meaning.
pub const TYPE_PREFIX: &str = "urn:tempmx:problem:";
/// The media type of problem responses.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem details object.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier: `urn:tempmx:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// Every individual problem, for validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Problem {
    /// A problem of type `slug`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{TYPE_PREFIX}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// Adds the individual errors.
    pub fn with_errors(mut self, errors: Vec<String>) -> Self {
        self.errors = errors;
        self
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
    }

    /// 403: the caller may not do this.
    pub fn forbidden(slug: &str, detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, slug, "Forbidden", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Serializing a struct of strings cannot fail; the fallback keeps the status anyway.
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = HeaderValue::from_static("Bearer realm=\"tempmx-admin\"");
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        resp
    }
}

impl From<ControlError> for Problem {
    fn from(e: ControlError) -> Self {
        use ControlError as E;
        let detail = e.to_string();
        let (status, slug, title, errors) = match e {
            E::BatchTooLarge { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch-too-large",
                "Too many domains in one request",
                vec![],
            ),
            E::DomainNotEmpty(_) => (
                StatusCode::CONFLICT,
                "domain-not-empty",
                "Domain is not empty",
                vec![],
            ),
            E::DomainNotRetired(_) => (
                StatusCode::CONFLICT,
                "domain-not-retired",
                "Domain is not retired",
                vec![],
            ),
            E::InvalidDomains(names) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-domain",
                "Invalid domain name",
                names,
            ),
            E::InvalidPolicy(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-policy",
                "Invalid rotation policy",
                errors,
            ),
            E::InvalidTransition { .. } => (
                StatusCode::CONFLICT,
                "invalid-transition",
                "State change not allowed",
                vec![],
            ),
            E::PoolFull(_) => (
                StatusCode::CONFLICT,
                "pool-full",
                "Domain limit reached",
                vec![],
            ),
            E::ReasonTooLong(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "reason-too-long",
                "Reason too long",
                vec![],
            ),
            E::UnknownDomain(_) => (
                StatusCode::NOT_FOUND,
                "unknown-domain",
                "Domain not in the pool",
                vec![],
            ),
            E::State(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "state-not-saved",
                "State could not be saved",
                vec![],
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                vec![],
            ),
        };
        Problem::new(status, slug, title, detail).with_errors(errors)
    }
}

/// Documents every `Problem` body under its real media type, `application/problem+json`
/// (utoipa writes every body as `application/json`). Apply to a finished document.
pub fn document_media_type(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    let problem_ref = "#/components/schemas/Problem";
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            for response in op.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_problem = response.content.get("application/json").is_some_and(
                    |c| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location == problem_ref),
                );
                if let Some(content) = is_problem
                    .then(|| response.content.shift_remove("application/json"))
                    .flatten()
                {
                    response.content.insert(CONTENT_TYPE.to_owned(), content);
                }
            }
        }
    }
}

/// A JSON request body whose rejections are problems (400 malformed, 413 too large,
/// 415 not JSON, 422 wrong fields).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(r: JsonRejection) -> Problem {
    let detail = r.body_text();
    let status = r.status();
    let (slug, title) = match r {
        JsonRejection::JsonDataError(_) => {
            ("invalid-body", "Request body has wrong fields or values")
        }
        JsonRejection::JsonSyntaxError(_) => ("malformed-body", "Request body is not valid JSON"),
        JsonRejection::MissingJsonContentType(_) => (
            "unsupported-media-type",
            "Request body must be application/json",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            ("body-too-large", "Request body too large")
        }
        _ => ("malformed-body", "Request body could not be read"),
    };
    Problem::new(status, slug, title, detail)
}

/// Query parameters whose rejection is a 400 problem.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(r) => Err(query_problem(r)),
        }
    }
}

/// Path parameters whose rejection is a 400 problem (a segment that is not UTF-8 once
/// percent-decoded, or not of the parameter's type).
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(r) => Err(path_problem(r)),
        }
    }
}

fn path_problem(r: PathRejection) -> Problem {
    Problem::new(
        r.status(),
        "invalid-path",
        "Invalid path parameters",
        r.body_text(),
    )
}

fn query_problem(r: QueryRejection) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-query",
        "Invalid query parameters",
        r.body_text(),
    )
}
