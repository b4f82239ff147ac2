//! Pure zone building: snapshot + config → per-zone record sets and serials.
//!
//! Serial policy: a zone whose records did not change keeps its serial. All
//! zones that changed (or are new) in one publish get the same new serial,
//! `max(highest previous serial + 1, unix seconds now)`. It only grows within
//! a process, and across restarts as long as publishes averaged fewer than one
//! per second since the first (the clock then stays ahead of the counter). A snapshot
//! that carries a serial (fleet mode: the fleet's pool version) gives it to every zone,
//! so all nodes of a fleet serve one serial per version.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, MX, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tempmx_store::Domain;
use tracing::warn;

use crate::config::{DnsConfig, expand_name};
use crate::snapshot::{ZoneSnapshot, ZoneState};

/// SOA REFRESH: how often secondaries poll the SOA (seconds).
const SOA_REFRESH: i32 = 3600;
/// SOA RETRY after a failed refresh (seconds).
const SOA_RETRY: i32 = 600;
/// SOA EXPIRE: secondaries stop answering after this long without us (seconds).
const SOA_EXPIRE: i32 = 86_400;
/// TXT character-strings hold at most 255 bytes each.
const TXT_STRING_BYTES_MAX: usize = 255;

/// Records of one zone, keyed by (lowercase owner, type), in config order.
pub type RrSets = BTreeMap<(Name, RecordType), Vec<Record>>;

/// One zone's content without its serial (compared to decide serial bumps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneContent {
    /// SOA data with serial 0; the real serial lives in [`Zone::serial`].
    pub soa: SOA,
    /// TTL of every record, SOA included.
    pub ttl: u32,
    /// Every RRset but the SOA.
    pub rrsets: RrSets,
}

/// One served zone: its content and current serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase, fully qualified apex.
    pub origin: Name,
    /// SOA serial.
    pub serial: u32,
    /// Records (SOA without serial, everything else).
    pub content: ZoneContent,
}

/// All zones of one snapshot, keyed by lowercase apex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneSet {
    /// Zones by apex.
    pub zones: BTreeMap<Name, Zone>,
}

/// Result of [`build_zones`]: the zones and the domains that were skipped.
#[derive(Debug, Clone, Default)]
pub struct ZoneBuild {
    /// The zones to serve.
    pub zones: ZoneSet,
    /// Domains left out, with the reason (bad name, duplicate, over the limit).
    pub rejected: Vec<(String, String)>,
}

impl Zone {
    /// The SOA record with the zone's serial.
    pub fn soa_record(&self) -> Record {
        let mut soa = self.content.soa.clone();
        soa.serial = self.serial;
        Record::from_rdata(self.origin.clone(), self.content.ttl, RData::SOA(soa))
    }

    /// Every record of the zone, SOA first (AXFR order without the final SOA).
    pub fn all_records(&self) -> impl Iterator<Item = Record> + '_ {
        std::iter::once(self.soa_record()).chain(self.content.rrsets.values().flatten().cloned())
    }
}

impl ZoneSet {
    /// Highest serial of any zone (0 when empty).
    pub fn serial_max(&self) -> u32 {
        self.zones.values().map(|z| z.serial).max().unwrap_or(0)
    }

    /// The closest enclosing zone of `name` (lowercase), if we serve one.
    pub fn enclosing(&self, name: &Name) -> Option<&Zone> {
        let mut n = name.clone();
        loop {
            if let Some(z) = self.zones.get(&n) {
                return Some(z);
            }
            if n.is_root() {
                return None;
            }
            n = n.base_name();
        }
    }
}

/// The next serial for zones that changed (see the module docs).
pub fn next_serial(previous_max: u32, now_unix: u32) -> u32 {
    previous_max.saturating_add(1).max(now_unix)
}

