//! The temp-mail APIs people already script against, each under its own prefix and
//! served from the same store, registry, limits and push as `/api/v1`: `mailtm`
//! (mail.tm / mail.gw, Hydra JSON-LD with a Mercure hub).

pub mod mailtm;

use axum::Router;
use axum::http::Method;

use crate::api::public::PublicState;

/// Prefix of every compatible API (the public guard rate-limits it like `/api/`).
pub const PREFIX: &str = "/compat/";

/// Every compatible API's routes, to merge into the public router.
pub fn routes(accounts_max: usize) -> Router<PublicState> {
    Router::new().nest(mailtm::PREFIX, mailtm::routes(accounts_max))
}

/// Whether a request creates a mailbox (so it counts against the per-IP creation limit).
pub fn creates(method: &Method, path: &str) -> bool {
    method == Method::POST && mailtm::creates(path)
}
