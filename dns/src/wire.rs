//! Fast-path query parser and the few header bytes we write by hand.
//!
//! It accepts only the common shape: a QUERY with one question, no
//! compression, and at most one OPT record of EDNS version 0. Anything else
//! returns `None` and goes to the general path (hickory-proto's parser).

/// DNS header length.
pub(crate) const HEADER_LEN: usize = 12;
/// Longest wire-format name (RFC 1035 §2.3.4).
pub(crate) const NAME_BYTES_MAX: usize = 255;
/// QCLASS IN.
pub(crate) const CLASS_IN: u16 = 1;
/// OPT pseudo-RR type (RFC 6891).
const TYPE_OPT: u16 = 41;
/// QTYPE IXFR.
pub(crate) const TYPE_IXFR: u16 = 251;
/// QTYPE AXFR.
pub(crate) const TYPE_AXFR: u16 = 252;
/// QTYPE ANY (`*`).
pub(crate) const TYPE_ANY: u16 = 255;

/// Header flag bits (bytes 2..4 as a big-endian u16).
pub(crate) const FLAG_QR: u16 = 0x8000;
/// Authoritative answer.
pub(crate) const FLAG_AA: u16 = 0x0400;
/// Truncated.
pub(crate) const FLAG_TC: u16 = 0x0200;
/// Recursion desired (copied from the query).
pub(crate) const FLAG_RD: u16 = 0x0100;
/// Checking disabled (copied from the query).
pub(crate) const FLAG_CD: u16 = 0x0010;

/// EDNS data of a query that matters for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EdnsInfo {
    /// Requestor's UDP payload size.
    pub payload: u16,
    /// DNSSEC OK bit (copied to the response, RFC 3225).
    pub dnssec_ok: bool,
}

/// A parsed single-question query; `question` is the raw question section
/// (name in the sender's case, type, class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    /// Message id.
    pub id: u16,
    /// RD and CD bits of the query, to copy into the response.
    pub echo_flags: u16,
    /// Question section bytes.
    pub question: &'a [u8],
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// EDNS(0) data, if the query had an OPT record.
    pub edns: Option<EdnsInfo>,
}

impl Query<'_> {
    /// Length of the question name in wire format.
    pub fn name_len(&self) -> usize {
        self.question.len() - 4
    }
}

/// Parses the common query shape; writes the lowercased name to `lower`.
pub(crate) fn parse_query<'a>(
    packet: &'a [u8],
    lower: &mut [u8; NAME_BYTES_MAX],
) -> Option<Query<'a>> {
    let header = packet.get(..HEADER_LEN)?;
    let flags = be16(header, 2);
    let opcode = (flags >> 11) & 0xf;
    let counts = [
        be16(header, 4),
        be16(header, 6),
        be16(header, 8),
        be16(header, 10),
    ];
    if flags & FLAG_QR != 0 || opcode != 0 || counts[..3] != [1, 0, 0] || counts[3] > 1 {
        return None;
    }
    let name_len = lower_name(&packet[HEADER_LEN..], lower)?;
    let q_end = HEADER_LEN + name_len + 4;
    let question = packet.get(HEADER_LEN..q_end)?;
    let edns = match counts[3] {
        0 if packet.len() == q_end => None,
        1 => Some(parse_opt(&packet[q_end..])?),
        _ => return None,
    };
    Some(Query {
        id: be16(header, 0),
        echo_flags: flags & (FLAG_RD | FLAG_CD),
        question,
        qtype: be16(question, name_len),
        qclass: be16(question, name_len + 2),
        edns,
    })
}

/// Copies an uncompressed wire name from the start of `buf` to `lower`,
/// lowercased; returns its length. Length bytes (<= 63) are below b'A', so
/// lowercasing the whole name only touches label letters.
fn lower_name(buf: &[u8], lower: &mut [u8; NAME_BYTES_MAX]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = usize::from(*buf.get(pos)?);
        if len & 0xc0 != 0 {
            return None;
        }
        let end = pos + 1 + len;
        if end > NAME_BYTES_MAX {
            return None;
        }
        let src = buf.get(pos..end)?;
        for (d, s) in lower[pos..end].iter_mut().zip(src) {
            *d = s.to_ascii_lowercase();
        }
        pos = end;
        if len == 0 {
            return Some(pos);
        }
    }
}

/// Parses an OPT record that must fill `rest` exactly; options are ignored
/// (none we implement need an answer, e.g. COOKIE may be ignored, RFC 7873).
fn parse_opt(rest: &[u8]) -> Option<EdnsInfo> {
    if rest.len() < 11 || rest[0] != 0 || be16(rest, 1) != TYPE_OPT {
        return None;
    }
    let version = rest[6];
    let rdlen = usize::from(be16(rest, 9));
    if version != 0 || rest.len() != 11 + rdlen || !options_well_formed(&rest[11..]) {
        return None;
    }
    Some(EdnsInfo {
        payload: be16(rest, 3),
        dnssec_ok: rest[7] & 0x80 != 0,
    })
}

