//! The per-core authenticator: resolver, caches, limits and the two checks.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::VerifySignature;
use mail_auth::dkim::Signature;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::{Dmarc, Policy, Psd};
use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::net::NetError;
use mail_auth::hickory_resolver::proto::rr::{Name, RecordType};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DnsError, Error,
    MessageAuthenticator, ResolverCache, SpfOutput, SpfResult, Txt,
};
use tempmx_store::AuthResult;
use tokio::time::timeout;

use super::AuthError;
use super::cache::ResolverCaches;
use super::config::{AuthConfig, AuthMode};
use super::counters::AuthCounters;
use super::forged::forged_ranges;
use super::health::{Outcome, ResolverHealth, Transition};
use super::results::{Row, header, valid_authserv_id};
use super::values::{AuthMethod, AuthValue};

/// DKIM signatures over the bound that still get their own permerror row; further ones are
/// only counted, so a message of a million signatures cannot blow up the header.
const EXTRA_SIGNATURE_ROWS_MAX: usize = 16;
/// mail-auth's RFC 9989 tree walk asks at most this many names per domain.
const DMARC_WALK_LABELS_MAX: usize = 7;
/// Longest `negative_ttl_seconds`: RFC 2308 §5 advises at most a day for negative answers.
const NEGATIVE_TTL_SECONDS_MAX: u64 = 86_400;
/// Longest `temperror_ttl_seconds`: RFC 9520 §3.2 caches a resolution failure 5 min at most.
const TEMPERROR_TTL_SECONDS_MAX: u64 = 300;
/// Longest `check_duration_max_ms`: a sender waits for our reply 5 min at most (RFC 5321
/// §4.5.3.2.6, after DATA 10 min); a check must end well before.
const CHECK_DURATION_MS_MAX: u64 = 60_000;
/// Author and MAIL FROM domains walked ahead of DMARC; a From field listing more domains is
/// exempt from DMARC anyway (RFC 7489 §6.6.1).
const DMARC_WARM_DOMAINS_MAX: usize = 4;

/// Verifies senders and messages for one ingress core (its resolver's sockets belong to the
/// core's runtime, so it is created on that thread and never moved).
pub struct Authenticator {
    resolver: MessageAuthenticator,
    caches: ResolverCaches,
    mode: AuthMode,
    authserv_id: String,
    host_domain: String,
    check_duration_max: Duration,
    dns_timeout: Duration,
    negative_ttl: Duration,
    temperror_ttl: Duration,
    dkim_signatures_max: usize,
    health: Arc<ResolverHealth>,
    probe: TokioResolver,
    counters: Arc<AuthCounters>,
}

/// Which identity SPF checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfIdentity {
    /// The MAIL FROM domain.
    MailFrom,
    /// The HELO/EHLO domain (MAIL FROM was `<>`).
    Helo,
}

/// The SPF verdict for one MAIL FROM, kept for the DMARC step of the message.
#[derive(Debug, Clone)]
pub struct SenderCheck {
    mode: AuthMode,
    ip: IpAddr,
    identity: SpfIdentity,
    spf: SpfOutput,
    value: AuthValue,
    dmarc_record: bool,
    row: Option<Row>,
    /// Time the check took: the message check gets what is left of `check_duration_max_ms`.
    spent: Duration,
}

impl SenderCheck {
    /// The SPF result.
    pub fn spf(&self) -> AuthValue {
        self.value
    }

    /// True in enforce mode when SPF failed (550 5.7.23).
    pub fn rejects(&self) -> bool {
        self.mode == AuthMode::Enforce && self.value == AuthValue::Fail
    }

    /// SPF passed for the MAIL FROM domain and that domain (or its organizational domain)
    /// publishes a DMARC record, whatever its policy.
    pub fn trusted(&self) -> bool {
        self.identity == SpfIdentity::MailFrom && self.value == AuthValue::Pass && self.dmarc_record
    }

    /// SPF ended in a temperror (a fail-open in enforce mode).
    pub fn temperror(&self) -> bool {
        self.value == AuthValue::TempError
    }

    /// The identity SPF checked.
    pub fn identity(&self) -> SpfIdentity {
        self.identity
    }

    /// The domain SPF checked.
    pub fn domain(&self) -> &str {
        self.spf.domain()
    }
}

