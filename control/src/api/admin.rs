//! The admin API under `/admin/v1`: domains, rotation policy, blocklists, audit log.
//! Bearer-token auth (constant-time compare), RFC 9457 errors, and an OpenAPI document
//! generated from the handlers at `/admin/v1/openapi.json`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::problem::{JsonBody, PathParams, Problem, QueryParams};
use crate::blocklist::{BlocklistCycle, CycleReport, Observation};
use crate::pool::{
    AddOutcome, AuditEvent, ControlError, ControlPlane, DomainInfo, DomainState, Listing,
    PolicyPatch, RotationPolicy,
};
use tempmx_store::cluster::Cluster;

/// Largest admin request body (a bulk import of `import_batch_max` names fits easily).
const BODY_BYTES_MAX: usize = 1 << 20;
/// Default and largest page of audit events.
const AUDIT_PAGE_DEFAULT: usize = 100;
const AUDIT_PAGE_MAX: usize = 1_000;
/// Fleet mode: how long a check request on the lease holder waits for its answers to be
/// written to the cluster before it answers anyway (the holder keeps retrying the write).
const CHECKS_SHARE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Who may call the admin API.
#[derive(Clone, Debug, Default)]
pub struct AdminAuth {
    /// Full-access bearer token (`TEMPMX_ADMIN_TOKEN` / `admin.token`).
    pub token: Option<String>,
    /// Optional read-only token: GET allowed, changes answer 403.
    pub read_token: Option<String>,
    /// Whether the admin listener is on a loopback address (no token then means open).
    pub loopback: bool,
}

impl AdminAuth {
    /// Decides a request: `Err` is the 401/403 problem to answer.
    pub fn check(&self, headers: &HeaderMap, mutating: bool) -> Result<(), Problem> {
        if self.token.is_none() && self.read_token.is_none() {
            if self.loopback || !mutating {
                return Ok(());
            }
            return Err(Problem::forbidden(
                "admin-token-required",
                "no admin token is configured; changes are only accepted on a loopback listener",
            ));
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(presented) = presented else {
            return Err(Problem::unauthorized("a bearer token is required"));
        };
        let matches = |t: &Option<String>| {
            t.as_deref()
                .is_some_and(|t| ct_eq(t.as_bytes(), presented.as_bytes()))
        };
        if matches(&self.token) {
            return Ok(());
        }
        if matches(&self.read_token) {
            if mutating {
                return Err(Problem::forbidden(
                    "read-only-token",
                    "this token may only read",
                ));
            }
            return Ok(());
        }
        Err(Problem::unauthorized("the bearer token is not valid"))
    }
}

/// Compares in time that depends only on the lengths, so a token cannot be guessed byte by byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

#[derive(Clone)]
struct AdminState {
    plane: Arc<ControlPlane>,
    blocklists: Arc<BlocklistCycle>,
    /// The fleet's cluster connection, when fleet mode is on.
    fleet: Option<Arc<Cluster>>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tempmx admin API", version = "1"),
    components(schemas(Problem))
)]
struct ApiDoc;

/// The admin routes (all under `/admin/v1`) with auth and body limit applied; the app
/// merges this into the admin listener's router.
pub fn router(
    plane: Arc<ControlPlane>,
    blocklists: Arc<BlocklistCycle>,
    auth: AdminAuth,
    fleet: Option<Arc<Cluster>>,
) -> Router {
    let (api, _) = api_router().split_for_parts();
    // Serialized once: the document never changes while the process runs.
    let doc = Arc::new(openapi().to_json().unwrap_or_default());
    let auth = Arc::new(auth);
    api.route(
        "/admin/v1/openapi.json",
        get(move || openapi_json(doc.clone())),
    )
    .with_state(AdminState {
        plane,
        blocklists,
        fleet,
    })
    .layer(middleware::from_fn(move |req: Request, next: Next| {
        authorize(auth.clone(), req, next)
    }))
    .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().split_for_parts().1;
    super::problem::document_media_type(&mut doc);
    doc
}

