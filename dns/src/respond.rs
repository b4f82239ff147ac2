//! Turns one query packet into one response, shared by UDP and TCP.
//!
//! The fast path ([`wire::parse_query`]) covers ordinary queries. Everything
//! else is parsed by hickory-proto: responses are dropped (never answer an
//! answer), other opcodes get NOTIMP, unparseable or multi-question messages
//! FORMERR, EDNS versions above 0 BADVERS; the rest is answered the same way.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::answers::AnswerTable;
use crate::counters::{Counters, Rcode};
use crate::wire::{
    self, CLASS_IN, EdnsInfo, FLAG_AA, FLAG_QR, FLAG_TC, HEADER_LEN, NAME_BYTES_MAX, Query,
    TYPE_AXFR, TYPE_IXFR, be16, push_header, push_opt, put16,
};

/// Classic DNS UDP payload limit without EDNS (RFC 1035 §4.2.1).
pub(crate) const UDP_PAYLOAD_CLASSIC: usize = 512;
/// Largest TCP message.
pub(crate) const TCP_MESSAGE_MAX: usize = 65_535;

/// Where the response goes, which decides its size limit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    /// UDP; our largest EDNS payload.
    Udp {
        /// `edns_udp_payload_max` from the config.
        payload_max: u16,
    },
    /// TCP (length-prefixed, up to 64 KiB).
    Tcp,
}

impl Transport {
    fn limit(self, edns: Option<EdnsInfo>) -> usize {
        match (self, edns) {
            (Transport::Tcp, _) => TCP_MESSAGE_MAX,
            (Transport::Udp { .. }, None) => UDP_PAYLOAD_CLASSIC,
            (Transport::Udp { payload_max }, Some(e)) => {
                usize::from(e.payload.min(payload_max)).max(UDP_PAYLOAD_CLASSIC)
            }
        }
    }

    fn opt_payload(self) -> u16 {
        match self {
            Transport::Udp { payload_max } => payload_max,
            Transport::Tcp => u16::MAX,
        }
    }
}

/// Answers `packet` into `out` (cleared first); returns false when nothing
/// should be sent.
pub(crate) fn handle(
    table: &AnswerTable,
    packet: &[u8],
    out: &mut Vec<u8>,
    tr: Transport,
    c: &Counters,
) -> bool {
    out.clear();
    let mut lower = [0u8; NAME_BYTES_MAX];
    if let Some(q) = wire::parse_query(packet, &mut lower) {
        let rcode = answer(table, &q, &lower[..q.name_len()], out, tr);
        c.count(q.qtype, rcode, false);
        return true;
    }
    general(table, packet, out, tr, c)
}

/// Answers a parsed single question from the prepared table.
pub(crate) fn answer(
    table: &AnswerTable,
    q: &Query<'_>,
    lower: &[u8],
    out: &mut Vec<u8>,
    tr: Transport,
) -> Rcode {
    let rcode = if q.qclass != CLASS_IN || q.qtype == TYPE_AXFR || q.qtype == TYPE_IXFR {
        // Other classes are not ours; zone transfers only over TCP (axfr.rs).
        header_only(out, q, Rcode::Refused, 0)
    } else if let Some(name) = table.name(lower) {
        out.extend_from_slice(name.select(q.qtype));
        out[..2].copy_from_slice(&q.id.to_be_bytes());
        out[2] |= (q.echo_flags >> 8) as u8;
        out[3] |= q.echo_flags as u8;
        out[HEADER_LEN..HEADER_LEN + q.question.len()].copy_from_slice(q.question);
        Rcode::from_wire(out[3] & 0xf)
    } else if let Some(soa) = table.enclosing_zone(lower) {
        let r = header_only(out, q, Rcode::NxDomain, 1);
        out.extend_from_slice(soa);
        r
    } else {
        header_only(out, q, Rcode::Refused, 0)
    };
    finish(out, q, tr);
    rcode
}

/// Header and question; AA is set for our own NXDOMAIN answers.
fn header_only(out: &mut Vec<u8>, q: &Query<'_>, rcode: Rcode, ns: u16) -> Rcode {
    let aa = if rcode == Rcode::NxDomain { FLAG_AA } else { 0 };
    push_header(out, q.id, FLAG_QR | aa | q.echo_flags | rcode.wire(), 1, ns);
    out.extend_from_slice(q.question);
    rcode
}

/// Adds OPT when the query had one and truncates to the transport's limit
/// (TC set, records dropped, so the client retries over TCP).
fn finish(out: &mut Vec<u8>, q: &Query<'_>, tr: Transport) {
    let Some(edns) = q.edns else {
        truncate_to(out, q, tr.limit(None));
        return;
    };
    push_opt(out, tr.opt_payload(), edns.dnssec_ok, 0);
    if out.len() > tr.limit(Some(edns)) {
        truncate_to(out, q, 0);
        push_opt(out, tr.opt_payload(), edns.dnssec_ok, 0);
    }
}