/// DKIM, ARC and DMARC results of one message, with the SPF result of its sender.
#[derive(Debug, Clone)]
pub struct MessageCheck {
    results: Vec<AuthResult>,
    header: Vec<u8>,
    dmarc: AuthValue,
    rejects: bool,
    forged: Vec<Range<usize>>,
}

impl MessageCheck {
    /// spf, dkim (one row per signature, or one `none`), dmarc, arc; empty when auth is off.
    pub fn results(&self) -> &[AuthResult] {
        &self.results
    }

    /// The complete `Authentication-Results:` field, folded, CRLF-terminated (empty when off).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The DMARC result.
    pub fn dmarc(&self) -> AuthValue {
        self.dmarc
    }

    /// True in enforce mode when DMARC failed for a domain whose policy is `p=reject`.
    pub fn rejects(&self) -> bool {
        self.rejects
    }

    /// DMARC ended in a temperror (a fail-open in enforce mode).
    pub fn temperror(&self) -> bool {
        self.dmarc == AuthValue::TempError
    }

    /// Byte ranges of incoming `Authentication-Results:` fields carrying our authserv-id,
    /// which must be removed before the message is stored.
    pub fn forged_headers(&self) -> &[Range<usize>] {
        &self.forged
    }
}

#[cfg(any(test, fuzzing))]
impl SenderCheck {
    /// A MAIL FROM verdict as `check_sender` would give it, for the session's tests and
    /// the session fuzz target.
    pub fn fixed(mode: AuthMode, domain: &str, value: AuthValue) -> Self {
        let result = match value {
            AuthValue::Pass => SpfResult::Pass,
            AuthValue::Fail => SpfResult::Fail,
            AuthValue::TempError => SpfResult::TempError,
            _ => SpfResult::None,
        };
        Self {
            mode,
            ip: IpAddr::from([127, 0, 0, 1]),
            identity: SpfIdentity::MailFrom,
            spf: SpfOutput::new(domain.to_owned()).with_result(result),
            value,
            dmarc_record: false,
            row: Some(Row::new(
                AuthMethod::Spf,
                value,
                &[("smtp.mailfrom", domain)],
            )),
            spent: Duration::ZERO,
        }
    }
}

#[cfg(any(test, fuzzing))]
impl MessageCheck {
    /// A message verdict as `check_message` would give it, for the session's tests and
    /// the session fuzz target.
    pub fn fixed(
        dmarc: AuthValue,
        rejects: bool,
        authserv_id: &str,
        forged: Vec<Range<usize>>,
    ) -> Self {
        let rows = [Row::new(
            AuthMethod::Dmarc,
            dmarc,
            &[("header.from", "sender.example")],
        )];
        Self {
            results: rows.iter().map(Row::to_store).collect(),
            header: header(authserv_id, &rows),
            dmarc,
            rejects,
            forged,
        }
    }
}

impl Authenticator {
    /// Builds the resolver and caches; call on the core's thread inside its runtime.
    pub fn new(
        cfg: &AuthConfig,
        hostname: &str,
        counters: Arc<AuthCounters>,
    ) -> Result<Self, AuthError> {
        let entries = check_config(cfg)?;
        let authserv_id = if cfg.authserv_id.is_empty() {
            hostname
        } else {
            &cfg.authserv_id
        };
        if !valid_authserv_id(authserv_id) {
            return Err(AuthError::Config {
                key: "authserv_id",
                reason: "must be 1 to 64 letters, digits, '.', '-' or '_' (empty means the hostname)",
            });
        }
        let (resolver, probe) = build_resolvers(cfg)?;
        Ok(Self {
            resolver,
            caches: ResolverCaches::new(entries),
            mode: cfg.mode,
            authserv_id: authserv_id.to_owned(),
            host_domain: hostname.to_owned(),
            check_duration_max: Duration::from_millis(cfg.check_duration_max_ms),
            dns_timeout: Duration::from_millis(cfg.dns_timeout_ms),
            negative_ttl: Duration::from_secs(cfg.negative_ttl_seconds),
            temperror_ttl: Duration::from_secs(cfg.temperror_ttl_seconds),
            dkim_signatures_max: cfg.dkim_signatures_max,
            health: Arc::new(ResolverHealth::new(
                cfg.resolver_unanswered_max,
                Duration::from_millis(cfg.resolver_probe_interval_ms),
            )),
            probe,
            counters,
        })
    }

    /// The configured mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// This core's counters.
    pub fn counters(&self) -> &Arc<AuthCounters> {
        &self.counters
    }