/// Builds the zones of `snapshot`; `previous` decides which serials change.
pub fn build_zones(
    snapshot: &ZoneSnapshot,
    config: &DnsConfig,
    previous: &ZoneSet,
    now_unix: u32,
) -> ZoneBuild {
    let (origins, rejected) = parse_origins(snapshot, config.zones_max);
    let absolute_hosts = absolute_hosts(config, &origins);
    let serial = snapshot
        .serial
        .unwrap_or_else(|| next_serial(previous.serial_max(), now_unix));
    let mut zones = ZoneSet::default();
    for (origin, state) in origins {
        let hosts = absolute_hosts
            .get(&origin)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let content = match zone_content(&origin, state, config, hosts) {
            Ok(c) => c,
            Err(reason) => {
                warn!(zone = %origin, %reason, "zone skipped");
                continue;
            }
        };
        let serial = match previous.zones.get(&origin) {
            Some(old) if old.content == content && snapshot.serial.is_none() => old.serial,
            _ => serial,
        };
        zones.zones.insert(
            origin.clone(),
            Zone {
                origin,
                serial,
                content,
            },
        );
    }
    ZoneBuild { zones, rejected }
}

/// The snapshot's domains as zone origins, deduplicated, keeping at most `max`.
fn parse_origins(
    snapshot: &ZoneSnapshot,
    max: usize,
) -> (BTreeMap<Name, ZoneState>, Vec<(String, String)>) {
    let mut origins = BTreeMap::new();
    let mut rejected = Vec::new();
    for (domain, state) in &snapshot.domains {
        let reason = match origin(domain) {
            Err(e) => e,
            Ok(n) if origins.contains_key(&n) => "duplicate domain".to_owned(),
            Ok(_) if origins.len() >= max => format!("more than zones_max = {max} domains"),
            Ok(n) => {
                origins.insert(n, *state);
                continue;
            }
        };
        warn!(%domain, %reason, "pool domain not served");
        rejected.push((domain.to_string(), reason));
    }
    (origins, rejected)
}

/// A pool domain as an FQDN (the domain is already ASCII and lower case).
fn origin(domain: &Domain) -> Result<Name, String> {
    let mut name = Name::from_ascii(domain.as_str()).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// Absolute host names from the config, assigned to the zone enclosing them.
fn absolute_hosts<'c>(
    config: &'c DnsConfig,
    origins: &BTreeMap<Name, ZoneState>,
) -> BTreeMap<Name, Vec<(Name, &'c [IpAddr])>> {
    let mut out: BTreeMap<Name, Vec<(Name, &[IpAddr])>> = BTreeMap::new();
    for (template, addrs) in &config.host_addresses {
        if is_relative(template) {
            continue;
        }
        let Ok(host) = expand_name(template, &Name::root()) else {
            continue;
        };
        let host = host.to_lowercase();
        let mut n = host.clone();
        while !n.is_root() {
            if origins.contains_key(&n) {
                out.entry(n).or_default().push((host, addrs.as_slice()));
                break;
            }
            n = n.base_name();
        }
    }
    out
}

fn is_relative(template: &str) -> bool {
    template == "@" || template.ends_with(".@")
}