fn truncate_to(out: &mut Vec<u8>, q: &Query<'_>, limit: usize) {
    if out.len() <= limit {
        return;
    }
    out.truncate(HEADER_LEN + q.question.len());
    let flags = be16(out, 2) | FLAG_TC;
    put16(out, 2, flags);
    for at in [6, 8, 10] {
        put16(out, at, 0);
    }
}

/// The general path for anything the fast parser declined.
fn general(
    table: &AnswerTable,
    packet: &[u8],
    out: &mut Vec<u8>,
    tr: Transport,
    c: &Counters,
) -> bool {
    if packet.len() < HEADER_LEN || packet[2] & 0x80 != 0 {
        // No header to answer with, or a response: dropping avoids loops.
        c.dropped();
        return false;
    }
    let id = be16(packet, 0);
    let echo = be16(packet, 2) & (wire::FLAG_RD | wire::FLAG_CD | 0x7800);
    if !counts_fit(packet) {
        return error_reply(out, id, echo, Rcode::FormErr, c);
    }
    let msg = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(_) => return error_reply(out, id, echo, Rcode::FormErr, c),
    };
    if msg.metadata.message_type != MessageType::Query {
        c.dropped();
        return false;
    }
    if msg.metadata.op_code != OpCode::Query {
        return error_reply(out, id, echo, Rcode::NotImp, c);
    }
    let [query] = msg.queries.as_slice() else {
        return error_reply(out, id, echo, Rcode::FormErr, c);
    };
    let mut question = Vec::with_capacity(NAME_BYTES_MAX + 4);
    let mut lower = Vec::with_capacity(NAME_BYTES_MAX);
    if encode_question(query, &mut question, &mut lower).is_err() {
        return error_reply(out, id, echo, Rcode::FormErr, c);
    }
    let edns = msg.edns.as_ref().map(|e| EdnsInfo {
        payload: e.max_payload(),
        dnssec_ok: e.flags().dnssec_ok,
    });
    let q = Query {
        id,
        echo_flags: echo & (wire::FLAG_RD | wire::FLAG_CD),
        question: &question,
        qtype: u16::from(query.query_type()),
        qclass: u16::from(query.query_class()),
        edns,
    };
    let version = msg.edns.as_ref().map_or(0, |e| e.version());
    let rcode = if version != 0 {
        bad_version(out, &q, tr)
    } else {
        answer(table, &q, &lower, out, tr)
    };
    c.count(q.qtype, rcode, false);
    true
}

/// Whether the header's counts could fit the packet (a question takes at
/// least 5 bytes, a record 11). hickory-proto sizes its vectors from the
/// counts, so a 12-byte packet claiming 65535 questions must stop here.
fn counts_fit(packet: &[u8]) -> bool {
    let qd = usize::from(be16(packet, 4));
    let rr =
        usize::from(be16(packet, 6)) + usize::from(be16(packet, 8)) + usize::from(be16(packet, 10));
    qd * 5 + rr * 11 <= packet.len() - HEADER_LEN
}

/// Question bytes as sent (case kept) and the lowercase name.
fn encode_question(
    query: &hickory_proto::op::Query,
    question: &mut Vec<u8>,
    lower: &mut Vec<u8>,
) -> Result<(), ()> {
    let mut enc = BinEncoder::new(question);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    query.emit(&mut enc).map_err(|_| ())?;
    let mut enc = BinEncoder::new(lower);
    enc.set_name_encoding(NameEncoding::UncompressedLowercase);
    query.name().emit(&mut enc).map_err(|_| ())
}

/// RFC 6891 §6.1.3: unknown EDNS version → BADVERS (16) with an OPT of ours.
fn bad_version(out: &mut Vec<u8>, q: &Query<'_>, tr: Transport) -> Rcode {
    let badvers = u16::from(ResponseCode::BADVERS);
    push_header(out, q.id, FLAG_QR | q.echo_flags | (badvers & 0xf), 1, 0);
    out.extend_from_slice(q.question);
    push_opt(out, tr.opt_payload(), false, (badvers >> 4) as u8);
    Rcode::BadVers
}

/// A header-only error response (no question: it may be what was wrong).
fn error_reply(out: &mut Vec<u8>, id: u16, echo: u16, rcode: Rcode, c: &Counters) -> bool {
    push_header(out, id, FLAG_QR | echo | rcode.wire(), 0, 0);
    c.count(0, rcode, true);
    true
}

