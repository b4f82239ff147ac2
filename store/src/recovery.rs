//! Start-up scan of a shard file: validate every frame, rebuild the index.
//!
//! The shard's parts file has been scanned before (`Parts::scan`); a record whose shared
//! chunks name a part that is not there is skipped like a corrupt one, and every other
//! record holds its parts, so `Parts::finish_recovery` can then zero the unreferenced ones.

use std::borrow::Cow;

use crate::address::fold_stored;
use crate::frame::{self, FrameKind, HEADER_BYTES, Header, HeaderError};
use crate::id::IdGen;
use crate::journal::Tombs;
use crate::record::{self, ArchivedChunk};
use crate::shard::{SegMeta, Shard};
use crate::stats::{Reclaim, RecoveryReport};

/// A valid record, or a tombstone that kept its id, found by the scan.
struct Found {
    loc: u32,
    id: u64,
    expires_ms: u64,
    mailboxes: Vec<String>,
    /// A tombstone that kept its id (it joins the scan's id-order check only).
    deleted: bool,
    /// Whether it references deduplicated parts (it holds one reference per such chunk).
    parts: bool,
}

/// Scans all segments of `sh`, rebuilds its ring order and index; `hash` names mailboxes.
/// Copies the journal deleted (`tombs`) stay out of the index; a record left with no
/// mailbox is zeroed, as the deletion did before the restart.
pub(crate) fn recover(
    sh: &mut Shard,
    shard: usize,
    now_ms: u64,
    hash: &dyn Fn(&str) -> u64,
    tombs: &Tombs,
    rep: &mut RecoveryReport,
) {
    let mut per_seg: Vec<(usize, Vec<Found>)> = Vec::new();
    for s in 0..sh.segs.len() {
        sh.segs[s] = SegMeta::default();
        let found = scan_segment(sh, s, rep);
        if found.is_empty() {
            zero_if_dirty(sh, s, 0, rep);
            sh.segs[s] = SegMeta::default();
        } else {
            per_seg.push((s, found));
        }
    }
    per_seg.sort_by_key(|(s, _)| sh.segs[*s].first_id);
    rep.segments_with_data += per_seg.len() as u64;
    sh.used = per_seg.iter().map(|(s, _)| *s).collect();
    sh.free = (0..sh.segs.len())
        .filter(|s| !sh.used.contains(s))
        .rev()
        .collect();
    if sh.used.is_empty() {
        sh.used.push_back(sh.free.pop().unwrap_or(0));
    }
    let mut last_id = 0;
    for f in per_seg.into_iter().flat_map(|(_, v)| v) {
        last_id = last_id.max(f.id);
        // A tombstone only keeps its id, for the ordering checks of the scan.
        if f.deleted {
            continue;
        }
        if f.expires_ms <= now_ms {
            rep.records_expired += 1;
            release_parts_of(sh, &f);
            continue;
        }
        // Records written before local parts were folded are indexed under the mailbox
        // their recipient folds to, so the mailbox's owner finds them.
        let kept: Vec<Cow<'_, str>> = f
            .mailboxes
            .iter()
            .map(|m| fold_stored(m))
            .filter(|m| !tombs.hides(shard, f.id, m))
            .collect();
        rep.copies_deleted += (f.mailboxes.len() - kept.len()) as u64;
        if kept.is_empty() {
            release_parts_of(sh, &f);
            sh.zero_record(f.loc);
            rep.records_deleted += 1;
            continue;
        }
        make_room(sh, kept.len());
        for m in kept {
            sh.counters.evicted_mailbox_cap += sh.index.push(f.id, hash(&m), f.loc, f.parts) as u64;
        }
        rep.records_recovered += 1;
    }
    // Deleted records leave no id behind in the index, but the journal names them.
    sh.ids = IdGen::new(shard, last_id.max(tombs.last_id(shard)));
}

/// Frees index entries (recycling the oldest segments) until `n` fit.
fn make_room(sh: &mut Shard, n: usize) {
    for _ in 0..sh.segs.len() {
        if sh.index.room() >= n {
            break;
        }
        sh.reclaim_oldest(Reclaim::IndexFull);
    }
}

