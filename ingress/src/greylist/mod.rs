//! Greylisting: defer the first delivery attempt of an unknown (client network, sender,
//! recipient) triplet with 451 4.7.1 and accept a retry after a minimum delay.
//!
//! Selective: allow networks, senders the auth stage trusts and client networks that already
//! passed several triplets (auto-allowlist) skip it, so verification codes from real mail
//! systems are not delayed; what is left is mostly bulk spam that never retries.
//!
//! Sans-io: the session calls [`Greylist::check`] at RCPT time with its own `now`, so the
//! state machine is driven by a controlled clock in tests and never reads the system clock.
//!
//! # Why one striped table and not a key space sharded to owning cores
//!
//! A retry arrives on whichever core the kernel's SO_REUSEPORT hash picks, rarely the one
//! that saw the first attempt. With owning cores every RCPT whose key belongs elsewhere (all
//! but 1/N of them) needs a cross-thread message and an `await` for the answer: a channel
//! hop, a wake-up of another core's event loop and a suspended session, on the hot path of
//! every recipient. A striped table costs one mostly uncontended lock taken for well under a
//! microsecond on whichever core the RCPT runs; with 64 stripes two cores collide on a stripe
//! about 1/64 of the time. `benches/greylist.rs` measures `check` with one and two threads
//! against 64 and 1 stripes. The lock is taken with a timeout (`lock_wait_ms`), and a lock not
//! obtained fails open, so a stalled holder can never stall RCPTs.
//!
//! # Failing open
//!
//! Greylisting is an auxiliary check: any internal failure (a stripe lock not obtained in
//! time) passes the recipient with [`PassReason::FailedOpen`], counted, rather than
//! deferring everyone.
//!
//! # Fleet mode: shared state, failing closed
//!
//! With [`Greylist::shared`] the triplets, passes and auto-allowlist counts live in a
//! [`SharedState`] every MX of the fleet reaches, so a sender deferred by one MX passes when
//! its retry lands on another. [`Greylist::begin`] then answers the cheap cases (allow
//! networks, trusted senders) at once and hands back a [`SharedStep`] for the rest, which
//! the driver runs off the ring thread ([`Greylist::resolve`]). When the shared state cannot
//! answer, the recipient gets 451 4.3.0 ([`GreyVerdict::Unavailable`], counted): failing
//! open there would let every spam run through while the cluster is down, and failing
//! closed costs a legitimate sender one retry, which it makes anyway for a 4xx.

mod config;
mod key;
mod shared;
mod stats;
mod table;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use tempmx_store::{AddressError, Domain, Mailbox};

pub use config::GreylistConfig;
pub use key::normalise_sender;
pub use shared::{GreyStep, GreyTiming, SharedError, SharedFuture, SharedState, SharedStep};
pub use stats::{DELAY_BOUNDS_SECS, DelayHistogram, GreylistStats};

use key::{ClientNet, Keyer};
use stats::Counters;
use table::{Client, Outcome, Striped, Timing, Triplet};

/// A greylisting configuration that cannot be used; each variant names its config key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GreylistError {
    /// An allow network that is neither a CIDR network nor an address.
    #[error(
        "ingress.greylist.allow_networks: {value:?} is not a network \
         (\"192.0.2.0/24\", \"2001:db8::/32\" or one address): {reason}"
    )]
    BadAllowNetwork {
        /// The value as configured.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// A greylisted domain that is not a domain name.
    #[error("ingress.greylist.domains: `{name}` is not a domain name: {reason}")]
    BadDomain {
        /// The value as configured.
        name: String,
        /// Why it is not a domain.
        reason: AddressError,
    },
    /// No lock stripes.
    #[error("ingress.greylist.stripes must be at least 1")]
    ZeroStripes,
    /// A zero delay would pass every retry at once.
    #[error("ingress.greylist.delay_secs must be at least 1")]
    ZeroDelay,
    /// The delay must end before the retry window does.
    #[error(
        "ingress.greylist.delay_secs ({delay_secs}) must be below \
         ingress.greylist.retry_window_secs ({retry_window_secs})"
    )]
    DelayNotBelowWindow {
        /// Configured delay.
        delay_secs: u64,
        /// Configured retry window.
        retry_window_secs: u64,
    },
    /// A table bound smaller than the number of stripes it is split over.
    #[error(
        "{key} ({value}) must be at least ingress.greylist.stripes ({stripes}): \
         each stripe holds a share of the bound"
    )]
    EntriesBelowStripes {
        /// The config key (`ingress.greylist.entries_max` or `ingress.greylist.clients_max`).
        key: &'static str,
        /// Its value.
        value: usize,
        /// Configured stripes.
        stripes: usize,
    },
}