    /// The authserv-id our header carries.
    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// This core's DNS caches (pre-fill them to answer without the network).
    pub fn caches(&self) -> &ResolverCaches {
        &self.caches
    }

    /// SPF for MAIL FROM (the HELO identity when `mail_from` is "", i.e. `<>`), plus the DMARC
    /// record lookup of the MAIL FROM domain for `trusted()`. `mail_from` is the address
    /// without angle brackets. Never longer than `check_duration_max_ms`; at once temperror
    /// while the resolver is down.
    pub async fn check_sender(&self, ip: IpAddr, helo: &str, mail_from: &str) -> SenderCheck {
        let started = Instant::now();
        let identity = if mail_from.is_empty() {
            SpfIdentity::Helo
        } else {
            SpfIdentity::MailFrom
        };
        if self.mode == AuthMode::Off {
            return SenderCheck {
                mode: self.mode,
                ip,
                identity,
                spf: SpfOutput::default(),
                value: AuthValue::None,
                dmarc_record: false,
                row: None,
                spent: Duration::ZERO,
            };
        }
        let domain = match identity {
            SpfIdentity::Helo => helo,
            SpfIdentity::MailFrom => mail_from.rsplit_once('@').map_or(helo, |(_, d)| d),
        };
        let mut spf_slot = None;
        let mut dmarc_slot = None;
        let down = self.resolver_down();
        let finished = down
            || timeout(self.check_duration_max, async {
                let params = match identity {
                    SpfIdentity::Helo => SpfParameters::verify_ehlo(ip, helo, &self.host_domain),
                    SpfIdentity::MailFrom => {
                        SpfParameters::verify_mail_from(ip, helo, &self.host_domain, mail_from)
                    }
                };
                let spf = self.resolver.verify_spf(self.caches.attach(params)).await;
                let look_up_dmarc =
                    identity == SpfIdentity::MailFrom && spf.result() == SpfResult::Pass;
                let domain = spf.domain().to_owned();
                spf_slot = Some(spf);
                dmarc_slot = Some(look_up_dmarc && self.publishes_dmarc(&domain).await);
            })
            .await
            .is_ok();
        if !finished {
            self.counters.count_timeout();
        }
        let spf = spf_slot
            .unwrap_or_else(|| SpfOutput::new(domain.to_owned()).with_result(SpfResult::TempError));
        let value = AuthValue::from_spf(spf.result());
        if !down {
            if value == AuthValue::TempError {
                // Unless the SPF record itself is cached (then an include failed), its lookup
                // failed: the next messages of this domain get their temperror without a query.
                self.remember_temperror(spf.domain());
            }
            self.observe(finished, value != AuthValue::TempError, started);
        }
        self.counters.count(AuthMethod::Spf, value);
        let prop = match identity {
            SpfIdentity::Helo => "smtp.helo",
            SpfIdentity::MailFrom => "smtp.mailfrom",
        };
        let row = Row::new(AuthMethod::Spf, value, &[(prop, spf.domain())]);
        SenderCheck {
            mode: self.mode,
            ip,
            identity,
            spf,
            value,
            dmarc_record: dmarc_slot.unwrap_or(false),
            row: Some(row),
            spent: started.elapsed(),
        }
    }

    /// True while the resolver is marked down: counts the temperror the caller answers at
    /// once, and starts a probe when one is due.
    fn resolver_down(&self) -> bool {
        if !self.health.is_down() {
            return false;
        }
        self.counters.count_down_temperror();
        if self.health.take_probe(Instant::now()) {
            self.spawn_probe();
        }
        true
    }

    /// Tells the resolver's health what a check that queried it saw: cut by its deadline,
    /// some method answered, or all of them temperror (slow ones mean nothing came back).
    fn observe(&self, finished: bool, answered: bool, started: Instant) {
        let outcome = if !finished {
            Outcome::Unanswered
        } else if answered {
            Outcome::Answered
        } else if started.elapsed() >= self.dns_timeout {
            Outcome::Unanswered
        } else {
            Outcome::Unknown
        };
        if self.health.record(outcome, Instant::now()) == Some(Transition::Down) {
            self.counters.count_resolver_down(true);
            tracing::warn!(
                "DNS resolver unanswered: authentication answers temperror until a probe is answered"
            );
        }
    }

