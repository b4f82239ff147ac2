//! The fleet's greylisting state: the ingress's [`SharedState`] on the Redis Cluster, so
//! a sender deferred by one MX passes when its retry lands on another (issue 15 part 5).

use std::sync::Arc;

use tempmx_ingress::greylist::{SharedError, SharedFuture, SharedOutcome, SharedState, SharedStep};
use tempmx_store::cluster::{Cluster, ClusterError, GreyStep, GreyTiming};

/// Greylisting state in the fleet's cluster.
pub struct FleetGreylist {
    cluster: Arc<Cluster>,
    key: [u8; 16],
}

impl std::fmt::Debug for FleetGreylist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs: knowing it lets a sender aim triplets at one another.
        f.debug_struct("FleetGreylist").finish_non_exhaustive()
    }
}

impl FleetGreylist {
    /// Reads the fleet's fingerprint key from `cluster`, setting a random one if this is
    /// the first node (set-if-absent, so every node ends up with the same key).
    pub async fn open(cluster: Arc<Cluster>) -> Result<Self, ClusterError> {
        let key = cluster.greylist_key(rand::random()).await?;
        Ok(Self { cluster, key })
    }
}

impl SharedState for FleetGreylist {
    fn fingerprint_key(&self) -> [u8; 16] {
        self.key
    }

    fn step(&self, step: SharedStep) -> SharedFuture {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let timing = GreyTiming {
                delay_ms: step.delay_ms,
                window_ms: step.window_ms,
                lifetime_ms: step.lifetime_ms,
                auto_allow_after: step.auto_allow_after,
            };
            let answer = cluster
                .greylist_step(step.network, step.triplet, step.now_ms, timing)
                .await
                .map_err(|e| SharedError(e.to_string()))?;
            Ok(match answer {
                GreyStep::Defer { retry_in_ms } => SharedOutcome::Defer { retry_in_ms },
                GreyStep::Retried { waited_ms } => SharedOutcome::Retried { waited_ms },
                GreyStep::Known => SharedOutcome::Known,
                GreyStep::AutoAllowlisted => SharedOutcome::AutoAllowlisted,
            })
        })
    }
}
