//! The rotation policy as a pure planner: (domains, policy, now) → transitions.
//! No clock and no I/O here, so every rule is unit-tested with chosen times.

use std::collections::BTreeMap;
use std::fmt;

use super::config::RotationPolicy;
use super::domain::{Domain, DomainState};

/// The rule behind an automatic transition (recorded as `rule:<name>` in the audit log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The active domain passed `active_age_max_secs`.
    Age,
    /// The drain period ended.
    DrainComplete,
    /// A confirmed blocklist listing.
    Listing,
    /// The active domain passed `messages_max`.
    Messages,
    /// The active count fell below `active_target`.
    Promote,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Age => "age",
            Self::DrainComplete => "drain-complete",
            Self::Listing => "listing",
            Self::Messages => "messages",
            Self::Promote => "promote",
        };
        write!(f, "rule:{name}")
    }
}

/// Why a domain left the active set, for `tempmx_pool_rotations_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationReason {
    /// It passed `active_age_max_secs`.
    Age,
    /// A confirmed blocklist listing.
    Listing,
    /// It passed `messages_max`.
    Messages,
    /// An operator moved it through the admin API.
    Operator,
}

impl RotationReason {
    /// Every reason, in `as usize` order.
    pub const ALL: [Self; 4] = [Self::Age, Self::Listing, Self::Messages, Self::Operator];

    /// Metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Age => "age",
            Self::Listing => "listing",
            Self::Messages => "messages",
            Self::Operator => "operator",
        }
    }

    /// The reason an automatic transition from `from` rotates a domain out, if it does:
    /// only an active domain leaving the active set counts (a drain ending or a listed
    /// pending domain retiring is not a rotation, a promotion is the other side of one).
    pub fn of_rule(rule: Rule, from: DomainState) -> Option<Self> {
        if from != DomainState::Active {
            return None;
        }
        match rule {
            Rule::Age => Some(Self::Age),
            Rule::Listing => Some(Self::Listing),
            Rule::Messages => Some(Self::Messages),
            Rule::DrainComplete | Rule::Promote => None,
        }
    }
}

/// One planned state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The domain.
    pub domain: String,
    /// Its new state.
    pub to: DomainState,
    /// The rule that asks for it.
    pub rule: Rule,
    /// Human-readable why.
    pub reason: String,
}

/// Plans the transitions the policy wants at `now`. Order of the rules: finished drains
/// retire, confirmed listings rotate out, age/message limits rotate out (only while a
/// replacement exists or the target is still met, so a pool never empties itself because
/// of age alone), then the oldest unlisted pending domains are promoted up to the target.
pub fn plan(
    domains: &BTreeMap<String, Domain>,
    policy: &RotationPolicy,
    now: u64,
) -> Vec<Transition> {
    let mut out = Vec::new();
    let mut active = domains
        .values()
        .filter(|d| d.state == DomainState::Active)
        .count();
    let mut spare = promotable(domains).len();
    let target = policy.active_target as usize;
    for d in domains.values() {
        let step = match d.state {
            DomainState::Draining => finished_drain(d, now),
            DomainState::Active | DomainState::Pending => listed(d, policy),
            DomainState::Retired => None,
        };
        let Some(t) = step.or_else(|| over_limit(d, policy, now)) else {
            continue;
        };
        if d.state == DomainState::Active {
            let forced = t.rule == Rule::Listing;
            if !forced && active <= target && spare == 0 {
                continue;
            }
            active -= 1;
            if active < target {
                spare = spare.saturating_sub(1);
            }
        }
        out.push(t);
    }
    let moved: Vec<String> = out.iter().map(|t| t.domain.clone()).collect();
    let promote = promotable(domains)
        .into_iter()
        .filter(|d| !moved.contains(&d.name));
    for d in promote.take(target.saturating_sub(active)) {
        out.push(Transition {
            domain: d.name.clone(),
            to: DomainState::Active,
            rule: Rule::Promote,
            reason: format!("active domains below target {target}"),
        });
    }
    out
}

/// Unlisted pending domains, oldest first (name breaks ties so the plan is deterministic).
fn promotable(domains: &BTreeMap<String, Domain>) -> Vec<&Domain> {
    let mut v: Vec<&Domain> = domains
        .values()
        .filter(|d| d.state == DomainState::Pending && d.listing.is_none())
        .collect();
    v.sort_by(|a, b| (a.added_at, &a.name).cmp(&(b.added_at, &b.name)));
    v
}

fn finished_drain(d: &Domain, now: u64) -> Option<Transition> {
    let until = d.drain_until?;
    (now >= until).then(|| Transition {
        domain: d.name.clone(),
        to: DomainState::Retired,
        rule: Rule::DrainComplete,
        reason: "drain period over; mailboxes have expired".to_owned(),
    })
}

/// A listed active domain drains (its live mailboxes keep getting mail); a listed pending
/// one has no mailboxes and retires at once.
fn listed(d: &Domain, policy: &RotationPolicy) -> Option<Transition> {
    let listing = d.listing.as_ref()?;
    if !policy.retire_on_listing {
        return None;
    }
    let to = if d.state == DomainState::Active {
        DomainState::Draining
    } else {
        DomainState::Retired
    };
    Some(Transition {
        domain: d.name.clone(),
        to,
        rule: Rule::Listing,
        reason: format!("listed on {}: {}", listing.list, listing.reason),
    })
}

