//! Prepared answers: every response the zones can give, encoded once per
//! snapshot so that a query costs a hash lookup and a copy.
//!
//! A prepared message holds a question with the lowercase owner name; the
//! server overwrites the question with the query's own bytes (same length,
//! maybe different case), which also makes compressed owner names echo the
//! query's case (so can suffixes of rdata names that compress against it;
//! names compare case-insensitively, RFC 4343 §4.1). Memory: roughly 150-300 bytes per (name, type) plus one
//! NODATA message per name; about 2 KiB per zone with the default records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::error::DnsError;
use crate::records::{Zone, ZoneSet};

/// Type picked for an ANY query (RFC 8482 minimal answer: one RRset).
const ANY_PREFERENCE: [RecordType; 6] = [
    RecordType::MX,
    RecordType::TXT,
    RecordType::A,
    RecordType::AAAA,
    RecordType::NS,
    RecordType::SOA,
];

/// Answers for one owner name.
#[derive(Debug)]
pub(crate) struct NameAnswers {
    /// (QTYPE, full response) for each RRset at the name.
    by_type: Vec<(u16, Box<[u8]>)>,
    /// NOERROR with the SOA in the authority section (RFC 2308 NODATA).
    nodata: Box<[u8]>,
    /// Index into `by_type` answering ANY, if the name has any RRset.
    any: Option<usize>,
}

impl NameAnswers {
    /// The prepared response for `qtype` at this name.
    pub fn select(&self, qtype: u16) -> &[u8] {
        let idx = if qtype == crate::wire::TYPE_ANY {
            self.any
        } else {
            self.by_type.iter().position(|(t, _)| *t == qtype)
        };
        idx.map_or(&self.nodata, |i| &self.by_type[i].1)
    }
}

/// Every prepared answer of one snapshot plus the zones (for AXFR).
#[derive(Debug, Default)]
pub(crate) struct AnswerTable {
    names: HashMap<Box<[u8]>, NameAnswers, FxBuild>,
    /// Apex (lowercase wire) → SOA record encoded uncompressed, the authority
    /// section of an NXDOMAIN answer whose question length varies.
    zones: HashMap<Box<[u8]>, Box<[u8]>, FxBuild>,
    /// Most labels of any apex, to bound the suffix search.
    zone_labels_max: usize,
    /// The zones themselves.
    pub zone_set: ZoneSet,
}

impl AnswerTable {
    /// Prepares every answer of `zone_set`.
    pub fn build(zone_set: ZoneSet) -> Result<Self, DnsError> {
        let glue = address_index(&zone_set);
        let mut table = AnswerTable::default();
        for zone in zone_set.zones.values() {
            table.add_zone(zone, &glue)?;
        }
        table.zone_set = zone_set;
        Ok(table)
    }

    fn add_zone(
        &mut self,
        zone: &Zone,
        glue: &BTreeMap<Name, Vec<Record>>,
    ) -> Result<(), DnsError> {
        let soa = zone.soa_record();
        let mut types: BTreeMap<Name, Vec<(RecordType, Vec<Record>)>> = BTreeMap::new();
        types
            .entry(zone.origin.clone())
            .or_default()
            .push((RecordType::SOA, vec![soa.clone()]));
        for ((owner, rtype), set) in &zone.content.rrsets {
            types
                .entry(owner.clone())
                .or_default()
                .push((*rtype, set.clone()));
        }
        for owner in empty_non_terminals(&zone.origin, types.keys()) {
            types.entry(owner).or_default();
        }
        for (owner, sets) in types {
            let answers = name_answers(&owner, sets, &soa, glue)?;
            self.names.insert(wire_name(&owner)?.into(), answers);
        }
        let mut tail = Vec::new();
        let mut enc = BinEncoder::new(&mut tail);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        soa.emit(&mut enc)
            .map_err(|e| encode_err(&zone.origin, e))?;
        self.zones
            .insert(wire_name(&zone.origin)?.into(), tail.into());
        self.zone_labels_max = self
            .zone_labels_max
            .max(usize::from(zone.origin.num_labels()));
        Ok(())
    }

