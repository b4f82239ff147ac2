//! The fleet's greylisting state: the ingress's [`SharedState`] on the Redis Cluster, so
//! a sender deferred by one MX passes when its retry lands on another (issue 15 part 5).

use std::sync::Arc;

use tempmx_ingress::greylist::{SharedError, SharedFuture, SharedState, SharedStep};
use tempmx_store::cluster::{Cluster, ClusterError};

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
            cluster
                .greylist_step(step.network, step.triplet, step.now_ms, step.timing)
                .await
                .map_err(|e| SharedError(e.to_string()))
        })
    }
}
