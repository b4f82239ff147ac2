//! The rotation lease: one node of the fleet at a time runs the rotation planner and the
//! blocklist checks. The lease is one key in the cluster (`tmx:{fleet}:lease`, `<node>
//! <epoch>` with a PX expiry); every `lease_renew_ms` each node calls `tempmx_lease`,
//! which renews it for its holder or hands it to the caller once it lapsed, bumping the
//! epoch. A node acts only while it holds the lease by its own clock: from the moment it
//! sent the renewal that succeeded until that moment plus the lease length. A failed
//! renewal (the cluster did not answer, or another node holds it) ends that at once, so a
//! node cut off from the cluster stops acting before its lease lapses in Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tempmx_store::cluster::Cluster;

/// What this node knows of the lease.
#[derive(Debug, Default)]
struct Held {
    /// The epoch of this node's hold.
    epoch: u64,
    /// Until when this node may act (its own clock); `None` when it does not hold it.
    until: Option<Instant>,
    /// The holder the last attempt saw.
    holder: Option<String>,
}

/// This node's view of the rotation lease. Share it as `Arc<Lease>`.
#[derive(Debug, Default)]
pub struct Lease {
    held: Mutex<Held>,
    changes: AtomicU64,
}

impl Lease {
    /// A lease not held yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The epoch of this node's hold while it holds the lease by its own clock.
    pub fn epoch(&self) -> Option<u64> {
        let h = self.held.lock();
        h.until.filter(|u| Instant::now() < *u).map(|_| h.epoch)
    }

    /// Whether this node holds the lease now.
    pub fn held(&self) -> bool {
        self.epoch().is_some()
    }

    /// How many times this node took or lost the lease since start.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// The holder the last attempt saw (this node's name while it holds it).
    pub fn holder(&self) -> Option<String> {
        self.held.lock().holder.clone()
    }

    /// Records a successful take or renewal: this node may act until `until`.
    fn hold(&self, epoch: u64, holder: String, until: Instant) {
        let mut h = self.held.lock();
        let was = h.until.filter(|u| Instant::now() < *u).map(|_| h.epoch);
        if was != Some(epoch) {
            self.changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(epoch, "took the rotation lease");
        }
        *h = Held {
            epoch,
            until: Some(until),
            holder: Some(holder),
        };
    }

    /// Records that this node does not hold the lease (another does, or it cannot tell).
    fn lose(&self, holder: Option<String>) {
        let mut h = self.held.lock();
        if h.until.take().is_some() {
            self.changes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(epoch = h.epoch, holder = ?holder, "lost the rotation lease");
        }
        h.holder = holder;
    }
}

/// Takes or renews the lease every `renew` until `stop`, each time for `length`; gives it
/// up at `stop` so another node takes over at once.
pub async fn run(
    cluster: Arc<Cluster>,
    lease: Arc<Lease>,
    length: Duration,
    renew: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let length_ms = length.as_millis() as u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let sent = Instant::now();
        match cluster.lease_take(length_ms).await {
            Ok(h) if h.held => lease.hold(h.epoch, h.holder, sent + length),
            Ok(h) => lease.lose(Some(h.holder)),
            Err(e) => {
                tracing::warn!(error = %e, "rotation lease not renewed");
                lease.lose(None);
            }
        }
    }
    if let Some(epoch) = lease.epoch() {
        lease.lose(None);
        if let Err(e) = cluster.lease_release(epoch).await {
            tracing::warn!(error = %e, "rotation lease not released; it lapses by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_ends_at_its_deadline_or_when_lost() {
        // Goal: a node acts only until its own deadline, a lost renewal ends the hold at
        // once, and takes and losses are counted. Method: the state machine with chosen
        // deadlines (no cluster needed for it).
        let lease = Lease::new();
        assert_eq!(lease.epoch(), None);
        lease.hold(3, "mx-a".into(), Instant::now() + Duration::from_secs(60));
        assert_eq!(lease.epoch(), Some(3));
        lease.hold(3, "mx-a".into(), Instant::now() + Duration::from_secs(60));
        assert_eq!(lease.changes(), 1, "a renewal is no change");
        lease.lose(Some("mx-b".into()));
        assert_eq!((lease.epoch(), lease.changes()), (None, 2));
        assert_eq!(lease.holder().as_deref(), Some("mx-b"));
        lease.hold(5, "mx-a".into(), Instant::now());
        assert!(!lease.held(), "past its deadline by its own clock");
    }
}
