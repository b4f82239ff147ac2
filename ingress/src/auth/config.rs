//! `[ingress.auth]`: how SPF, DKIM, DMARC and ARC are checked and what a failure does.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// What the ingress does with authentication results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No checks, no DNS, no `Authentication-Results:` header.
    Off,
    /// Verify and record the results; reject nothing.
    #[default]
    Record,
    /// Like `record`, and SPF `fail` → 550 5.7.23, DMARC `p=reject` failure → 550 5.7.1;
    /// temperrors never reject (fail open).
    Enforce,
}

/// The `[ingress.auth]` section of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Record (default), enforce, or off.
    pub mode: AuthMode,
    /// authserv-id of our `Authentication-Results:` header; empty means the ingress hostname.
    pub authserv_id: String,
    /// DNS servers to ask; empty means the system resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// Timeout of one DNS query.
    pub dns_timeout_ms: u64,
    /// Attempts per DNS query.
    pub dns_attempts: usize,
    /// Time one message may wait for all its checks together (the sender check at MAIL FROM
    /// and the message check after DATA share it); unfinished methods are temperror.
    pub check_duration_max_ms: u64,
    /// How long a name whose lookup failed (timeout, SERVFAIL) is remembered as a temperror,
    /// so a failing domain is not asked once per message; 0 turns this off, at most 300.
    pub temperror_ttl_seconds: u64,
    /// Unanswered checks in a row that mark the resolver down: checks then answer temperror
    /// at once, without a query, until a probe is answered.
    pub resolver_unanswered_max: u32,
    /// Time between probe queries while the resolver is down.
    pub resolver_probe_interval_ms: u64,
    /// Entries per cache (txt, mx, ipv4, ipv6, ptr) per core.
    pub cache_entries: usize,
    /// DKIM signatures verified per message; the extra ones are permerror, not looked up.
    pub dkim_signatures_max: usize,
    /// How long a `_dmarc.` name that has no record (NXDOMAIN, NODATA) is remembered, so the
    /// DMARC tree walk of a known domain costs no query; 0 turns this off, at most 86400.
    pub negative_ttl_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Record,
            authserv_id: String::new(),
            nameservers: Vec::new(),
            dns_timeout_ms: 2_000,
            dns_attempts: 2,
            check_duration_max_ms: 4_000,
            temperror_ttl_seconds: 5,
            resolver_unanswered_max: 3,
            resolver_probe_interval_ms: 2_000,
            cache_entries: 8_192,
            dkim_signatures_max: 8,
            negative_ttl_seconds: 300,
        }
    }
}