    /// One probe query (the root's NS, which any resolver answers) on the probe resolver, off
    /// the checks' path; any DNS reply, even an error code, counts as an answer.
    fn spawn_probe(&self) {
        let probe = self.probe.clone();
        let health = Arc::clone(&self.health);
        let counters = Arc::clone(&self.counters);
        let limit = self.dns_timeout;
        tokio::spawn(async move {
            // Fresh each time, so a cached answer never passes for the resolver's.
            probe.clear_cache();
            let reply = timeout(limit, probe.lookup(Name::root(), RecordType::NS)).await;
            let answered = matches!(reply, Ok(Ok(_) | Err(NetError::Dns(_))));
            counters.count_probe(answered);
            if health.probe_finished(answered, Instant::now()) == Some(Transition::Up) {
                counters.count_resolver_down(false);
                tracing::info!("DNS resolver answers again: authentication checks resume");
            }
        });
    }

    /// Caches `name`'s TXT lookup as a temperror for `temperror_ttl_seconds`, unless the
    /// lookup left a record (or a cached failure) there.
    fn remember_temperror(&self, name: &str) {
        let key = name.to_fqdn();
        if self.temperror_ttl.is_zero() || self.caches.txt.get(key.as_ref()).is_some() {
            return;
        }
        self.caches.txt.insert(
            key.into_owned().into_boxed_str(),
            Txt::Error(Error::Dns(DnsError::Resolver(
                "temporary failure, remembered".to_owned(),
            ))),
            Instant::now() + self.temperror_ttl,
        );
    }

    /// DKIM (every signature up to the bound), ARC and DMARC (aligned with the sender's SPF)
    /// on the message as received. Never longer than what the sender check left of
    /// `check_duration_max_ms`; at once temperror while the resolver is down.
    pub async fn check_message(&self, sender: &SenderCheck, message: &[u8]) -> MessageCheck {
        let forged = forged_ranges(message, &self.authserv_id);
        if self.mode == AuthMode::Off {
            return MessageCheck {
                results: Vec::new(),
                header: Vec::new(),
                dmarc: AuthValue::None,
                rejects: false,
                forged,
            };
        }
        let mut rows: Vec<Row> = sender.row.iter().cloned().collect();
        let dmarc = match AuthenticatedMessage::parse(message) {
            Some(parsed) => self.check_parsed(sender, parsed, &mut rows).await,
            None => self.unparsable(&mut rows),
        };
        for row in rows.iter().skip(usize::from(sender.row.is_some())) {
            self.counters.count(row.method, row.value);
        }
        let dmarc_value = dmarc.as_ref().map_or(AuthValue::TempError, |d| d.0);
        let rejects = self.mode == AuthMode::Enforce
            && dmarc_value == AuthValue::Fail
            && dmarc.is_some_and(|d| d.1 == Policy::Reject);
        MessageCheck {
            results: rows.iter().map(Row::to_store).collect(),
            header: header(&self.authserv_id, &rows),
            dmarc: dmarc_value,
            rejects,
            forged,
        }
    }

    /// Rows for a message mail-auth cannot parse (no header section): nothing to verify.
    fn unparsable(&self, rows: &mut Vec<Row>) -> Option<(AuthValue, Policy)> {
        rows.push(Row::new(AuthMethod::Dkim, AuthValue::None, &[]));
        rows.push(Row::new(AuthMethod::Dmarc, AuthValue::None, &[]));
        rows.push(Row::new(AuthMethod::Arc, AuthValue::None, &[]));
        Some((AuthValue::None, Policy::None))
    }