/// One recipient to check, as the session knows it at RCPT time.
#[derive(Debug, Clone, Copy)]
pub struct GreyRequest<'a> {
    /// Peer address (already canonical: v4-mapped v6 turned into v4).
    pub client: IpAddr,
    /// Envelope sender as given in MAIL FROM, "" for `<>`.
    pub sender: &'a str,
    /// The recipient mailbox.
    pub recipient: &'a Mailbox,
    /// From the auth stage; only honoured when `bypass_authenticated`.
    pub sender_trusted: bool,
}

/// What the session answers for this recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreyVerdict {
    /// Accept the recipient.
    Pass(PassReason),
    /// Answer 451 4.7.1 and hint a retry in this many seconds (>= 1).
    Defer {
        /// Seconds until a retry can pass.
        retry_in_secs: u64,
    },
    /// The shared state could not answer: 451 4.3.0 (never a silent pass).
    Unavailable,
}

/// How a check goes on: decided now, or a step for the shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreyCheck {
    /// Known now.
    Done(GreyVerdict),
    /// Run this step with [`Greylist::resolve`], off the ring thread.
    Shared(SharedStep),
}

/// Why a recipient passed greylisting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassReason {
    /// The client is in a configured allow network.
    AllowNetwork,
    /// The auth stage trusts the sender.
    Trusted,
    /// The client network passed enough triplets before.
    AutoAllowlisted,
    /// The triplet passed before and is still remembered.
    Known,
    /// The first retry after the delay.
    Retried,
    /// An internal failure; passed rather than deferred.
    FailedOpen,
}

impl PassReason {
    /// Every reason, in `as usize` order.
    pub const ALL: [PassReason; 6] = [
        PassReason::AllowNetwork,
        PassReason::Trusted,
        PassReason::AutoAllowlisted,
        PassReason::Known,
        PassReason::Retried,
        PassReason::FailedOpen,
    ];

    /// Metric label value.
    pub fn label(self) -> &'static str {
        match self {
            PassReason::AllowNetwork => "allow_network",
            PassReason::Trusted => "trusted",
            PassReason::AutoAllowlisted => "auto_allowlisted",
            PassReason::Known => "known",
            PassReason::Retried => "retried",
            PassReason::FailedOpen => "failed_open",
        }
    }
}

/// The greylisting table shared by all ingress cores (`Arc<Greylist>`).
#[derive(Debug)]
pub struct Greylist {
    enabled: bool,
    domains: HashSet<Domain>,
    allow: Vec<IpNet>,
    bypass_authenticated: bool,
    auto_allow_after: u32,
    timing: Timing,
    keyer: Keyer,
    triplets: Striped<Triplet>,
    /// None when the auto-allowlist is off (`auto_allow_after = 0`).
    clients: Option<Striped<Client>>,
    /// Fleet mode: the state every MX shares (the local tables then stay empty).
    shared: Option<Arc<dyn SharedState>>,
    /// Whether the shared state's last step failed (an outage is logged once).
    failing: AtomicBool,
    counters: Counters,
}

