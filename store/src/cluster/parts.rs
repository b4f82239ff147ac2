//! Parts stored once in the cluster: the body of a message to several mailboxes, and large
//! MIME parts across messages, each under a content-addressed key in a slot of its own
//! (`tmx:{p:<key>}`), referenced by the per-mailbox records as [`Chunk::Shared`].
//!
//! The key is the first 64 bits of the part's SHA-256, so nobody can make a part that
//! takes another's key short of a 2^64 search; the `tempmx_part` function still compares
//! the bytes when the key exists (a collision is refused, never served). A part's value is
//! a 24-byte header (magic, length, CRC32C of the data, version, the key) and the data,
//! as it is (version 1) or as an LZ4 block (version 2, when `compress` is on and that
//! saves at least 64 bytes); readers check all of it, after decompression, and a missing
//! or damaged part fails the read. When the key holds the other encoding, `tempmx_part`
//! cannot compare (Lua has no LZ4): the writer reads the stored value back and compares
//! the data itself.
//!
//! A batch writes its parts before its records (the records name them, so a reader woken
//! by the record's SPUBLISH finds them) in one round, each with the latest default expiry
//! (`now + ttl_secs`) of the messages naming it (`SET NX PXAT`, or `PEXPIREAT … GT` when
//! it is already there); no TTL override is read first. `tempmx_put` answers each record's
//! real expiry, and a part that a record outlives (a longer override) is moved to it
//! (`PEXPIREAT … GT`) before the message is acknowledged, so a part lives at least as long
//! as the longest-lived message naming it. A part of messages only to mailboxes with a
//! shorter override lives to the default expiry (memory held longer, never a part gone
//! early).
//!
//! [`Chunk::Shared`]: crate::record::Chunk::Shared

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use futures_util::future::join_all;
use parking_lot::RwLock;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;

use super::codec::{append_block, expand_into, expandable};
use super::functions::{Function, fcall};
use super::routing::SlotMap;
use super::{Ack, ClusterError, ClusterOptions, PREFIX};
use crate::mime::Piece;
use crate::record::ChunkPlan;

/// Default smallest MIME part (or single-part body) stored as a shared part.
pub const PART_BYTES_MIN: usize = 4096;
/// Smallest run of inline bytes of a message to several mailboxes stored once for all of
/// them; below it the per-mailbox copies cost less than a key of its own.
pub const RUN_BYTES_MIN: usize = 1024;

const MAGIC: [u8; 4] = *b"TMXP";
/// Bytes before a part's data: magic, length, CRC32C, version, reserved, key.
pub const HEADER_BYTES: usize = 24;
/// The data as it is.
const VERSION_PLAIN: u16 = 1;
/// The data as an LZ4 block (length and CRC are the data's own, checked after
/// decompression).
const VERSION_LZ4: u16 = 2;
/// `tempmx_part`'s answer when the part is there as other bytes under a matching header
/// (the other encoding, or another LZ4 output of the same data): the caller compares the
/// data.
const OTHER_ENCODING: i64 = 2;

/// One shared part of a message as the write path sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Part {
    /// Content key (as in the record's chunk).
    pub(crate) key: u64,
    /// The value: header and data.
    pub(crate) value: Vec<u8>,
}

/// The content key of `data`: the first 64 bits of its SHA-256.
pub(crate) fn content_key(data: &[u8]) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut first = [0u8; 8];
    first.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// The key of part `key`: `tmx:{p:<16 hex>}`, a slot of its own.
pub fn part_key(key: u64) -> String {
    format!("{PREFIX}{{p:{key:016x}}}")
}

/// The stored value of `data` under content key `key`: LZ4-compressed with `compress`
/// when that saves enough, else as it is.
fn encode(key: u64, data: &[u8], compress: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_BYTES + data.len());
    v.extend_from_slice(&MAGIC);
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&crate::crc::crc32c(data).to_le_bytes());
    v.extend_from_slice(&VERSION_PLAIN.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&key.to_le_bytes());
    if compress && append_block(data, &mut v) {
        v[12..14].copy_from_slice(&VERSION_LZ4.to_le_bytes());
    } else {
        v.extend_from_slice(data);
    }
    v
}

