//! DNS configuration: what every pool zone publishes and the server's limits.
//!
//! Host names may be absolute (`mx.tempmx.test`) or relative to each pool
//! domain: `@` is the domain itself and `mx.@` is `mx.<domain>`. Relative names
//! let every pool domain carry its own MX/NS host names.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};

use crate::error::DnsError;

/// Longest TXT value we accept in config (it is split into 255-byte strings).
const TXT_BYTES_MAX: usize = 1024;

/// Configuration of the authoritative DNS server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP and TCP listen address; port 0 picks a free port (same for both).
    pub listen: SocketAddr,
    /// MX targets published for every serving domain, with priorities.
    pub mx_hosts: Vec<MxHost>,
    /// NS names published for every domain; the first is the SOA MNAME.
    pub name_servers: Vec<String>,
    /// Addresses of MX/NS (or other) hosts; published as A/AAAA when the
    /// name falls inside a zone we serve.
    pub host_addresses: BTreeMap<String, Vec<IpAddr>>,
    /// TTL of every record, also the SOA MINIMUM (negative-caching TTL).
    pub ttl: u32,
    /// SOA RNAME (the zone contact, `hostmaster.example` form).
    pub soa_rname: String,
    /// Source addresses allowed to transfer zones (AXFR over TCP).
    pub axfr_allow: Vec<IpAddr>,
    /// MTA-STS (RFC 8461) records for serving domains, when set.
    pub mta_sts: Option<MtaSts>,
    /// SMTP TLS reporting (RFC 8460) record for serving domains, when set.
    pub tls_rpt: Option<TlsRpt>,
    /// Most pool domains served; extra domains in a snapshot are skipped.
    pub zones_max: usize,
    /// UDP worker threads, each with its own SO_REUSEPORT socket.
    pub udp_workers: usize,
    /// Datagrams received (and answered) per recvmmsg/sendmmsg call.
    pub udp_batch_max: usize,
    /// Largest UDP response we send to EDNS clients (RFC 9715 advises 1232).
    pub edns_udp_payload_max: u16,
    /// Tokio worker threads serving TCP.
    pub tcp_threads: usize,
    /// Open TCP connections at most; further connections are closed at once.
    pub tcp_connections_max: usize,
    /// A TCP connection idle (or slow to send a query) this long is closed.
    pub tcp_idle_timeout_ms: u64,
    /// Queries answered on one TCP connection before it is closed.
    pub tcp_queries_per_connection_max: u32,
}

/// One MX target with its preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MxHost {
    /// MX preference (lower is tried first).
    pub priority: u16,
    /// Target host name (absolute, or relative to the domain with `@`).
    pub host: String,
}

/// MTA-STS TXT record (`_mta-sts.<domain>`) and the policy host's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtaSts {
    /// Policy id (1-32 letters/digits); change it when the policy changes.
    pub id: String,
    /// Addresses of `mta-sts.<domain>` (the HTTPS policy host); may be empty
    /// when that name is published elsewhere.
    #[serde(default)]
    pub policy_host_addresses: Vec<IpAddr>,
}

/// SMTP TLS reporting TXT record (`_smtp._tls.<domain>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRpt {
    /// Report destination(s), e.g. `mailto:tlsrpt@example.com`.
    pub rua: String,
}

impl Default for DnsConfig {
    fn default() -> Self {
        let localhost = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5353)),
            mx_hosts: vec![MxHost {
                priority: 10,
                host: "mx.tempmx.test".into(),
            }],
            name_servers: vec!["ns1.tempmx.test".into()],
            host_addresses: BTreeMap::from([
                ("mx.tempmx.test".into(), localhost.clone()),
                ("ns1.tempmx.test".into(), localhost),
            ]),
            ttl: 300,
            soa_rname: "hostmaster.tempmx.test".into(),
            axfr_allow: Vec::new(),
            mta_sts: None,
            tls_rpt: None,
            zones_max: 100_000,
            udp_workers: 2,
            udp_batch_max: 32,
            edns_udp_payload_max: 1232,
            tcp_threads: 1,
            tcp_connections_max: 256,
            tcp_idle_timeout_ms: 10_000,
            tcp_queries_per_connection_max: 1_000,
        }
    }
}