/// Every record of one zone (config names already validated at start).
fn zone_content(
    origin: &Name,
    state: ZoneState,
    config: &DnsConfig,
    absolute_hosts: &[(Name, &[IpAddr])],
) -> Result<ZoneContent, String> {
    let ttl = config.ttl;
    let expand = |t: &str| {
        expand_name(t, origin)
            .map(|n| n.to_lowercase())
            .map_err(|e| e.to_string())
    };
    let mut z = ZoneBuilder {
        ttl,
        rrsets: RrSets::new(),
    };
    let mname = expand(&config.name_servers[0])?;
    let soa = SOA::new(
        mname,
        expand(&config.soa_rname)?,
        0,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        ttl,
    );
    for ns in &config.name_servers {
        z.add(origin, RData::NS(NS(expand(ns)?)));
    }
    match state {
        ZoneState::Serving => {
            for mx in &config.mx_hosts {
                z.add(origin, RData::MX(MX::new(mx.priority, expand(&mx.host)?)));
            }
        }
        // RFC 7505: preference 0, exchange "." means "no mail here".
        ZoneState::Retired => z.add(origin, RData::MX(MX::new(0, Name::root()))),
    }
    z.txt(origin, "v=spf1 -all");
    z.txt(&child("_dmarc", origin)?, "v=DMARC1; p=reject");
    if state == ZoneState::Serving {
        add_mta_sts(&mut z, origin, config)?;
    }
    for (template, addrs) in &config.host_addresses {
        if is_relative(template) {
            z.addresses(&expand(template)?, addrs);
        }
    }
    for (host, addrs) in absolute_hosts {
        z.addresses(host, addrs);
    }
    Ok(ZoneContent {
        soa,
        ttl,
        rrsets: z.rrsets,
    })
}

fn add_mta_sts(z: &mut ZoneBuilder, origin: &Name, config: &DnsConfig) -> Result<(), String> {
    if let Some(sts) = &config.mta_sts {
        z.txt(
            &child("_mta-sts", origin)?,
            &format!("v=STSv1; id={}", sts.id),
        );
        z.addresses(&child("mta-sts", origin)?, &sts.policy_host_addresses);
    }
    if let Some(rpt) = &config.tls_rpt {
        z.txt(
            &child("_smtp._tls", origin)?,
            &format!("v=TLSRPTv1; rua={}", rpt.rua),
        );
    }
    Ok(())
}

fn child(label: &str, origin: &Name) -> Result<Name, String> {
    Name::from_ascii(label)
        .and_then(|n| n.append_domain(origin))
        .map_err(|e| e.to_string())
}

/// Collects RRsets, dropping exact duplicates.
struct ZoneBuilder {
    ttl: u32,
    rrsets: RrSets,
}

impl ZoneBuilder {
    fn add(&mut self, owner: &Name, rdata: RData) {
        let record = Record::from_rdata(owner.clone(), self.ttl, rdata);
        let set = self
            .rrsets
            .entry((owner.clone(), record.record_type()))
            .or_default();
        if !set.contains(&record) {
            set.push(record);
        }
    }

    fn txt(&mut self, owner: &Name, text: &str) {
        // Long values are split into 255-byte character-strings (RFC 7208 §3.3).
        let parts = text
            .as_bytes()
            .chunks(TXT_STRING_BYTES_MAX)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.add(owner, RData::TXT(TXT::new(parts)));
    }

    fn addresses(&mut self, owner: &Name, addrs: &[IpAddr]) {
        for addr in addrs {
            let rdata = match addr {
                IpAddr::V4(a) => RData::A(A(*a)),
                IpAddr::V6(a) => RData::AAAA(AAAA(*a)),
            };
            self.add(owner, rdata);
        }
    }
}