/// The data of part `key` of `len` bytes read back as `value` from `name`, checked:
/// header, length, CRC and key (after decompression when it is stored compressed);
/// anything else is [`ClusterError::Corrupt`]. Plain data keeps `value`'s allocation.
pub(crate) fn open(
    mut value: Vec<u8>,
    key: u64,
    len: u32,
    name: &str,
) -> Result<Vec<u8>, ClusterError> {
    let corrupt = || ClusterError::Corrupt {
        key: name.to_owned(),
    };
    let (head, stored) = value.split_at_checked(HEADER_BYTES).ok_or_else(corrupt)?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let stored_key = u64::from_le_bytes(head[16..24].try_into().map_err(|_| corrupt())?);
    let version = u16::from_le_bytes([head[12], head[13]]);
    let crc = word(8);
    let ok = head[0..4] == MAGIC && word(4) == len && head[14..16] == [0, 0] && stored_key == key;
    if !ok {
        return Err(corrupt());
    }
    let data = match version {
        VERSION_PLAIN if stored.len() == len as usize => {
            value.drain(..HEADER_BYTES);
            value
        }
        // The length is the record's own (bounded by the record); still, nothing damaged
        // gets more than LZ4 could expand the stored block to.
        VERSION_LZ4 if expandable(len as usize, stored.len()) => {
            let mut data = vec![0; len as usize];
            if !expand_into(stored, &mut data) {
                return Err(corrupt());
            }
            data
        }
        _ => return Err(corrupt()),
    };
    if crate::crc::crc32c(&data) == crc {
        Ok(data)
    } else {
        Err(corrupt())
    }
}

/// Whether the stored part value `have` holds the same data as our value `ours` of part
/// `key`, whichever encoding each is in; a damaged stored value is not the same.
fn same_data(have: Vec<u8>, ours: &[u8], key: u64) -> bool {
    let Some(len) = ours.get(4..8).and_then(|b| b.try_into().ok()) else {
        return false;
    };
    let len = u32::from_le_bytes(len);
    match (open(have, key, len, ""), open(ours.to_vec(), key, len, "")) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Plans a message's raw chunks into `out` and its shared parts into `parts`: the trace
/// headers first (inline), then the body's `pieces` in order. Shareable pieces (the MIME
/// scan marks those of at least the part threshold) become shared parts; with `multi` (a
/// message to several mailboxes) so do runs of inline pieces of [`RUN_BYTES_MIN`] or more,
/// so every mailbox's record holds only what differs (nothing) and the references.
pub(crate) fn plan(
    body: &[u8],
    pieces: &[Piece],
    trace: bool,
    multi: bool,
    compress: bool,
    out: &mut Vec<ChunkPlan>,
    parts: &mut Vec<Part>,
) -> Result<(), ClusterError> {
    out.clear();
    parts.clear();
    let mut p = Planner {
        body,
        out,
        parts,
        trace,
        compress,
    };
    let mut run = 0..0;
    for piece in pieces {
        if piece.shared {
            p.inline(std::mem::replace(&mut run, 0..0), multi)?;
            p.shared(piece.range.clone())?;
        } else if run.is_empty() {
            run = piece.range.clone();
        } else {
            run.end = piece.range.end;
        }
    }
    p.inline(run, multi)?;
    if p.out.is_empty() {
        p.out.push(ChunkPlan::Inline {
            trace: false,
            body: 0..0,
        });
    }
    Ok(())
}

struct Planner<'a> {
    body: &'a [u8],
    out: &'a mut Vec<ChunkPlan>,
    parts: &'a mut Vec<Part>,
    /// Whether the trace headers still wait for their inline chunk.
    trace: bool,
    /// Whether parts are stored compressed where that saves memory.
    compress: bool,
}

impl Planner<'_> {
    /// Ends an inline run: shared when `multi` and long enough, else inline (with the
    /// trace headers if they are still pending).
    fn inline(&mut self, run: Range<usize>, multi: bool) -> Result<(), ClusterError> {
        if multi && run.len() >= RUN_BYTES_MIN {
            return self.shared(run);
        }
        if self.trace || !run.is_empty() {
            self.out.push(ChunkPlan::Inline {
                trace: std::mem::take(&mut self.trace),
                body: run,
            });
        }
        Ok(())
    }

    /// A shared chunk of `range` (the trace headers, if pending, go inline before it).
    fn shared(&mut self, range: Range<usize>) -> Result<(), ClusterError> {
        if self.trace {
            self.out.push(ChunkPlan::Inline {
                trace: true,
                body: 0..0,
            });
            self.trace = false;
        }
        let data = &self.body[range];
        let len = u32::try_from(data.len())
            .map_err(|_| ClusterError::Encode(format!("a part of {} bytes", data.len())))?;
        let key = content_key(data);
        self.out.push(ChunkPlan::Shared { key, len });
        if !self.parts.iter().any(|q| q.key == key) {
            self.parts.push(Part {
                key,
                value: encode(key, data, self.compress),
            });
        }
        Ok(())
    }
}

