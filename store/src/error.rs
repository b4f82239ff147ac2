//! Errors of the store.

/// What can go wrong when storing or reading a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The message is larger than a segment can hold.
    #[error("message of {size} bytes exceeds the record limit of {limit} bytes")]
    TooLarge {
        /// Size of the rejected message.
        size: usize,
        /// The configured record limit.
        limit: usize,
    },
    /// Writing to or syncing the on-disk segment failed.
    #[error("store i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is inconsistent; every problem is listed.
    #[error("invalid store configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// A message had no recipients or more than `record_mailboxes_max`.
    #[error("message has {count} recipients; allowed 1..={limit}")]
    Recipients {
        /// Recipients given.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The subscription limit is reached.
    #[error("too many subscribers (limit {0})")]
    Subscribers(usize),
    /// The per-mailbox TTL override table is full.
    #[error("too many TTL overrides (limit {0})")]
    TtlOverrides(usize),
    /// A shard file exists but does not match the configured geometry.
    #[error("shard file {path} has {found} bytes, expected {expected}")]
    Geometry {
        /// The file.
        path: String,
        /// Its size.
        found: u64,
        /// The size the configuration implies.
        expected: u64,
    },
    /// Serialising a record failed (a bug, not an input problem).
    #[error("record encoding failed: {0}")]
    Encode(String),
    /// The group-commit thread is gone, so durability cannot be promised.
    #[error("commit thread stopped")]
    CommitStopped,
    /// A shard's group-commit thread could not be started, so no message could be made
    /// durable; the store refuses to open rather than answer every message 451.
    #[error("cannot start the commit thread of shard {shard}: {source}")]
    CommitSpawn {
        /// The shard.
        shard: usize,
        /// Why the thread could not be created.
        source: std::io::Error,
    },
    /// Fleet mode: the Redis Cluster did not take the write (answered 451 4.3.0).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}
