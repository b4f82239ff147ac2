//! Per-shard table of large MIME parts stored once by content, reference-counted.
//!
//! The key is `crc32c << 32 | len`; a key match is confirmed byte for byte, and a
//! different part with the same key is simply stored inline, so a collision can only
//! cost space, never serve the wrong bytes.
//!
//! Part bytes live in one preallocated region per shard: heap memory in `memory` mode, the
//! memory-mapped file `parts-<shard>.tmx` in `disk` mode (sized to the shard's dedup
//! budget, so a config change is a geometry error like the shard files). The map keeps
//! key -> (offset, length, references); free space is kept by a best-fit allocator over
//! 16-byte units that merges neighbours on free. A part that finds no room (budget or
//! fragmentation) is stored inline, which costs space only. Free space is always zero:
//! a freed part is zeroed at once, so deleted mail does not linger in memory or on disk.
//!
//! Layout (all integers little-endian, everything 16-aligned):
//!
//! ```text
//! file header, bytes 0..16:
//!   0..4 magic b"TMXF" | 4..6 version | 6..8 reserved 0 | 8..12 salt | 12..16 CRC32C of 0..12
//! part frame, 16-byte header then the data, zero-padded to 16:
//!   0..4 magic b"TMXP" | 4..8 data length | 8..12 CRC32C of the data (the key's high half)
//!   12..16 CRC32C of (salt, bytes 0..12)
//! ```
//!
//! The salt is random per file, so a part whose *content* is a copy of a frame (mail can
//! carry anything) never passes the header check when recovery resynchronises after damage.
//!
//! Recovery ([`Parts::scan`], then the records, then [`Parts::finish_recovery`]): every frame
//! whose header and data check out is loaded with no references; a damaged region is
//! skipped and counted, never a panic. Each recovered record then holds a reference on
//! its parts. Parts left without references (orphans of a crash, or of mail deleted or
//! recycled before it) and every byte outside a live part are zeroed, and the free list
//! is rebuilt from what is left.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::path::Path;
use std::sync::Arc;

use memmap2::MmapRaw;

use crate::arena::Arena;
use crate::error::StoreError;
use crate::frame::{frame_bytes, pad16};
use crate::index::{PassThrough, map_bytes};
use crate::stats::RecoveryReport;

/// Bytes counted per part besides its data (map slot, frame header and padding).
pub const PART_OVERHEAD_BYTES: usize = 48;
/// The parts file's header, before the first frame.
const FILE_HEADER_BYTES: usize = 16;
/// A part frame's header.
const PART_HEADER_BYTES: usize = 16;
const FILE_MAGIC: [u8; 4] = *b"TMXF";
const PART_MAGIC: [u8; 4] = *b"TMXP";
/// Parts file format version: bump on any layout change.
const VERSION: u16 = 1;
/// A region smaller than this holds no useful part; dedup is then off for the shard.
const REGION_BYTES_MIN: usize = 4096;

#[derive(Clone, Copy)]
struct Slot {
    /// Offset of the frame header in the region.
    off: usize,
    len: u32,
    refs: u32,
}

impl Slot {
    fn frame(&self) -> usize {
        frame_bytes(self.len as usize)
    }

    fn data(&self) -> std::ops::Range<usize> {
        let start = self.off + PART_HEADER_BYTES;
        start..start + self.len as usize
    }
}

/// Free space of the region as extents of bytes (offsets and lengths multiples of 16).
#[derive(Default)]
struct FreeList {
    by_off: BTreeMap<usize, usize>,
    by_len: BTreeSet<(usize, usize)>,
}

impl FreeList {
    /// Best fit: the smallest extent that holds `size`, split if larger.
    fn alloc(&mut self, size: usize) -> Option<usize> {
        let &(len, off) = self.by_len.range((size, 0)..).next()?;
        self.remove(off, len);
        if len > size {
            self.insert(off + size, len - size);
        }
        Some(off)
    }