    /// DKIM and ARC side by side, then DMARC, all under what is left of the message's
    /// deadline; appends the rows and returns DMARC's value and applied policy (`None` when
    /// the deadline cut it or the resolver is down).
    async fn check_parsed(
        &self,
        sender: &SenderCheck,
        mut msg: AuthenticatedMessage<'_>,
        rows: &mut Vec<Row>,
    ) -> Option<(AuthValue, Policy)> {
        let started = Instant::now();
        let extra = self.bound_signatures(&mut msg);
        let msg = msg;
        let mut dkim_slot: Option<Vec<DkimOutput<'_>>> = None;
        let mut arc_slot: Option<ArcOutput<'_>> = None;
        let mut dmarc_slot: Option<DmarcOutput> = None;
        let down = self.resolver_down();
        let left = self.check_duration_max.saturating_sub(sender.spent);
        // A spent budget still lets cached answers through: the check is polled once.
        let finished = down
            || timeout(left, async {
                let dkim = async {
                    dkim_slot = Some(self.resolver.verify_dkim(self.caches.attach(&msg)).await);
                };
                let arc = async {
                    arc_slot = Some(self.resolver.verify_arc(self.caches.attach(&msg)).await);
                };
                tokio::join!(dkim, arc, self.warm_dmarc(sender, &msg));
                if let Some(dkim) = &dkim_slot {
                    for domain in dkim_domains(dkim) {
                        self.dmarc_walk(domain).await;
                    }
                    let params = DmarcParameters::new(&msg, dkim, sender.spf.domain(), &sender.spf);
                    dmarc_slot = Some(self.resolver.verify_dmarc(self.caches.attach(params)).await);
                }
            })
            .await
            .is_ok();
        if !finished {
            self.counters.count_timeout();
        }
        if !down {
            self.remember_dkim_temperrors(dkim_slot.as_deref(), &msg);
            let answered = dkim_slot
                .iter()
                .flatten()
                .any(|o| !is_temperror(o.result()))
                || dmarc_slot
                    .as_ref()
                    .is_some_and(|d| AuthValue::from_dmarc(&d.result()) != AuthValue::TempError);
            self.observe(finished, answered, started);
        }
        push_dkim_rows(rows, dkim_slot.as_deref(), &msg, &extra);
        for _ in EXTRA_SIGNATURE_ROWS_MAX..extra.len() {
            self.counters.count(AuthMethod::Dkim, AuthValue::PermError);
        }
        let dmarc = match &dmarc_slot {
            Some(out) => {
                let value = AuthValue::from_dmarc(&out.result());
                rows.push(Row::new(
                    AuthMethod::Dmarc,
                    value,
                    &[("header.from", out.domain())],
                ));
                Some((value, out.policy()))
            }
            None => {
                let from = msg.from().rsplit_once('@').map_or("", |(_, d)| d);
                rows.push(Row::new(
                    AuthMethod::Dmarc,
                    AuthValue::TempError,
                    &[("header.from", from)],
                ));
                None
            }
        };
        let arc = match arc_slot {
            Some(out) => AuthValue::from_arc(out.result()),
            // No chain to verify needs no DNS: `none` whatever the resolver does.
            None if msg.ams_headers.is_empty() && !msg.has_arc_errors => AuthValue::None,
            None => AuthValue::TempError,
        };
        let ip = sender.ip.to_string();
        rows.push(Row::new(AuthMethod::Arc, arc, &[("smtp.remote-ip", &ip)]));
        dmarc
    }

