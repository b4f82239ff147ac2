//! The control plane: owns the pool state, applies operator changes and the rotation
//! rules, persists, and publishes a new snapshot after every change.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tempmx_dns::ZoneSnapshot;
use tempmx_ingress::policy::{Policy, PoolSnapshot, RecipientMode};
use tracing::{info, warn};

use super::audit::{AuditAction, AuditEvent};
use super::clock::Clock;
use super::config::{PolicyPatch, PoolLimits, RotationPolicy};
use super::counters::MessageCounters;
use super::domain::{Domain, DomainState, Listing};
use super::drift::Drift;
use super::edit::{Addition, PoolEdit};
use super::listing;
use super::publish::{DnsPublish, Targets, dns_snapshot};
use super::rotation::RotationReason;
use super::shared::{FleetLink, shared_fields};
use super::state::{PoolState, StateError, StateFile};
use super::{Pool, rotation};
use crate::blocklist::Observation;
use crate::blocklist::tracker::ListStatus;
use crate::mailboxes::Registry;

/// Message counts change with every delivery, and saving the whole state for them on every
/// tick would rewrite the state file each second under traffic; counts alone are saved at
/// most this often (a crash loses at most this much counting, never a rotation).
pub const COUNTS_SAVE_SECS: u64 = 10;

/// Everything the control plane is built from (composed by the app from `Config`).
#[derive(Clone, Debug)]
pub struct PlaneConfig {
    /// Domains that start active on the very first start (no saved state).
    pub domains: Vec<String>,
    /// Catch-all or registered-only recipients.
    pub recipients: RecipientMode,
    /// The rotation policy on the first start (the saved one wins later).
    pub policy: RotationPolicy,
    /// Limits.
    pub limits: PoolLimits,
    /// `<data_dir>/control/` holds the state; `None` keeps it in memory only.
    pub data_dir: Option<PathBuf>,
    /// Shortest `drain_secs` a policy may have: the longest mailbox TTL
    /// (`Config::drain_secs_min`).
    pub drain_secs_min: u64,
}

/// Why a control-plane operation failed; the admin API maps each variant to a problem type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// More domains in one import than `import_batch_max`.
    #[error("{got} domains in one request; at most {max}")]
    BatchTooLarge {
        /// Domains sent.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// Invalid configuration values.
    #[error("invalid pool configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The domain still has live mailboxes or recent mail.
    #[error("domain {0} is not empty (live mailboxes or mail younger than the drain period)")]
    DomainNotEmpty(String),
    /// Deleting needs a retired domain.
    #[error("domain {0} is not retired")]
    DomainNotRetired(String),
    /// Names that are not valid domain names.
    #[error("invalid domain names: {}", .0.join(", "))]
    InvalidDomains(Vec<String>),
    /// The rotation policy values are invalid.
    #[error("invalid policy: {}", .0.join("; "))]
    InvalidPolicy(Vec<String>),
    /// The state change is not allowed.
    #[error("cannot move {domain} from {from:?} to {to:?}")]
    InvalidTransition {
        /// The domain.
        domain: String,
        /// Its state.
        from: DomainState,
        /// The state asked for.
        to: DomainState,
    },
    /// The pool holds `domains_max` domains.
    #[error("the pool is full ({0} domains)")]
    PoolFull(usize),
    /// The reason text is longer than `reason_bytes_max`.
    #[error("reason longer than {0} bytes")]
    ReasonTooLong(usize),
    /// The state could not be loaded or saved.
    #[error(transparent)]
    State(#[from] StateError),
    /// No such domain in the pool.
    #[error("domain {0} is not in the pool")]
    UnknownDomain(String),
}

/// Who asks for a change (recorded in the audit log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The admin API.
    Admin,
    /// The configuration file: at first start, or a reload's edit of it.
    Config,
}

impl Actor {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Config => "config",
        }
    }
}

/// A domain with what is known about it, as the admin API shows it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DomainInfo {
    /// The domain record.
    #[serde(flatten)]
    pub domain: Domain,
    /// Live registered mailboxes.
    pub mailboxes: usize,
    /// Per-list blocklist status.
    pub blocklists: Vec<ListStatus>,
}

/// Result of one name in a bulk import.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AddOutcome {
    /// The normalised name.
    pub name: String,
    /// `true` if added, `false` if it already was in the pool (left unchanged).
    pub added: bool,
}