    /// Returns an extent, merged with free neighbours so holes do not splinter.
    fn release(&mut self, mut off: usize, mut len: usize) {
        if let Some((&p, &pl)) = self.by_off.range(..off).next_back()
            && p + pl == off
        {
            self.remove(p, pl);
            off = p;
            len += pl;
        }
        if let Some(&nl) = self.by_off.get(&(off + len)) {
            self.remove(off + len, nl);
            len += nl;
        }
        self.insert(off, len);
    }

    fn insert(&mut self, off: usize, len: usize) {
        self.by_off.insert(off, len);
        self.by_len.insert((len, off));
    }

    fn remove(&mut self, off: usize, len: usize) {
        self.by_off.remove(&off);
        self.by_len.remove(&(len, off));
    }
}

/// The part table of one shard.
pub struct Parts {
    /// None when dedup is off for the shard (or its region could not be allocated).
    region: Option<Arena>,
    /// Whether frames are written with headers for recovery (file-backed region).
    durable: bool,
    salt: u32,
    map: HashMap<u64, Slot, BuildHasherDefault<PassThrough>>,
    free: FreeList,
    bytes: usize,
    count_max: usize,
    /// Byte span of frames written since the last commit, which must be synced with it.
    dirty: Option<(usize, usize)>,
    /// While recovery counts references, a part at zero stays for `finish_recovery`.
    recovering: bool,
}

/// What `intern` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interned {
    /// Stored now (first copy).
    New(u64),
    /// Already present; only a reference was added.
    Hit(u64),
    /// Not shareable (no room, or a different part holds the key).
    Inline,
}

impl Parts {
    /// A heap-backed table holding at most `bytes_max` bytes and `count_max` parts.
    pub fn new(bytes_max: usize, count_max: usize) -> Self {
        let len = bytes_max & !15;
        let region = if len >= REGION_BYTES_MIN && count_max > 0 {
            match Arena::heap_on_demand(len) {
                Ok(a) => Some(a),
                Err(e) => {
                    // Dedup is an optimisation: without its region parts are stored inline.
                    tracing::warn!(error = %e, "store part region not allocated; dedup off for this shard");
                    None
                }
            }
        } else {
            None
        };
        Self::over(region, false, 0, count_max)
    }

    /// A table over the file at `path` (`bytes_max` rounded down to 16 bytes); returns
    /// whether the file existed, in which case [`Parts::scan`] must run before use.
    pub(crate) fn file(
        path: &Path,
        bytes_max: usize,
        count_max: usize,
    ) -> Result<(Self, bool), StoreError> {
        let len = bytes_max & !15;
        if len < REGION_BYTES_MIN || count_max == 0 {
            return Ok((Self::over(None, true, 0, 0), false));
        }
        let (arena, existed) = Arena::file(path, len)?;
        let mut p = Self::over(Some(arena), true, fresh_salt(), count_max);
        if !existed {
            p.write_file_header();
        }
        Ok((p, existed))
    }

    fn over(region: Option<Arena>, durable: bool, salt: u32, count_max: usize) -> Self {
        let mut free = FreeList::default();
        let count_max = if region.is_some() { count_max } else { 0 };
        if let Some(r) = &region {
            free.insert(FILE_HEADER_BYTES, r.len() - FILE_HEADER_BYTES);
        }
        Self {
            region,
            durable,
            salt,
            map: HashMap::with_capacity_and_hasher(count_max, BuildHasherDefault::default()),
            free,
            bytes: 0,
            count_max,
            dirty: None,
            recovering: false,
        }
    }

    /// Content key of a part.
    pub fn key(data: &[u8]) -> u64 {
        key_of(crate::crc::crc32c(data), data.len())
    }

