//! A webhook URL: checked when registered, resolved and checked again before each
//! delivery, and the checked address pinned for the connection (no DNS rebinding).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

use super::network::{Cidr, permitted};

/// Why a URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Over `url_bytes_max`.
    #[error("url longer than {0} bytes")]
    TooLong(usize),
    /// Not an absolute URL.
    #[error("url is not valid: {0}")]
    Invalid(String),
    /// Neither `http` nor `https`.
    #[error("url scheme must be http or https")]
    Scheme,
    /// The name did not resolve (in time).
    #[error("host `{0}` does not resolve")]
    Unresolved(String),
    /// Every address is loopback, private, link-local or otherwise special.
    #[error("host `{0}` resolves to an address webhooks may not reach")]
    Refused(String),
}

/// A URL that passed the static checks.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL.
    pub url: Url,
    host: String,
    port: u16,
    literal: Option<IpAddr>,
}

impl Target {
    /// Checks length, syntax and scheme.
    pub fn parse(raw: &str, url_bytes_max: usize) -> Result<Self, TargetError> {
        if raw.len() > url_bytes_max {
            return Err(TargetError::TooLong(url_bytes_max));
        }
        let url = Url::parse(raw).map_err(|e| TargetError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::Scheme);
        }
        let (host, literal) = match url.host() {
            Some(Host::Domain(d)) => (d.to_owned(), None),
            Some(Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
            Some(Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
            None => return Err(TargetError::Invalid("no host".into())),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| TargetError::Invalid("no port".into()))?;
        Ok(Self {
            url,
            host,
            port,
            literal,
        })
    }

    /// The host name as in the URL (what TLS verifies and `Host` carries).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Resolves the host (within `within`) and returns the first permitted address to
    /// connect to.
    pub async fn resolve(
        &self,
        allow: &[Cidr],
        within: Duration,
    ) -> Result<SocketAddr, TargetError> {
        let unresolved = || TargetError::Unresolved(self.host.clone());
        let addrs: Vec<SocketAddr> = match self.literal {
            Some(ip) => vec![SocketAddr::new(ip, self.port)],
            None => tokio::time::timeout(
                within,
                tokio::net::lookup_host((self.host.as_str(), self.port)),
            )
            .await
            .map_err(|_| unresolved())?
            .map_err(|_| unresolved())?
            .collect(),
        };
        if addrs.is_empty() {
            return Err(unresolved());
        }
        addrs
            .into_iter()
            .find(|a| permitted(a.ip(), allow))
            .ok_or_else(|| TargetError::Refused(self.host.clone()))
    }
}