/// The control plane. Share it as `Arc<ControlPlane>`.
pub struct ControlPlane {
    state: Mutex<PoolState>,
    file: Option<StateFile>,
    limits: PoolLimits,
    recipients: RecipientMode,
    clock: Arc<dyn Clock>,
    /// Read for the per-domain mailbox counts; the app owns and persists it.
    mailboxes: Arc<Registry>,
    targets: OnceLock<Targets>,
    /// Changes not yet on disk (a failed automatic save, counts that are due).
    dirty: AtomicBool,
    /// Message counts taken in since the last save.
    counts_unsaved: AtomicBool,
    /// Clock time (unix seconds) of the last successful save.
    saved_at: AtomicU64,
    /// Domains rotated out of the active set since start, by `RotationReason as usize`.
    rotations: [AtomicU64; RotationReason::ALL.len()],
    /// Shortest drain a policy may set (the longest mailbox TTL).
    drain_secs_min: u64,
    /// Fleet mode: the lease gating the rules, the changes to write, the version applied.
    fleet: OnceLock<FleetLink>,
    /// Bumped by every blocklist answer taken in; fleet mode shares the tracker's state
    /// as soon as this moves, and only then.
    checks_generation: tokio::sync::watch::Sender<u64>,
    /// Fleet mode: the checks generation whose state the holder last wrote to the fleet.
    checks_shared: tokio::sync::watch::Sender<u64>,
    /// Fleet mode: pool domains whose checks changed since the holder last wrote them (at
    /// most the pool's size).
    checks_changed: Mutex<HashSet<String>>,
    /// Fleet mode: live mailboxes per domain across the fleet, as last read (`None`: the
    /// registry's count).
    fleet_mailboxes: Mutex<Option<HashMap<String, usize>>>,
}

impl ControlPlane {
    /// Loads the saved state (or seeds it from the configuration on a first start).
    /// A corrupt or missing-but-expected state file is an error, never an empty pool.
    /// `mailboxes` is the registry whose per-domain counts the pool shows and checks.
    pub fn open(
        config: PlaneConfig,
        clock: Arc<dyn Clock>,
        mailboxes: Arc<Registry>,
    ) -> Result<Self, ControlError> {
        let mut errors = Vec::new();
        let drain_secs_min = config.drain_secs_min;
        errors.extend(
            config
                .policy
                .validate(drain_secs_min)
                .err()
                .unwrap_or_default(),
        );
        errors.extend(config.limits.validate().err().unwrap_or_default());
        if !errors.is_empty() {
            return Err(ControlError::Config(errors));
        }
        let (file, saved) = match &config.data_dir {
            Some(dir) => {
                let (f, s) = StateFile::open(dir)?;
                (Some(f), s)
            }
            None => (None, None),
        };
        let mut first_start_or_changed = saved.is_none();
        let state = match saved {
            Some(mut saved) => {
                if revalidate(&mut saved.state) {
                    first_start_or_changed = true;
                }
                if let Some(f) = &file {
                    Drift::between(&config.domains, &config.policy, &saved.state).log(f.dir());
                }
                if let Err(problems) = saved.state.policy.validate(drain_secs_min) {
                    warn!(
                        ?problems,
                        "the saved rotation policy breaks the rules of this \
                        configuration; fix it with PUT /admin/v1/policy"
                    );
                }
                saved.state
            }
            None => seed(&config.domains, config.policy, &config.limits, clock.now())?,
        };
        let plane = Self {
            state: Mutex::new(state),
            file,
            limits: config.limits,
            recipients: config.recipients,
            clock,
            mailboxes,
            targets: OnceLock::new(),
            dirty: AtomicBool::new(first_start_or_changed),
            counts_unsaved: AtomicBool::new(false),
            saved_at: AtomicU64::new(0),
            drain_secs_min,
            rotations: Default::default(),
            fleet: OnceLock::new(),
            checks_generation: tokio::sync::watch::Sender::new(0),
            checks_shared: tokio::sync::watch::Sender::new(0),
            checks_changed: Mutex::default(),
            fleet_mailboxes: Mutex::new(None),
        };
        plane.tick();
        Ok(plane)
    }

    /// Connects the data planes and publishes the current pool to them. Later calls are ignored.
    pub fn attach(&self, policy: Arc<Policy>, dns: Option<DnsPublish>) {
        let state = self.state.lock();
        if self.targets.set(Targets { policy, dns }).is_ok() {
            self.publish(&state);
        }
    }

    /// Fleet mode: from now on the rules and blocklist answers act only while this node
    /// holds `lease`, and every change is queued for the fleet ([`FleetLink`]). Later calls
    /// are ignored.
    pub fn join_fleet(&self, lease: Arc<crate::fleet::lease::Lease>) {
        let _ = self.fleet.set(FleetLink::new(lease));
    }

    /// Fleet mode's link, when this plane joined a fleet.
    pub fn fleet(&self) -> Option<&FleetLink> {
        self.fleet.get()
    }

    /// Whether the rotation rules and blocklist answers act here: always on a single
    /// node; in fleet mode only while this node holds the rotation lease.
    pub fn acting(&self) -> bool {
        self.fleet.get().is_none_or(|f| f.lease.held())
    }