    /// Adds a reference to `data`, storing it if new and there is room.
    pub fn intern(&mut self, data: &[u8]) -> Interned {
        let Some(region) = &mut self.region else {
            return Interned::Inline;
        };
        let crc = crate::crc::crc32c(data);
        let key = key_of(crc, data.len());
        if let Some(s) = self.map.get_mut(&key) {
            if region.bytes()[s.data()] == *data && s.refs < u32::MAX {
                s.refs += 1;
                return Interned::Hit(key);
            }
            return Interned::Inline;
        }
        let Ok(len) = u32::try_from(data.len()) else {
            return Interned::Inline;
        };
        if self.map.len() >= self.count_max {
            return Interned::Inline;
        }
        let size = frame_bytes(data.len());
        let Some(off) = self.free.alloc(size) else {
            return Interned::Inline;
        };
        let slot = Slot { off, len, refs: 1 };
        let bytes = region.bytes_mut();
        // Free space is zero, so the padding after the data already is.
        bytes[slot.data()].copy_from_slice(data);
        if self.durable {
            bytes[off..off + PART_HEADER_BYTES].copy_from_slice(&part_header(self.salt, len, crc));
            self.dirty = Some(match self.dirty {
                Some((lo, hi)) => (lo.min(off), hi.max(off + size)),
                None => (off, off + size),
            });
        }
        self.bytes += data.len() + PART_OVERHEAD_BYTES;
        self.map.insert(key, slot);
        Interned::New(key)
    }

    /// Drops one reference; frees the part (its bytes zeroed) at zero.
    pub fn release(&mut self, key: u64) {
        let Some(s) = self.map.get_mut(&key) else {
            return;
        };
        s.refs = s.refs.saturating_sub(1);
        if s.refs > 0 || self.recovering {
            return;
        }
        let s = *s;
        self.map.remove(&key);
        self.bytes -= s.len as usize + PART_OVERHEAD_BYTES;
        if let Some(r) = &mut self.region {
            // Freed space must not keep mail readable, and stays zero for the next part.
            r.bytes_mut()[s.off..s.off + s.frame()].fill(0);
        }
        self.free.release(s.off, s.frame());
    }

