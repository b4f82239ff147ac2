//! The interface to greylisting state shared by a fleet (issue 15): the ingress computes
//! the fingerprints and the timing, a [`SharedState`] steps the state machine somewhere
//! every MX sees (fleet mode: the Redis Cluster, through the `tempmx` crate), and the
//! answer comes back later, so the session hands the check off like a sender check.
//!
//! Why not the same interface as the local table: the local table answers at once on the
//! ring thread under a stripe lock and fails open; the shared state answers after a round
//! trip, off the ring thread, and fails closed (451 4.3.0). One trait for both would hide
//! exactly the two differences the session must act on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use tempmx_store::greylist::{GreyStep, GreyTiming};

/// One step to run on the shared state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedStep {
    /// Fingerprint of the client network (IPv4 /24, IPv6 /64).
    pub network: u128,
    /// Fingerprint of (network, normalised sender, recipient).
    pub triplet: u128,
    /// When the attempt was seen (ms since the Unix epoch).
    pub now_ms: u64,
    /// The delays and the auto-allowlist setting.
    pub timing: GreyTiming,
}

/// The shared state could not answer (unreachable, no primary, timeout).
#[derive(Clone, Debug, thiserror::Error)]
#[error("shared greylisting state unavailable: {0}")]
pub struct SharedError(pub String);

/// A step under way.
pub type SharedFuture = Pin<Box<dyn Future<Output = Result<GreyStep, SharedError>> + Send>>;

/// Greylisting state shared by several appliances.
pub trait SharedState: Send + Sync + fmt::Debug {
    /// The fleet's fingerprint key: every node must hash triplets alike.
    fn fingerprint_key(&self) -> [u8; 16];
    /// Runs one step; must not block (the work happens when the future is polled, on
    /// whatever runtime polls it).
    fn step(&self, step: SharedStep) -> SharedFuture;
}
