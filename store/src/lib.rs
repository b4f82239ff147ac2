//! Message store of tempmx: sharded rings of zero-copy rkyv records.
//!
//! # Layout
//! - [`address`]: the shared vocabulary, [`Domain`] and [`Mailbox`], and their one rule.
//! - [`sink`]: the write interface ingress codes against ([`MessageSink`]).
//! - [`config`]: `[store]` settings; [`sizing`]: how memory is split at start-up.
//! - [`frame`] and [`record`]: the on-arena format (16-byte header + rkyv payload).
//! - `arena`, `shard`, `index`, `parts`: one shard's ring of segments, its mailbox index
//!   and its table of deduplicated MIME parts.
//! - [`mime`]: the cheap ingest-time scan (header summary, part boundaries);
//!   [`summary`]: its `From:` and `Subject:` decoded once, for listings.
//! - `shared`: the state every layer shares; above it [`ShardWriter`] (one per core),
//!   [`Subscription`] and the [`Store`] handle (`store/`: opening, reading, changes and
//!   their journal), see ARCHITECTURE.md.
//! - [`cluster`]: fleet mode's backend, mailboxes and messages in a Redis Cluster.
//! - [`greylist`]: the settings and answers of a greylisting step, shared by the ingress
//!   and the cluster backend.
//! - `recovery`: rebuilding shards from disk; `journal`: deletions and TTL overrides that
//!   must survive a restart but are not records.
//!
//! # Concurrency
//! Each shard sits behind its own `RwLock`, write-locked only by its one writer (and by
//! rare user deletions/subscriptions); readers take read locks one shard at a time. So
//! no writer ever waits for another writer. [`Store`] is `Sync`; [`ShardWriter`] is `Send`.
//!
//! # Record lifecycle
//! append (newest segment) -> visible until `expires_at` -> segment recycled (zeroed) when
//! all its records expired, or early when the arena or index is full (counted as
//! eviction). In `memory` mode the zeroing runs just ahead of the writer, and
//! [`Store::expire`] finishes it within a second. User deletion unlinks at once and
//! zeroes the record when no mailbox still references it.
#![warn(missing_docs)]

pub mod address;
mod arena;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod crc;
pub mod error;
pub mod frame;
pub mod greylist;
pub mod id;
mod index;
mod journal;
pub mod metrics;
pub mod mime;
mod parts;
mod queue;
mod read;
pub mod record;
mod recovery;
mod shard;
mod shared;
pub mod sink;
pub mod sizing;
pub mod stats;
mod store;
mod subscribe;
pub mod summary;
mod view;
mod writer;

pub use address::{AddressError, Domain, Mailbox};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CommitPolicy, Persistence, StoreConfig};
pub use error::StoreError;
pub use journal::journal_path;
pub use parts::Parts;
pub use read::{MailRead, Reader};
pub use record::{AuthResult, MessageRecord};
pub use sink::{Accepted, Commit, MessageId, MessageSink, NewMessage, TlsSummary};
pub use stats::{Counters, RecoveryReport, ShardStats, StoreStats};
pub use store::{Store, parts_path, shard_path};
pub use subscribe::{Event, Subscription};
pub use view::{MessageRef, MessageSummary, MessageView};
pub use writer::ShardWriter;
