//! tempmx-dns: the authoritative DNS server for the tempmx domain pool.
//!
//! # Why this crate exists
//! Every pool domain needs SOA, NS, MX, SPF and DMARC records (and MTA-STS /
//! TLS-RPT when configured) that follow the control plane's snapshot at once:
//! a retired domain switches to a null MX (RFC 7505) with the next query.
//!
//! # Layout
//! - [`config`]: [`DnsConfig`], every field with a laptop default and a limit.
//! - `snapshot`: [`ZoneSnapshot`], what the control plane publishes.
//! - [`records`]: pure snapshot + config → zones and serials.
//! - `answers`: every response of a snapshot encoded once (hickory-proto).
//! - `wire`: the fast-path query parser and hand-written header bytes.
//! - `respond`: one packet → one response (fast path, then hickory's parser).
//! - `udp`: worker threads, one SO_REUSEPORT socket each, recvmmsg/sendmmsg.
//! - `tcp`, `axfr`: TCP on a small tokio runtime; zone transfers.
//! - `server`: [`start`], [`DnsHandle`] (publish, counters, shutdown).
//! - [`metrics`]: name, help and type of every metric the counters feed.
//!
//! Never an open resolver: names outside our zones get REFUSED.
#![warn(missing_docs)]

mod answers;
mod axfr;
pub mod config;
mod counters;
mod error;
pub mod metrics;
pub mod records;
mod respond;
mod server;
mod snapshot;
mod tcp;
mod udp;
mod wire;

pub use config::{DnsConfig, MtaSts, MxHost, TlsRpt};
pub use counters::DnsCounters;
pub use error::DnsError;
pub use server::{DnsCountersReader, DnsHandle, start};
pub use snapshot::{ZoneSnapshot, ZoneState};

/// Parser internals exposed for the fuzz target and property tests only.
#[doc(hidden)]
pub mod fuzzing {
    /// What the fast-path parser read from a query.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FastQuery {
        /// Message id.
        pub id: u16,
        /// QTYPE.
        pub qtype: u16,
        /// QCLASS.
        pub qclass: u16,
        /// Lowercase wire-format name.
        pub name: Vec<u8>,
        /// EDNS payload size and DO bit.
        pub edns: Option<(u16, bool)>,
    }

    /// Runs the fast-path parser; `Some` when it accepts the packet.
    pub fn parse_fast(packet: &[u8]) -> Option<FastQuery> {
        let mut lower = [0u8; crate::wire::NAME_BYTES_MAX];
        let q = crate::wire::parse_query(packet, &mut lower)?;
        Some(FastQuery {
            id: q.id,
            qtype: q.qtype,
            qclass: q.qclass,
            name: lower[..q.name_len()].to_vec(),
            edns: q.edns.map(|e| (e.payload, e.dnssec_ok)),
        })
    }

    /// Answers `packet` against a fixed one-zone table through the full
    /// UDP response path; returns the response bytes, if any.
    pub fn respond_udp(packet: &[u8]) -> Option<Vec<u8>> {
        use std::sync::OnceLock;
        static TABLE: OnceLock<Option<crate::answers::AnswerTable>> = OnceLock::new();
        let table = TABLE
            .get_or_init(|| {
                let config = crate::DnsConfig::default();
                let snap = crate::ZoneSnapshot::serving(
                    ["tempmx.test", "pool.test"]
                        .map(|d| tempmx_store::Domain::parse(d).expect("test domain")),
                );
                let zones =
                    crate::records::build_zones(&snap, &config, &Default::default(), 1).zones;
                crate::answers::AnswerTable::build(zones).ok()
            })
            .as_ref()?;
        let mut out = Vec::new();
        let c = crate::counters::Counters::default();
        let tr = crate::respond::Transport::Udp { payload_max: 1232 };
        crate::respond::handle(table, packet, &mut out, tr, &c).then_some(out)
    }
}
