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
    /// Checks the values; every problem is listed as `field: what`. `drain_secs_min` is
    /// the longest mailbox TTL (`store.ttl_secs`, `api.ttl_secs_max`): draining must
    /// outlast every mailbox, or mail for live addresses would bounce. The config file and
    /// the admin API both check through here.
    pub fn validate(&self, drain_secs_min: u64) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.drain_secs < drain_secs_min {
            errors.push(format!(
                "drain_secs: must be at least {drain_secs_min}, the longest mailbox TTL \
                 (store.ttl_secs, api.ttl_secs_max)"
            ));
        }
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

/// A partial rotation policy (`PUT /admin/v1/policy`): a field left out keeps its value,
/// `null` unsets an optional limit.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// See [`RotationPolicy::active_target`].
    pub active_target: Option<u32>,
    /// See [`RotationPolicy::active_age_max_secs`]; `null` means never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub active_age_max_secs: Option<Option<u64>>,
    /// See [`RotationPolicy::messages_max`]; `null` means never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub messages_max: Option<Option<u64>>,
    /// See [`RotationPolicy::retire_on_listing`].
    pub retire_on_listing: Option<bool>,
    /// See [`RotationPolicy::listing_confirmations`].
    pub listing_confirmations: Option<u32>,
    /// See [`RotationPolicy::drain_secs`].
    pub drain_secs: Option<u64>,
}

impl PolicyPatch {
    /// `policy` with the fields this patch names replaced.
    pub fn apply(&self, policy: &RotationPolicy) -> RotationPolicy {
        RotationPolicy {
            active_target: self.active_target.unwrap_or(policy.active_target),
            active_age_max_secs: self
                .active_age_max_secs
                .unwrap_or(policy.active_age_max_secs),
            messages_max: self.messages_max.unwrap_or(policy.messages_max),
            retire_on_listing: self.retire_on_listing.unwrap_or(policy.retire_on_listing),
            listing_confirmations: self
                .listing_confirmations
                .unwrap_or(policy.listing_confirmations),
            drain_secs: self.drain_secs.unwrap_or(policy.drain_secs),
        }
    }
}

/// A field that is present, even as `null` (serde calls this only when the key exists).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
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
        RotationPolicy::default().validate(0).expect("test setup");
        PoolLimits::default().validate().expect("test setup");
        let at_limit = RotationPolicy {
            active_target: ACTIVE_TARGET_MAX,
            listing_confirmations: CONFIRMATIONS_MAX,
            drain_secs: DRAIN_SECS_MAX,
            active_age_max_secs: Some(ACTIVE_AGE_MIN_SECS),
            messages_max: Some(1),
            ..RotationPolicy::default()
        };
        at_limit.validate(DRAIN_SECS_MAX).expect("test setup");
        let over = RotationPolicy {
            active_target: ACTIVE_TARGET_MAX + 1,
            listing_confirmations: 0,
            drain_secs: DRAIN_SECS_MAX + 1,
            active_age_max_secs: Some(ACTIVE_AGE_MIN_SECS - 1),
            messages_max: Some(0),
            ..RotationPolicy::default()
        };
        assert_eq!(over.validate(0).expect_err("must fail").len(), 5);
        let short = RotationPolicy {
            drain_secs: 3599,
            ..RotationPolicy::default()
        };
        assert_eq!(short.validate(3600).expect_err("must fail").len(), 1);
        let limits = PoolLimits {
            domains_max: 0,
            tick_ms: 5,
            ..PoolLimits::default()
        };
        assert_eq!(limits.validate().expect_err("must fail").len(), 2);
    }

    // Goal: a patch changes only the fields it names, and `null` unsets an optional
    // limit while a missing key keeps it. Method: apply parsed patches to a policy.
    #[test]
    fn patch_changes_only_named_fields() {
        let base = RotationPolicy {
            active_target: 3,
            messages_max: Some(500),
            drain_secs: 7200,
            ..RotationPolicy::default()
        };
        let patch: PolicyPatch =
            serde_json::from_str(r#"{"listing_confirmations": 4}"#).expect("patch");
        let got = patch.apply(&base);
        assert_eq!(
            got,
            RotationPolicy {
                listing_confirmations: 4,
                ..base.clone()
            }
        );
        let patch: PolicyPatch = serde_json::from_str(r#"{"messages_max": null}"#).expect("patch");
        assert_eq!(patch.apply(&base).messages_max, None);
        assert_eq!(patch.apply(&base).active_target, 3);
        assert!(serde_json::from_str::<PolicyPatch>(r#"{"bogus": 1}"#).is_err());
    }
}
