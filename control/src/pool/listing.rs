//! Blocklist answers into the pool state: each observation feeds the per-list tracker,
//! and a confirmed listing (or its end) sets or clears the domain's listing, audited.

use super::audit::AuditAction;
use super::domain::Listing;
use super::state::PoolState;
use crate::blocklist::tracker::{Change, ListStatus};
use crate::blocklist::{Observation, Outcome};

/// Feeds one observation to the tracker; a confirmed listing (or its end) updates the domain.
pub(super) fn record(s: &mut PoolState, o: &Observation, now: u64, audit_max: usize) {
    let Some(domain) = s.domains.get_mut(&o.domain) else {
        return;
    };
    let per_list = s.checks.entry(o.domain.clone()).or_default();
    let status = per_list
        .entry(o.list.clone())
        .or_insert_with(|| ListStatus::new(&o.list, now));
    let (action, why) = match status.observe(o.outcome.clone(), now, s.policy.listing_confirmations)
    {
        Change::Confirmed { reason, since } if domain.listing.is_none() => {
            let why = format!(
                "{} consecutive listed answers: {reason}",
                s.policy.listing_confirmations
            );
            domain.listing = Some(Listing {
                list: o.list.clone(),
                reason,
                since,
            });
            let list = o.list.clone();
            (AuditAction::Listed { list }, why)
        }
        Change::Cleared if domain.listing.as_ref().is_some_and(|l| l.list == o.list) => {
            // Another list may still hold a confirmed listing; keep the flag then.
            domain.listing = per_list.values().find(|st| st.confirmed).map(|st| Listing {
                list: st.list.clone(),
                reason: match &st.last {
                    Outcome::Listed { reason } => reason.clone(),
                    _ => "listed".to_owned(),
                },
                since: st.first_seen,
            });
            let list = o.list.clone();
            let why = "consecutive clean answers".to_owned();
            (AuditAction::Unlisted { list }, why)
        }
        _ => return,
    };
    s.audit.push(
        now,
        Some(&o.domain),
        action,
        "rule:listing",
        &why,
        audit_max,
    );
}