    /// Fleet mode: takes the fleet's pool at `version` as this node's: `domains` (their
    /// shared fields; local message counts stay), `deleted` names gone, and `policy`. No
    /// rule runs and nothing is queued or audited here (the fleet has it already); the
    /// snapshots are republished with the new serial. Skipped (`false`) while changes of
    /// this node wait to be written, so a change is never undone by an older view.
    pub fn adopt(
        &self,
        version: u64,
        domains: Vec<Domain>,
        deleted: &[String],
        policy: Option<RotationPolicy>,
    ) -> bool {
        let Some(link) = self.fleet.get() else {
            return false;
        };
        let mut guard = self.state.lock();
        if link.pending() {
            return false;
        }
        let mut next = guard.clone();
        for d in domains {
            let local = next.domains.get(&d.name);
            let (messages, last) = local.map_or((0, None), |l| (l.messages, l.last_message_at));
            if local.is_some_and(|l| shared_fields(l) == d) {
                continue;
            }
            next.domains.insert(
                d.name.clone(),
                Domain {
                    messages,
                    last_message_at: last,
                    ..d
                },
            );
        }
        for name in deleted {
            next.domains.remove(name);
            next.checks.remove(name);
        }
        if let Some(p) = policy {
            next.policy = p;
        }
        let moved = link.version() != version;
        link.set_version(version);
        if next != *guard {
            if let Err(e) = self.save(&next) {
                warn!(error = %e, "fleet pool applied but not saved; retrying at the next tick");
            }
            *guard = next;
        } else if !moved {
            return true;
        }
        self.publish(&guard);
        true
    }

    /// The current pool (names and states).
    pub fn pool(&self) -> Pool {
        view(&self.state.lock(), self.recipients)
    }

    /// The snapshot for `Policy::new` at start-up.
    pub fn ingress_snapshot(&self) -> PoolSnapshot {
        self.pool().ingress_snapshot()
    }

    /// The snapshot for `tempmx_dns::start`.
    pub fn dns_snapshot(&self) -> ZoneSnapshot {
        dns_snapshot(&self.pool(), self.serial())
    }

    /// Fleet mode: the SOA serial is the fleet pool version this node applied (the same
    /// on every node at one version); `None` otherwise (the DNS then picks its own).
    fn serial(&self) -> Option<u32> {
        let v = self.fleet.get()?.version();
        // RFC 1982 serial arithmetic wraps; the version starts at a unix time.
        (v > 0).then_some(v as u32)
    }

