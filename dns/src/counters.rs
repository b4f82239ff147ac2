//! Query counters: one block per UDP worker (written only by it) and one for
//! TCP, summed on read for Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

/// Query types counted separately; everything else is `other`.
const QTYPES: [(u16, &str); 9] = [
    (1, "A"),
    (28, "AAAA"),
    (15, "MX"),
    (2, "NS"),
    (6, "SOA"),
    (16, "TXT"),
    (255, "ANY"),
    (252, "AXFR"),
    (251, "IXFR"),
];
const QTYPE_OTHER: usize = QTYPES.len();

/// Response codes we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rcode {
    /// NOERROR (answers and NODATA).
    NoError,
    /// FORMERR.
    FormErr,
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN.
    NxDomain,
    /// NOTIMP.
    NotImp,
    /// REFUSED.
    Refused,
    /// NOTAUTH (AXFR for a zone we do not serve).
    NotAuth,
    /// BADVERS (EDNS version other than 0).
    BadVers,
}

const RCODES: [(Rcode, &str); 8] = [
    (Rcode::NoError, "NOERROR"),
    (Rcode::FormErr, "FORMERR"),
    (Rcode::ServFail, "SERVFAIL"),
    (Rcode::NxDomain, "NXDOMAIN"),
    (Rcode::NotImp, "NOTIMP"),
    (Rcode::Refused, "REFUSED"),
    (Rcode::NotAuth, "NOTAUTH"),
    (Rcode::BadVers, "BADVERS"),
];

impl Rcode {
    /// The low 4 bits that go in the header.
    pub fn wire(self) -> u16 {
        match self {
            Rcode::NoError | Rcode::BadVers => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::NotAuth => 9,
        }
    }

    /// Maps a header rcode of a prepared answer back (they are 0 or 3).
    pub fn from_wire(v: u8) -> Self {
        RCODES
            .iter()
            .map(|(r, _)| *r)
            .find(|r| r.wire() == u16::from(v) && *r != Rcode::BadVers)
            .unwrap_or(Rcode::ServFail)
    }

    fn index(self) -> usize {
        RCODES.iter().position(|(r, _)| *r == self).unwrap_or(0)
    }
}

/// One writer's counters, on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Counters {
    qtypes: [AtomicU64; QTYPES.len() + 1],
    rcodes: [AtomicU64; RCODES.len()],
    malformed: AtomicU64,
    dropped: AtomicU64,
    tcp_accepted: AtomicU64,
    tcp_rejected: AtomicU64,
    axfr_refused: AtomicU64,
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// Counts one answered query (`malformed`: no question could be read).
    pub fn count(&self, qtype: u16, rcode: Rcode, malformed: bool) {
        if malformed {
            inc(&self.malformed);
        } else {
            let i = QTYPES
                .iter()
                .position(|(t, _)| *t == qtype)
                .unwrap_or(QTYPE_OTHER);
            inc(&self.qtypes[i]);
        }
        inc(&self.rcodes[rcode.index()]);
    }

    /// Counts a packet dropped without an answer.
    pub fn dropped(&self) {
        inc(&self.dropped);
    }

    /// Counts an accepted TCP connection.
    pub fn tcp_accepted(&self) {
        inc(&self.tcp_accepted);
    }

    /// Counts a TCP connection closed at once because of the limit.
    pub fn tcp_rejected(&self) {
        inc(&self.tcp_rejected);
    }

    /// Counts an AXFR refused to a source not on the allow list.
    pub fn axfr_refused(&self) {
        inc(&self.axfr_refused);
    }
}

/// Totals over all workers, for export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsCounters {
    /// Queries by type label (`A`, `MX`, …, `other`).
    pub queries_by_type: Vec<(&'static str, u64)>,
    /// Responses by rcode label (`NOERROR`, `NXDOMAIN`, …).
    pub responses_by_rcode: Vec<(&'static str, u64)>,
    /// Messages answered FORMERR/NOTIMP before a question was read.
    pub malformed: u64,
    /// Packets dropped unanswered (responses, runts, oversize datagrams).
    pub dropped: u64,
    /// TCP connections accepted.
    pub tcp_connections_accepted: u64,
    /// TCP connections closed at once because `tcp_connections_max` was reached.
    pub tcp_connections_rejected: u64,
    /// AXFR requests refused (source not in `axfr_allow`).
    pub axfr_refused: u64,
    /// Zones currently served.
    pub zones: u64,
    /// Snapshot domains not served (bad name, duplicate, over `zones_max`).
    pub domains_rejected: u64,
}

impl DnsCounters {
    /// Sums the given blocks.
    pub(crate) fn sum<'a>(blocks: impl Iterator<Item = &'a Counters>) -> Self {
        let mut qtypes = [0u64; QTYPES.len() + 1];
        let mut rcodes = [0u64; RCODES.len()];
        let mut out = DnsCounters::default();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for b in blocks {
            qtypes
                .iter_mut()
                .zip(&b.qtypes)
                .for_each(|(s, a)| *s += get(a));
            rcodes
                .iter_mut()
                .zip(&b.rcodes)
                .for_each(|(s, a)| *s += get(a));
            out.malformed += get(&b.malformed);
            out.dropped += get(&b.dropped);
            out.tcp_connections_accepted += get(&b.tcp_accepted);
            out.tcp_connections_rejected += get(&b.tcp_rejected);
            out.axfr_refused += get(&b.axfr_refused);
        }
        let labels = QTYPES
            .iter()
            .map(|(_, l)| *l)
            .chain(std::iter::once("other"));
        out.queries_by_type = labels.zip(qtypes).collect();
        out.responses_by_rcode = RCODES.iter().map(|(_, l)| *l).zip(rcodes).collect();
        out
    }

    /// The count for one query type label (0 if unknown).
    pub fn queries(&self, qtype: &str) -> u64 {
        self.queries_by_type
            .iter()
            .find(|(l, _)| *l == qtype)
            .map_or(0, |(_, n)| *n)
    }

    /// The count for one rcode label (0 if unknown).
    pub fn responses(&self, rcode: &str) -> u64 {
        self.responses_by_rcode
            .iter()
            .find(|(l, _)| *l == rcode)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: counts land in the right labels and sum across blocks.
    #[test]
    fn sums() {
        let a = Counters::default();
        let b = Counters::default();
        a.count(15, Rcode::NoError, false);
        b.count(15, Rcode::NxDomain, false);
        b.count(99, Rcode::Refused, false);
        b.count(0, Rcode::FormErr, true);
        b.dropped();
        let s = DnsCounters::sum([&a, &b].into_iter());
        assert_eq!((s.queries("MX"), s.queries("other")), (2, 1));
        assert_eq!(
            (
                s.responses("NOERROR"),
                s.responses("NXDOMAIN"),
                s.responses("FORMERR")
            ),
            (1, 1, 1)
        );
        assert_eq!((s.malformed, s.dropped), (1, 1));
        assert_eq!(Rcode::from_wire(3), Rcode::NxDomain);
        assert_eq!(Rcode::from_wire(0), Rcode::NoError);
    }
}
