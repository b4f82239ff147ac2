//! mail.tm / mail.gw compatible API under `/compat/mailtm`: the same paths, field names,
//! JSON-LD/Hydra negotiation, status codes and Mercure live push, so a published client
//! works with only its base URL changed. Accounts are tempmx mailboxes (registered in the
//! one registry, mail in the one store); see `accounts` for what is kept, and `shared`
//! for fleet mode, where accounts live in the cluster beside their mailbox.

mod accounts;
mod json;
mod mercure;
mod message;
mod shared;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tempmx_store::{Mailbox, MessageId};
use tokio::sync::broadcast;

use self::accounts::{
    Account, Accounts, PASSWORD_BYTES_MAX, PASSWORD_CHARS_MIN, hash_password, password_matches,
};
use self::json::{Format, MtError};
use self::shared::SharedAccounts;
use crate::api::compat::claim::{self, claim, release};
use crate::api::compat::mail;
use crate::api::public::PublicState;
use crate::api::public::address::validate_local_part;
use crate::api::public::types::rfc3339;
use crate::mailboxes::log::LogError;
use crate::mailboxes::{Registered, RegistryError, hash, now_ms};
use tempmx_store::cluster::{Cluster, ClusterError};

/// Where the API is served.
pub const PREFIX: &str = "/compat/mailtm";
/// Account quota reported (bytes), mail.tm's figure.
const QUOTA_BYTES: u64 = 40_000_000;
/// Seen/delete events buffered for Mercure subscribers before a slow one misses some.
const EVENTS_MAX: usize = 1024;

/// State of the mail.tm API.
pub struct MailTm {
    accounts: Accounts,
    /// Fleet mode: the accounts are the cluster's (and `accounts` stays empty).
    shared: Option<SharedAccounts>,
    /// Seen and delete events: (account id, message JSON-LD), on a single node. Fleet
    /// mode publishes them on the mailbox's event channel instead, so a Mercure
    /// subscriber on any node sees a change made through any other (see [`MailTm::announce`]).
    events: broadcast::Sender<(String, Value)>,
}

impl MailTm {
    /// Memory-only accounts, bounded like the registry (`api.mailboxes_max`).
    pub fn new(accounts_max: usize) -> Self {
        Self::with(Accounts::new(accounts_max))
    }

    /// Accounts kept in the control state directory `dir` (see `accounts`).
    pub fn open(accounts_max: usize, dir: &std::path::Path) -> Result<Self, LogError> {
        Ok(Self::with(Accounts::open(accounts_max, dir)?))
    }

    /// Fleet mode: accounts kept in the cluster, in their mailbox's slot.
    pub fn fleet(cluster: Arc<Cluster>) -> Self {
        Self {
            shared: Some(SharedAccounts(cluster)),
            ..Self::new(0)
        }
    }

    fn with(accounts: Accounts) -> Self {
        Self {
            accounts,
            shared: None,
            events: broadcast::channel(EVENTS_MAX).0,
        }
    }

    /// Hands a seen or delete event `ev` of `account` to its Mercure subscribers: this
    /// node's, or in fleet mode every node's. At most once, as Mercure's own hub is; a
    /// cluster that cannot take it is logged.
    async fn announce(&self, account: &Account, ev: Value) {
        match &self.shared {
            Some(s) => {
                let payload = ev.to_string().into_bytes();
                if let Err(e) = s.0.publish_event(&account.address, payload).await {
                    tracing::warn!(error = %e, "mail.tm event not published to the fleet");
                }
            }
            None => {
                // No subscriber is no error.
                let _ = self.events.send((account.id.clone(), ev));
            }
        }
    }

    /// Where `account`'s seen and delete events come from for its Mercure subscription.
    async fn events_of(&self, account: &Account) -> Result<mercure::Events, ClusterError> {
        Ok(match &self.shared {
            Some(s) => mercure::Events::Fleet(s.0.subscribe_events(&account.address).await?),
            None => mercure::Events::Local(self.events.subscribe()),
        })
    }

    /// Adds the account of `address`, registered just now as `reg`.
    async fn insert(
        &self,
        address: Mailbox,
        password_hash: String,
        reg: &Registered,
    ) -> Result<Account, String> {
        match &self.shared {
            Some(s) => s
                .insert(
                    address,
                    password_hash,
                    now_ms(),
                    hash(&reg.token),
                    reg.expires_at_ms,
                )
                .await
                .map_err(|e| e.to_string()),
            None => self
                .accounts
                .insert(address, password_hash, now_ms())
                .map_err(|e| e.to_string()),
        }
    }

