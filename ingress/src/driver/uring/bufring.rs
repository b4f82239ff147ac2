//! A provided-buffer ring (buffer group) per core: the kernel picks a free buffer for each
//! multishot receive, so no read is posted per connection and an idle connection holds no
//! buffer. A buffer goes back to the ring as soon as its bytes have been handed on.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// The buffer group id of a core's ring (one group per ring).
pub(super) const GROUP: u16 = 0;
/// Most buffers a group may have (the kernel's limit for a buffer ring).
const ENTRIES_MAX: usize = 1 << 15;

/// The buffer ring and the buffers it hands out.
pub(super) struct BufRing {
    /// The shared ring of buffer descriptors (mmap'd, page-aligned as the kernel wants).
    entries: NonNull<BufRingEntry>,
    count: u16,
    /// Our copy of the tail; the kernel reads the published one.
    tail: u16,
    bufs: Box<[u8]>,
    size: usize,
}

impl BufRing {
    /// Registers `count` (rounded up to a power of two) buffers of `size` bytes with `ring`.
    pub(super) fn new(ring: &IoUring, count: usize, size: usize) -> io::Result<Self> {
        let count = count.clamp(2, ENTRIES_MAX).next_power_of_two();
        let bytes = count * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping of `bytes` bytes; checked against MAP_FAILED.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let entries = NonNull::new(addr.cast::<BufRingEntry>())
            .ok_or_else(|| io::Error::other("mmap returned null"))?;
        let mut this = Self {
            entries,
            count: count as u16,
            tail: 0,
            bufs: vec![0; count * size].into_boxed_slice(),
            size,
        };
        // SAFETY: the mapping stays valid until Drop, which runs after the ring has been
        // dropped or the group unregistered (see the event loop's field order).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(addr as u64, count as u16, GROUP, 0)?;
        }
        for bid in 0..count as u16 {
            this.stage(bid);
        }
        this.publish();
        Ok(this)
    }

    /// The first `len` bytes of buffer `bid` (as the completion reported them).
    pub(super) fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.size;
        let len = len.min(self.size);
        self.bufs.get(start..start + len).unwrap_or_default()
    }

    /// Gives buffer `bid` back to the kernel.
    pub(super) fn recycle(&mut self, bid: u16) {
        if bid < self.count {
            self.stage(bid);
            self.publish();
        }
    }

    fn stage(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.bufs.as_ptr() as u64 + u64::from(bid) * self.size as u64;
        // SAFETY: slot < count entries of the mapping.
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives inside the first entry of the mapping; the kernel reads
        // it concurrently, hence the atomic release store (entries written before are visible).
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let bytes = usize::from(self.count) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: the mapping made in new(), unmapped once.
        unsafe {
            libc::munmap(self.entries.as_ptr().cast(), bytes);
        }
    }
}