    /// The control plane's current time (unix seconds).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The limits in force.
    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }

    /// Every domain with its counters and blocklist status, sorted by name.
    pub fn domains(&self) -> Vec<DomainInfo> {
        let state = self.state.lock();
        state
            .domains
            .values()
            .map(|d| self.info(&state, d))
            .collect()
    }

    /// Domains per state, in lifecycle order (for metrics).
    pub fn state_counts(&self) -> [(DomainState, usize); 4] {
        let s = self.state.lock();
        let count = |st| s.domains.values().filter(|d| d.state == st).count();
        [
            DomainState::Pending,
            DomainState::Active,
            DomainState::Draining,
            DomainState::Retired,
        ]
        .map(|st| (st, count(st)))
    }

    /// Domains rotated out of the active set since start, by reason (for metrics).
    pub fn rotations(&self) -> [(RotationReason, u64); RotationReason::ALL.len()] {
        RotationReason::ALL.map(|r| (r, self.rotations[r as usize].load(Ordering::Relaxed)))
    }

    fn count_rotations(&self, reasons: impl IntoIterator<Item = RotationReason>) {
        for r in reasons {
            self.rotations[r as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One domain.
    pub fn domain(&self, name: &tempmx_store::Domain) -> Result<DomainInfo, ControlError> {
        let state = self.state.lock();
        let d = state
            .domains
            .get(name.as_str())
            .ok_or_else(|| ControlError::UnknownDomain(name.to_string()))?;
        Ok(self.info(&state, d))
    }

    /// The record of domain `name`, if the pool has it.
    pub fn domain_record(&self, name: &str) -> Option<Domain> {
        self.state.lock().domains.get(name).cloned()
    }

    fn info(&self, state: &PoolState, d: &Domain) -> DomainInfo {
        let blocklists = state
            .checks
            .get(&d.name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        DomainInfo {
            domain: d.clone(),
            mailboxes: tempmx_store::Domain::parse(&d.name)
                .map_or(0, |name| self.mailbox_count(&name)),
            blocklists,
        }
    }

    /// Adds domains (bulk import) in `state` (pending or active). All-or-nothing: one
    /// name that is no pool domain ([`tempmx_store::Domain`]: never an IP address, a
    /// single label or a bad label) refuses the whole batch, each such name listed with
    /// its reason; names already in the pool are left as they are.
    pub fn add_domains(
        &self,
        names: &[String],
        state: DomainState,
        reason: &str,
    ) -> Result<Vec<AddOutcome>, ControlError> {
        if names.len() > self.limits.import_batch_max {
            return Err(ControlError::BatchTooLarge {
                got: names.len(),
                max: self.limits.import_batch_max,
            });
        }
        if !matches!(state, DomainState::Pending | DomainState::Active) {
            return Err(ControlError::InvalidTransition {
                domain: "(new)".into(),
                from: DomainState::Pending,
                to: state,
            });
        }
        self.check_reason(reason)?;
        let normalised: Vec<String> = parse_domains(names)?
            .iter()
            .map(|d| d.to_string())
            .collect();
        let max = self.limits.domains_max;
        self.mutate(true, |s, now, audit_max| {
            let add = Addition {
                state,
                actor: Actor::Admin,
                reason,
                max,
            };
            add.insert(s, &normalised, now, audit_max)
        })
    }

    /// Applies a reload's edit of `[pool]` (see [`PoolEdit`]) all or nothing: the added
    /// names join as active (as configured domains do on a first start), the changed
    /// policy fields are validated like [`Self::set_policy`]; both are audited as `config`.
    pub fn apply_edit(&self, edit: &PoolEdit) -> Result<Vec<AddOutcome>, ControlError> {
        let max = self.limits.domains_max;
        self.mutate(true, |s, now, audit_max| {
            let add = Addition {
                state: DomainState::Active,
                actor: Actor::Config,
                reason: "added to pool.domains (reload)",
                max,
            };
            let out = add.insert(s, &edit.added, now, audit_max)?;
            if edit.policy != PolicyPatch::default() {
                let policy = edit.policy.apply(&s.policy);
                policy
                    .validate(self.drain_secs_min)
                    .map_err(ControlError::InvalidPolicy)?;
                s.policy = policy;
                let reason = "pool.policy changed (reload)";
                let actor = Actor::Config.name();
                s.audit.push(
                    now,
                    None,
                    AuditAction::PolicyChanged,
                    actor,
                    reason,
                    audit_max,
                );
            }
            Ok(out)
        })
    }

    /// Moves a domain to `to` on an operator's request, then lets the rules react
    /// (e.g. promote a pending domain when an active one is retired).
    pub fn set_state(
        &self,
        domain: &tempmx_store::Domain,
        to: DomainState,
        reason: &str,
    ) -> Result<DomainInfo, ControlError> {
        self.check_reason(reason)?;
        let name = domain.to_string();
        let rotated_out = self.mutate(true, |s, now, audit_max| {
            let drain = s.policy.drain_secs;
            let d = s
                .domains
                .get_mut(&name)
                .ok_or(ControlError::UnknownDomain(name.clone()))?;
            let from = d.state;
            if !from.can_move_to(to) {
                return Err(ControlError::InvalidTransition {
                    domain: name.clone(),
                    from,
                    to,
                });
            }
            d.enter(to, now, drain);
            if to == DomainState::Active {
                // An operator activating a listed domain overrides the listing.
                d.listing = None;
            }
            s.audit.push(
                now,
                Some(&name),
                AuditAction::StateChanged { from, to },
                Actor::Admin.name(),
                reason,
                audit_max,
            );
            Ok(from == DomainState::Active && to != DomainState::Active)
        })?;
        // A strict mutate returns Ok only once the change is saved and in force.
        if rotated_out {
            self.count_rotations([RotationReason::Operator]);
        }
        self.domain(domain)
    }

    /// Removes a retired, empty domain (no live mailboxes, no mail within the drain period).
    pub fn delete(&self, domain: &tempmx_store::Domain, reason: &str) -> Result<(), ControlError> {
        self.check_reason(reason)?;
        let name = domain.to_string();
        let mailboxes = self.mailbox_count(domain);
        self.mutate(true, |s, now, audit_max| {
            let drain = s.policy.drain_secs;
            let d = s
                .domains
                .get(&name)
                .ok_or(ControlError::UnknownDomain(name.clone()))?;
            if d.state != DomainState::Retired {
                return Err(ControlError::DomainNotRetired(name.clone()));
            }
            let recent_mail = d
                .last_message_at
                .is_some_and(|t| now < t.saturating_add(drain));
            if mailboxes > 0 || recent_mail {
                return Err(ControlError::DomainNotEmpty(name.clone()));
            }
            s.domains.remove(&name);
            s.checks.remove(&name);
            s.audit.push(
                now,
                Some(&name),
                AuditAction::Deleted,
                Actor::Admin.name(),
                reason,
                audit_max,
            );
            Ok(())
        })
    }

    /// Sets (`Some(list)`) or clears (`None`) a domain's listing on an operator's word, then
    /// lets the rules react (a listed active domain leaves the active set when the policy
    /// retires on listing). Clearing a domain without a listing changes nothing.
    pub fn set_listing(
        &self,
        domain: &tempmx_store::Domain,
        list: Option<&str>,
        reason: &str,
    ) -> Result<DomainInfo, ControlError> {
        self.check_reason(reason)?;
        let name = domain.to_string();
        self.mutate(true, |s, now, audit_max| {
            let d = s
                .domains
                .get_mut(&name)
                .ok_or(ControlError::UnknownDomain(name.clone()))?;
            let action = match list {
                Some(list) => {
                    d.listing = Some(Listing {
                        list: list.to_owned(),
                        reason: reason.to_owned(),
                        since: now,
                    });
                    AuditAction::Listed {
                        list: list.to_owned(),
                    }
                }
                None => match d.listing.take() {
                    Some(old) => AuditAction::Unlisted { list: old.list },
                    None => return Ok(()),
                },
            };
            s.audit.push(
                now,
                Some(&name),
                action,
                Actor::Admin.name(),
                reason,
                audit_max,
            );
            Ok(())
        })?;
        self.domain(domain)
    }

    /// The rotation policy in force.
    pub fn policy(&self) -> RotationPolicy {
        self.state.lock().policy.clone()
    }

    /// Changes the fields of the rotation policy that `patch` names (the others keep their
    /// values), validates the result by the configuration's rules, then applies it at once.
    pub fn set_policy(
        &self,
        patch: &PolicyPatch,
        reason: &str,
    ) -> Result<RotationPolicy, ControlError> {
        self.check_reason(reason)?;
        self.mutate(true, |s, now, audit_max| {
            let policy = patch.apply(&s.policy);
            policy
                .validate(self.drain_secs_min)
                .map_err(ControlError::InvalidPolicy)?;
            s.policy = policy;
            s.audit.push(
                now,
                None,
                AuditAction::PolicyChanged,
                Actor::Admin.name(),
                reason,
                audit_max,
            );
            Ok(())
        })?;
        Ok(self.policy())
    }

    /// Up to `limit` audit events after id `after`.
    pub fn audit(&self, after: u64, limit: usize) -> Vec<AuditEvent> {
        self.state.lock().audit.page(after, limit)
    }

    /// Counts `count` messages received for `domain`, the last at `at` (unix seconds).
    /// The tick feeds it from the counting sinks; the rules see it at once, the state file
    /// within [`COUNTS_SAVE_SECS`].
    pub fn record_messages(&self, domain: &tempmx_store::Domain, count: u64, at: u64) {
        let mut s = self.state.lock();
        if let Some(d) = s.domains.get_mut(domain.as_str()) {
            d.messages = d.messages.saturating_add(count);
            d.last_message_at = Some(d.last_message_at.map_or(at, |t| t.max(at)));
            self.counts_unsaved.store(true, Ordering::Relaxed);
        }
    }

    /// Fleet mode: takes the fleet's counts as the domains' own (`(name, messages, newest
    /// receipt in unix seconds)`), so the rules and listings see every node's mail.
    pub fn set_message_counts(&self, counts: impl IntoIterator<Item = (String, u64, Option<u64>)>) {
        let mut s = self.state.lock();
        for (name, messages, at) in counts {
            if let Some(d) = s.domains.get_mut(&name)
                && (d.messages, d.last_message_at) != (messages, at)
            {
                d.messages = messages;
                d.last_message_at = at;
                self.counts_unsaved.store(true, Ordering::Relaxed);
            }
        }
    }

    /// How many times blocklist answers were taken in (fleet mode shares the tracker's
    /// state when this moves).
    pub fn checks_generation(&self) -> u64 {
        *self.checks_generation.borrow()
    }

    /// Wakes when blocklist answers were taken in (the generation moved).
    pub fn checks_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.checks_generation.subscribe()
    }

    /// Fleet mode: records that the tracker's state as of `generation` is in the fleet.
    pub fn set_checks_shared(&self, generation: u64) {
        self.checks_shared.send_if_modified(|g| {
            let newer = generation > *g;
            if newer {
                *g = generation;
            }
            newer
        });
    }

    /// Fleet mode: waits until the tracker's state as of `generation` is in the fleet.
    pub async fn checks_shared(&self, generation: u64) {
        let mut rx = self.checks_shared.subscribe();
        // The sender lives as long as the plane, so this ends only once it is shared.
        let _ = rx.wait_for(|g| *g >= generation).await;
    }

    /// The blocklist tracker's state of every checked domain: per list, its streak and
    /// counts.
    pub fn checks(&self) -> Vec<(String, Vec<ListStatus>)> {
        let s = self.state.lock();
        s.checks
            .iter()
            .map(|(d, lists)| (d.clone(), lists.values().cloned().collect()))
            .collect()
    }

    /// Fleet mode: the tracker's state of the domains whose checks changed since the last
    /// call (of every checked domain with `all`), for the holder to write.
    pub fn take_changed_checks(&self, all: bool) -> Vec<(String, Vec<ListStatus>)> {
        let changed = std::mem::take(&mut *self.checks_changed.lock());
        if all {
            return self.checks();
        }
        let s = self.state.lock();
        changed
            .into_iter()
            .filter_map(|d| {
                let lists = s.checks.get(&d)?.values().cloned().collect();
                Some((d, lists))
            })
            .collect()
    }

    /// Fleet mode: takes the fleet's tracker state (the lease holder's answers) as this
    /// node's, so every node shows the same checks and a new holder continues the streaks.
    /// Domains outside the pool are ignored.
    pub fn set_checks(&self, checks: impl IntoIterator<Item = (String, Vec<ListStatus>)>) {
        let mut s = self.state.lock();
        for (domain, lists) in checks {
            if s.domains.contains_key(&domain) {
                let lists = lists.into_iter().map(|l| (l.list.clone(), l)).collect();
                s.checks.insert(domain, lists);
            }
        }
    }

    /// Fleet mode, on becoming the lease holder: takes each list's state from the fleet
    /// only where it is newer (a later check) than this node's, so neither the last
    /// holder's final answers nor this node's first ones are lost. The check times are
    /// each node's wall clock (seconds): clocks further apart than the time between two
    /// checks can let the older answer win.
    pub fn merge_checks(&self, checks: impl IntoIterator<Item = (String, Vec<ListStatus>)>) {
        let mut s = self.state.lock();
        for (domain, lists) in checks {
            if !s.domains.contains_key(&domain) {
                continue;
            }
            let mine = s.checks.entry(domain).or_default();
            for l in lists {
                if mine
                    .get(&l.list)
                    .is_none_or(|m| m.last_checked < l.last_checked)
                {
                    mine.insert(l.list.clone(), l);
                }
            }
        }
    }

    /// Fleet mode: takes the fleet's live mailboxes per domain as the pool's (the admin
    /// API's counts and the delete guard then see every node's mailboxes).
    pub fn set_mailbox_counts(&self, counts: HashMap<String, usize>) {
        *self.fleet_mailboxes.lock() = Some(counts);
    }

    /// Fleet mode: live mailboxes across the fleet (every pool domain's), once read.
    pub fn fleet_mailboxes_total(&self) -> Option<usize> {
        self.fleet_mailboxes
            .lock()
            .as_ref()
            .map(|m| m.values().sum())
    }

    /// Live mailboxes of `domain`: the fleet's in fleet mode, else the registry's.
    fn mailbox_count(&self, domain: &tempmx_store::Domain) -> usize {
        match self.fleet_mailboxes.lock().as_ref() {
            Some(counts) => counts.get(domain.as_str()).copied().unwrap_or(0),
            None => self.mailboxes.count(domain),
        }
    }

    /// Every pool domain's name.
    pub fn domain_names(&self) -> Vec<String> {
        self.state.lock().domains.keys().cloned().collect()
    }

    /// Applies the time-based rules (drains ending, age and message limits, promotion) and
    /// saves pending changes.
    pub fn tick(&self) {
        self.tick_saving(false);
    }

    /// Saves every pending change, message counts included (at shutdown).
    pub fn flush(&self) {
        self.tick_saving(true);
    }

    /// The tick; `flush` saves message counts even when they are not due yet.
    fn tick_saving(&self, flush: bool) {
        let now = self.clock.now();
        let due = now >= self.saved_at.load(Ordering::Relaxed) + COUNTS_SAVE_SECS;
        if self.counts_unsaved.load(Ordering::Relaxed) && (flush || due) {
            self.dirty.store(true, Ordering::Relaxed);
        }
        {
            // Fast path: most ticks change nothing, and mutate() clones the whole state.
            let s = self.state.lock();
            let idle = !self.acting() || rotation::plan(&s.domains, &s.policy, now).is_empty();
            if idle && !self.dirty.load(Ordering::Relaxed) {
                return;
            }
        }
        if let Err(e) = self.mutate(false, |_, _, _| Ok(())) {
            warn!(error = %e, "control state not saved; retrying at the next tick");
        }
    }

    /// Takes in the message counts the counting sinks gathered since the last call.
    pub fn take_counts(&self, counters: &MessageCounters) {
        let (counts, dropped) = counters.drain();
        if dropped > 0 {
            warn!(
                dropped,
                "messages not counted: more recipient domains between ticks than pool.limits.domains_max"
            );
        }
        for (domain, c) in counts {
            self.record_messages(&domain, c.messages, c.last_at_ms / 1000);
        }
    }

    /// Names of the domains that are not retired: what the blocklist cycle checks.
    pub fn unretired(&self) -> Vec<String> {
        let s = self.state.lock();
        s.domains
            .values()
            .filter(|d| d.state != DomainState::Retired)
            .map(|d| d.name.clone())
            .collect()
    }

    /// Feeds blocklist answers to the tracker (see [`super::listing`]); a confirmed listing
    /// (or its end) updates the domain and the rules react at once. Answers for names
    /// outside the pool are ignored.
    pub fn observe(&self, observations: &[Observation]) {
        if !self.acting() {
            // Fleet mode: the lease holder's checks decide listings.
            return;
        }
        let result = self.mutate(false, |s, now, audit_max| {
            for o in observations {
                listing::record(s, o, now, audit_max);
            }
            Ok(())
        });
        if self.fleet.get().is_some() {
            let s = self.state.lock();
            self.checks_changed.lock().extend(
                observations
                    .iter()
                    .filter(|o| s.checks.contains_key(&o.domain))
                    .map(|o| o.domain.clone()),
            );
        }
        self.checks_generation.send_modify(|g| *g += 1);
        if let Err(e) = result {
            warn!(error = %e, "blocklist results applied but not saved; retrying at the next tick");
        }
    }

    /// Runs the rotation tick, taking in the message counts `counters` gathered before each,
    /// until `shutdown` turns true; then saves everything (counts included).
    pub async fn run(
        self: Arc<Self>,
        counters: Arc<MessageCounters>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(self.limits.tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = shutdown.wait_for(|s| *s) => { let _ = r; break; }
                _ = tick.tick() => {}
            }
            self.take_counts(&counters);
            self.tick();
        }
        self.take_counts(&counters);
        self.flush();
        info!("control plane stopped");
    }

    fn check_reason(&self, reason: &str) -> Result<(), ControlError> {
        if reason.len() > self.limits.reason_bytes_max {
            return Err(ControlError::ReasonTooLong(self.limits.reason_bytes_max));
        }
        Ok(())
    }

    /// Applies `f` and the rules to a copy of the state, saves it, then swaps it in and
    /// publishes. `strict` (operator requests): a failed save rolls everything back and is
    /// returned. Automatic changes are applied even when the save fails (a listed domain
    /// must leave the active set now) and the save is retried at the next tick.
    fn mutate<R>(
        &self,
        strict: bool,
        f: impl FnOnce(&mut PoolState, u64, usize) -> Result<R, ControlError>,
    ) -> Result<R, ControlError> {
        let now = self.clock.now();
        let mut guard = self.state.lock();
        let mut next = guard.clone();
        let r = f(&mut next, now, self.limits.audit_events_max)?;
        // Fleet mode: the rules run only under the lease; what `f` did and what the rules
        // did are queued apart, an operator's part unfenced.
        let link = self.fleet.get();
        let epoch = link.and_then(|l| l.lease.epoch());
        let before_rules = link.map(|_| next.clone());
        let rotated = if link.is_none() || epoch.is_some() {
            apply_rules(&mut next, now, self.limits.audit_events_max)
        } else {
            Vec::new()
        };
        let changed = next != *guard;
        if !changed && !self.dirty.load(Ordering::Relaxed) {
            return Ok(r);
        }
        let saved = self.save(&next);
        if strict && saved.is_err() {
            return saved.map(|()| r);
        }
        if changed {
            if let (Some(link), Some(mid)) = (link, &before_rules) {
                match (strict, epoch) {
                    (true, _) => link.queue(&guard, mid, None),
                    (false, Some(e)) => link.queue(&guard, mid, Some(e)),
                    // An automatic change without the lease: not the fleet's; re-read it.
                    (false, None) => link.mark_stale(),
                }
                if epoch.is_some() {
                    link.queue(mid, &next, epoch);
                }
            }
            *guard = next;
            self.publish(&guard);
            self.count_rotations(rotated);
        }
        saved.map(|()| r)
    }

    fn save(&self, state: &PoolState) -> Result<(), ControlError> {
        let saved = || {
            self.dirty.store(false, Ordering::Relaxed);
            self.counts_unsaved.store(false, Ordering::Relaxed);
            self.saved_at.store(self.clock.now(), Ordering::Relaxed);
        };
        let Some(file) = &self.file else {
            saved();
            return Ok(());
        };
        match file.save(state) {
            Ok(()) => {
                saved();
                Ok(())
            }
            Err(e) => {
                self.dirty.store(true, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    fn publish(&self, state: &PoolState) {
        if let Some(t) = self.targets.get() {
            t.publish(&view(state, self.recipients), self.serial());
        }
    }
}

/// The pool as the data planes see it. Every saved name is a valid domain (names enter
/// through [`parse_domains`], and `open` drops saved ones that are not), so none is lost.
fn view(state: &PoolState, recipients: RecipientMode) -> Pool {
    Pool::from_domains(
        state.domains.values().filter_map(|d| {
            tempmx_store::Domain::parse(&d.name)
                .ok()
                .map(|name| (name, d.state))
        }),
        recipients,
    )
}

/// Parses every name into a pool domain, or lists each one that is not with its reason.
fn parse_domains(names: &[String]) -> Result<Vec<tempmx_store::Domain>, ControlError> {
    let mut out = Vec::with_capacity(names.len());
    let mut invalid = Vec::new();
    for raw in names {
        match tempmx_store::Domain::parse(raw) {
            Ok(d) => out.push(d),
            Err(e) => invalid.push(format!("`{raw}`: {e}")),
        }
    }
    if invalid.is_empty() {
        Ok(out)
    } else {
        Err(ControlError::InvalidDomains(invalid))
    }
}

/// Drops saved domains that are not pool domains by the current rule (e.g. an IP address
/// a build before the rule accepted), and re-keys names saved in another spelling; warns
/// for each, so the operator sees what changed. Returns whether anything changed.
fn revalidate(state: &mut PoolState) -> bool {
    let saved = std::mem::take(&mut state.domains);
    let mut changed = false;
    for (key, mut d) in saved {
        match tempmx_store::Domain::parse(&d.name) {
            Ok(name) => {
                changed |= key != name.as_str() || d.name != name.as_str();
                d.name = name.to_string();
                state.domains.insert(d.name.clone(), d);
            }
            Err(e) => {
                warn!(domain = %d.name, error = %e, "saved pool domain is not a valid domain; dropped");
                state.checks.remove(&key);
                changed = true;
            }
        }
    }
    changed
}

/// The first state: configured domains active, recorded as `config` in the audit log.
fn seed(
    names: &[String],
    policy: RotationPolicy,
    limits: &PoolLimits,
    now: u64,
) -> Result<PoolState, ControlError> {
    let mut s = PoolState {
        policy,
        ..PoolState::default()
    };
    for name in parse_domains(names)?.iter().map(|d| d.to_string()) {
        if s.domains.len() >= limits.domains_max {
            return Err(ControlError::PoolFull(limits.domains_max));
        }
        s.domains.insert(
            name.clone(),
            Domain::new(name.clone(), DomainState::Active, now),
        );
        let action = AuditAction::Added {
            state: DomainState::Active,
        };
        s.audit.push(
            now,
            Some(&name),
            action,
            Actor::Config.name(),
            "configured domain",
            limits.audit_events_max,
        );
    }
    Ok(s)
}

/// Applies the rotation plan to `s`, recording each transition; returns why each domain
/// that left the active set left it.
fn apply_rules(s: &mut PoolState, now: u64, audit_max: usize) -> Vec<RotationReason> {
    let mut rotated = Vec::new();
    for t in rotation::plan(&s.domains, &s.policy, now) {
        let Some(d) = s.domains.get_mut(&t.domain) else {
            continue;
        };
        let from = d.state;
        d.enter(t.to, now, s.policy.drain_secs);
        rotated.extend(RotationReason::of_rule(t.rule, from));
        info!(domain = %t.domain, ?from, to = ?t.to, rule = %t.rule, "domain rotated");
        let action = AuditAction::StateChanged { from, to: t.to };
        s.audit.push(
            now,
            Some(&t.domain),
            action,
            &t.rule.to_string(),
            &t.reason,
            audit_max,
        );
    }
    rotated
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pool::ManualClock;

    // Goal: domains leaving the active set are counted by reason once the change is in
    // force; a drain ending and a promotion are not rotations. Method: a memory-only plane
    // on a manual clock, driven through the age and message limits and an operator change.
    #[test]
    fn rotations_are_counted_by_reason() {
        let clock = Arc::new(ManualClock::new(1_000));
        let config = PlaneConfig {
            domains: vec!["a.test".into()],
            recipients: RecipientMode::CatchAll,
            policy: RotationPolicy {
                active_age_max_secs: Some(100),
                messages_max: Some(50),
                drain_secs: 10,
                ..RotationPolicy::default()
            },
            limits: PoolLimits::default(),
            data_dir: None,
            drain_secs_min: 0,
        };
        let plane = ControlPlane::open(config, clock.clone(), Arc::new(Registry::new(10))).unwrap();
        let spares = ["b.test", "c.test", "d.test"].map(String::from);
        plane
            .add_domains(&spares, DomainState::Pending, "spares")
            .unwrap();
        clock.advance(100);
        // a.test is too old: it drains and b.test is promoted.
        plane.tick();
        plane
            .set_state(
                &tempmx_store::Domain::parse("b.test").expect("test domain"),
                DomainState::Draining,
                "operator",
            )
            .unwrap();
        // c.test was promoted for b.test; it reaches the message limit, d.test replaces it.
        plane.record_messages(
            &tempmx_store::Domain::parse("c.test").expect("test domain"),
            50,
            clock.now(),
        );
        plane.tick();
        clock.advance(10);
        // Drains end: retirements, not rotations.
        plane.tick();
        use RotationReason::*;
        assert_eq!(
            plane.rotations(),
            [(Age, 1), (Listing, 0), (Messages, 1), (Operator, 1)]
        );
        let active = plane.state_counts()[1];
        assert_eq!(active, (DomainState::Active, 1));
    }

    // Goal: a node becoming the lease holder keeps, per list, whichever state saw the
    // later check: its own first answers survive the fleet's older state and the last
    // holder's final answers replace its older ones; domains outside the pool are
    // ignored. Method: a memory-only plane, states set as a non-holder would, then merged.
    #[test]
    fn merged_checks_keep_the_later_answer_per_list() {
        use crate::blocklist::Outcome;
        use crate::blocklist::tracker::Streak;
        let config = PlaneConfig {
            domains: vec!["a.test".into()],
            recipients: RecipientMode::CatchAll,
            policy: RotationPolicy::default(),
            limits: PoolLimits::default(),
            data_dir: None,
            drain_secs_min: 0,
        };
        let clock = Arc::new(ManualClock::new(1_000));
        let plane = ControlPlane::open(config, clock, Arc::new(Registry::new(10))).unwrap();
        let status = |list: &str, checked: u64, consecutive: u32| ListStatus {
            list: list.into(),
            last: Outcome::Clean,
            last_checked: checked,
            streak: Streak::Clean,
            consecutive,
            first_seen: 1,
            last_seen: checked,
            errors: 0,
            confirmed: false,
        };
        plane.set_checks([(
            "a.test".to_owned(),
            vec![status("mine", 200, 4), status("theirs", 100, 1)],
        )]);
        plane.merge_checks([
            (
                "a.test".to_owned(),
                vec![
                    status("mine", 150, 3),
                    status("theirs", 160, 2),
                    status("new", 50, 1),
                ],
            ),
            ("outside.test".to_owned(), vec![status("mine", 900, 9)]),
        ]);
        let mut got: Vec<(String, u32)> = plane
            .checks()
            .into_iter()
            .flat_map(|(d, lists)| {
                assert_eq!(d, "a.test");
                lists.into_iter().map(|l| (l.list, l.consecutive))
            })
            .collect();
        got.sort();
        let want = [("mine", 4), ("new", 1), ("theirs", 2)].map(|(l, n)| (l.to_owned(), n));
        assert_eq!(got, want);
    }
}