    /// The account of `address` (`None` too when the cluster cannot be read; logged).
    async fn by_address(&self, address: &Mailbox) -> Option<Account> {
        match &self.shared {
            Some(s) => logged(s.load(address).await).map(|l| l.account),
            None => self.accounts.by_address(address),
        }
    }

    /// The account a bearer token opens.
    async fn by_token(&self, token: &str) -> Option<Account> {
        match &self.shared {
            Some(s) => logged(s.by_token(token).await).map(|l| l.account),
            None => self.accounts.by_token(token),
        }
    }

    /// Issues a bearer token for `a`, whose mailbox expires at `expires_at_ms`.
    async fn issue_token(&self, a: &Account, expires_at_ms: u64) -> Result<String, String> {
        let Some(s) = &self.shared else {
            return self.accounts.issue_token(&a.id).map_err(|e| e.to_string());
        };
        let loaded = s
            .load(&a.address)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("account is gone")?;
        s.issue_token(&loaded, now_ms(), expires_at_ms)
            .await
            .map_err(|e| e.to_string())
    }

    /// Removes account `a` and its tokens (its mailbox is the caller's to release).
    async fn remove(&self, a: &Account) {
        match &self.shared {
            Some(s) => {
                if let Err(e) = s.remove(&a.address).await {
                    tracing::warn!(error = %e, "mail.tm account not removed; it lapses with its mailbox");
                }
            }
            None => {
                self.accounts.remove(&a.id);
            }
        }
    }

    /// The messages of `a` marked seen.
    async fn seen(&self, a: &Account) -> HashSet<MessageId> {
        match &self.shared {
            Some(s) => logged(s.load(&a.address).await)
                .map(|l| l.seen)
                .unwrap_or_default(),
            None => self.accounts.seen_of(&a.id),
        }
    }

    /// Marks message `m` of `a` seen or unseen; `seen_max` bounds the marks.
    async fn set_seen(
        &self,
        state: &PublicState,
        a: &Account,
        m: MessageId,
        seen: bool,
        seen_max: usize,
    ) {
        let Some(s) = &self.shared else {
            return self.accounts.set_seen(&a.id, m, seen, seen_max);
        };
        let Some(expires) = claim::expires_at(state, &a.address).await else {
            return;
        };
        let Some(loaded) = logged(s.load(&a.address).await) else {
            return;
        };
        if let Err(e) = s.set_seen(&loaded, m, seen, seen_max, expires).await {
            tracing::warn!(error = %e, "mail.tm seen mark not saved");
        }
    }
}

/// The value of a cluster lookup, or `None` with the error logged.
fn logged<T>(r: Result<Option<T>, tempmx_store::cluster::ClusterError>) -> Option<T> {
    r.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "mail.tm account lookup failed");
        None
    })
}

/// The routes, relative to [`PREFIX`]; they serve the state's [`MailTm`].
pub fn routes() -> Router<PublicState> {
    Router::new()
        .route("/domains", get(domains))
        .route("/domains/{id}", get(domain))
        .route("/accounts", axum::routing::post(create_account))
        .route("/accounts/{id}", get(get_account).delete(delete_account))
        .route("/token", axum::routing::post(token))
        .route("/me", get(me))
        .route("/messages", get(message::list))
        .route(
            "/messages/{id}",
            get(message::get)
                .patch(message::patch)
                .delete(message::delete),
        )
        .route("/messages/{id}/download", get(message::download))
        .route("/messages/{id}/attachment/{att}", get(message::attachment))
        .route("/sources/{id}", get(message::source))
        .route("/.well-known/mercure", get(mercure::subscribe))
}

/// mail.tm-style id of a domain: the first 12 bytes of its SHA-256, in hex.
fn domain_id(domain: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, domain.as_bytes());
    hex::encode(&d.as_ref()[..12])
}

fn domain_json(f: Format, domain: &str) -> Value {
    let id = domain_id(domain);
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("domain".into(), json!(domain));
    m.insert("isActive".into(), json!(true));
    m.insert("isPrivate".into(), json!(false));
    m.insert("createdAt".into(), json!(rfc3339(0)));
    m.insert("updatedAt".into(), json!(rfc3339(0)));
    f.resource("Domain", &format!("/domains/{id}"), m)
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
}