impl Greylist {
    /// Builds the table from validated settings (it starts empty and grows to its bounds).
    pub fn new(cfg: &GreylistConfig) -> Result<Self, GreylistError> {
        cfg.validate()?;
        let lock_wait = Duration::from_millis(cfg.lock_wait_ms);
        let clients = (cfg.auto_allow_after > 0)
            .then(|| Striped::new(cfg.clients_max, cfg.stripes, lock_wait));
        Ok(Self {
            enabled: cfg.enabled,
            domains: parse_domains(&cfg.domains)?,
            allow: cfg
                .allow_networks
                .iter()
                .map(|n| parse_network(n))
                .collect::<Result<_, _>>()?,
            bypass_authenticated: cfg.bypass_authenticated,
            auto_allow_after: cfg.auto_allow_after,
            timing: Timing {
                delay_ms: cfg.delay_secs.saturating_mul(1000),
                window_ms: cfg.retry_window_secs.saturating_mul(1000),
                lifetime_ms: cfg.pass_lifetime_secs.saturating_mul(1000),
            },
            keyer: Keyer::random(),
            triplets: Striped::new(cfg.entries_max, cfg.stripes, lock_wait),
            clients,
            shared: None,
            failing: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    /// Fleet mode: the same settings, with the state in `state` (hashed with its key).
    pub fn shared(
        cfg: &GreylistConfig,
        state: Arc<dyn SharedState>,
    ) -> Result<Self, GreylistError> {
        let mut g = Self::new(cfg)?;
        g.keyer = Keyer::with_key(state.fingerprint_key());
        g.shared = Some(state);
        Ok(g)
    }

    /// Whether the state is shared (checks then go through [`Greylist::begin`]).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether greylisting applies to any domain at all.
    pub fn is_active(&self) -> bool {
        self.enabled || !self.domains.is_empty()
    }

    /// Whether recipients of `domain` are greylisted.
    pub fn applies_to(&self, domain: &Domain) -> bool {
        self.enabled || self.domains.contains(domain)
    }

    /// Decides one recipient at time `now` on the local table; counts the verdict. With
    /// shared state use [`Greylist::begin`]: here a step that needs it is `Unavailable`.
    pub fn check(&self, req: &GreyRequest<'_>, now: SystemTime) -> GreyVerdict {
        match self.begin(req, now) {
            GreyCheck::Done(verdict) => verdict,
            GreyCheck::Shared(_) => {
                self.counters.count(GreyVerdict::Unavailable);
                GreyVerdict::Unavailable
            }
        }
    }

    /// Decides one recipient at time `now` if it can be done at once (counted), else
    /// gives the step the shared state must run.
    pub fn begin(&self, req: &GreyRequest<'_>, now: SystemTime) -> GreyCheck {
        let now_ms = unix_ms(now);
        let check = match &self.shared {
            Some(_) => self.bypass(req).map_or_else(
                || GreyCheck::Shared(self.shared_step(req, now_ms)),
                |reason| GreyCheck::Done(GreyVerdict::Pass(reason)),
            ),
            None => GreyCheck::Done(self.decide(req, now_ms)),
        };
        if let GreyCheck::Done(verdict) = check {
            self.counters.count(verdict);
        }
        check
    }

    /// Runs `step` on the shared state and maps its answer (counted); an error, or no
    /// shared state, is `Unavailable`. Bound it by the connection's deadline.
    pub async fn resolve(&self, step: SharedStep) -> GreyVerdict {
        let outcome = match &self.shared {
            Some(state) => state.step(step).await,
            None => Err(SharedError("no shared state configured".to_owned())),
        };
        let verdict = match outcome {
            Ok(GreyStep::Defer { retry_in_ms }) => GreyVerdict::Defer {
                retry_in_secs: retry_in_ms.div_ceil(1000).max(1),
            },
            Ok(GreyStep::Retried { waited_ms }) => {
                self.counters.delay(Duration::from_millis(waited_ms));
                GreyVerdict::Pass(PassReason::Retried)
            }
            Ok(GreyStep::Known) => GreyVerdict::Pass(PassReason::Known),
            Ok(GreyStep::AutoAllowlisted) => GreyVerdict::Pass(PassReason::AutoAllowlisted),
            Err(e) => {
                // Logged once per outage; the counter tells how many recipients it cost.
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "greylisting state unavailable; answering 451 4.3.0");
                }
                GreyVerdict::Unavailable
            }
        };
        if verdict != GreyVerdict::Unavailable && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("greylisting state reachable again");
        }
        self.counters.count(verdict);
        verdict
    }

    /// A snapshot of the counters, for `/metrics`.
    pub fn stats(&self) -> GreylistStats {
        self.counters.snapshot()
    }

    /// The reason a recipient skips greylisting without looking at any state.
    fn bypass(&self, req: &GreyRequest<'_>) -> Option<PassReason> {
        if self.allow.iter().any(|net| net.contains(&req.client)) {
            return Some(PassReason::AllowNetwork);
        }
        if req.sender_trusted && self.bypass_authenticated {
            return Some(PassReason::Trusted);
        }
        None
    }

