//! On a start from saved state the saved pool and policy win over the configuration's
//! `pool.domains` and `pool.policy` (the admin API changes them at runtime). This says so
//! at start, and says what differs, so an edit of the file is never ignored silently.

use std::collections::BTreeSet;
use std::path::Path;

use tracing::{info, warn};

use super::config::RotationPolicy;
use super::state::PoolState;

/// How the configuration's pool section differs from the saved state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Configured domains the saved pool does not have (they are not added).
    pub domains_only_in_config: Vec<String>,
    /// Saved domains the configuration does not list (they stay in the pool).
    pub domains_only_in_saved: Vec<String>,
    /// Policy fields whose values differ, as `field: file <value>, saved <value>`.
    pub policy: Vec<String>,
}

impl Drift {
    /// Compares the configured names (normalised here; invalid ones were refused at
    /// validation) and policy with the saved state.
    pub fn between(domains: &[String], policy: &RotationPolicy, saved: &PoolState) -> Self {
        let configured: BTreeSet<String> = domains
            .iter()
            .filter_map(|d| tempmx_store::Domain::parse(d).ok())
            .map(|d| d.to_string())
            .collect();
        let saved_names: BTreeSet<String> = saved.domains.keys().cloned().collect();
        Self {
            domains_only_in_config: configured.difference(&saved_names).cloned().collect(),
            domains_only_in_saved: saved_names.difference(&configured).cloned().collect(),
            policy: policy_differences(policy, &saved.policy),
        }
    }

    /// Whether the file and the saved state agree.
    pub fn is_empty(&self) -> bool {
        self.domains_only_in_config.is_empty()
            && self.domains_only_in_saved.is_empty()
            && self.policy.is_empty()
    }

    /// Logs which source wins and, when they differ, a warning with every difference.
    pub fn log(&self, state_dir: &Path) {
        let dir = state_dir.display();
        if self.is_empty() {
            info!(state = %dir, "pool state loaded from the data directory; it matches pool.domains and pool.policy");
            return;
        }
        warn!(
            state = %dir,
            domains_only_in_config = ?self.domains_only_in_config,
            domains_only_in_saved = ?self.domains_only_in_saved,
            policy = ?self.policy,
            "the saved pool state wins over the config file's pool.domains and pool.policy, \
             which differ from it; change the pool through the admin API (`tempmx domains`, \
             PUT /admin/v1/policy), or remove {dir} to start from the file"
        );
    }
}

fn policy_differences(file: &RotationPolicy, saved: &RotationPolicy) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |field: &str, f: String, s: String| {
        if f != s {
            out.push(format!("{field}: file {f}, saved {s}"));
        }
    };
    let opt = |v: Option<u64>| v.map_or_else(|| "unset".to_owned(), |v| v.to_string());
    cmp(
        "active_target",
        file.active_target.to_string(),
        saved.active_target.to_string(),
    );
    cmp(
        "active_age_max_secs",
        opt(file.active_age_max_secs),
        opt(saved.active_age_max_secs),
    );
    cmp(
        "messages_max",
        opt(file.messages_max),
        opt(saved.messages_max),
    );
    cmp(
        "retire_on_listing",
        file.retire_on_listing.to_string(),
        saved.retire_on_listing.to_string(),
    );
    cmp(
        "listing_confirmations",
        file.listing_confirmations.to_string(),
        saved.listing_confirmations.to_string(),
    );
    cmp(
        "drain_secs",
        file.drain_secs.to_string(),
        saved.drain_secs.to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Domain, DomainState};

    // Goal: every kind of difference is found and nothing else. Method: compare a saved
    // state with configurations that differ in one way each.
    #[test]
    fn differences_are_listed() {
        let mut saved = PoolState::default();
        for name in ["a.test", "b.test"] {
            let d = Domain::new(name.to_owned(), DomainState::Active, 0);
            saved.domains.insert(name.to_owned(), d);
        }
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let same = Drift::between(&names(&["A.test", "b.test"]), &saved.policy, &saved);
        assert!(same.is_empty(), "{same:?}");
        let policy = RotationPolicy {
            drain_secs: 7200,
            messages_max: Some(10),
            ..saved.policy.clone()
        };
        let drift = Drift::between(&names(&["a.test", "c.test"]), &policy, &saved);
        assert_eq!(drift.domains_only_in_config, names(&["c.test"]));
        assert_eq!(drift.domains_only_in_saved, names(&["b.test"]));
        assert_eq!(
            drift.policy,
            names(&[
                "messages_max: file 10, saved unset",
                "drain_secs: file 7200, saved 86400"
            ])
        );
    }
}