/// What the parts step of a batch needs of one message.
pub(crate) struct JobParts<'a> {
    /// The message's shared parts.
    pub(crate) parts: &'a [Part],
    /// When it was accepted (ms), the base of its expiry.
    pub(crate) now_ms: u64,
}

/// What [`write`] did: one result per job (a job whose parts are not all stored must not
/// write its records), and the expiry each distinct part was written with.
pub(crate) struct Written {
    /// Per job, in order.
    pub(crate) results: Vec<Result<(), ClusterError>>,
    /// Per part key, the expiry (ms) sent for it: the latest default expiry of the
    /// messages naming it.
    pub(crate) expiry: HashMap<u64, u64>,
    /// Sequential rounds spent (0 without parts; 1, or 2 with `replicas:N`).
    pub(crate) rounds: usize,
}

/// Writes the shared parts of a batch before its records, each distinct part once (one
/// `FCALL tempmx_part` per part, all at once) expiring with the latest default expiry
/// (`now_ms + ttl_secs`) of the messages naming it, and with `ack = replicas:N` one
/// `WAIT N` per primary of those parts. A mailbox whose TTL override gives a record a later
/// expiry has its parts moved later by [`extend`] once the records are stored. Jobs
/// without parts cost nothing.
pub(crate) async fn write(
    conn: &ClusterConnection,
    map: &RwLock<SlotMap>,
    jobs: &[JobParts<'_>],
    opts: &ClusterOptions,
) -> Written {
    let mut results: Vec<Result<(), ClusterError>> = jobs.iter().map(|_| Ok(())).collect();
    let default_ms = opts.ttl_secs * 1000;
    // Each distinct part once, with the latest default expiry of the messages naming it.
    let mut writes: HashMap<u64, (&[u8], u64)> = HashMap::new();
    for j in jobs {
        let exp = j.now_ms + default_ms;
        for p in j.parts {
            let w = writes.entry(p.key).or_insert((&p.value, exp));
            w.1 = w.1.max(exp);
        }
    }
    let expiry: HashMap<u64, u64> = writes.iter().map(|(&k, &(_, e))| (k, e)).collect();
    if writes.is_empty() {
        return Written {
            results,
            expiry,
            rounds: 0,
        };
    }
    let timeout = opts.timeout;
    let stores = writes.into_iter().map(|(key, (value, exp))| {
        let mut c = conn.clone();
        async move {
            let name = part_key(key);
            let step = async {
                let verdict: i64 = fcall(Function::Part)
                    .arg(1)
                    .arg(&name)
                    .arg(value)
                    .arg(exp)
                    .query_async(&mut c)
                    .await?;
                if verdict != OTHER_ENCODING {
                    return Ok(None);
                }
                // Stored in the other encoding: the data must be ours, compared here.
                redis::cmd("GET")
                    .arg(&name)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
                    .map(Some)
            };
            let res = tokio::time::timeout(timeout, step).await;
            let res = super::sink::flatten(res, timeout).and_then(|have| {
                // `None`: stored or found byte for byte; else the other encoding's value.
                let same = have.is_none_or(|h| h.is_some_and(|h| same_data(h, value, key)));
                if same {
                    Ok(())
                } else {
                    Err(ClusterError::PartCollision { key: name })
                }
            });
            (key, res)
        }
    });
    let mut stored: HashMap<u64, Result<(), ClusterError>> =
        join_all(stores).await.into_iter().collect();
    let mut rounds = 1;
    // With `replicas:N` a part must be on N replicas before any record names it: the
    // records' WAITs cover only their own primaries.
    if let Ack::Replicas(n) = opts.ack {
        wait_slots(conn, map, n, timeout, &mut stored).await;
        rounds += 1;
    }
    for (j, res) in jobs.iter().zip(results.iter_mut()) {
        if let Some(Err(e)) = j
            .parts
            .iter()
            .filter_map(|p| stored.get(&p.key))
            .find(|r| r.is_err())
        {
            *res = Err(e.clone());
        }
    }
    Written {
        results,
        expiry,
        rounds,
    }
}

/// `WAIT n` once per primary of the parts in `out` written so far (`Ok`); a part whose
/// WAIT fell short gets its error there.
async fn wait_slots(
    conn: &ClusterConnection,
    map: &RwLock<SlotMap>,
    n: u32,
    timeout: Duration,
    out: &mut HashMap<u64, Result<(), ClusterError>>,
) {
    // Every part has a slot of its own: grouped by primary (by the slot map; a slot it
    // does not know waits on its own), a batch's parts cost one WAIT per primary.
    let mut primaries: HashMap<Result<String, Slot>, (Slot, Vec<u64>)> = HashMap::new();
    {
        let map = map.read();
        for (&key, _) in out.iter().filter(|(_, r)| r.is_ok()) {
            let slot = Slot::for_key(part_key(key).as_bytes());
            let at = map.primary(slot).map(str::to_owned).ok_or(slot);
            primaries
                .entry(at)
                .or_insert((slot, Vec::new()))
                .1
                .push(key);
        }
    }
    let waits = primaries.into_values().map(|(slot, keys)| async move {
        (
            keys,
            super::sink::wait(conn.clone(), slot, n, timeout).await,
        )
    });
    for (keys, res) in join_all(waits).await {
        if let Err(e) = res {
            for k in keys {
                out.insert(k, Err(e.clone()));
            }
        }
    }
}

/// After a batch's records are stored: every part that a stored record outlives (its
/// mailbox's TTL override is longer than the default) is moved to the latest such
/// record's expiry, one `PEXPIREAT … GT` and `PEXPIRETIME` per part, all at once (with
/// `replicas:N` then one `WAIT N` per primary of those parts). `records[j]` is the latest
/// record expiry of job `j` when all its records are stored, else `None` (nothing to
/// keep). Returns one result per job: a job naming a part that could not be kept long
/// enough must not be acknowledged. Costs nothing when no override is longer.
pub(crate) async fn extend(
    conn: &ClusterConnection,
    map: &RwLock<SlotMap>,
    jobs: &[JobParts<'_>],
    records: &[Option<u64>],
    written: &HashMap<u64, u64>,
    opts: &ClusterOptions,
) -> Vec<Result<(), ClusterError>> {
    let mut results: Vec<Result<(), ClusterError>> = jobs.iter().map(|_| Ok(())).collect();
    let mut wanted: HashMap<u64, u64> = HashMap::new();
    for (j, rec) in jobs.iter().zip(records) {
        let Some(rec) = *rec else { continue };
        for p in j.parts {
            if written.get(&p.key).is_some_and(|&w| rec > w) {
                let e = wanted.entry(p.key).or_insert(rec);
                *e = (*e).max(rec);
            }
        }
    }
    if wanted.is_empty() {
        return results;
    }
    let timeout = opts.timeout;
    let moves = wanted.iter().map(|(&key, &exp)| {
        let mut c = conn.clone();
        async move {
            let name = part_key(key);
            let mut pipe = redis::pipe();
            pipe.cmd("PEXPIREAT").arg(&name).arg(exp).arg("GT");
            pipe.cmd("PEXPIRETIME").arg(&name);
            let route = super::sink::master(Slot::for_key(name.as_bytes()));
            let res = tokio::time::timeout(timeout, c.route_pipeline(pipe, 0, 2, route)).await;
            // The part's expiry now must be at least the wanted one; -2 is a part gone.
            let res = super::sink::flatten(res, timeout).and_then(|replies| match replies.get(1) {
                Some(redis::Value::Int(now)) if u64::try_from(*now).is_ok_and(|t| t >= exp) => {
                    Ok(())
                }
                Some(redis::Value::ServerError(e)) => Err(ClusterError::Command(e.clone().into())),
                _ => Err(ClusterError::PartMissing { key: name }),
            });
            (key, res)
        }
    });
    let mut kept: HashMap<u64, Result<(), ClusterError>> =
        join_all(moves).await.into_iter().collect();
    if let Ack::Replicas(n) = opts.ack {
        wait_slots(conn, map, n, timeout, &mut kept).await;
    }
    for ((j, rec), res) in jobs.iter().zip(records).zip(results.iter_mut()) {
        let Some(rec) = *rec else { continue };
        let failed = j
            .parts
            .iter()
            .filter(|p| written.get(&p.key).is_some_and(|&w| rec > w))
            .filter_map(|p| kept.get(&p.key))
            .find_map(|r| r.as_ref().err());
        if let Some(e) = failed {
            *res = Err(e.clone());
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime;

    fn joined(body: &[u8], trace: &[u8], plan: &[ChunkPlan], parts: &[Part]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in plan {
            match c {
                ChunkPlan::Inline { trace: t, body: r } => {
                    if *t {
                        out.extend_from_slice(trace);
                    }
                    out.extend_from_slice(&body[r.clone()]);
                }
                ChunkPlan::Shared { key, len } => {
                    let p = parts.iter().find(|p| p.key == *key).expect("part planned");
                    let data = open(p.value.clone(), *key, *len, "k").expect("valid part");
                    out.extend_from_slice(&data);
                }
            }
        }
        out
    }

    #[test]
    fn plans_rebuild_the_message_and_share_what_they_should() {
        // Goal: the planned chunks join back to trace + body byte for byte; large MIME
        // parts are shared for one mailbox, and with several mailboxes the inline runs
        // of 1 KiB or more are shared too; a repeated part is sent once. Method: scan
        // real multipart and plain bodies and plan them both ways.
        let att = "QUJD".repeat(2000);
        let body = format!(
            "From: a@b.test\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nhello {}\r\n\
             --b\r\nContent-Type: application/pdf\r\n\r\n{att}\r\n\
             --b\r\nContent-Type: application/pdf\r\n\r\n{att}\r\n--b--\r\n",
            "x".repeat(1500)
        );
        let trace = b"Received: from x\r\n";
        let scan = mime::scan(body.as_bytes(), PART_BYTES_MIN);
        let (mut plan_out, mut parts) = (Vec::new(), Vec::new());
        for multi in [false, true] {
            plan(
                body.as_bytes(),
                &scan.pieces,
                true,
                multi,
                true,
                &mut plan_out,
                &mut parts,
            )
            .expect("plans");
            let mut want = trace.to_vec();
            want.extend_from_slice(body.as_bytes());
            assert_eq!(joined(body.as_bytes(), trace, &plan_out, &parts), want);
            let shared = plan_out
                .iter()
                .filter(|c| matches!(c, ChunkPlan::Shared { .. }))
                .count();
            // The attachment twice (one part), plus with several mailboxes the text run
            // before it and the short runs between and after them (only those >= 1 KiB).
            if multi {
                assert_eq!((shared, parts.len()), (3, 2), "{plan_out:?}");
            } else {
                assert_eq!((shared, parts.len()), (2, 1), "{plan_out:?}");
            }
        }
        // A short plain message stays one inline chunk either way.
        let small = b"Subject: hi\r\n\r\nshort\r\n";
        let scan = mime::scan(small, PART_BYTES_MIN);
        plan(
            small,
            &scan.pieces,
            true,
            true,
            true,
            &mut plan_out,
            &mut parts,
        )
        .expect("plans");
        assert_eq!(
            plan_out,
            vec![ChunkPlan::Inline {
                trace: true,
                body: 0..small.len()
            }]
        );
        assert!(parts.is_empty());
    }

    #[test]
    fn damaged_parts_fail_their_check() {
        // Goal: a part is returned only with its header, length, CRC and key intact,
        // stored plain or compressed (a compressible part is stored compressed, smaller).
        // Method: flip each byte of a stored value in turn, truncate it, name another key.
        for (data, compressed) in [
            (b"part data".repeat(10), false),
            (b"part data, a compressible line of it\r\n".repeat(40), true),
        ] {
            let key = content_key(&data);
            let v = encode(key, &data, true);
            let version = u16::from_le_bytes([v[12], v[13]]);
            assert_eq!(version == VERSION_LZ4, compressed);
            assert_eq!(v.len() < data.len(), compressed);
            let len = data.len() as u32;
            assert_eq!(open(v.clone(), key, len, "k").ok(), Some(data.clone()));
            for i in 0..v.len() {
                let mut bad = v.clone();
                bad[i] ^= 0x20;
                assert!(open(bad, key, len, "k").is_err(), "byte {i}");
            }
            assert!(open(v[..v.len() - 1].to_vec(), key, len, "k").is_err());
            assert!(open(v.clone(), key ^ 1, len, "k").is_err());
            assert!(open(v, key, len + 1, "k").is_err());
        }
        assert_ne!(content_key(b"a"), content_key(b"b"));
        assert!(part_key(0).starts_with("tmx:{p:"));
    }
}