fn api_router() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_domains, add_domains))
        .routes(routes!(get_domain, delete_domain))
        .routes(routes!(set_state))
        .routes(routes!(mark_listed, clear_listing))
        .routes(routes!(domain_stats))
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(blocklist_status))
        .routes(routes!(check_domain))
        .routes(routes!(audit_events))
        .routes(routes!(fleet_status))
}

/// The fleet as this node sees it.
#[derive(Debug, Serialize, ToSchema)]
struct FleetStatus {
    /// This node's `[fleet] node` name.
    node: String,
    /// Every node heard from in the last day, by name.
    nodes: Vec<FleetNode>,
    /// The node holding the rotation lease (it runs the rotation planner and the
    /// blocklist checks); absent while nobody does.
    lease_holder: Option<String>,
    /// The lease's epoch (bumped by every take-over).
    lease_epoch: Option<u64>,
}

/// One node of the fleet.
#[derive(Debug, Serialize, ToSchema)]
struct FleetNode {
    /// Its `[fleet] node` name.
    name: String,
    /// The tempmx version it runs.
    version: String,
    /// `up` while its heartbeat key lives, `gone` once it lapsed.
    state: String,
    /// Its last heartbeat (RFC 3339).
    last_seen: String,
    /// Its last heartbeat (ms since epoch).
    last_seen_ms: u64,
}

/// Fleet membership: every node's version, last heartbeat and whether it is up.
#[utoipa::path(get, path = "/admin/v1/fleet", responses((status = 200, body = FleetStatus),
    (status = 401, body = Problem), (status = 404, body = Problem, description = "Fleet mode is off"),
    (status = 503, body = Problem, description = "The cluster did not answer")))]
async fn fleet_status(State(s): State<AdminState>) -> Result<Json<FleetStatus>, Problem> {
    let Some(cluster) = s.fleet else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "fleet-off",
            "Fleet mode is off",
            "this appliance runs without [fleet]",
        ));
    };
    let members = cluster.members().await.map_err(unavailable)?;
    let lease = cluster.lease_holder().await.map_err(unavailable)?;
    let (lease_holder, lease_epoch) = lease.unzip();
    Ok(Json(FleetStatus {
        lease_holder,
        lease_epoch,
        node: cluster.options().node.clone(),
        nodes: members
            .into_iter()
            .map(|m| FleetNode {
                name: m.node,
                version: m.version,
                state: if m.up { "up" } else { "gone" }.to_owned(),
                last_seen: crate::api::public::types::rfc3339(m.last_seen_ms),
                last_seen_ms: m.last_seen_ms,
            })
            .collect(),
    }))
}

/// The reply when the cluster did not answer.
fn unavailable(e: tempmx_store::cluster::ClusterError) -> Problem {
    tracing::warn!(error = %e, "fleet read failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster-unavailable",
        "Cluster unavailable",
        e.to_string(),
    )
}

async fn authorize(auth: Arc<AdminAuth>, req: Request, next: Next) -> Response {
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD);
    match auth.check(req.headers(), mutating) {
        Ok(()) => next.run(req).await,
        Err(p) => p.into_response(),
    }
}

async fn openapi_json(doc: Arc<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
        .into_response()
}

/// Domain list filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only domains in this state.
    state: Option<DomainState>,
}

/// The domains.
#[derive(Debug, Serialize, ToSchema)]
struct DomainList {
    domains: Vec<DomainInfo>,
}