    /// Answers prepared for this lowercase wire name, if it exists.
    pub fn name(&self, lower: &[u8]) -> Option<&NameAnswers> {
        self.names.get(lower)
    }

    /// The NXDOMAIN authority bytes of the closest zone enclosing `lower`.
    pub fn enclosing_zone(&self, lower: &[u8]) -> Option<&[u8]> {
        let mut starts = [0usize; 128];
        let mut labels = 0;
        let mut pos = 0;
        while pos < lower.len() && lower[pos] != 0 && labels < starts.len() {
            starts[labels] = pos;
            labels += 1;
            pos += 1 + usize::from(lower[pos]);
        }
        // Longest suffix first: the closest enclosing zone wins.
        let skip = labels.saturating_sub(self.zone_labels_max);
        starts[skip..labels]
            .iter()
            .find_map(|&s| self.zones.get(&lower[s..]).map(|t| &**t))
    }
}

/// Names between each owner and the apex that have no records (RFC 8020:
/// they exist, so they answer NODATA, not NXDOMAIN).
fn empty_non_terminals<'a>(
    origin: &Name,
    owners: impl Iterator<Item = &'a Name>,
) -> BTreeSet<Name> {
    let mut out = BTreeSet::new();
    for owner in owners {
        let mut n = owner.base_name();
        while origin.zone_of(&n) && n != *origin {
            out.insert(n.clone());
            n = n.base_name();
        }
    }
    out
}

/// A/AAAA records of every name in every zone, for additional sections.
fn address_index(zones: &ZoneSet) -> BTreeMap<Name, Vec<Record>> {
    let mut out: BTreeMap<Name, Vec<Record>> = BTreeMap::new();
    for zone in zones.zones.values() {
        for ((owner, rtype), set) in &zone.content.rrsets {
            if matches!(rtype, RecordType::A | RecordType::AAAA) {
                out.entry(owner.clone())
                    .or_default()
                    .extend(set.iter().cloned());
            }
        }
    }
    out
}

fn name_answers(
    owner: &Name,
    sets: Vec<(RecordType, Vec<Record>)>,
    soa: &Record,
    glue: &BTreeMap<Name, Vec<Record>>,
) -> Result<NameAnswers, DnsError> {
    let mut by_type = Vec::with_capacity(sets.len());
    for (rtype, records) in sets {
        let additional = additional_for(&records, glue);
        let msg = prepare(
            owner,
            rtype,
            ResponseCode::NoError,
            records,
            vec![],
            additional,
        )?;
        by_type.push((u16::from(rtype), msg));
    }
    let any = ANY_PREFERENCE
        .iter()
        .find_map(|t| by_type.iter().position(|(bt, _)| *bt == u16::from(*t)));
    let nodata = prepare(
        owner,
        RecordType::NULL,
        ResponseCode::NoError,
        vec![],
        vec![soa.clone()],
        vec![],
    )?;
    Ok(NameAnswers {
        by_type,
        nodata,
        any,
    })
}

/// Addresses of MX and NS targets we know, saving senders a lookup.
fn additional_for(records: &[Record], glue: &BTreeMap<Name, Vec<Record>>) -> Vec<Record> {
    let mut out = Vec::new();
    for r in records {
        let target = match &r.data {
            RData::MX(mx) => &mx.exchange,
            RData::NS(ns) => &ns.0,
            _ => continue,
        };
        if let Some(addrs) = glue.get(target) {
            out.extend(addrs.iter().cloned());
        }
    }
    out
}

/// Encodes one authoritative response with id 0 and no RD/CD.
fn prepare(
    owner: &Name,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
) -> Result<Box<[u8]>, DnsError> {
    let mut msg = Message::response(0, OpCode::Query);
    msg.metadata.authoritative = true;
    msg.metadata.response_code = rcode;
    msg.add_query(Query::query(owner.clone(), qtype));
    msg.insert_answers(answers);
    msg.insert_authorities(authorities);
    msg.insert_additionals(additionals);
    let bytes = msg.to_vec().map_err(|e| encode_err(owner, e))?;
    Ok(bytes.into())
}

