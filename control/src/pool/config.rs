//! The rotation policy and the pool's limits (`[pool.policy]` and `[pool.limits]`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest `active_target` accepted; a pool bigger than this is not a temp-mail pool.
const ACTIVE_TARGET_MAX: u32 = 1_000;
/// Largest `listing_confirmations`; more would make a listing effectively never count.
const CONFIRMATIONS_MAX: u32 = 100;
/// Longest drain: the longest mailbox TTL we expect (30 days).
const DRAIN_SECS_MAX: u64 = 30 * 24 * 3600;
/// Shortest `active_age_max_secs`; below this the pool would churn every tick.
const ACTIVE_AGE_MIN_SECS: u64 = 60;

/// When domains enter and leave the active set. Changed at runtime through the admin API
/// (then persisted with the pool state, which wins over the file on later starts).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RotationPolicy {
    /// Domains kept `active`; a pending one is promoted when an active one leaves.
    pub active_target: u32,
    /// An active domain older than this is rotated out (when a replacement exists); unset: never.
    pub active_age_max_secs: Option<u64>,
    /// An active domain that received this many messages is rotated out (when a replacement exists); unset: never.
    pub messages_max: Option<u64>,
    /// Rotate a domain out as soon as a listing is confirmed; `false` only flags it.
    pub retire_on_listing: bool,
    /// Consecutive identical blocklist answers needed to confirm a listing (or its end).
    pub listing_confirmations: u32,
    /// How long a domain drains before it is retired: the longest mailbox TTL.
    pub drain_secs: u64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            active_target: 1,
            active_age_max_secs: None,
            messages_max: None,
            retire_on_listing: true,
            listing_confirmations: 2,
            drain_secs: 24 * 3600,
        }
    }
}

impl RotationPolicy {
    /// Checks the values; every problem is listed as `field: what`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.active_target == 0 || self.active_target > ACTIVE_TARGET_MAX {
            errors.push(format!("active_target: must be 1..={ACTIVE_TARGET_MAX}"));
        }
        if self.listing_confirmations == 0 || self.listing_confirmations > CONFIRMATIONS_MAX {
            errors.push(format!(
                "listing_confirmations: must be 1..={CONFIRMATIONS_MAX}"
            ));
        }
        if self.drain_secs > DRAIN_SECS_MAX {
            errors.push(format!("drain_secs: must be at most {DRAIN_SECS_MAX}"));
        }
        if self
            .active_age_max_secs
            .is_some_and(|s| s < ACTIVE_AGE_MIN_SECS)
        {
            errors.push(format!(
                "active_age_max_secs: must be at least {ACTIVE_AGE_MIN_SECS}"
            ));
        }
        if self.messages_max == Some(0) {
            errors.push("messages_max: must be at least 1".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Limits of the control plane; each has a defined answer when reached (see the admin API).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolLimits {
    /// Domains in the pool, all states; adding more answers 409 `pool-full`.
    pub domains_max: usize,
    /// Domains in one bulk import; more answers 422 `batch-too-large`.
    pub import_batch_max: usize,
    /// Audit events kept; the oldest are dropped first.
    pub audit_events_max: usize,
    /// Longest reason text accepted with a state change.
    pub reason_bytes_max: usize,
    /// Period of the rotation tick (drain completion, age limits, lazy persistence).
    pub tick_ms: u64,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            domains_max: 10_000,
            import_batch_max: 1_000,
            audit_events_max: 10_000,
            reason_bytes_max: 512,
            tick_ms: 1_000,
        }
    }
}

impl PoolLimits {
    /// Checks the values; every problem is listed as `field: what`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let positive = [
            ("domains_max", self.domains_max),
            ("import_batch_max", self.import_batch_max),
            ("audit_events_max", self.audit_events_max),
            ("reason_bytes_max", self.reason_bytes_max),
        ];
        for (name, v) in positive {
            if v == 0 {
                errors.push(format!("{name}: must be at least 1"));
            }
        }
        if !(10..=60_000).contains(&self.tick_ms) {
            errors.push("tick_ms: must be 10..=60000".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: defaults are valid and each bound is enforced at its limit.
    #[test]
    fn policy_bounds() {
        RotationPolicy::default().validate().expect("test setup");
        PoolLimits::default().validate().expect("test setup");
        let at_limit = RotationPolicy {
            active_target: ACTIVE_TARGET_MAX,
            listing_confirmations: CONFIRMATIONS_MAX,
            drain_secs: DRAIN_SECS_MAX,
            active_age_max_secs: Some(ACTIVE_AGE_MIN_SECS),
            messages_max: Some(1),
            ..RotationPolicy::default()
        };
        at_limit.validate().expect("test setup");
        let over = RotationPolicy {
            active_target: ACTIVE_TARGET_MAX + 1,
            listing_confirmations: 0,
            drain_secs: DRAIN_SECS_MAX + 1,
            active_age_max_secs: Some(ACTIVE_AGE_MIN_SECS - 1),
            messages_max: Some(0),
            ..RotationPolicy::default()
        };
        assert_eq!(over.validate().expect_err("must fail").len(), 5);
        let limits = PoolLimits {
            domains_max: 0,
            tick_ms: 5,
            ..PoolLimits::default()
        };
        assert_eq!(limits.validate().expect_err("must fail").len(), 2);
    }
}
