//! Domain states shared across the fleet: a state set through any node's admin API
//! (adding a domain, activating, draining, retiring it) is written to the cluster, and
//! every node polls the pool's version and applies what changed to its own control plane
//! (which republishes its ingress and DNS snapshots at once), so the change holds on every
//! node within about `SYNC_INTERVAL`.
//!
//! Only operator changes travel: each node's rotation planner and blocklist checks still
//! act on their own (the single rotation lease is not built yet).

use std::sync::Arc;
use std::time::Duration;

use tempmx_store::Domain;
use tempmx_store::cluster::{Cluster, ClusterError};

use crate::pool::{ControlError, ControlPlane, DomainState};

/// How often a node checks the pool's version.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// The audit reason of changes a node applies from the fleet.
const SYNC_REASON: &str = "fleet sync";

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

/// Writes `domain`'s state as this node's plane has it now to the fleet's pool.
pub async fn publish(
    cluster: &Cluster,
    plane: &ControlPlane,
    domain: &Domain,
) -> Result<(), ClusterError> {
    if let Ok(info) = plane.domain(domain) {
        cluster
            .pool_set(domain.as_str(), state_name(info.domain.state))
            .await?;
    }
    Ok(())
}

/// Polls the pool's version every `SYNC_INTERVAL` until `stop`, applying every newer
/// version to `plane`.
pub async fn sync(
    cluster: Arc<Cluster>,
    plane: Arc<ControlPlane>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut applied = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match apply_newer(&cluster, &plane, applied).await {
            Ok(v) => applied = v,
            Err(e) => tracing::warn!(error = %e, "fleet pool sync failed"),
        }
    }
}

/// Applies the fleet's pool to `plane` if its version is above `applied`; the version
/// now applied.
async fn apply_newer(
    cluster: &Cluster,
    plane: &ControlPlane,
    applied: u64,
) -> Result<u64, ClusterError> {
    if cluster.pool_version().await? <= applied {
        return Ok(applied);
    }
    let (version, states) = cluster.pool().await?;
    for (name, state) in &states {
        let (Ok(domain), Some(want)) = (Domain::parse(name), parse_state(state)) else {
            tracing::warn!(domain = %name, state = %state, "fleet pool entry skipped");
            continue;
        };
        if let Err(e) = apply(plane, &domain, want) {
            tracing::warn!(domain = %domain, error = %e, "fleet pool change not applied");
        }
    }
    Ok(version)
}

/// Moves `domain` to `want` on this node, adding it first if it is unknown here.
fn apply(plane: &ControlPlane, domain: &Domain, want: DomainState) -> Result<(), ControlError> {
    let have = match plane.domain(domain) {
        Ok(info) => info.domain.state,
        Err(ControlError::UnknownDomain(_)) => {
            let start = if want == DomainState::Active {
                DomainState::Active
            } else {
                DomainState::Pending
            };
            plane.add_domains(&[domain.to_string()], start, SYNC_REASON)?;
            start
        }
        Err(e) => return Err(e),
    };
    if have == want {
        return Ok(());
    }
    // Draining is only reached from active.
    if want == DomainState::Draining && have == DomainState::Pending {
        plane.set_state(domain, DomainState::Active, SYNC_REASON)?;
    }
    plane.set_state(domain, want, SYNC_REASON)?;
    Ok(())
}