    fn shared_step(&self, req: &GreyRequest<'_>, now_ms: u64) -> SharedStep {
        let net = ClientNet::of(req.client);
        SharedStep {
            network: self.keyer.client(net),
            triplet: self
                .keyer
                .triplet(net, &normalise_sender(req.sender), req.recipient.as_str()),
            now_ms,
            timing: GreyTiming {
                delay_ms: self.timing.delay_ms,
                window_ms: self.timing.window_ms,
                lifetime_ms: self.timing.lifetime_ms,
                auto_allow_after: self.auto_allow_after,
            },
        }
    }

    fn decide(&self, req: &GreyRequest<'_>, now_ms: u64) -> GreyVerdict {
        if let Some(reason) = self.bypass(req) {
            return GreyVerdict::Pass(reason);
        }
        let net = ClientNet::of(req.client);
        // Only hashed when the auto-allowlist is on.
        let client_key = self.clients.as_ref().map(|_| self.keyer.client(net));
        match self.client_allowed(client_key, now_ms) {
            None => return self.fail_open("clients"),
            Some(true) => return GreyVerdict::Pass(PassReason::AutoAllowlisted),
            Some(false) => {}
        }
        let key = self
            .keyer
            .triplet(net, &normalise_sender(req.sender), req.recipient.as_str());
        let Some(outcome) = self.step_triplet(key, now_ms) else {
            return self.fail_open("triplets");
        };
        match outcome {
            Outcome::Defer { retry_in_secs } => GreyVerdict::Defer { retry_in_secs },
            Outcome::Known => GreyVerdict::Pass(PassReason::Known),
            Outcome::Retried { delay } => {
                self.counters.delay(delay);
                self.count_client_pass(client_key, now_ms);
                GreyVerdict::Pass(PassReason::Retried)
            }
        }
    }

    /// Some(allowlisted?) for the client network, None when its stripe lock timed out.
    fn client_allowed(&self, key: Option<u128>, now_ms: u64) -> Option<bool> {
        let (Some(clients), Some(key)) = (&self.clients, key) else {
            return Some(false);
        };
        let mut stripe = clients.lock(key)?;
        let allowed = stripe
            .get_mut(&key)
            .is_some_and(|c| c.allow(now_ms, self.auto_allow_after, self.timing));
        Some(allowed)
    }

    /// Runs the triplet state machine under its stripe lock; None when the lock timed out.
    fn step_triplet(&self, key: u128, now_ms: u64) -> Option<Outcome> {
        let mut stripe = self.triplets.lock(key)?;
        if let Some(state) = stripe.get_mut(&key) {
            let (next, outcome) = table::step(Some(*state), now_ms, self.timing);
            *state = next;
            return Some(outcome);
        }
        let (next, outcome) = table::step(None, now_ms, self.timing);
        let evicted = table::insert_new(&mut stripe, key, next);
        self.counters.triplet_added(evicted);
        Some(outcome)
    }

    /// Counts a passed triplet for the auto-allowlist; a lock timeout only loses this count.
    fn count_client_pass(&self, key: Option<u128>, now_ms: u64) {
        let (Some(clients), Some(key)) = (&self.clients, key) else {
            return;
        };
        let Some(mut stripe) = clients.lock(key) else {
            self.counters.lock_timeout();
            tracing::debug!("greylist client stripe busy; auto-allowlist pass not counted");
            return;
        };
        if let Some(client) = stripe.get_mut(&key) {
            client.count_pass(now_ms, self.timing);
            return;
        }
        let evicted = table::insert_new(&mut stripe, key, Client::first(now_ms));
        self.counters.client_added(evicted);
    }

    fn fail_open(&self, table: &'static str) -> GreyVerdict {
        self.counters.lock_timeout();
        tracing::debug!(
            table,
            "greylist stripe lock not obtained in time; failing open"
        );
        GreyVerdict::Pass(PassReason::FailedOpen)
    }
}

/// Milliseconds since the Unix epoch; a time before it counts as 0.
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn parse_domains(domains: &[String]) -> Result<HashSet<Domain>, GreylistError> {
    domains
        .iter()
        .map(|d| {
            Domain::parse(d.trim()).map_err(|reason| GreylistError::BadDomain {
                name: d.clone(),
                reason,
            })
        })
        .collect()
}

/// A CIDR network, or one address as a host network.
fn parse_network(value: &str) -> Result<IpNet, GreylistError> {
    let bad = |reason: String| GreylistError::BadAllowNetwork {
        value: value.to_owned(),
        reason,
    };
    let value = value.trim();
    if value.contains('/') {
        value
            .parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|e| bad(e.to_string()))
    } else {
        value
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
