//! A reload's edit of the `[pool]` section: the domains and policy fields that changed in
//! the file since it was last loaded. A reload applies only the edit, never the whole
//! section, so what the admin API changed since stays (start-up keeps the saved state over
//! the file for the same reason, see [`super::drift`]): domains added to `pool.domains`
//! join the pool as active, removed ones stay in it (retiring loses mail, so that is an
//! operator's admin-API decision) and are reported, changed policy fields are a partial
//! policy update validated like `PUT /admin/v1/policy`.

use std::collections::BTreeSet;

use super::audit::AuditAction;
use super::config::{PolicyPatch, RotationPolicy};
use super::domain::{Domain, DomainState};
use super::plane::{Actor, AddOutcome, ControlError};
use super::state::PoolState;

/// What changed in `pool.domains` and `pool.policy` between two loads of the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolEdit {
    /// Names added to `pool.domains` (normalised).
    pub added: Vec<String>,
    /// Names removed from `pool.domains` (normalised); they stay in the pool.
    pub removed: Vec<String>,
    /// The policy fields whose values changed, with their new values.
    pub policy: PolicyPatch,
}

impl PoolEdit {
    /// The edit from the `old` file's domains and policy to the `new` file's. Names are
    /// normalised; one that is no valid domain was refused when the file was validated
    /// and is skipped here.
    pub fn between(
        (old_domains, old_policy): (&[String], &RotationPolicy),
        (new_domains, new_policy): (&[String], &RotationPolicy),
    ) -> Self {
        let names = |list: &[String]| -> BTreeSet<String> {
            list.iter()
                .filter_map(|d| tempmx_store::Domain::parse(d).ok())
                .map(|d| d.to_string())
                .collect()
        };
        let (old, new) = (names(old_domains), names(new_domains));
        Self {
            added: new.difference(&old).cloned().collect(),
            removed: old.difference(&new).cloned().collect(),
            policy: patch(old_policy, new_policy),
        }
    }

    /// Whether the file's pool section did not change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The fields of `new` that differ from `old`.
fn patch(old: &RotationPolicy, new: &RotationPolicy) -> PolicyPatch {
    fn changed<T: PartialEq + Clone>(old: &T, new: &T) -> Option<T> {
        (old != new).then(|| new.clone())
    }
    PolicyPatch {
        active_target: changed(&old.active_target, &new.active_target),
        active_age_max_secs: changed(&old.active_age_max_secs, &new.active_age_max_secs),
        messages_max: changed(&old.messages_max, &new.messages_max),
        retire_on_listing: changed(&old.retire_on_listing, &new.retire_on_listing),
        listing_confirmations: changed(&old.listing_confirmations, &new.listing_confirmations),
        drain_secs: changed(&old.drain_secs, &new.drain_secs),
    }
}

/// How names enter the pool: in which state, on whose request, why, up to which size.
pub(super) struct Addition<'a> {
    /// The state they start in.
    pub(super) state: DomainState,
    /// Who adds them (audited).
    pub(super) actor: Actor,
    /// Why (audited).
    pub(super) reason: &'a str,
    /// `pool.limits.domains_max`.
    pub(super) max: usize,
}

impl Addition<'_> {
    /// Inserts the (normalised) names the pool lacks and audits each; names already in it
    /// are left as they are. A full pool refuses the rest with an error.
    pub(super) fn insert(
        &self,
        s: &mut PoolState,
        names: &[String],
        now: u64,
        audit_max: usize,
    ) -> Result<Vec<AddOutcome>, ControlError> {
        let mut out = Vec::new();
        for name in names {
            let name = name.clone();
            if s.domains.contains_key(&name) {
                out.push(AddOutcome { name, added: false });
                continue;
            }
            if s.domains.len() >= self.max {
                return Err(ControlError::PoolFull(self.max));
            }
            let state = self.state;
            s.domains
                .insert(name.clone(), Domain::new(name.clone(), state, now));
            s.audit.push(
                now,
                Some(&name),
                AuditAction::Added { state },
                self.actor.name(),
                self.reason,
                audit_max,
            );
            out.push(AddOutcome { name, added: true });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the edit names exactly what changed, normalised, and an unchanged section is
    // an empty edit. Method: compare small domain lists and policies.
    #[test]
    fn edit_names_what_changed() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let policy = RotationPolicy::default();
        let old = names(&["a.test", "b.test"]);
        let same = PoolEdit::between((&old, &policy), (&names(&["B.test", "a.test"]), &policy));
        assert!(same.is_empty(), "{same:?}");

        let new_policy = RotationPolicy {
            messages_max: Some(10),
            drain_secs: 7200,
            ..policy.clone()
        };
        let edit = PoolEdit::between(
            (&old, &policy),
            (&names(&["a.test", "C.test"]), &new_policy),
        );
        assert_eq!(edit.added, names(&["c.test"]));
        assert_eq!(edit.removed, names(&["b.test"]));
        assert_eq!(
            edit.policy,
            PolicyPatch {
                messages_max: Some(Some(10)),
                drain_secs: Some(7200),
                ..PolicyPatch::default()
            }
        );
    }
}