#[cfg(test)]
// Tests start from the defaults and change one field: that is the point.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::config::{MtaSts, MxHost, TlsRpt};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("test name")
    }

    /// Renders one RRset as sorted text lines for table comparisons.
    fn rrset(zone: &Zone, owner: &str, rtype: RecordType) -> Vec<String> {
        let mut v: Vec<String> = zone
            .content
            .rrsets
            .get(&(name(owner), rtype))
            .map(|s| s.iter().map(|r| r.data.to_string()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn build(snapshot: &ZoneSnapshot, config: &DnsConfig) -> ZoneSet {
        build_zones(snapshot, config, &ZoneSet::default(), 1_000).zones
    }

    // Goal: a serving and a retired domain publish the documented records.
    // Method: table of (zone, owner, type, expected rdata) over one build.
    #[test]
    fn serving_and_retired_records() {
        let mut config = DnsConfig::default();
        config.mx_hosts.push(MxHost {
            priority: 20,
            host: "mx2.@".into(),
        });
        config
            .host_addresses
            .insert("mx2.@".into(), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        let snap = ZoneSnapshot {
            serial: None,
            domains: vec![
                (
                    tempmx_store::Domain::parse("Pool.TEST").expect("test domain"),
                    ZoneState::Serving,
                ),
                (
                    tempmx_store::Domain::parse("old.test").expect("test domain"),
                    ZoneState::Retired,
                ),
                (
                    tempmx_store::Domain::parse("tempmx.test").expect("test domain"),
                    ZoneState::Serving,
                ),
            ],
        };
        let zones = build(&snap, &config);
        let pool = &zones.zones[&name("pool.test.")];
        let old = &zones.zones[&name("old.test.")];
        let tm = &zones.zones[&name("tempmx.test.")];
        let table: [(&Zone, &str, RecordType, &[&str]); 11] = [
            (
                pool,
                "pool.test.",
                RecordType::MX,
                &["10 mx.tempmx.test.", "20 mx2.pool.test."],
            ),
            (pool, "pool.test.", RecordType::NS, &["ns1.tempmx.test."]),
            (pool, "pool.test.", RecordType::TXT, &["v=spf1 -all"]),
            (
                pool,
                "_dmarc.pool.test.",
                RecordType::TXT,
                &["v=DMARC1; p=reject"],
            ),
            (pool, "mx2.pool.test.", RecordType::AAAA, &["::1"]),
            (pool, "mx.tempmx.test.", RecordType::A, &[]),
            (old, "old.test.", RecordType::MX, &["0 ."]),
            (old, "old.test.", RecordType::TXT, &["v=spf1 -all"]),
            (
                old,
                "_dmarc.old.test.",
                RecordType::TXT,
                &["v=DMARC1; p=reject"],
            ),
            (tm, "mx.tempmx.test.", RecordType::A, &["127.0.0.1"]),
            (tm, "ns1.tempmx.test.", RecordType::A, &["127.0.0.1"]),
        ];
        for (zone, owner, rtype, want) in table {
            assert_eq!(rrset(zone, owner, rtype), want, "{owner} {rtype}");
        }
        let soa = pool.soa_record();
        assert_eq!(
            soa.data.to_string(),
            "ns1.tempmx.test. hostmaster.tempmx.test. 1000 3600 600 86400 300"
        );
    }

    // Goal: MTA-STS and TLS-RPT records appear only when configured and only
    // for serving domains.
    #[test]
    fn mta_sts_and_tls_rpt() {
        let mut config = DnsConfig::default();
        let snap = ZoneSnapshot {
            serial: None,
            domains: vec![
                (
                    tempmx_store::Domain::parse("a.test").expect("test domain"),
                    ZoneState::Serving,
                ),
                (
                    tempmx_store::Domain::parse("r.test").expect("test domain"),
                    ZoneState::Retired,
                ),
            ],
        };
        let zones = build(&snap, &config);
        assert!(
            rrset(
                &zones.zones[&name("a.test.")],
                "_mta-sts.a.test.",
                RecordType::TXT
            )
            .is_empty()
        );
        config.mta_sts = Some(MtaSts {
            id: "2026a".into(),
            policy_host_addresses: vec!["127.0.0.2".parse().expect("ip")],
        });
        config.tls_rpt = Some(TlsRpt {
            rua: "mailto:tls@a.test".into(),
        });
        let zones = build(&snap, &config);
        let a = &zones.zones[&name("a.test.")];
        assert_eq!(
            rrset(a, "_mta-sts.a.test.", RecordType::TXT),
            ["v=STSv1; id=2026a"]
        );
        assert_eq!(rrset(a, "mta-sts.a.test.", RecordType::A), ["127.0.0.2"]);
        assert_eq!(
            rrset(a, "_smtp._tls.a.test.", RecordType::TXT),
            ["v=TLSRPTv1; rua=mailto:tls@a.test"]
        );
        let r = &zones.zones[&name("r.test.")];
        assert!(rrset(r, "_mta-sts.r.test.", RecordType::TXT).is_empty());
    }

    // Goal: duplicate and over-limit domains are rejected with a reason; a name that is
    // no pool domain (an IP address, a bad label) cannot even reach the DNS, because the
    // snapshot holds `Domain`s. Method: build from a snapshot; parse the bad names.
    #[test]
    fn rejected_domains() {
        let mut config = DnsConfig::default();
        config.zones_max = 2;
        let snap = ZoneSnapshot::serving(
            ["a.test", "A.test", "b.test", "c.test"]
                .map(|d| tempmx_store::Domain::parse(d).expect("test domain")),
        );
        let built = build_zones(&snap, &config, &ZoneSet::default(), 1);
        let served: Vec<String> = built.zones.zones.keys().map(|n| n.to_ascii()).collect();
        assert_eq!(served, ["a.test.", "b.test."]);
        let reasons: Vec<&str> = built.rejected.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(reasons, ["a.test", "c.test"]);
        for bad in [
            "127.0.0.1",
            "[127.0.0.1]",
            "localhost",
            "bad..name",
            "",
            "a.test.",
        ] {
            assert!(tempmx_store::Domain::parse(bad).is_err(), "{bad}");
        }
    }

    // Goal: serials follow the documented policy (unchanged zones keep theirs,
    // changed zones get max(previous max + 1, now)).
    #[test]
    fn serial_policy() {
        let config = DnsConfig::default();
        let first = build_zones(
            &ZoneSnapshot::serving(
                ["a.test", "b.test"].map(|d| tempmx_store::Domain::parse(d).expect("test domain")),
            ),
            &config,
            &ZoneSet::default(),
            500,
        )
        .zones;
        assert_eq!(first.serial_max(), 500);
        let snap = ZoneSnapshot {
            serial: None,
            domains: vec![
                (
                    tempmx_store::Domain::parse("a.test").expect("test domain"),
                    ZoneState::Serving,
                ),
                (
                    tempmx_store::Domain::parse("b.test").expect("test domain"),
                    ZoneState::Retired,
                ),
            ],
        };
        // Clock went backwards: the counter still grows.
        let second = build_zones(&snap, &config, &first, 10).zones;
        assert_eq!(second.zones[&name("a.test.")].serial, 500);
        assert_eq!(second.zones[&name("b.test.")].serial, 501);
        let third = build_zones(&snap, &config, &second, 9_999).zones;
        assert_eq!(third, second, "nothing changed, nothing bumped");
        assert_eq!(next_serial(7, 3), 8);
        assert_eq!(next_serial(7, 30), 30);
        assert_eq!(next_serial(u32::MAX, 0), u32::MAX);
        // A snapshot's own serial (fleet mode) goes to every zone, changed or not.
        let fixed = ZoneSnapshot {
            serial: Some(1_765_000_007),
            ..snap.clone()
        };
        let fourth = build_zones(&fixed, &config, &third, 9_999).zones;
        assert!(fourth.zones.values().all(|z| z.serial == 1_765_000_007));
    }

    // Goal: long TXT values are split into 255-byte strings.
    #[test]
    fn long_txt_is_split() {
        let mut config = DnsConfig::default();
        config.tls_rpt = Some(TlsRpt {
            rua: format!("mailto:{}@x.test", "a".repeat(600)),
        });
        let zones = build(
            &ZoneSnapshot::serving(
                ["a.test"].map(|d| tempmx_store::Domain::parse(d).expect("test domain")),
            ),
            &config,
        );
        let set = &zones.zones[&name("a.test.")].content.rrsets
            [&(name("_smtp._tls.a.test."), RecordType::TXT)];
        let RData::TXT(txt) = &set[0].data else {
            panic!("TXT expected")
        };
        let lens: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(lens, [255, 255, 120]);
    }
}