#[cfg(test)]
// Tests start from the defaults and change one field: that is the point.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use hickory_proto::op::{Edns, Message, Query as HQuery};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::config::DnsConfig;
    use crate::records::{ZoneSet, build_zones};
    use crate::snapshot::ZoneSnapshot;

    const UDP: Transport = Transport::Udp { payload_max: 1232 };

    fn table(config: &DnsConfig) -> AnswerTable {
        let zones = build_zones(
            &ZoneSnapshot::serving(
                ["pool.test"].map(|d| tempmx_store::Domain::parse(d).expect("test domain")),
            ),
            config,
            &ZoneSet::default(),
            1,
        )
        .zones;
        AnswerTable::build(zones).expect("build")
    }

    fn run(t: &AnswerTable, packet: &[u8], tr: Transport) -> Option<Message> {
        let mut out = Vec::new();
        let c = Counters::default();
        handle(t, packet, &mut out, tr, &c)
            .then(|| Message::from_vec(&out).expect("our answer parses"))
    }

    fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 0xbeef;
        m.metadata.recursion_desired = true;
        m.add_query(HQuery::query(Name::from_ascii(name).expect("name"), rtype));
        if let Some(p) = edns {
            let mut e = Edns::new();
            e.set_max_payload(p);
            m.set_edns(e);
        }
        m.to_vec().expect("encode")
    }

    // Goal: the rcode of each kind of question, through both parsers (the
    // second packet of each pair has a trailing byte the fast path refuses).
    #[test]
    fn rcodes_fast_and_general() {
        let t = table(&DnsConfig::default());
        let cases = [
            ("pool.test.", RecordType::MX, ResponseCode::NoError, 1),
            ("POOL.test.", RecordType::AAAA, ResponseCode::NoError, 0),
            ("nx.pool.test.", RecordType::MX, ResponseCode::NXDomain, 0),
            (
                "pool.test.evil.example.",
                RecordType::MX,
                ResponseCode::Refused,
                0,
            ),
            ("pool.test.", RecordType::AXFR, ResponseCode::Refused, 0),
        ];
        for (name, rtype, rcode, answers) in cases {
            let fast = query(name, rtype, None);
            let mut slow = query(name, rtype, None);
            slow[11] = 0; // keep counts; the general path tolerates trailing bytes
            slow.push(0);
            for p in [fast, slow] {
                let m = run(&t, &p, UDP).expect("answered");
                assert_eq!(
                    (m.metadata.response_code, m.answers.len()),
                    (rcode, answers),
                    "{name} {rtype}"
                );
                assert_eq!(m.metadata.id, 0xbeef);
                assert!(m.metadata.recursion_desired);
                assert_eq!(m.queries[0].name().to_ascii(), name, "question case echoed");
            }
        }
    }

    // Goal: EDNS is echoed; an unknown version gets BADVERS; NOTIFY gets
    // NOTIMP; garbage gets FORMERR; responses and short packets are dropped.
    #[test]
    fn unusual_messages() {
        let t = table(&DnsConfig::default());
        let m = run(&t, &query("pool.test.", RecordType::MX, Some(4096)), UDP).expect("edns");
        assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));
        let mut v1 = query("pool.test.", RecordType::MX, Some(4096));
        let len = v1.len();
        v1[len - 5] = 1; // OPT version byte
        let m = run(&t, &v1, UDP).expect("badvers");
        // 16 is both BADVERS and BADSIG; hickory decodes it as the latter.
        assert_eq!(u16::from(m.metadata.response_code), 16);
        assert_eq!(m.metadata.response_code.low(), 0);
        let mut notify = query("pool.test.", RecordType::SOA, None);
        notify[2] = (notify[2] & !0x78) | (4 << 3);
        assert_eq!(
            run(&t, &notify, UDP)
                .expect("notimp")
                .metadata
                .response_code,
            ResponseCode::NotImp
        );
        let garbage = [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, b'x'];
        assert_eq!(
            run(&t, &garbage, UDP)
                .expect("formerr")
                .metadata
                .response_code,
            ResponseCode::FormErr
        );
        let mut resp = query("pool.test.", RecordType::MX, None);
        resp[2] |= 0x80;
        assert!(run(&t, &resp, UDP).is_none());
        assert!(run(&t, &[1, 2, 3], UDP).is_none());
    }

    // Goal: an answer larger than 512 bytes is truncated for a non-EDNS UDP
    // client, sent whole to an EDNS client and over TCP.
    #[test]
    fn truncation_at_the_limit() {
        let mut config = DnsConfig::default();
        config.mx_hosts = (0..16)
            .map(|i| crate::config::MxHost {
                priority: i,
                host: format!("mx{i}-with-a-long-host-name.tempmx.test"),
            })
            .collect();
        let t = table(&config);
        let m = run(&t, &query("pool.test.", RecordType::MX, None), UDP).expect("tc");
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        let m = run(&t, &query("pool.test.", RecordType::MX, Some(1232)), UDP).expect("edns");
        assert_eq!((m.metadata.truncation, m.answers.len()), (false, 16));
        let m = run(&t, &query("pool.test.", RecordType::MX, Some(600)), UDP).expect("edns small");
        assert!(m.metadata.truncation && m.edns.is_some());
        let m = run(
            &t,
            &query("pool.test.", RecordType::MX, None),
            Transport::Tcp,
        )
        .expect("tcp");
        assert_eq!(m.answers.len(), 16);
    }
}