    /// Adds a reference to a part already stored (recovery); false if it is not there.
    pub(crate) fn hold(&mut self, key: u64) -> bool {
        match self.map.get_mut(&key) {
            Some(s) if s.refs < u32::MAX => {
                s.refs += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether a part with this key and length is stored.
    pub(crate) fn contains(&self, key: u64, len: u32) -> bool {
        self.map.get(&key).is_some_and(|s| s.len == len)
    }

    /// The bytes of a part.
    pub fn get(&self, key: u64) -> Option<&[u8]> {
        let s = self.map.get(&key)?;
        self.region.as_ref()?.bytes().get(s.data())
    }

    /// References held on a part (tests, stats).
    pub fn refs(&self, key: u64) -> u32 {
        self.map.get(&key).map_or(0, |p| p.refs)
    }

    /// Parts stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no parts are stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes counted against the budget (data plus [`PART_OVERHEAD_BYTES`] per part).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes allocated by the map itself.
    pub fn map_bytes(&self) -> usize {
        map_bytes(self.map.capacity(), 8 + std::mem::size_of::<Slot>())
    }

    /// The byte span `(offset, length)` written since the last call, to sync with the
    /// record that references it.
    pub(crate) fn take_dirty(&mut self) -> Option<(usize, usize)> {
        self.dirty.take().map(|(lo, hi)| (lo, hi - lo))
    }

    /// Syncs a byte range of the parts file (no-op for heap regions).
    pub(crate) fn sync(&self, off: usize, len: usize) -> std::io::Result<()> {
        match &self.region {
            Some(r) => r.sync(off, len),
            None => Ok(()),
        }
    }

    /// The file mapping, for the commit thread (None for heap regions or dedup off).
    pub(crate) fn mapping(&self) -> Option<Arc<MmapRaw>> {
        self.region.as_ref().and_then(Arena::mapping)
    }

    fn write_file_header(&mut self) {
        let salt = self.salt;
        if let Some(r) = &mut self.region {
            r.bytes_mut()[..FILE_HEADER_BYTES].copy_from_slice(&file_header(salt));
        }
    }

    /// First recovery step on an existing file: loads every intact frame with no
    /// references. A damaged file header makes every frame unreadable: the file is then
    /// treated as empty (and zeroed by `finish_recovery`) under a new salt.
    pub(crate) fn scan(&mut self, rep: &mut RecoveryReport) {
        self.recovering = true;
        let Some(region) = &self.region else { return };
        let bytes = region.bytes();
        let Some(salt) = read_file_header(bytes) else {
            if bytes.iter().any(|&b| b != 0) {
                rep.parts_skipped += 1;
                tracing::warn!("store parts file header damaged; its parts are dropped");
            }
            self.write_file_header();
            return;
        };
        self.salt = salt;
        let mut poisoned = HashSet::new();
        let mut off = FILE_HEADER_BYTES;
        let mut in_damage = false;
        while off + PART_HEADER_BYTES <= bytes.len() {
            let hb = &bytes[off..off + PART_HEADER_BYTES];
            if hb.iter().all(|&b| b == 0) {
                in_damage = false;
                off += PART_HEADER_BYTES;
                continue;
            }
            let Some(slot) = read_part(bytes, off, salt) else {
                // Count each damaged run once, then look for the next intact frame.
                if !in_damage {
                    rep.parts_skipped += 1;
                    in_damage = true;
                }
                off += PART_HEADER_BYTES;
                continue;
            };
            in_damage = false;
            off += slot.frame();
            let data = &bytes[slot.data()];
            let key = Self::key(data);
            if poisoned.contains(&key) {
                continue;
            }
            match self.map.get(&key) {
                // A second copy (its free was not yet on disk at the crash) is redundant.
                Some(s) if bytes[s.data()] == *data => rep.parts_orphans_zeroed += 1,
                // Two different parts with one key: which one a record meant is unknown.
                Some(_) => {
                    self.map.remove(&key);
                    poisoned.insert(key);
                    rep.parts_skipped += 2;
                }
                None if self.map.len() >= self.count_max => rep.parts_skipped += 1,
                None => {
                    self.map.insert(key, slot);
                }
            }
        }
    }

    /// Last recovery step: drops parts no record holds, zeroes every byte outside the
    /// live parts and rebuilds the free list. Returns whether anything was zeroed.
    pub(crate) fn finish_recovery(&mut self, rep: &mut RecoveryReport) -> bool {
        self.recovering = false;
        let before = self.map.len();
        self.map.retain(|_, s| s.refs > 0);
        rep.parts_orphans_zeroed += (before - self.map.len()) as u64;
        rep.parts_recovered += self.map.len() as u64;
        let Some(region) = &mut self.region else {
            return false;
        };
        let mut live: Vec<(usize, usize)> = self.map.values().map(|s| (s.off, s.frame())).collect();
        live.sort_unstable();
        self.bytes = self
            .map
            .values()
            .map(|s| s.len as usize + PART_OVERHEAD_BYTES)
            .sum();
        self.free = FreeList::default();
        let end = region.len();
        let bytes = region.bytes_mut();
        let mut zeroed = false;
        let mut at = FILE_HEADER_BYTES;
        for (off, size) in live.into_iter().chain([(end, 0)]) {
            if off > at {
                let gap = &mut bytes[at..off];
                if gap.iter().any(|&b| b != 0) {
                    gap.fill(0);
                    zeroed = true;
                }
                self.free.release(at, off - at);
            }
            at = off + size;
        }
        zeroed
    }
}

fn key_of(crc: u32, len: usize) -> u64 {
    (u64::from(crc) << 32) | (len as u64 & 0xffff_ffff)
}

/// A salt no one outside the process can predict (std's per-process random hash keys).
fn fresh_salt() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one(nanos) as u32
}

fn file_header(salt: u32) -> [u8; FILE_HEADER_BYTES] {
    let mut b = [0u8; FILE_HEADER_BYTES];
    b[0..4].copy_from_slice(&FILE_MAGIC);
    b[4..6].copy_from_slice(&VERSION.to_le_bytes());
    b[8..12].copy_from_slice(&salt.to_le_bytes());
    let crc = crate::crc::crc32c(&b[..12]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

fn read_file_header(bytes: &[u8]) -> Option<u32> {
    let b = bytes.get(..FILE_HEADER_BYTES)?;
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let ok = b[0..4] == FILE_MAGIC
        && b[4..6] == VERSION.to_le_bytes()
        && b[6..8] == [0, 0]
        && crate::crc::crc32c(&b[..12]) == word(12);
    ok.then(|| word(8))
}

fn part_header(salt: u32, len: u32, crc: u32) -> [u8; PART_HEADER_BYTES] {
    let mut b = [0u8; PART_HEADER_BYTES];
    b[0..4].copy_from_slice(&PART_MAGIC);
    b[4..8].copy_from_slice(&len.to_le_bytes());
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    let check = header_check(salt, &b[..12]);
    b[12..16].copy_from_slice(&check.to_le_bytes());
    b
}

fn header_check(salt: u32, head: &[u8]) -> u32 {
    crate::crc::crc32c_append(crate::crc::crc32c(&salt.to_le_bytes()), head)
}

/// The frame at `off` if its header and data check out.
fn read_part(bytes: &[u8], off: usize, salt: u32) -> Option<Slot> {
    let b = bytes.get(off..off + PART_HEADER_BYTES)?;
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if b[0..4] != PART_MAGIC || header_check(salt, &b[..12]) != word(12) {
        return None;
    }
    let len = word(4);
    let end = off
        .checked_add(PART_HEADER_BYTES)?
        .checked_add(pad16(len as usize))?;
    if len == 0 || end > bytes.len() {
        return None;
    }
    let slot = Slot { off, len, refs: 0 };
    (crate::crc::crc32c(&bytes[slot.data()]) == word(8)).then_some(slot)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refcounts_and_budget() {
        // Goal: second copy is a hit; release frees at zero (bytes zeroed); budget goes inline.
        let mut p = Parts::new(8192, 10);
        let a = vec![1u8; 1000];
        let Interned::New(k) = p.intern(&a) else {
            panic!("new")
        };
        assert_eq!(p.intern(&a), Interned::Hit(k));
        assert_eq!(p.refs(k), 2);
        p.release(k);
        assert_eq!(p.get(k), Some(&a[..]));
        p.release(k);
        assert_eq!(p.get(k), None);
        assert_eq!(p.bytes(), 0);
        let region = p.region.as_ref().unwrap().bytes();
        assert!(region.iter().all(|&b| b == 0), "freed part zeroed");
        let big = vec![2u8; 3000];
        assert!(matches!(p.intern(&big), Interned::New(_)));
        assert!(matches!(p.intern(&[3u8; 3000]), Interned::New(_)));
        assert_eq!(p.intern(&[4u8; 3000]), Interned::Inline, "region full");
        assert!(matches!(p.intern(&[5u8; 1000]), Interned::New(_)));
    }

    #[test]
    fn free_list_merges_neighbours() {
        // Goal: freeing the middle of three parts and then its neighbours leaves one extent
        // large enough for a part of all three sizes together. Method: fill, free, refill.
        let mut p = Parts::new(4096, 10);
        let keys: Vec<u64> = (0..3u8)
            .map(|i| match p.intern(&[i + 1; 1200]) {
                Interned::New(k) => k,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(p.intern(&[9u8; 600]), Interned::Inline);
        for k in [keys[1], keys[0], keys[2]] {
            p.release(k);
        }
        assert_eq!(p.free.by_off.len(), 1);
        assert!(matches!(p.intern(&[7u8; 3600]), Interned::New(_)));
    }

    #[test]
    fn collision_is_stored_inline() {
        // Goal: a different part under a stored key is never served; it goes inline.
        let mut p = Parts::new(8192, 10);
        let a = vec![1u8; 500];
        let Interned::New(k) = p.intern(&a) else {
            panic!("new")
        };
        let slot = p.map[&k];
        // Forge the collision by corrupting the stored copy's bytes.
        p.region.as_mut().unwrap().bytes_mut()[slot.off + PART_HEADER_BYTES] = 9;
        assert_eq!(p.intern(&a), Interned::Inline);
    }

    /// A file-format table over heap memory: frames get headers as on disk.
    fn durable(len: usize) -> Parts {
        let mut p = Parts::over(Some(Arena::heap(len).unwrap()), true, 0x5eed, 64);
        p.write_file_header();
        p
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn scan_of_arbitrary_bytes_never_panics_and_leaves_only_intact_parts(
            sizes in proptest::collection::vec(300usize..3000, 0..6),
            writes in proptest::collection::vec(
                (0usize..16384, proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300)),
                0..6,
            ),
            hold_all in proptest::prelude::any::<bool>(),
        ) {
            // Goal: whatever the region holds (valid frames, damage, garbage), scan and
            // finish never panic; afterwards every part served matches its key, every
            // byte outside live parts is zero, and the free list covers exactly the rest.
            // Method: write parts, overwrite random ranges, recover into a second table.
            let mut p = durable(16384);
            let keys: Vec<u64> = sizes
                .iter()
                .enumerate()
                .filter_map(|(i, &n)| match p.intern(&vec![b'a' + i as u8; n]) {
                    Interned::New(k) => Some(k),
                    _ => None,
                })
                .collect();
            let mut image = p.region.as_ref().unwrap().bytes().to_vec();
            for (at, w) in &writes {
                let at = (*at).min(image.len() - w.len());
                image[at..at + w.len()].copy_from_slice(w);
            }
            let mut q = durable(16384);
            q.region.as_mut().unwrap().bytes_mut().copy_from_slice(&image);
            let mut rep = RecoveryReport::default();
            q.scan(&mut rep);
            if hold_all {
                keys.iter().for_each(|&k| { q.hold(k); });
            }
            q.finish_recovery(&mut rep);
            let region = q.region.as_ref().unwrap().bytes();
            let mut live = vec![false; region.len()];
            for (&k, s) in &q.map {
                proptest::prop_assert_eq!(Parts::key(&region[s.data()]), k);
                live[s.off..s.off + s.frame()].iter_mut().for_each(|b| *b = true);
            }
            let free: usize = q.free.by_off.values().sum();
            let live_bytes = live.iter().filter(|&&b| b).count();
            proptest::prop_assert_eq!(free + live_bytes + FILE_HEADER_BYTES, region.len());
            let stray = region[FILE_HEADER_BYTES..]
                .iter()
                .zip(&live[FILE_HEADER_BYTES..])
                .any(|(&b, &l)| b != 0 && !l);
            proptest::prop_assert!(!stray, "non-zero byte outside live parts");
            proptest::prop_assert_eq!(rep.parts_recovered as usize, q.map.len());
        }
    }

    #[test]
    fn frames_round_trip_and_damage_is_rejected() {
        // Goal: a written frame reads back; a wrong salt or a flipped data byte rejects it.
        let mut b = vec![0u8; 128];
        let data = b"hello parts";
        let h = part_header(7, data.len() as u32, crate::crc::crc32c(data));
        b[16..32].copy_from_slice(&h);
        b[32..32 + data.len()].copy_from_slice(data);
        let s = read_part(&b, 16, 7).unwrap();
        assert_eq!(&b[s.data()], data);
        assert!(read_part(&b, 16, 8).is_none());
        b[33] ^= 1;
        assert!(read_part(&b, 16, 7).is_none());
        assert_eq!(read_file_header(&file_header(42)), Some(42));
        assert!(read_file_header(&[0u8; 16]).is_none());
    }
}
