//! The temp-mail APIs people already script against, each under its own prefix and
//! served from the same store, registry, limits and push as `/api/v1`: `mailtm`
//! (mail.tm / mail.gw, Hydra JSON-LD with a Mercure hub), `onesecmail` (1secmail, public
//! mode only), `guerrilla` (Guerrilla Mail's `ajax.php` sessions) and `tempmail_lol`
//! (tempmail.lol v2). `claim` and `mail` are what they share: taking a mailbox, and a
//! stored message rendered for reading. None of them is in the OpenAPI document, which
//! describes `/api/v1` only; the README gives each one's base URL.

pub mod claim;
pub mod guerrilla;
pub mod mail;
pub mod mailtm;
pub mod onesecmail;
pub mod tempmail_lol;

use axum::Router;
use axum::http::Method;

use crate::api::public::PublicState;

/// Prefix of every compatible API (the public guard rate-limits it like `/api/`).
pub const PREFIX: &str = "/compat/";

/// Every compatible API's routes, to merge into the public router; `api.mailboxes_max`
/// bounds Guerrilla Mail sessions like the registry (and mail.tm's accounts, built with
/// the state). In fleet mode they register in the cluster's registry, keep their own
/// state (accounts, sessions) in the cluster and read through the cluster, so any node
/// serves any account, session or inbox (issue 15).
pub fn routes(state: &PublicState) -> Router<PublicState> {
    Router::new()
        .nest(mailtm::PREFIX, mailtm::routes())
        .nest(onesecmail::PREFIX, onesecmail::routes())
        .nest(guerrilla::PREFIX, guerrilla::routes(state))
        .nest(tempmail_lol::PREFIX, tempmail_lol::routes())
}

/// Whether a request creates a mailbox (so it counts against the per-IP creation limit).
pub fn creates(method: &Method, path: &str, query: Option<&str>) -> bool {
    if path.starts_with(guerrilla::PREFIX) {
        return guerrilla::creates(query.unwrap_or_default());
    }
    method == Method::POST
        && (mailtm::creates(path) || path == format!("{}/inbox/create", tempmail_lol::PREFIX))
}