impl DnsConfig {
    /// Checks every field against its limits and that all names parse.
    pub fn validate(&self) -> Result<(), DnsError> {
        self.validate_limits()?;
        self.validate_names()?;
        self.validate_txt()
    }

    fn validate_limits(&self) -> Result<(), DnsError> {
        check_range("udp_workers", self.udp_workers, 1, 64)?;
        check_range("udp_batch_max", self.udp_batch_max, 1, 256)?;
        check_range("tcp_threads", self.tcp_threads, 1, 16)?;
        check_range("tcp_connections_max", self.tcp_connections_max, 1, 65_536)?;
        check_range("zones_max", self.zones_max, 1, 10_000_000)?;
        check_range(
            "edns_udp_payload_max",
            self.edns_udp_payload_max.into(),
            512,
            4096,
        )?;
        // RFC 2181 §8: TTLs above 2^31-1 are treated as 0 by resolvers.
        check_range("ttl", self.ttl as usize, 0, i32::MAX as usize)?;
        check_range(
            "tcp_idle_timeout_ms",
            self.tcp_idle_timeout_ms as usize,
            100,
            600_000,
        )?;
        check_range(
            "tcp_queries_per_connection_max",
            self.tcp_queries_per_connection_max as usize,
            1,
            1_000_000,
        )?;
        check_range("mx_hosts (count)", self.mx_hosts.len(), 1, 16)?;
        check_range("name_servers (count)", self.name_servers.len(), 1, 13)?;
        check_range("host_addresses (count)", self.host_addresses.len(), 0, 64)?;
        for addrs in self.host_addresses.values() {
            check_range("host_addresses (per host)", addrs.len(), 1, 16)?;
        }
        check_range("axfr_allow (count)", self.axfr_allow.len(), 0, 256)
    }

    fn validate_names(&self) -> Result<(), DnsError> {
        // Relative names are checked against a sample domain.
        let sample = Name::from_ascii("example.test.").map_err(|e| invalid("sample", e))?;
        let templates = self
            .mx_hosts
            .iter()
            .map(|m| m.host.as_str())
            .chain(self.name_servers.iter().map(String::as_str))
            .chain(self.host_addresses.keys().map(String::as_str))
            .chain(std::iter::once(self.soa_rname.as_str()));
        for t in templates {
            expand_name(t, &sample)?;
        }
        Ok(())
    }

    fn validate_txt(&self) -> Result<(), DnsError> {
        if let Some(sts) = &self.mta_sts {
            let ok = (1..=32).contains(&sts.id.len())
                && sts.id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok {
                return Err(DnsError::Config(
                    "mta_sts.id must be 1-32 letters or digits".into(),
                ));
            }
            check_range(
                "mta_sts.policy_host_addresses",
                sts.policy_host_addresses.len(),
                0,
                16,
            )?;
        }
        if let Some(rpt) = &self.tls_rpt {
            let ok = !rpt.rua.is_empty() && rpt.rua.len() <= TXT_BYTES_MAX && rpt.rua.is_ascii();
            if !ok {
                return Err(DnsError::Config(format!(
                    "tls_rpt.rua must be 1-{TXT_BYTES_MAX} ASCII bytes"
                )));
            }
        }
        Ok(())
    }
}

fn check_range(field: &str, value: usize, min: usize, max: usize) -> Result<(), DnsError> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(DnsError::Config(format!(
        "{field} = {value} is outside {min}..={max}"
    )))
}

fn invalid(name: &str, e: impl std::fmt::Display) -> DnsError {
    DnsError::Config(format!("invalid DNS name {name:?}: {e}"))
}