/// Lowercase uncompressed wire form of a name (the table key).
pub(crate) fn wire_name(name: &Name) -> Result<Vec<u8>, DnsError> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::UncompressedLowercase);
    name.emit(&mut enc).map_err(|e| encode_err(name, e))?;
    Ok(buf)
}

fn encode_err(name: &Name, e: impl std::fmt::Display) -> DnsError {
    DnsError::Encode {
        name: name.to_ascii(),
        reason: e.to_string(),
    }
}

/// FxHash-style hasher: fast on short keys. Keys are only our own names, so
/// a peer cannot grow collision chains (no hash flooding without inserts).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxBuild;

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

/// The hasher built by [`FxBuild`].
pub(crate) struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(w));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
// Tests start from the defaults and change one field: that is the point.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::config::DnsConfig;
    use crate::records::build_zones;
    use crate::snapshot::ZoneSnapshot;

    fn table() -> AnswerTable {
        let mut config = DnsConfig::default();
        config.tls_rpt = Some(crate::config::TlsRpt {
            rua: "mailto:r@x.test".into(),
        });
        let snap = ZoneSnapshot::serving(
            ["pool.test", "tempmx.test", "deep.sub.pool.test"]
                .map(|d| tempmx_store::Domain::parse(d).expect("test domain")),
        );
        let zones = build_zones(&snap, &config, &ZoneSet::default(), 1).zones;
        AnswerTable::build(zones).expect("build")
    }

    fn w(s: &str) -> Vec<u8> {
        wire_name(&Name::from_ascii(s).expect("name")).expect("wire")
    }

    fn rcode_and_counts(msg: &[u8]) -> (u8, [u16; 4]) {
        let c = |i| crate::wire::be16(msg, i);
        (msg[3] & 0xf, [c(4), c(6), c(8), c(10)])
    }

    // Goal: names, types, NODATA, ENT and ANY select the right prepared message.
    #[test]
    fn selection() {
        let t = table();
        let apex = t.name(&w("pool.test.")).expect("apex");
        // The MX target mx.tempmx.test is in a served zone: its A is added.
        assert_eq!(rcode_and_counts(apex.select(15)), (0, [1, 1, 0, 1]));
        assert_eq!(rcode_and_counts(apex.select(2)), (0, [1, 1, 0, 1]));
        assert_eq!(
            rcode_and_counts(apex.select(28)),
            (0, [1, 0, 1, 0]),
            "NODATA"
        );
        assert_eq!(
            apex.select(255),
            apex.select(15),
            "ANY answers the MX RRset"
        );
        let ent = t
            .name(&w("_tls.pool.test."))
            .expect("empty non-terminal exists");
        assert_eq!(rcode_and_counts(ent.select(16)), (0, [1, 0, 1, 0]));
        // MX answers of tempmx.test carry the address of mx.tempmx.test.
        let tm = t.name(&w("tempmx.test.")).expect("tm");
        assert_eq!(rcode_and_counts(tm.select(15)), (0, [1, 1, 0, 1]));
        assert!(t.name(&w("nope.pool.test.")).is_none());
    }

    // Goal: the closest enclosing zone is found; outside names find none.
    #[test]
    fn enclosing() {
        let t = table();
        let soa_of = |z: &str| {
            let zone = &t.zone_set.zones[&Name::from_ascii(z).expect("name")];
            let mut v = Vec::new();
            let mut e = BinEncoder::new(&mut v);
            e.set_name_encoding(NameEncoding::Uncompressed);
            zone.soa_record().emit(&mut e).expect("emit");
            v
        };
        assert_eq!(
            t.enclosing_zone(&w("a.b.pool.test.")),
            Some(&soa_of("pool.test.")[..])
        );
        assert_eq!(
            t.enclosing_zone(&w("x.deep.sub.pool.test.")),
            Some(&soa_of("deep.sub.pool.test.")[..])
        );
        assert_eq!(t.enclosing_zone(&w("pool.test.evil.example.")), None);
        assert_eq!(t.enclosing_zone(&w("test.")), None);
        assert_eq!(t.enclosing_zone(&[0]), None);
    }
}
