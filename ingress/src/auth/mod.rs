//! Mail authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489) and ARC (RFC 8617)
//! with mail-auth on a hickory resolver, one [`Authenticator`] per ingress core.
//!
//! The session calls [`Authenticator::check_sender`] at MAIL FROM and
//! [`Authenticator::check_message`] after DATA; together they are bounded by
//! `check_duration_max_ms`, and while the resolver is down (it left `resolver_unanswered_max`
//! checks in a row unanswered) they answer temperror at once until a probe is answered.
//! Results become an `Authentication-Results:` header (RFC 8601) and store rows.

mod authenticator;
mod cache;
mod config;
mod counters;
mod forged;
mod health;
mod results;
mod values;

pub use authenticator::{Authenticator, MessageCheck, SenderCheck, SpfIdentity};
pub use cache::{BoundedCache, Ipv4Cache, Ipv6Cache, MxCache, PtrCache, ResolverCaches, TxtCache};
pub use config::{AuthConfig, AuthMode};
pub use counters::{AuthCounters, AuthCountersSnapshot};
pub use results::{AUTHSERV_ID_CHARS_MAX, VALUE_CHARS_MAX, sanitize_value};
pub use values::{AuthMethod, AuthValue};

/// Why an [`Authenticator`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A config value is out of range.
    #[error("ingress.auth.{key}: {reason}")]
    Config {
        /// The config key, under `[ingress.auth]`.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `nameservers` is empty and the system resolver configuration could not be read.
    #[error("ingress.auth.nameservers is empty and the system resolv.conf could not be read: {0}")]
    SystemConf(String),
    /// The resolver could not be built from the configuration.
    #[error("ingress.auth.nameservers: the DNS resolver could not be built: {0}")]
    Resolver(String),
}
