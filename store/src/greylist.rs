//! Greylisting vocabulary shared by the ingress (which decides) and the cluster backend
//! (which keeps fleet mode's state): the settings of one step and what a step answered.
//! The state machine itself is the ingress's (local table) or `share.lua`'s (fleet).

/// The timing and auto-allowlist settings of one step, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreyTiming {
    /// Minimum delay before a retry passes.
    pub delay_ms: u64,
    /// A retry later than this after the first attempt starts over.
    pub window_ms: u64,
    /// How long a passed triplet or allowlisted network is remembered after its last use.
    pub lifetime_ms: u64,
    /// Retried passes that allowlist a network (0: no auto-allowlist).
    pub auto_allow_after: u32,
}

/// What the fleet's state says about one triplet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GreyStep {
    /// Defer: a retry passes in this many milliseconds.
    Defer {
        /// Milliseconds until a retry can pass (at least 1).
        retry_in_ms: u64,
    },
    /// The first retry after the delay, having waited this many milliseconds.
    Retried {
        /// Milliseconds between the first attempt and this retry.
        waited_ms: u64,
    },
    /// Passed before and still remembered.
    Known,
    /// The client network passed enough triplets.
    AutoAllowlisted,
}