/// EDNS options (code, length, data) must fill the RDATA exactly.
fn options_well_formed(mut opts: &[u8]) -> bool {
    while !opts.is_empty() {
        if opts.len() < 4 {
            return false;
        }
        let end = 4 + usize::from(be16(opts, 2));
        let Some(rest) = opts.get(end..) else {
            return false;
        };
        opts = rest;
    }
    true
}

/// Big-endian u16 at `at`; callers have checked the bounds.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes a big-endian u16 at `at`.
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a response header with QDCOUNT 1 (or 0) and the given counts.
pub(crate) fn push_header(out: &mut Vec<u8>, id: u16, flags: u16, qd: u16, ns: u16) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&qd.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&ns.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

/// Appends an OPT record (EDNS 0) and bumps ARCOUNT; `ext_rcode` is the upper
/// 8 bits of a 12-bit rcode (1 for BADVERS).
pub(crate) fn push_opt(out: &mut Vec<u8>, payload: u16, dnssec_ok: bool, ext_rcode: u8) {
    let ar = be16(out, 10).saturating_add(1);
    put16(out, 10, ar);
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    out.extend_from_slice(&0u16.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_bytes(name: &[u8], qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut v = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            u8::from(opt.is_some()),
        ];
        v.extend_from_slice(name);
        v.extend_from_slice(&qtype.to_be_bytes());
        v.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(o) = opt {
            v.extend_from_slice(o);
        }
        v
    }

    // Goal: the accepted and rejected shapes, one table.
    #[test]
    fn shapes() {
        let name = b"\x02Mx\x04Pool\x04test\x00";
        let opt = [0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0];
        let opt_v1 = [0, 0, 41, 0x10, 0, 0, 1, 0, 0, 0, 0];
        let opt_cookie = [
            0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let mut lower = [0u8; NAME_BYTES_MAX];
        let (plain, edns, cookie) = (
            query_bytes(name, 15, None),
            query_bytes(name, 1, Some(&opt)),
            query_bytes(name, 1, Some(&opt_cookie)),
        );
        let q = parse_query(&plain, &mut lower).expect("plain");
        assert_eq!(
            (q.id, q.qtype, q.qclass, q.echo_flags, q.edns),
            (0x1234, 15, 1, FLAG_RD, None)
        );
        assert_eq!(&lower[..q.name_len()], b"\x02mx\x04pool\x04test\x00");
        let q = parse_query(&edns, &mut lower).expect("edns");
        assert_eq!(
            q.edns,
            Some(EdnsInfo {
                payload: 4096,
                dnssec_ok: true
            })
        );
        let q = parse_query(&cookie, &mut lower).expect("cookie");
        assert_eq!(
            q.edns,
            Some(EdnsInfo {
                payload: 1232,
                dnssec_ok: false
            })
        );
        let rejected: Vec<Vec<u8>> = vec![
            vec![],
            query_bytes(name, 1, None)[..11].to_vec(),
            query_bytes(name, 1, Some(&opt_v1)),
            query_bytes(
                name,
                1,
                Some(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 3, 0, 10, 0]),
            ),
            query_bytes(b"\xc0\x0c", 1, None),
            query_bytes(b"\x02mx", 1, None)[..15].to_vec(),
            [query_bytes(name, 1, None), vec![0]].concat(),
            {
                let mut v = query_bytes(name, 1, None);
                v[2] |= 0x80;
                v
            },
            {
                let mut v = query_bytes(name, 1, None);
                v[2] |= 0x28;
                v
            },
            {
                let mut v = query_bytes(name, 1, None);
                v[5] = 2;
                v
            },
            query_bytes(
                &[
                    &[63u8][..],
                    &[b'a'; 63],
                    &[63],
                    &[b'a'; 63],
                    &[63],
                    &[b'a'; 63],
                    &[63],
                    &[b'a'; 63],
                    &[0],
                ]
                .concat(),
                1,
                None,
            ),
        ];
        for (i, p) in rejected.iter().enumerate() {
            assert!(parse_query(p, &mut lower).is_none(), "case {i}");
        }
    }

    // Goal: OPT appending bumps ARCOUNT and encodes BADVERS's upper bits.
    #[test]
    fn opt_append() {
        let mut out = Vec::new();
        push_header(&mut out, 7, FLAG_QR, 1, 0);
        push_opt(&mut out, 1232, true, 1);
        assert_eq!(be16(&out, 10), 1);
        assert_eq!(&out[12..], &[0, 0, 41, 0x04, 0xd0, 1, 0, 0x80, 0, 0, 0]);
    }
}