fn over_limit(d: &Domain, policy: &RotationPolicy, now: u64) -> Option<Transition> {
    if d.state != DomainState::Active {
        return None;
    }
    let drain = |rule, reason| {
        Some(Transition {
            domain: d.name.clone(),
            to: DomainState::Draining,
            rule,
            reason,
        })
    };
    if let (Some(max), Some(since)) = (policy.active_age_max_secs, d.activated_at)
        && now.saturating_sub(since) >= max
    {
        return drain(Rule::Age, format!("active for more than {max} s"));
    }
    if let Some(max) = policy.messages_max
        && d.messages >= max
    {
        return drain(
            Rule::Messages,
            format!("received {} messages (max {max})", d.messages),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::domain::Listing;

    fn pool(spec: &[(&str, DomainState, u64)]) -> BTreeMap<String, Domain> {
        spec.iter()
            .map(|(n, s, at)| (n.to_string(), Domain::new(n.to_string(), *s, *at)))
            .collect()
    }

    fn listing() -> Option<Listing> {
        Some(Listing {
            list: "dbl.test".into(),
            reason: "spam domain".into(),
            since: 5,
        })
    }

    fn moves(plan: &[Transition]) -> Vec<(&str, DomainState, Rule)> {
        plan.iter()
            .map(|t| (t.domain.as_str(), t.to, t.rule))
            .collect()
    }

    // Goal: a listed active domain drains and the oldest unlisted pending one replaces it.
    #[test]
    fn listing_rotates_and_promotes_oldest() {
        use DomainState::*;
        let mut p = pool(&[
            ("a.test", Active, 0),
            ("b.test", Pending, 3),
            ("c.test", Pending, 2),
            ("d.test", Pending, 1),
        ]);
        p.get_mut("a.test").expect("test setup").listing = listing();
        p.get_mut("d.test").expect("test setup").listing = listing();
        let plan = plan(&p, &RotationPolicy::default(), 10);
        assert_eq!(
            moves(&plan),
            vec![
                ("a.test", Draining, Rule::Listing),
                ("d.test", Retired, Rule::Listing),
                ("c.test", Active, Rule::Promote)
            ]
        );
    }

    // Goal: with retire_on_listing off a listing is only a flag.
    #[test]
    fn listing_only_flags_when_disabled() {
        let mut p = pool(&[
            ("a.test", DomainState::Active, 0),
            ("b.test", DomainState::Pending, 0),
        ]);
        p.get_mut("a.test").expect("test setup").listing = listing();
        let policy = RotationPolicy {
            retire_on_listing: false,
            ..RotationPolicy::default()
        };
        assert!(plan(&p, &policy, 10).is_empty());
    }

    // Goal: the age limit rotates only when a replacement exists or the target still holds.
    #[test]
    fn age_limit_needs_a_replacement() {
        use DomainState::*;
        let policy = RotationPolicy {
            active_age_max_secs: Some(100),
            ..RotationPolicy::default()
        };
        let alone = pool(&[("a.test", Active, 0)]);
        assert!(plan(&alone, &policy, 99).is_empty());
        assert!(
            plan(&alone, &policy, 100).is_empty(),
            "no replacement: keep serving"
        );
        let with_spare = pool(&[("a.test", Active, 0), ("b.test", Pending, 0)]);
        assert_eq!(
            moves(&plan(&with_spare, &policy, 100)),
            vec![
                ("a.test", Draining, Rule::Age),
                ("b.test", Active, Rule::Promote)
            ]
        );
        let over_target = pool(&[("a.test", Active, 0), ("b.test", Active, 50)]);
        assert_eq!(
            moves(&plan(&over_target, &policy, 100)),
            vec![("a.test", Draining, Rule::Age)]
        );
    }

    // Goal: the message limit triggers at exactly messages_max.
    #[test]
    fn message_limit_at_the_limit() {
        use DomainState::*;
        let policy = RotationPolicy {
            messages_max: Some(10),
            ..RotationPolicy::default()
        };
        let mut p = pool(&[("a.test", Active, 0), ("b.test", Pending, 0)]);
        p.get_mut("a.test").expect("test setup").messages = 9;
        assert!(plan(&p, &policy, 1).is_empty());
        p.get_mut("a.test").expect("test setup").messages = 10;
        assert_eq!(
            moves(&plan(&p, &policy, 1))[0],
            ("a.test", Draining, Rule::Messages)
        );
    }

    // Goal: a drain ends exactly at drain_until, then the domain is retired.
    #[test]
    fn drain_completes_on_time() {
        let mut p = pool(&[
            ("a.test", DomainState::Active, 0),
            ("b.test", DomainState::Active, 0),
        ]);
        p.get_mut("a.test")
            .expect("test setup")
            .enter(DomainState::Draining, 10, 50);
        assert!(plan(&p, &RotationPolicy::default(), 59).is_empty());
        assert_eq!(
            moves(&plan(&p, &RotationPolicy::default(), 60)),
            vec![("a.test", DomainState::Retired, Rule::DrainComplete)]
        );
    }

    // Goal: promotion fills up to the target and never beyond; extra actives are left alone.
    #[test]
    fn promotion_fills_to_target() {
        use DomainState::*;
        let policy = RotationPolicy {
            active_target: 3,
            ..RotationPolicy::default()
        };
        let p = pool(&[
            ("a.test", Active, 0),
            ("b.test", Pending, 1),
            ("c.test", Pending, 2),
            ("d.test", Pending, 3),
        ]);
        assert_eq!(
            moves(&plan(&p, &policy, 5)),
            vec![
                ("b.test", Active, Rule::Promote),
                ("c.test", Active, Rule::Promote)
            ]
        );
        let p = pool(&[("a.test", Active, 0), ("b.test", Active, 0)]);
        assert!(plan(&p, &RotationPolicy::default(), 5).is_empty());
    }
}