    /// Remembers the key names of the signatures that ended in a temperror (all of them when
    /// the deadline cut DKIM), so the next messages signed with them skip the query.
    fn remember_dkim_temperrors(
        &self,
        outputs: Option<&[DkimOutput<'_>]>,
        msg: &AuthenticatedMessage<'_>,
    ) {
        match outputs {
            Some(outputs) => {
                for out in outputs.iter().filter(|o| is_temperror(o.result())) {
                    if let Some(sig) = out.signature() {
                        self.remember_temperror(&sig.domain_key());
                    }
                }
            }
            None => {
                for h in &msg.dkim_headers {
                    self.remember_temperror(&h.header.domain_key());
                }
            }
        }
    }

    /// Keeps at most `dkim_signatures_max` signatures (malformed ones included) for
    /// verification, and drops the report (r=) and ATPS requests so each kept signature costs
    /// one key lookup. Returns the (d, s) of the signatures over the bound.
    fn bound_signatures(&self, msg: &mut AuthenticatedMessage<'_>) -> Vec<(String, String)> {
        let mut malformed = 0usize;
        let max = self.dkim_signatures_max;
        msg.errors.retain(|e| {
            if matches!(e.header, Error::Dkim(_)) {
                malformed += 1;
                malformed <= max
            } else {
                true
            }
        });
        let keep = max.saturating_sub(malformed);
        let over: Vec<Signature> = if msg.dkim_headers.len() > keep {
            msg.dkim_headers
                .split_off(keep)
                .into_iter()
                .map(|h| h.header)
                .collect()
        } else {
            Vec::new()
        };
        for h in &mut msg.dkim_headers {
            h.header.r = false;
            h.header.atps = None;
        }
        let malformed_over = malformed.saturating_sub(max);
        let mut extra: Vec<(String, String)> = over.into_iter().map(|s| (s.d, s.s)).collect();
        extra.extend(std::iter::repeat_n(
            (String::new(), String::new()),
            malformed_over,
        ));
        extra
    }

    /// Walks the `_dmarc.` names of the author and MAIL FROM domains (filling the negative
    /// cache) while DKIM and ARC run, so DMARC's own walks answer from the cache.
    async fn warm_dmarc(&self, sender: &SenderCheck, msg: &AuthenticatedMessage<'_>) {
        let author = msg.from.iter().filter_map(|f| f.rsplit_once('@'));
        let mut domains: Vec<&str> = author.map(|(_, d)| d).collect();
        domains.push(sender.spf.domain());
        domains.sort_unstable();
        domains.dedup();
        for domain in domains.into_iter().take(DMARC_WARM_DOMAINS_MAX) {
            self.dmarc_walk(domain).await;
        }
    }

    /// True when a DMARC record exists for `domain` or a parent of at least two labels that
    /// is not a public suffix's (`psd=y`).
    async fn publishes_dmarc(&self, domain: &str) -> bool {
        self.dmarc_walk(domain)
            .await
            .into_iter()
            .find(|(labels, _)| *labels >= 2)
            .is_some_and(|(_, record)| record.psd != Psd::Yes)
    }

    /// Asks the `_dmarc.` names of mail-auth's RFC 9989 tree walk for `domain` (the same
    /// names in the same order, so its DMARC step then answers from the cache) and returns
    /// the records found with their label counts. mail-auth caches records only; a name
    /// without one (NXDOMAIN, NODATA) is cached here for `negative_ttl_seconds`, and one whose
    /// resolution failed for `temperror_ttl_seconds`, so the walk of a known domain costs no
    /// query at all. A failure ends the walk, as it ends mail-auth's (temperror).
    async fn dmarc_walk(&self, domain: &str) -> Vec<(usize, Arc<Dmarc>)> {
        let domain = mail_auth::common::to_a_label(domain.trim_end_matches('.'));
        let total = domain.split('.').filter(|l| !l.is_empty()).count();
        let mut found = Vec::new();
        if total < 2 {
            return found;
        }
        let mut count = total;
        loop {
            let name = domain
                .splitn(total - count + 1, '.')
                .last()
                .unwrap_or_default();
            let key = format!("_dmarc.{name}.");
            match self
                .resolver
                .txt_lookup::<Dmarc>(key.as_str(), Some(&self.caches.txt))
                .await
            {
                Ok(record) => {
                    let stop = matches!(record.psd, Psd::Yes | Psd::No);
                    found.push((count, record));
                    if stop {
                        break;
                    }
                }
                Err(err @ Error::Dns(DnsError::RecordNotFound(_))) => {
                    if !self.negative_ttl.is_zero() {
                        self.caches.txt.insert(
                            key.into_boxed_str(),
                            Txt::Error(err),
                            Instant::now() + self.negative_ttl,
                        );
                    }
                }
                Err(Error::Dns(DnsError::InvalidRecordType)) => {}
                Err(err @ Error::Dns(DnsError::Resolver(_))) => {
                    // RFC 9520: a resolution failure (SERVFAIL, REFUSED, timeout) is cached
                    // briefly too, so a failing name is not asked once per message.
                    if !self.temperror_ttl.is_zero() {
                        self.caches.txt.insert(
                            key.into_boxed_str(),
                            Txt::Error(err),
                            Instant::now() + self.temperror_ttl,
                        );
                    }
                    break;
                }
                Err(_) => break,
            }
            if count == 1 {
                break;
            }
            count = if count > DMARC_WALK_LABELS_MAX {
                DMARC_WALK_LABELS_MAX
            } else {
                count - 1
            };
        }
        found
    }
}

/// The distinct `d=` domains of the verified signatures: relaxed alignment walks each of
/// them (mail-auth's organizational-domain step).
fn dkim_domains<'a>(outputs: &'a [DkimOutput<'_>]) -> Vec<&'a str> {
    let mut domains: Vec<&str> = outputs
        .iter()
        .filter_map(|o| o.signature().map(|s| s.d.as_str()))
        .collect();
    domains.sort_unstable();
    domains.dedup();
    domains
}

/// One row per verified signature (temperror for each when the timeout cut DKIM), one
/// permerror per signature over the bound (up to [`EXTRA_SIGNATURE_ROWS_MAX`] rows, all
/// counted), or one `none` for an unsigned message.
fn push_dkim_rows(
    rows: &mut Vec<Row>,
    outputs: Option<&[DkimOutput<'_>]>,
    msg: &AuthenticatedMessage<'_>,
    extra: &[(String, String)],
) {
    let before = rows.len();
    match outputs {
        Some(outputs) => {
            for out in outputs {
                let (d, s) = out
                    .signature()
                    .map_or(("", ""), |sig| (sig.d.as_str(), sig.s.as_str()));
                rows.push(dkim_row(AuthValue::from_dkim(out.result()), d, s));
            }
        }
        None => {
            for h in &msg.dkim_headers {
                rows.push(dkim_row(AuthValue::TempError, &h.header.d, &h.header.s));
            }
        }
    }
    for (d, s) in extra.iter().take(EXTRA_SIGNATURE_ROWS_MAX) {
        rows.push(dkim_row(AuthValue::PermError, d, s));
    }
    if rows.len() == before {
        rows.push(Row::new(AuthMethod::Dkim, AuthValue::None, &[]));
    }
}

/// A DKIM result that is a temperror (a key lookup that failed or was cut).
fn is_temperror(result: &DkimResult) -> bool {
    matches!(result, DkimResult::TempError(_))
}

fn dkim_row(value: AuthValue, d: &str, s: &str) -> Row {
    Row::new(AuthMethod::Dkim, value, &[("header.d", d), ("header.s", s)])
}

/// Checks the limits; returns the cache size.
fn check_config(cfg: &AuthConfig) -> Result<NonZeroUsize, AuthError> {
    let positive = [
        ("dns_timeout_ms", cfg.dns_timeout_ms),
        ("check_duration_max_ms", cfg.check_duration_max_ms),
        ("dns_attempts", cfg.dns_attempts as u64),
        ("dkim_signatures_max", cfg.dkim_signatures_max as u64),
        (
            "resolver_unanswered_max",
            u64::from(cfg.resolver_unanswered_max),
        ),
        ("resolver_probe_interval_ms", cfg.resolver_probe_interval_ms),
    ];
    if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(AuthError::Config {
            key,
            reason: "must be at least 1",
        });
    }
    if cfg.negative_ttl_seconds > NEGATIVE_TTL_SECONDS_MAX {
        return Err(AuthError::Config {
            key: "negative_ttl_seconds",
            reason: "must be at most 86400 (one day)",
        });
    }
    if cfg.check_duration_max_ms > CHECK_DURATION_MS_MAX {
        return Err(AuthError::Config {
            key: "check_duration_max_ms",
            reason: "must be at most 60000 (a minute): the sender waits for our reply meanwhile",
        });
    }
    if cfg.temperror_ttl_seconds > TEMPERROR_TTL_SECONDS_MAX {
        return Err(AuthError::Config {
            key: "temperror_ttl_seconds",
            reason: "must be at most 300 (RFC 9520: five minutes)",
        });
    }
    NonZeroUsize::new(cfg.cache_entries).ok_or(AuthError::Config {
        key: "cache_entries",
        reason: "must be at least 1",
    })
}

/// Hickory resolvers on the configured servers (UDP, TCP for truncated answers) or the
/// system configuration: the checks' one, whose own cache also holds the negative answers
/// mail-auth does not, and the probe's (one attempt, its own cache, cleared per probe).
fn build_resolvers(cfg: &AuthConfig) -> Result<(MessageAuthenticator, TokioResolver), AuthError> {
    let (config, mut opts) = if cfg.nameservers.is_empty() {
        mail_auth::hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| AuthError::SystemConf(e.to_string()))?
    } else {
        let servers = cfg.nameservers.iter().map(name_server).collect();
        (
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    };
    opts.timeout = Duration::from_millis(cfg.dns_timeout_ms);
    opts.attempts = cfg.dns_attempts;
    opts.cache_size = cfg.cache_entries as u64;
    let mut probe_opts = opts.clone();
    probe_opts.attempts = 1;
    let resolver = |opts| {
        MessageAuthenticator::new(config.clone(), opts)
            .map_err(|e| AuthError::Resolver(e.to_string()))
    };
    Ok((resolver(opts)?, resolver(probe_opts)?.0))
}

fn name_server(addr: &SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}