/// `GET /domains`.
async fn domains(State(state): State<PublicState>, headers: HeaderMap) -> Response {
    let f = Format::of(&headers);
    let list: Vec<Value> = state
        .domains
        .active()
        .iter()
        .map(|d| domain_json(f, d.as_str()))
        .collect();
    let n = list.len();
    f.reply(
        StatusCode::OK,
        &f.collection("Domain", "/domains", list, n, Some((1, 1))),
    )
}

/// `GET /domains/{id}`.
async fn domain(
    State(state): State<PublicState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let f = Format::of(&headers);
    match state
        .domains
        .active()
        .iter()
        .find(|d| domain_id(d.as_str()) == id)
    {
        Some(d) => f.reply(StatusCode::OK, &domain_json(f, d.as_str())),
        None => MtError::NotFound.reply(f),
    }
}

async fn account_json(f: Format, state: &PublicState, a: &Account) -> Value {
    let used: u64 = mail::list(state, &a.address)
        .await
        .unwrap_or_default()
        .iter()
        .map(|s| s.size)
        .sum();
    let mut m = Map::new();
    m.insert("id".into(), json!(a.id));
    m.insert("address".into(), json!(&a.address));
    m.insert("quota".into(), json!(QUOTA_BYTES));
    m.insert("used".into(), json!(used));
    m.insert("isDisabled".into(), json!(false));
    m.insert("isDeleted".into(), json!(false));
    m.insert("createdAt".into(), json!(rfc3339(a.created_at_ms)));
    m.insert("updatedAt".into(), json!(rfc3339(a.created_at_ms)));
    f.resource("Account", &format!("/accounts/{}", a.id), m)
}

#[derive(Deserialize)]
struct Credentials {
    address: Option<String>,
    password: Option<String>,
}

fn credentials(body: &Bytes) -> Result<(String, String), MtError> {
    let c: Credentials = serde_json::from_slice(body)
        .map_err(|e| MtError::BadRequest(format!("Syntax error: {e}")))?;
    let address = c.address.ok_or(MtError::Invalid(
        "address",
        "This value should not be blank.".into(),
    ))?;
    let password = c.password.ok_or(MtError::Invalid(
        "password",
        "This value should not be blank.".into(),
    ))?;
    Ok((address, password))
}

/// `POST /accounts`: registers the address in the mailbox registry and keeps an argon2
/// hash of the password.
async fn create_account(
    State(state): State<PublicState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Format::of(&headers);
    match try_create(&state, &state.mailtm, body).await {
        Ok(a) => f.reply(StatusCode::CREATED, &account_json(f, &state, &a).await),
        Err(e) => e.reply(f),
    }
}

async fn try_create(state: &PublicState, mt: &MailTm, body: Bytes) -> Result<Account, MtError> {
    let (address, password) = credentials(&body)?;
    let invalid = || MtError::Invalid("address", "This value is not a valid email address.".into());
    let mailbox = Mailbox::parse(address.trim()).map_err(|_| invalid())?;
    if !state
        .domains
        .active()
        .iter()
        .any(|d| d.as_str() == mailbox.domain())
    {
        return Err(MtError::Invalid(
            "address",
            "This value is not valid.".into(),
        ));
    }
    validate_local_part(mailbox.local()).map_err(|e| MtError::Invalid("address", e.to_string()))?;
    if password.chars().count() < PASSWORD_CHARS_MIN || password.len() > PASSWORD_BYTES_MAX {
        return Err(MtError::Invalid(
            "password",
            format!(
                "This value should be {PASSWORD_CHARS_MIN} to {PASSWORD_BYTES_MAX} characters long."
            ),
        ));
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| MtError::Unavailable(e.to_string()))?
        .map_err(|e| MtError::Unavailable(e.to_string()))?;
    let reg = match claim(state, &mailbox).await {
        Ok(reg) => reg,
        Err(RegistryError::Taken) => {
            return Err(MtError::Invalid(
                "address",
                "This value is already used.".into(),
            ));
        }
        Err(e) => return Err(MtError::Unavailable(e.to_string())),
    };
    match mt.insert(mailbox.clone(), hash, &reg).await {
        Ok(a) => Ok(a),
        Err(e) => {
            release(state, &mailbox).await;
            Err(MtError::Unavailable(e))
        }
    }
}

