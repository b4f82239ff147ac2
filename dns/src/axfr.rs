//! Zone transfers (AXFR, and IXFR answered with the full zone, RFC 1995 §4),
//! over TCP only and only to addresses in `axfr_allow`.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};

use crate::answers::AnswerTable;
use crate::counters::{Counters, Rcode};
use crate::wire::{self, NAME_BYTES_MAX, TYPE_AXFR, TYPE_IXFR};

/// Records per transfer message; 32 records of at most ~1.1 KiB (our longest
/// TXT) stay well under the 64 KiB TCP message limit.
const RECORDS_PER_MESSAGE: usize = 32;

/// Parses `packet` as a transfer request; `None` for any other message.
pub(crate) fn transfer_request(packet: &[u8]) -> Option<Message> {
    let mut lower = [0u8; NAME_BYTES_MAX];
    if let Some(q) = wire::parse_query(packet, &mut lower)
        && q.qtype != TYPE_AXFR
        && q.qtype != TYPE_IXFR
    {
        return None;
    }
    let msg = Message::from_vec(packet).ok()?;
    let is_query =
        msg.metadata.message_type == MessageType::Query && msg.metadata.op_code == OpCode::Query;
    let [q] = msg.queries.as_slice() else {
        return None;
    };
    let transfer = matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR);
    (is_query && transfer).then_some(msg)
}

/// The response messages for a transfer request from `peer`.
pub(crate) fn respond(
    table: &AnswerTable,
    req: &Message,
    peer: IpAddr,
    allow: &[IpAddr],
    c: &Counters,
) -> Vec<Vec<u8>> {
    let query = &req.queries[0];
    let qtype = u16::from(query.query_type());
    let zone = table.zone_set.zones.get(&query.name().to_lowercase());
    let (rcode, records) = match zone {
        _ if query.query_class() != DNSClass::IN => (Rcode::Refused, Vec::new()),
        _ if !allow.contains(&peer) => {
            c.axfr_refused();
            tracing::info!(%peer, zone = %query.name(), "zone transfer refused");
            (Rcode::Refused, Vec::new())
        }
        None => (Rcode::NotAuth, Vec::new()),
        Some(z) => {
            let mut all: Vec<Record> = z.all_records().collect();
            all.push(z.soa_record());
            (Rcode::NoError, all)
        }
    };
    c.count(qtype, rcode, false);
    encode_messages(req, rcode, records)
}

fn encode_messages(req: &Message, rcode: Rcode, records: Vec<Record>) -> Vec<Vec<u8>> {
    let chunks: Vec<&[Record]> = if records.is_empty() {
        vec![&[]]
    } else {
        records.chunks(RECORDS_PER_MESSAGE).collect()
    };
    let mut out = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut m = Message::response(req.metadata.id, OpCode::Query);
        m.metadata.authoritative = rcode == Rcode::NoError;
        m.metadata.response_code = ResponseCode::from(0, rcode.wire() as u8);
        // Only the first message repeats the question (RFC 5936 §2.2).
        if i == 0 {
            m.add_queries(req.queries.iter().cloned());
        }
        m.insert_answers(chunk.to_vec());
        match m.to_vec() {
            Ok(bytes) => out.push(bytes),
            Err(e) => {
                tracing::error!(error = %e, "zone transfer message does not encode");
                return vec![error_message(req)];
            }
        }
    }
    out
}

fn error_message(req: &Message) -> Vec<u8> {
    let mut v = Vec::with_capacity(wire::HEADER_LEN);
    let flags = wire::FLAG_QR | Rcode::ServFail.wire();
    wire::push_header(&mut v, req.metadata.id, flags, 0, 0);
    v
}