/// Walks one segment's frames; corrupt frames become tombstones, an unreadable tail or one
/// left from the segment's previous use is zeroed.
fn scan_segment(sh: &mut Shard, s: usize, rep: &mut RecoveryReport) -> Vec<Found> {
    let seg = sh.seg_bytes;
    let base = s * seg;
    let mut off = 0;
    let mut found = Vec::new();
    while off + HEADER_BYTES <= seg {
        let at = base + off;
        let hb: [u8; HEADER_BYTES] = match sh.arena.bytes()[at..at + HEADER_BYTES].try_into() {
            Ok(b) => b,
            Err(_) => break,
        };
        let h = match frame::decode(&hb, seg - off - HEADER_BYTES) {
            Ok(h) => h,
            Err(HeaderError::End) => break,
            Err(HeaderError::Corrupt) => {
                rep.records_skipped += 1;
                break;
            }
        };
        let len = frame::frame_bytes(h.len as usize);
        let f = match h.kind {
            FrameKind::Deleted => {
                rep.records_deleted += 1;
                tombstone_of(sh, at, &h)
            }
            FrameKind::Record => {
                let f = check(sh, at, &h);
                if f.is_none() {
                    rep.records_skipped += 1;
                    tombstone(sh, at, &h);
                }
                f
            }
            // Never written to a shard: damage that happens to read as one.
            FrameKind::Compressed => {
                rep.records_skipped += 1;
                tombstone(sh, at, &h);
                None
            }
        };
        if let Some(f) = f {
            // Ids only grow within a segment: an older one is a frame of the segment's
            // previous use whose zeroing never reached the disk (power loss). Nothing
            // after it is from this use.
            if found.last().is_some_and(|p: &Found| f.id <= p.id) {
                rep.records_skipped += 1;
                break;
            }
            hold_parts_of(sh, &f);
            sh.note_frame(s, 0, f.id, f.expires_ms);
            found.push(f);
        }
        off += len;
    }
    sh.segs[s].used = off;
    zero_if_dirty(sh, s, off, rep);
    found
}

fn check(sh: &Shard, at: usize, h: &Header) -> Option<Found> {
    let payload = &sh.arena.bytes()[at + HEADER_BYTES..at + HEADER_BYTES + h.len as usize];
    let a = record::validate(payload, h.crc)?;
    let mut parts = false;
    for c in a.raw.iter() {
        if let ArchivedChunk::Shared { key, len } = c {
            // A part lost to damage (or never made durable) makes the record unreadable.
            if !sh.parts.contains(key.to_native(), len.to_native()) {
                return None;
            }
            parts = true;
        }
    }
    Some(Found {
        loc: (at / 16) as u32,
        id: a.id.to_native(),
        expires_ms: a.expires_at_ms.to_native(),
        mailboxes: a.mailboxes.iter().map(|m| m.to_string()).collect(),
        deleted: false,
        parts,
    })
}

/// The tombstone at `at` if it kept its message id (older ones and those of corrupt
/// frames did not).
fn tombstone_of(sh: &Shard, at: usize, h: &Header) -> Option<Found> {
    let payload = &sh.arena.bytes()[at + HEADER_BYTES..at + HEADER_BYTES + h.len as usize];
    Some(Found {
        loc: (at / 16) as u32,
        id: frame::tombstone_id(payload, h.crc)?,
        expires_ms: 0,
        mailboxes: Vec::new(),
        deleted: true,
        parts: false,
    })
}

/// Part keys of the record at `loc`, one per shared chunk.
fn part_keys(sh: &Shard, loc: u32) -> Vec<u64> {
    sh.record_at(loc).map_or_else(Vec::new, |r| {
        r.raw
            .iter()
            .filter_map(|c| match c {
                ArchivedChunk::Shared { key, .. } => Some(key.to_native()),
                ArchivedChunk::Inline(_) => None,
            })
            .collect()
    })
}

/// A valid record holds its parts from the scan on, so references are counted before
/// anything (index-full recycling, expiry, journal deletions) can release one.
fn hold_parts_of(sh: &mut Shard, f: &Found) {
    if f.parts {
        for k in part_keys(sh, f.loc) {
            sh.parts.hold(k);
        }
    }
}

/// Drops the references of a valid record that is not indexed (expired); parts left
/// without any are zeroed by `Parts::finish_recovery`.
fn release_parts_of(sh: &mut Shard, f: &Found) {
    if f.parts {
        release_parts_at(sh, f.loc);
    }
}

/// Drops the references the record at `loc` holds (before it is zeroed outside
/// `Shard::delete_seq`, which releases them itself).
fn release_parts_at(sh: &mut Shard, loc: u32) {
    for k in part_keys(sh, loc) {
        sh.parts.release(k);
    }
}

fn tombstone(sh: &mut Shard, at: usize, h: &Header) {
    let end = at + frame::frame_bytes(h.len as usize);
    frame::tombstone(&mut sh.arena.bytes_mut()[at..end], h.len, 0);
}

/// Zeroes `[from, segment end)` if anything there is non-zero, so no stale bytes remain.
fn zero_if_dirty(sh: &mut Shard, s: usize, from: usize, rep: &mut RecoveryReport) {
    let range = s * sh.seg_bytes + from..(s + 1) * sh.seg_bytes;
    let tail = &mut sh.arena.bytes_mut()[range];
    if tail.iter().any(|&b| b != 0) {
        rep.bytes_zeroed += tail.len() as u64;
        tail.fill(0);
    }
}