/// `POST /token`: checks the password, answers `{id, token}`.
async fn token(State(state): State<PublicState>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Format::of(&headers);
    let mt = &state.mailtm;
    let (address, password) = match credentials(&body) {
        Ok(c) => c,
        Err(e) => return e.reply(f),
    };
    let account = match Mailbox::parse(address.trim()) {
        Ok(m) => mt.by_address(&m).await,
        Err(_) => None,
    };
    let expires = match &account {
        Some(a) => claim::expires_at(&state, &a.address).await,
        None => None,
    };
    let account = account.filter(|_| expires.is_some());
    // Unknown addresses cost a hash too, so timing does not tell them apart.
    let phc = account.as_ref().map(|a| a.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match phc {
        Some(h) => password_matches(&password, &h),
        None => {
            let _ = hash_password(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    match account.filter(|_| ok) {
        Some(a) => {
            let token = match mt.issue_token(&a, expires.unwrap_or_default()).await {
                Ok(t) => t,
                Err(e) => return MtError::Unavailable(e).reply(f),
            };
            let body = json!({ "@id": format!("/accounts/{}", a.id), "id": a.id, "token": token });
            f.reply(StatusCode::OK, &body)
        }
        None => MtError::BadCredentials.reply(f),
    }
}

/// The account the bearer token opens (and whose mailbox is still live).
async fn authed(state: &PublicState, mt: &MailTm, headers: &HeaderMap) -> Result<Account, MtError> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(MtError::NoToken)?;
    bearer(state, mt, raw).await
}

async fn bearer(state: &PublicState, mt: &MailTm, token: &str) -> Result<Account, MtError> {
    let a = mt.by_token(token).await.ok_or(MtError::BadToken)?;
    if !claim::is_live(state, &a.address).await {
        if mt.shared.is_none() {
            mt.remove(&a).await;
        }
        return Err(MtError::BadToken);
    }
    Ok(a)
}

/// A request's format and the account its bearer token opens: what every authenticated
/// handler starts from. Rejected with the token error in the request's format.
pub struct Authed {
    /// The representation the request asked for.
    pub f: Format,
    /// The account.
    pub account: Account,
    /// The API's state.
    pub mt: Arc<MailTm>,
}

impl FromRequestParts<PublicState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PublicState,
    ) -> Result<Self, Self::Rejection> {
        let f = Format::of(&parts.headers);
        let mt = state.mailtm.clone();
        let account = authed(state, &mt, &parts.headers)
            .await
            .map_err(|e| e.reply(f))?;
        Ok(Self { f, account, mt })
    }
}

/// `GET /me`.
async fn me(State(state): State<PublicState>, Authed { f, account, .. }: Authed) -> Response {
    f.reply(StatusCode::OK, &account_json(f, &state, &account).await)
}

/// `GET /accounts/{id}`: only the token's own account.
async fn get_account(
    State(state): State<PublicState>,
    Authed { f, account, .. }: Authed,
    Path(id): Path<String>,
) -> Response {
    if account.id != id {
        return MtError::NotFound.reply(f);
    }
    f.reply(StatusCode::OK, &account_json(f, &state, &account).await)
}

/// `DELETE /accounts/{id}`: the mailbox, its mail and the account go.
async fn delete_account(
    State(state): State<PublicState>,
    Authed { f, account, mt }: Authed,
    Path(id): Path<String>,
) -> Response {
    if account.id != id {
        return MtError::NotFound.reply(f);
    }
    mt.remove(&account).await;
    release(&state, &account.address).await;
    StatusCode::NO_CONTENT.into_response()
}

/// A page number from the query (`1` when absent); mail.tm answers 400 for a bad one.
fn page_of(q: &PageQuery) -> Result<usize, MtError> {
    match q.page.as_deref() {
        None | Some("") => Ok(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| MtError::BadRequest("Page should not be less than 1".into())),
    }
}

fn parse_id(id: &str) -> Result<MessageId, MtError> {
    id.parse::<MessageId>().map_err(|_| MtError::NotFound)
}

/// Whether a request creates an account (for the per-IP creation limit).
pub fn creates(path: &str) -> bool {
    path.strip_prefix(PREFIX) == Some("/accounts")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: domain ids are stable, 24 hex digits, distinct per domain.
    #[test]
    fn domain_ids() {
        let a = domain_id("pool.test");
        assert_eq!(a.len(), 24);
        assert_eq!(a, domain_id("pool.test"));
        assert_ne!(a, domain_id("other.test"));
    }
}