/// List domains with state, listing status and counters.
#[utoipa::path(get, path = "/admin/v1/domains", params(ListQuery),
    responses((status = 200, body = DomainList), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_domains(
    State(s): State<AdminState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Json<DomainList> {
    let domains = s
        .plane
        .domains()
        .into_iter()
        .filter(|d| q.state.is_none_or(|st| d.domain.state == st))
        .collect();
    Json(DomainList { domains })
}

/// A bulk import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddDomains {
    /// Names to add.
    domains: Vec<String>,
    /// `pending` (default) or `active`.
    #[serde(default)]
    state: Option<DomainState>,
    /// Why (audit log).
    #[serde(default)]
    reason: Option<String>,
}

/// Per-name results of an import.
#[derive(Debug, Serialize, ToSchema)]
struct AddResults {
    results: Vec<AddOutcome>,
}

/// Add one or many domains (all-or-nothing validation; existing names are left unchanged).
#[utoipa::path(post, path = "/admin/v1/domains", request_body = AddDomains,
    responses((status = 201, body = AddResults, description = "at least one added"), (status = 200, body = AddResults, description = "all existed"),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn add_domains(
    State(s): State<AdminState>,
    JsonBody(req): JsonBody<AddDomains>,
) -> Result<Response, Problem> {
    let state = req.state.unwrap_or(DomainState::Pending);
    let results = s.plane.add_domains(
        &req.domains,
        state,
        req.reason.as_deref().unwrap_or("admin api"),
    )?;
    share(&s).await;
    let status = if results.iter().any(|r| r.added) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(AddResults { results })).into_response())
}

/// One domain.
#[utoipa::path(get, path = "/admin/v1/domains/{name}", params(("name" = String, Path, description = "domain name")),
    responses((status = 200, body = DomainInfo), (status = 404, body = Problem), (status = 401, body = Problem)))]
async fn get_domain(
    State(s): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<DomainInfo>, Problem> {
    Ok(Json(s.plane.domain(&pool_domain(&name)?)?))
}

/// Deletion reason.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Why (audit log).
    reason: Option<String>,
}

