//! The domain pool shared across the fleet. The cluster holds the pool (each domain's
//! state and record, the policy, the audit log) with a version; every node's control
//! plane queues each change it makes ([`crate::pool::shared`]) and this module writes the
//! queue to the cluster through the fenced `tempmx_pool_write`: operator changes always
//! go through, the rules' and blocklist answers' changes only while their lease epoch is
//! the current one. Every node polls the version every `SYNC_INTERVAL` and adopts a newer
//! pool into its plane, which republishes its ingress and DNS snapshots at once (the SOA
//! serial is the version), so a change holds on every node within about `SYNC_INTERVAL`.

use std::sync::Arc;
use std::time::Duration;

use tempmx_store::cluster::{Cluster, ClusterError, DELETED, PoolWrite};

use crate::pool::shared::PoolChange;
use crate::pool::{AuditEvent, ControlPlane, Domain, DomainState, RotationPolicy};

/// How often a node checks the pool's version.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// One flush at a time per node, so no change is written twice.
static FLUSHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The state's name as the admin API spells it.
fn state_name(s: DomainState) -> &'static str {
    match s {
        DomainState::Pending => "pending",
        DomainState::Active => "active",
        DomainState::Draining => "draining",
        DomainState::Retired => "retired",
    }
}

/// The state a name spells, if any.
fn parse_state(s: &str) -> Option<DomainState> {
    [
        DomainState::Pending,
        DomainState::Active,
        DomainState::Draining,
        DomainState::Retired,
    ]
    .into_iter()
    .find(|d| state_name(*d) == s)
}

/// The cluster write of one change.
fn write_of(c: &PoolChange) -> PoolWrite {
    PoolWrite {
        epoch: c.epoch,
        domains: c
            .domains
            .iter()
            .map(|d| (d.name.clone(), state_name(d.state).to_owned(), json(d)))
            .collect(),
        deleted: c.deleted.clone(),
        policy: c.policy.as_ref().map(json),
        audit: c.audit.iter().map(json).collect(),
    }
}

/// JSON text of one of the pool's records (plain data, so it always serializes).
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Writes every change `plane` queued, oldest first. A change refused by the fence (this
/// node lost the lease) is dropped and the next sync re-reads the whole pool; any other
/// error leaves the rest queued for the next call.
pub async fn flush(cluster: &Cluster, plane: &ControlPlane) -> Result<(), ClusterError> {
    let Some(link) = plane.fleet() else {
        return Ok(());
    };
    let _one = FLUSHING.lock().await;
    while let Some(change) = link.front() {
        match cluster
            .pool_write(&write_of(&change), plane.limits().audit_events_max)
            .await
        {
            Ok(_) => link.pop(),
            Err(ClusterError::Fenced(epoch)) => {
                tracing::warn!(epoch, "rotation change refused: this node lost the lease");
                link.pop();
                link.mark_stale();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fleet mode at start: writes this node's domains the fleet does not know yet (its
/// configured ones, as an operator's change) and its policy if the fleet has none, then
/// adopts the fleet's pool, so the node serves the fleet's pool from its first snapshot.
pub async fn join(cluster: &Cluster, plane: &ControlPlane) -> Result<(), ClusterError> {
    let view = cluster.pool_view().await?;
    let missing: Vec<Domain> = plane
        .domains()
        .into_iter()
        .map(|i| crate::pool::shared::shared_fields(&i.domain))
        .filter(|d| !view.states.contains_key(&d.name))
        .collect();
    if !missing.is_empty() || view.policy.is_none() {
        let change = PoolChange {
            domains: missing,
            policy: view.policy.is_none().then(|| plane.policy()),
            ..PoolChange::default()
        };
        cluster
            .pool_write(&write_of(&change), plane.limits().audit_events_max)
            .await?;
    }
    apply_newer(cluster, plane, true).await
}

/// Polls the pool's version every `SYNC_INTERVAL` until `stop`: writes what this node
/// queued, then adopts every newer version into `plane`.
pub async fn sync(
    cluster: Arc<Cluster>,
    plane: Arc<ControlPlane>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if let Err(e) = flush(&cluster, &plane).await {
            tracing::warn!(error = %e, "fleet pool changes not written; retrying");
            continue;
        }
        let full = plane.fleet().is_some_and(|l| l.take_stale());
        if let Err(e) = apply_newer(&cluster, &plane, full).await {
            tracing::warn!(error = %e, "fleet pool sync failed");
        }
    }
    if let Err(e) = flush(&cluster, &plane).await {
        tracing::warn!(error = %e, "fleet pool changes not written at shutdown");
    }
}

/// Adopts the fleet's pool into `plane` if its version is not the one applied (or
/// `full`: whatever the version).
async fn apply_newer(
    cluster: &Cluster,
    plane: &ControlPlane,
    full: bool,
) -> Result<(), ClusterError> {
    let Some(link) = plane.fleet() else {
        return Ok(());
    };
    if !full && cluster.pool_version().await? == link.version() {
        return Ok(());
    }
    let view = cluster.pool_view().await?;
    let now = plane.now();
    let mut domains = Vec::with_capacity(view.states.len());
    let mut deleted = Vec::new();
    for (name, state) in &view.states {
        if state == DELETED {
            deleted.push(name.clone());
            continue;
        }
        let record = view
            .records
            .get(name)
            .and_then(|r| serde_json::from_str::<Domain>(r).ok());
        match (record, parse_state(state)) {
            (Some(d), _) => domains.push(d),
            // A state without a record (an older node's write): the state over what this
            // node knows of the domain.
            (None, Some(st)) => {
                let d = match plane.domain_record(name) {
                    Some(mut d) if d.state != st => {
                        d.enter(st, now, plane.policy().drain_secs);
                        d
                    }
                    Some(d) => d,
                    None => Domain::new(name.clone(), st, now),
                };
                domains.push(crate::pool::shared::shared_fields(&d));
            }
            (None, None) => {
                tracing::warn!(domain = %name, state = %state, "fleet pool entry skipped");
            }
        }
    }
    let policy = view.policy.as_deref().and_then(|p| {
        serde_json::from_str::<RotationPolicy>(p)
            .inspect_err(|e| tracing::warn!(error = %e, "fleet rotation policy unreadable"))
            .ok()
    });
    if !plane.adopt(view.version, domains, &deleted, policy) {
        // Changes of this node are queued: they go first, the next tick adopts.
        link.mark_stale();
    }
    Ok(())
}

/// Up to `limit` of the fleet's audit events after id `after`, oldest first.
pub async fn audit(
    cluster: &Cluster,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditEvent>, ClusterError> {
    let entries = cluster.pool_audit().await?;
    Ok(entries
        .iter()
        .filter_map(|e| {
            serde_json::from_str::<AuditEvent>(e)
                .inspect_err(|err| tracing::warn!(error = %err, "fleet audit entry unreadable"))
                .ok()
        })
        .filter(|e| e.id > after)
        .take(limit)
        .collect())
}
