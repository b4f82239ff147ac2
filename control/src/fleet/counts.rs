//! Per-domain message counts across the fleet. In fleet mode the counting sinks of the
//! ingress cores feed this task instead of the plane: every `COUNT_INTERVAL` it adds what
//! this node's cores accepted to the fleet's counts (`tempmx_store::cluster` counts), then
//! takes the fleet's totals into the plane, so the admin API, `tempmx domains` and the
//! rotation rules show every node's mail, within about one interval, on every node. The
//! live mailboxes per domain (kept by the fleet registry) are read into the plane with
//! them, for the admin API's counts, the delete guard and `tempmx_api_mailboxes_live`.
//!
//! The blocklist tracker's state (per domain and list: streak, consecutive answers,
//! errors) travels the same way: the lease holder, the one node that checks, writes it as
//! soon as its answers changed it; every other node reads it, at each tick, when the
//! fleet's version moved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tempmx_store::Domain;
use tempmx_store::cluster::{Cluster, ClusterError};

use crate::blocklist::tracker::ListStatus;
use crate::pool::{ControlPlane, Count, MessageCounters};

/// How often a node shares its counts and reads the fleet's.
pub const COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// Shares and reads counts (and blocklist checks) every `COUNT_INTERVAL` until `stop`;
/// shares the counts once more then.
pub async fn run(
    cluster: Arc<Cluster>,
    plane: Arc<ControlPlane>,
    counters: Arc<MessageCounters>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(COUNT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unshared = Unshared::new(plane.limits().domains_max);
    let mut checks = Checks::default();
    let mut answers = plane.checks_changed();
    loop {
        let answered = tokio::select! {
            _ = tick.tick() => false,
            Ok(()) = answers.changed() => true,
            _ = stop.wait_for(|s| *s) => break,
        };
        // The holder shares blocklist answers as it takes them in, not at the next tick:
        // a holder that died within the tick would lose them from the streaks.
        if answered {
            if let Err(e) = checks.sync(&cluster, &plane).await {
                tracing::warn!(error = %e, "fleet blocklist checks not synced; retrying");
            }
            continue;
        }
        unshared.take(&counters);
        unshared.share(&cluster).await;
        let names = plane.domain_names();
        match cluster.domain_counts(names.clone()).await {
            Ok(counts) => plane.set_message_counts(
                names
                    .iter()
                    .cloned()
                    .zip(counts)
                    .map(|(n, c)| (n, c.messages, c.last_at)),
            ),
            Err(e) => tracing::warn!(error = %e, "fleet message counts not read; retrying"),
        }
        match cluster.domain_mailboxes(names.clone()).await {
            Ok(live) => plane.set_mailbox_counts(
                names
                    .into_iter()
                    .zip(live.into_iter().map(|n| n as usize))
                    .collect(),
            ),
            Err(e) => tracing::warn!(error = %e, "fleet mailbox counts not read; retrying"),
        }
        if let Err(e) = checks.sync(&cluster, &plane).await {
            tracing::warn!(error = %e, "fleet blocklist checks not synced; retrying");
        }
    }
    unshared.take(&counters);
    unshared.share(&cluster).await;
}

/// How a read of the fleet's checks is taken in.
#[derive(Clone, Copy)]
enum Adopt {
    /// As they are: the holder's state is the fleet's (any node but the holder).
    All,
    /// Per list, only where newer than this node's (a node that just became the holder
    /// and may have answered already).
    Newer,
}

/// What this node last wrote or read of the fleet's blocklist checks.
#[derive(Default)]
struct Checks {
    /// The plane's checks generation last written (as the lease holder).
    written: Option<u64>,
    /// The fleet's checks version last read.
    read: u64,
}

impl Checks {
    /// The holder writes the tracker state of the domains its answers changed (of every
    /// domain when it has just become the holder); any other node reads the fleet's when
    /// its version moved.
    async fn sync(&mut self, cluster: &Cluster, plane: &ControlPlane) -> Result<(), ClusterError> {
        if plane.acting() {
            if self.written.is_none() {
                // Just became the holder: first take what the last holder wrote after
                // this node's last read, so writing everything does not undo it.
                self.read(cluster, plane, Adopt::Newer).await?;
            }
            let generation = plane.checks_generation();
            if self.written != Some(generation) {
                // Only what changed, except on becoming the holder (then everything).
                let changed: Vec<(String, String)> = plane
                    .take_changed_checks(self.written.is_none())
                    .into_iter()
                    .map(|(d, lists)| (d, serde_json::to_string(&lists).unwrap_or_default()))
                    .collect();
                if !changed.is_empty() {
                    match cluster.put_domain_checks(changed).await {
                        Ok(version) => self.read = version,
                        Err(e) => {
                            // What was taken is unwritten: write everything next time.
                            self.written = None;
                            return Err(e);
                        }
                    }
                }
                self.written = Some(generation);
                plane.set_checks_shared(generation);
            }
            return Ok(());
        }
        // Not the holder (any more): write again whenever it becomes one.
        self.written = None;
        self.read(cluster, plane, Adopt::All).await
    }

    /// Takes the fleet's checks into the plane (as `adopt` says) when their version moved
    /// since the last read.
    async fn read(
        &mut self,
        cluster: &Cluster,
        plane: &ControlPlane,
        adopt: Adopt,
    ) -> Result<(), ClusterError> {
        let version = cluster.checks_version().await?;
        if version == self.read {
            return Ok(());
        }
        let names = plane.domain_names();
        let found = cluster.domain_checks(names.clone()).await?;
        let checks = names.into_iter().zip(found).filter_map(|(d, json)| {
            let lists = serde_json::from_str::<Vec<ListStatus>>(&json?)
                .inspect_err(|e| tracing::warn!(error = %e, domain = %d, "fleet checks unreadable"))
                .ok()?;
            Some((d, lists))
        });
        match adopt {
            Adopt::All => plane.set_checks(checks),
            Adopt::Newer => plane.merge_checks(checks),
        }
        self.read = version;
        Ok(())
    }
}

/// Counts drained from the sinks and not yet in the fleet's, at most `domains_max`
/// domains (the pool's own bound), kept across a failed write.
struct Unshared {
    counts: HashMap<Domain, Count>,
    domains_max: usize,
}

impl Unshared {
    fn new(domains_max: usize) -> Self {
        Self {
            counts: HashMap::new(),
            domains_max,
        }
    }

    /// Takes in what the sinks counted since the last call.
    fn take(&mut self, counters: &MessageCounters) {
        let (counts, mut dropped) = counters.drain();
        for (domain, c) in counts {
            if !self.counts.contains_key(&domain) && self.counts.len() >= self.domains_max {
                dropped += c.messages;
                continue;
            }
            let total = self.counts.entry(domain).or_default();
            total.messages += c.messages;
            total.last_at_ms = total.last_at_ms.max(c.last_at_ms);
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "messages not counted: more recipient domains than pool.limits.domains_max"
            );
        }
    }

    /// Adds the counts to the fleet's; kept for the next call if the cluster failed.
    async fn share(&mut self, cluster: &Cluster) {
        if self.counts.is_empty() {
            return;
        }
        let batch = self
            .counts
            .iter()
            .map(|(d, c)| (d.to_string(), c.messages, c.last_at_ms / 1000))
            .collect();
        match cluster.add_domain_counts(batch).await {
            Ok(()) => self.counts.clear(),
            Err(e) => tracing::warn!(error = %e, "message counts not shared; retrying"),
        }
    }
}