/// Delete a retired, empty domain.
#[utoipa::path(delete, path = "/admin/v1/domains/{name}", params(("name" = String, Path, description = "domain name"), DeleteQuery),
    responses((status = 204, description = "deleted"), (status = 404, body = Problem), (status = 409, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn delete_domain(
    State(s): State<AdminState>,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<DeleteQuery>,
) -> Result<StatusCode, Problem> {
    s.plane.delete(
        &pool_domain(&name)?,
        q.reason.as_deref().unwrap_or("admin api"),
    )?;
    share(&s).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A state change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StateChange {
    /// The new state.
    state: DomainState,
    /// Why (audit log); required.
    reason: String,
}

/// Change a domain's state.
#[utoipa::path(put, path = "/admin/v1/domains/{name}/state", params(("name" = String, Path, description = "domain name")), request_body = StateChange,
    responses((status = 200, body = DomainInfo), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn set_state(
    State(s): State<AdminState>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<StateChange>,
) -> Result<Json<DomainInfo>, Problem> {
    let domain = pool_domain(&name)?;
    let info = s.plane.set_state(&domain, req.state, &req.reason)?;
    share(&s).await;
    Ok(Json(info))
}

/// Fleet mode: writes the changes the plane queued to the fleet's pool, so every node
/// applies them. The change already holds here; one the cluster does not take stays
/// queued and the node's sync retries it every half second.
async fn share(s: &AdminState) {
    if let Some(cluster) = &s.fleet
        && let Err(e) = crate::fleet::pool::flush(cluster, &s.plane).await
    {
        tracing::error!(error = %e, "pool change not shared with the fleet yet; retrying");
    }
}

/// An operator's listing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MarkListed {
    /// The list to name (default `operator`).
    #[serde(default)]
    list: Option<String>,
    /// Why (audit log and the listing's reason); required.
    reason: String,
}

/// List used when an operator marks a domain listed without naming one.
const OPERATOR_LIST: &str = "operator";
/// Longest list name an operator may give (a DNS zone name's length).
const LIST_NAME_BYTES_MAX: usize = 253;

/// Mark a domain listed (the rotation policy reacts as to a confirmed blocklist listing).
#[utoipa::path(put, path = "/admin/v1/domains/{name}/listing", params(("name" = String, Path, description = "domain name")), request_body = MarkListed,
    responses((status = 200, body = DomainInfo), (status = 404, body = Problem), (status = 422, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn mark_listed(
    State(s): State<AdminState>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<MarkListed>,
) -> Result<Json<DomainInfo>, Problem> {
    let list = req.list.as_deref().unwrap_or(OPERATOR_LIST);
    if list.is_empty() || list.len() > LIST_NAME_BYTES_MAX {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-list",
            "Invalid list name",
            format!("list must be 1..={LIST_NAME_BYTES_MAX} bytes"),
        ));
    }
    let info = s
        .plane
        .set_listing(&pool_domain(&name)?, Some(list), &req.reason)?;
    share(&s).await;
    Ok(Json(info))
}

/// Clear a domain's listing (it may be activated again).
#[utoipa::path(delete, path = "/admin/v1/domains/{name}/listing", params(("name" = String, Path, description = "domain name"), DeleteQuery),
    responses((status = 200, body = DomainInfo), (status = 404, body = Problem), (status = 422, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn clear_listing(
    State(s): State<AdminState>,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<DeleteQuery>,
) -> Result<Json<DomainInfo>, Problem> {
    let reason = q.reason.as_deref().unwrap_or("admin api");
    let info = s.plane.set_listing(&pool_domain(&name)?, None, reason)?;
    share(&s).await;
    Ok(Json(info))
}

/// Counters of one domain.
#[derive(Debug, Serialize, ToSchema)]
struct DomainStats {
    name: String,
    state: DomainState,
    /// Messages received since the domain was added.
    messages: u64,
    /// Unix seconds of the last message.
    last_message_at: Option<u64>,
    /// Live registered mailboxes.
    mailboxes: usize,
    /// Seconds since it joined the pool.
    age_secs: u64,
    /// Seconds in its current state.
    state_secs: u64,
    /// The confirmed listing, if any.
    listing: Option<Listing>,
}

/// Per-domain statistics.
#[utoipa::path(get, path = "/admin/v1/domains/{name}/stats", params(("name" = String, Path, description = "domain name")),
    responses((status = 200, body = DomainStats), (status = 404, body = Problem), (status = 401, body = Problem)))]
async fn domain_stats(
    State(s): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<DomainStats>, Problem> {
    let info = s.plane.domain(&pool_domain(&name)?)?;
    let now = s.plane.now();
    let d = info.domain;
    Ok(Json(DomainStats {
        age_secs: now.saturating_sub(d.added_at),
        state_secs: now.saturating_sub(d.state_since),
        name: d.name,
        state: d.state,
        messages: d.messages,
        last_message_at: d.last_message_at,
        mailboxes: info.mailboxes,
        listing: d.listing,
    }))
}

/// The rotation policy in force.
#[utoipa::path(get, path = "/admin/v1/policy", responses((status = 200, body = RotationPolicy), (status = 401, body = Problem)))]
async fn get_policy(State(s): State<AdminState>) -> Json<RotationPolicy> {
    Json(s.plane.policy())
}

/// Change the rotation policy: only the fields sent change (`null` unsets an optional
/// limit); the result is validated by the config file's rules and applied at once.
#[utoipa::path(put, path = "/admin/v1/policy", request_body = PolicyPatch,
    responses((status = 200, body = RotationPolicy, description = "the whole policy now in force"),
        (status = 400, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn put_policy(
    State(s): State<AdminState>,
    JsonBody(patch): JsonBody<PolicyPatch>,
) -> Result<Json<RotationPolicy>, Problem> {
    let policy = s.plane.set_policy(&patch, "admin api")?;
    share(&s).await;
    Ok(Json(policy))
}

/// A domain with a confirmed listing.
#[derive(Debug, Serialize, ToSchema)]
struct ListedDomain {
    domain: String,
    state: DomainState,
    listing: Listing,
}

/// Blocklist checking status.
#[derive(Debug, Serialize, ToSchema)]
struct BlocklistStatus {
    /// Configured lists (zones, then `file:<name>`).
    lists: Vec<String>,
    interval_secs: u64,
    jitter_secs: u64,
    /// The last periodic cycle.
    last_cycle: Option<CycleReport>,
    /// Domains with a confirmed listing.
    listed: Vec<ListedDomain>,
}

/// Blocklist status: lists, schedule, last cycle and listed domains.
#[utoipa::path(get, path = "/admin/v1/blocklists", responses((status = 200, body = BlocklistStatus), (status = 401, body = Problem)))]
async fn blocklist_status(State(s): State<AdminState>) -> Json<BlocklistStatus> {
    let bl = s.blocklists.blocklists();
    let listed = s
        .plane
        .domains()
        .into_iter()
        .filter_map(|i| {
            Some(ListedDomain {
                listing: i.domain.listing?,
                domain: i.domain.name,
                state: i.domain.state,
            })
        })
        .collect();
    Json(BlocklistStatus {
        lists: bl.list_names(),
        interval_secs: bl.config().interval_secs,
        jitter_secs: bl.config().jitter_secs,
        last_cycle: s.blocklists.last_cycle(),
        listed,
    })
}

/// A check request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    /// Any domain name; pool domains also update their tracked status.
    domain: String,
}

/// Results of a check.
#[derive(Debug, Serialize, ToSchema)]
struct CheckResults {
    domain: String,
    /// Whether the domain is in the pool (and the results were recorded).
    in_pool: bool,
    results: Vec<Observation>,
    /// The confirmed listing after recording the results.
    listing: Option<Listing>,
}

/// Check a domain on every list now.
#[utoipa::path(post, path = "/admin/v1/blocklists/check", request_body = CheckRequest,
    responses((status = 200, body = CheckResults), (status = 422, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn check_domain(
    State(s): State<AdminState>,
    JsonBody(req): JsonBody<CheckRequest>,
) -> Result<Json<CheckResults>, Problem> {
    let domain = tempmx_store::Domain::parse(&req.domain)
        .map_err(|e| ControlError::InvalidDomains(vec![format!("`{}`: {e}", req.domain)]))?;
    let results = s.blocklists.check_now(&domain).await;
    // Fleet mode: the holder answers once its answers are in the fleet, so a holder that
    // dies right after answering does not lose them from the streaks.
    if s.fleet.is_some() && s.plane.acting() {
        let generation = s.plane.checks_generation();
        let shared = s.plane.checks_shared(generation);
        if tokio::time::timeout(CHECKS_SHARE_WAIT, shared)
            .await
            .is_err()
        {
            tracing::warn!(%domain, "blocklist answers not in the fleet yet; retrying");
        }
    }
    share(&s).await;
    let info = s.plane.domain(&domain).ok();
    Ok(Json(CheckResults {
        domain: domain.to_string(),
        in_pool: info.is_some(),
        listing: info.and_then(|i| i.domain.listing),
        results,
    }))
}

/// The pool domain a path names; a name that is no domain is not in the pool either.
fn pool_domain(name: &str) -> Result<tempmx_store::Domain, ControlError> {
    tempmx_store::Domain::parse(name).map_err(|_| ControlError::UnknownDomain(name.to_owned()))
}

/// Audit paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Return events with an id greater than this (0: from the oldest kept).
    after: Option<u64>,
    /// Page size, at most 1000 (default 100).
    limit: Option<usize>,
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
struct AuditPage {
    events: Vec<AuditEvent>,
    /// Pass as `after` for the next page; absent when this page is not full.
    next_after: Option<u64>,
}

/// Audit events, oldest first, paged by id.
#[utoipa::path(get, path = "/admin/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 503, body = Problem, description = "Fleet mode: the cluster did not answer")))]
async fn audit_events(
    State(s): State<AdminState>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, Problem> {
    let limit = q.limit.unwrap_or(AUDIT_PAGE_DEFAULT);
    if limit == 0 || limit > AUDIT_PAGE_MAX {
        let detail = format!("limit must be 1..={AUDIT_PAGE_MAX}");
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query parameters",
            detail,
        ));
    }
    let after = q.after.unwrap_or(0);
    let events = match &s.fleet {
        // Fleet mode: the fleet's log, every node's entries with their node's name.
        Some(cluster) => crate::fleet::pool::audit(cluster, after, limit)
            .await
            .map_err(unavailable)?,
        None => s.plane.audit(after, limit),
    };
    let next_after = (events.len() == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage { events, next_after }))
}