/// Expands a configured host name for `domain`: `@` is the domain, `x.@` is
/// `x.<domain>`, anything else is an absolute name (trailing dot optional).
pub(crate) fn expand_name(template: &str, domain: &Name) -> Result<Name, DnsError> {
    if template == "@" {
        return Ok(domain.clone());
    }
    if let Some(prefix) = template.strip_suffix(".@") {
        if prefix.is_empty() {
            return Err(invalid(template, "empty label before .@"));
        }
        let rel = Name::from_ascii(prefix).map_err(|e| invalid(template, e))?;
        if rel.is_fqdn() || rel.is_root() {
            return Err(invalid(template, "relative prefix expected before .@"));
        }
        return rel.append_domain(domain).map_err(|e| invalid(template, e));
    }
    if template.is_empty() || template.contains('@') {
        return Err(invalid(template, "empty, or @ not at the end"));
    }
    let mut name = Name::from_ascii(template).map_err(|e| invalid(template, e))?;
    name.set_fqdn(true);
    Ok(name)
}

#[cfg(test)]
// Tests start from the defaults and change one field: that is the point.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    // Goal: the built-in defaults are valid and survive a TOML round trip.
    #[test]
    fn defaults_validate_and_round_trip() {
        let c = DnsConfig::default();
        c.validate().expect("defaults are valid");
        let text = toml::to_string(&c).expect("serialize");
        let back: DnsConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back, c);
    }

    // Goal: unknown keys are rejected with the key named.
    #[test]
    fn unknown_key_is_an_error() {
        let err = toml::from_str::<DnsConfig>("ttl = 60\nbogus = 1\n").expect_err("unknown key");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    // Goal: every limit is checked at both ends.
    #[test]
    fn limits_are_enforced() {
        type Edit = fn(&mut DnsConfig);
        let cases: Vec<(&str, Edit)> = vec![
            ("udp_workers", |c| c.udp_workers = 0),
            ("udp_workers", |c| c.udp_workers = 65),
            ("udp_batch_max", |c| c.udp_batch_max = 257),
            ("edns_udp_payload_max", |c| c.edns_udp_payload_max = 511),
            ("ttl", |c| c.ttl = u32::MAX),
            ("mx_hosts", |c| c.mx_hosts.clear()),
            ("name_servers", |c| c.name_servers.clear()),
            ("tcp_idle_timeout_ms", |c| c.tcp_idle_timeout_ms = 99),
            ("tcp_connections_max", |c| c.tcp_connections_max = 0),
            ("mta_sts", |c| {
                c.mta_sts = Some(MtaSts {
                    id: "has space".into(),
                    policy_host_addresses: vec![],
                })
            }),
            ("invalid DNS name", |c| c.name_servers = vec!["a..b".into()]),
            ("invalid DNS name", |c| c.soa_rname = "x@y".into()),
        ];
        for (want, edit) in cases {
            let mut c = DnsConfig::default();
            edit(&mut c);
            let err = c.validate().expect_err(want).to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        let mut c = DnsConfig::default();
        c.udp_workers = 64;
        c.edns_udp_payload_max = 512;
        c.tcp_idle_timeout_ms = 100;
        c.validate().expect("values at the limits are valid");
    }

    // Goal: relative and absolute host names expand as documented.
    #[test]
    fn names_expand() {
        let d = Name::from_ascii("pool.test.").expect("name");
        let cases = [
            ("@", "pool.test."),
            ("mx.@", "mx.pool.test."),
            ("a.b.@", "a.b.pool.test."),
            ("mx.tempmx.test", "mx.tempmx.test."),
            ("mx.tempmx.test.", "mx.tempmx.test."),
        ];
        for (t, want) in cases {
            assert_eq!(expand_name(t, &d).expect(t).to_ascii(), want, "{t}");
        }
        for bad in ["", ".@", "a@b", "x.@.y"] {
            assert!(expand_name(bad, &d).is_err(), "{bad}");
        }
    }
}
