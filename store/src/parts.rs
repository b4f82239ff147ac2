//! Per-shard table of large MIME parts stored once by content, reference-counted.
//!
//! The key is `crc32c << 32 | len`; a key match is confirmed byte for byte, and a
//! different part with the same key is simply stored inline, so a collision can only
//! cost space, never serve the wrong bytes.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::index::{PassThrough, map_bytes};

/// Bytes counted per part besides its data (map slot, allocator header).
pub const PART_OVERHEAD_BYTES: usize = 48;

struct Part {
    data: Box<[u8]>,
    refs: u32,
}

/// The part table of one shard.
pub struct Parts {
    map: HashMap<u64, Part, BuildHasherDefault<PassThrough>>,
    bytes: usize,
    bytes_max: usize,
    count_max: usize,
}

/// What `intern` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interned {
    /// Stored now (first copy).
    New(u64),
    /// Already present; only a reference was added.
    Hit(u64),
    /// Not shareable (table full, or a different part holds the key).
    Inline,
}

impl Parts {
    /// A table holding at most `bytes_max` bytes and `count_max` parts.
    pub fn new(bytes_max: usize, count_max: usize) -> Self {
        Self {
            map: HashMap::with_capacity_and_hasher(count_max, BuildHasherDefault::default()),
            bytes: 0,
            bytes_max,
            count_max,
        }
    }

    /// Content key of a part.
    pub fn key(data: &[u8]) -> u64 {
        (u64::from(crc32c::crc32c(data)) << 32) | (data.len() as u64 & 0xffff_ffff)
    }

    /// Adds a reference to `data`, storing it if new and there is room.
    pub fn intern(&mut self, data: &[u8]) -> Interned {
        let key = Self::key(data);
        if let Some(p) = self.map.get_mut(&key) {
            if *p.data == *data && p.refs < u32::MAX {
                p.refs += 1;
                return Interned::Hit(key);
            }
            return Interned::Inline;
        }
        let cost = data.len() + PART_OVERHEAD_BYTES;
        if self.bytes + cost > self.bytes_max || self.map.len() >= self.count_max {
            return Interned::Inline;
        }
        self.bytes += cost;
        self.map.insert(
            key,
            Part {
                data: data.into(),
                refs: 1,
            },
        );
        Interned::New(key)
    }

    /// Drops one reference; frees the part (its bytes zeroed) at zero.
    pub fn release(&mut self, key: u64) {
        let Some(p) = self.map.get_mut(&key) else {
            return;
        };
        p.refs -= 1;
        if p.refs == 0
            && let Some(mut p) = self.map.remove(&key)
        {
            // Freed memory must not keep mail readable.
            p.data.fill(0);
            self.bytes -= p.data.len() + PART_OVERHEAD_BYTES;
        }
    }

    /// The bytes of a part.
    pub fn get(&self, key: u64) -> Option<&[u8]> {
        self.map.get(&key).map(|p| &*p.data)
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

    /// Bytes counted against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes allocated by the map itself.
    pub fn map_bytes(&self) -> usize {
        map_bytes(self.map.capacity(), 8 + std::mem::size_of::<Part>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcounts_and_budget() {
        // Goal: second copy is a hit; release frees at zero; budget and collisions go inline.
        let mut p = Parts::new(2 * (1000 + PART_OVERHEAD_BYTES), 10);
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
        assert!(matches!(p.intern(&[2u8; 1000]), Interned::New(_)));
        assert!(matches!(p.intern(&[3u8; 1000]), Interned::New(_)));
        assert_eq!(p.intern(&[4u8; 1000]), Interned::Inline);
    }
}
