//! Who may open a mailbox: the bearer token (token mode) or anyone for a pool domain
//! (public mode). Every refusal is the same 404 as an unknown mailbox.

use axum::http::{HeaderMap, header};

use super::PublicState;
use tempmx_store::Mailbox;

use super::address::path_mailbox;
use super::config::AccessMode;
use super::error::{ApiError, ApiResult};
use crate::mailboxes::now_ms;

/// Bytes of a token we even look at; longer ones cannot be ours.
const TOKEN_BYTES_MAX: usize = 128;

/// A mailbox the caller has shown it may open.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The mailbox.
    pub address: Mailbox,
    /// When the mailbox expires, if it is registered (ms since epoch).
    pub expires_at_ms: Option<u64>,
}

/// The token from `Authorization: Bearer …`, else from the query string.
pub fn token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    from_header
        .filter(|t| !t.is_empty())
        .or(query)
        .filter(|t| !t.is_empty() && t.len() <= TOKEN_BYTES_MAX)
}

/// Checks that the caller may open `raw_address` (in fleet mode against the cluster's
/// registry, so a token made on any node works on every node).
pub async fn open(
    state: &PublicState,
    raw_address: &str,
    token: Option<&str>,
) -> ApiResult<Opened> {
    let address = path_mailbox(raw_address)?;
    if let Some(fleet) = &state.fleet {
        let expires_at_ms = match state.config.access {
            AccessMode::Token => {
                let t = token.ok_or(ApiError::NotFound)?;
                Some(fleet.verify(&address, t).await?.ok_or(ApiError::NotFound)?)
            }
            AccessMode::Public => {
                if !state.domains.receives(&address.to_domain()) {
                    return Err(ApiError::NotFound);
                }
                fleet.expires_at(&address).await?
            }
        };
        return Ok(Opened {
            address,
            expires_at_ms,
        });
    }
    let now = now_ms();
    match state.config.access {
        AccessMode::Token => {
            let ok = token.is_some_and(|t| state.registry.verify(&address, t, now));
            if !ok {
                return Err(ApiError::NotFound);
            }
            let expires_at_ms = state.registry.expires_at(&address, now);
            Ok(Opened {
                address,
                expires_at_ms,
            })
        }
        AccessMode::Public => {
            if !state.domains.receives(&address.to_domain()) {
                return Err(ApiError::NotFound);
            }
            let expires_at_ms = state.registry.expires_at(&address, now);
            Ok(Opened {
                address,
                expires_at_ms,
            })
        }
    }
}
