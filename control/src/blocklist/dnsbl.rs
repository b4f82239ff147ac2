//! DNS blocklist queries (`<domain>.<zone>` A) through hickory-resolver.

use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use super::config::{BlocklistConfig, DnsblZone};
use super::verdict::{Outcome, classify};

/// A resolver set up for blocklist queries.
pub struct Dnsbl {
    resolver: TokioResolver,
    timeout: Duration,
}

impl Dnsbl {
    /// Builds the resolver: the configured nameservers, or the system configuration when none.
    pub fn new(config: &BlocklistConfig) -> Result<Self, hickory_resolver::net::NetError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut builder = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio()?
        } else {
            let servers = config.nameservers.iter().map(|a| {
                let mut udp = ConnectionConfig::udp();
                udp.port = a.port();
                NameServerConfig::new(a.ip(), true, vec![udp])
            });
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers.collect()),
                TokioRuntimeProvider::default(),
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        // Every check must reach the list: a cached answer would count twice for hysteresis.
        opts.cache_size = 0;
        Ok(Self {
            resolver: builder.build()?,
            timeout,
        })
    }

    /// Queries one domain on one zone. Timeouts and DNS failures are errors; NXDOMAIN and
    /// an empty answer are clean.
    pub async fn query(&self, domain: &str, zone: &DnsblZone) -> Outcome {
        let name = format!("{domain}.{}.", zone.zone);
        // The resolver has its own timeout; this outer one bounds retries and connection setup.
        let answer =
            tokio::time::timeout(self.timeout * 2, self.resolver.ipv4_lookup(name.as_str())).await;
        match answer {
            Err(_) => Outcome::Error {
                detail: format!("{name}: timed out"),
            },
            Ok(Ok(lookup)) => {
                let addrs: Vec<Ipv4Addr> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect();
                classify(&addrs, &zone.codes)
            }
            Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => Outcome::Clean,
            Ok(Err(e)) => Outcome::Error {
                detail: format!("{name}: {e}"),
            },
        }
    }
}
