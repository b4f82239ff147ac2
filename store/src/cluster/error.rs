//! Errors of fleet mode's cluster backend.

use crate::address::AddressError;

/// What can go wrong talking to the Redis Cluster. Every variant of the write path is
/// answered 451 4.3.0 by the ingress: nothing is acknowledged that the cluster did not take.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A recipient or key mailbox is not a valid [`Mailbox`](crate::Mailbox).
    #[error("not a mailbox: {0}")]
    Address(#[from] AddressError),
    /// The per-core write queue is full (the cluster is slower than the ingress).
    #[error("cluster write queue is full ({0} messages)")]
    Busy(usize),
    /// A command failed or the cluster has no primary for a slot.
    #[error("redis cluster command failed: {0}")]
    Command(#[from] redis::RedisError),
    /// No seed node could be reached, or the cluster did not answer at start.
    #[error("cannot reach the Redis Cluster at {seeds}: {source}")]
    Connect {
        /// The seed nodes tried, comma separated.
        seeds: String,
        /// Why the last attempt failed.
        source: redis::RedisError,
    },
    /// A primary may evict keys under memory pressure, which could drop acknowledged mail
    /// before its expiry: fleet mode does not start on such a cluster.
    #[error(
        "redis primary {node} has maxmemory-policy {policy}, which may evict acknowledged \
         mail before its expiry; set maxmemory-policy noeviction (a full cluster then \
         refuses writes, answered 451)"
    )]
    Evicting {
        /// The primary, `host:port`.
        node: String,
        /// Its policy.
        policy: String,
    },
    /// A rotation write carried lease epoch `0`, which is no longer the lease's: the
    /// writer lost the lease and must not change the pool.
    #[error("pool write refused: lease epoch {0} is not current")]
    Fenced(u64),
    /// A stored value failed its frame, CRC or archive validation.
    #[error("corrupt value at {key}")]
    Corrupt {
        /// The key that held it.
        key: String,
    },
    /// A record names a shared part that is not in the cluster (expired early, deleted):
    /// the read fails rather than return a message with bytes missing.
    #[error("shared part {key} is missing")]
    PartMissing {
        /// The part's key.
        key: String,
    },
    /// Another part's data (or a damaged one) is stored under a new part's content key:
    /// the message naming it is refused, never stored with the other data.
    #[error("shared part {key} holds other data under the same content key")]
    PartCollision {
        /// The part's key.
        key: String,
    },
    /// A record could not be encoded (a bug, not an input problem).
    #[error("record encoding failed: {0}")]
    Encode(String),
    /// Fewer replicas than `ack = "replicas:N"` asks for confirmed the write in time.
    #[error("write reached {got} of {wanted} replicas in time")]
    NotReplicated {
        /// Replicas asked for.
        wanted: u32,
        /// Replicas that confirmed.
        got: i64,
    },
    /// The runtime that talks to the cluster has stopped.
    #[error("cluster client stopped")]
    Stopped,
    /// The cluster did not answer within the write or read deadline.
    #[error("redis cluster did not answer within {0:?}")]
    Timeout(std::time::Duration),
}
