//! The preallocated byte arena of one shard: heap memory or a memory-mapped file.
//!
//! All reads and writes of the bytes happen under the shard's lock; the only access
//! outside it is `msync` of a range by the commit thread, which the kernel serialises.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fs::OpenOptions;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

use memmap2::MmapRaw;

use crate::error::StoreError;

/// Page alignment of the heap arena (frames need 16; pages keep zeroing cheap).
const ARENA_ALIGN: usize = 4096;

enum Backing {
    Heap(Layout),
    Mapped(Arc<MmapRaw>),
}

/// A fixed-size, page-aligned byte region.
pub struct Arena {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: the arena owns its region; shared access is synchronised by the shard lock
// (see module docs), and msync from another thread does not touch the bytes.
unsafe impl Send for Arena {}
// SAFETY: as above; `&Arena` only hands out slices under the shard lock.
unsafe impl Sync for Arena {}

impl Arena {
    /// A zeroed, page-aligned heap arena of `len` bytes. With page alignment the system
    /// allocator writes the zeros itself, so the whole arena is committed at open: the ring
    /// fills it anyway, its writes take no page faults, and a machine short of memory fails
    /// at start rather than in the middle of a flood.
    pub fn heap(len: usize) -> Result<Self, StoreError> {
        Self::zeroed(len, ARENA_ALIGN)
    }

    /// A zeroed heap region of `len` bytes aligned to 16 only, so the allocator can hand
    /// out fresh zero pages (`calloc`) that are committed when first touched. For regions
    /// that fill gradually and may never fill (the part table).
    pub fn heap_on_demand(len: usize) -> Result<Self, StoreError> {
        Self::zeroed(len, 16)
    }

    fn zeroed(len: usize, align: usize) -> Result<Self, StoreError> {
        let layout = Layout::from_size_align(len, align)
            .map_err(|e| StoreError::Config(vec![format!("arena size {len}: {e}")]))?;
        if len == 0 {
            return Err(StoreError::Config(vec!["arena size 0".into()]));
        }
        // SAFETY: layout has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| {
            StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "arena allocation failed",
            ))
        })?;
        Ok(Self {
            ptr,
            len,
            backing: Backing::Heap(layout),
        })
    }

    /// Maps `path`, creating it zero-filled at `len` bytes; an existing file must match.
    pub fn file(path: &Path, len: usize) -> Result<(Self, bool), StoreError> {
        let existed = path.exists();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let found = f.metadata()?.len();
        if existed && found != len as u64 {
            return Err(StoreError::Geometry {
                path: path.display().to_string(),
                found,
                expected: len as u64,
            });
        }
        if !existed {
            f.set_len(len as u64)?;
        }
        let map = MmapRaw::map_raw(&f)?;
        let ptr = NonNull::new(map.as_mut_ptr())
            .ok_or_else(|| StoreError::Io(std::io::Error::other("mmap returned null")))?;
        Ok((
            Self {
                ptr,
                len,
                backing: Backing::Mapped(Arc::new(map)),
            },
            existed,
        ))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the arena is heap memory (not a mapped file).
    pub fn is_heap(&self) -> bool {
        matches!(self.backing, Backing::Heap(_))
    }

    /// The mapping, for the commit thread (None for heap arenas).
    pub fn mapping(&self) -> Option<Arc<MmapRaw>> {
        match &self.backing {
            Backing::Mapped(m) => Some(Arc::clone(m)),
            Backing::Heap(_) => None,
        }
    }

    /// Read access to the whole arena.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr/len describe our live region; callers hold the shard lock.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Write access to the whole arena.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, and `&mut self` means the shard's write lock is held.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Syncs a byte range to disk (no-op for heap arenas).
    pub fn sync(&self, offset: usize, len: usize) -> std::io::Result<()> {
        match &self.backing {
            Backing::Mapped(m) => m.flush_range(offset, len),
            Backing::Heap(_) => Ok(()),
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if let Backing::Heap(layout) = self.backing {
            // SAFETY: allocated in `heap` with this layout and not freed before.
            unsafe { dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}
