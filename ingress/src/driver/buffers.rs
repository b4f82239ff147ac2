//! Per-core pool of read buffers of the epoll backend, allocated at start-up (an io_uring
//! core reads into its buffer ring instead).

use std::cell::RefCell;

/// Read buffers of one epoll core: `buffers_max` buffers of `buffer_bytes` each are allocated
/// up front (`read_buffer_bytes × read_buffers_per_core` per core); when they run out, more
/// are allocated and dropped again on return, so the pool never holds more than it started
/// with.
pub(crate) struct BufferPool {
    free: RefCell<Vec<Vec<u8>>>,
    buffer_bytes: usize,
    buffers_max: usize,
}

impl BufferPool {
    /// Allocates `buffers_max` buffers of `buffer_bytes` capacity.
    pub(crate) fn new(buffer_bytes: usize, buffers_max: usize) -> Self {
        let free = (0..buffers_max)
            .map(|_| Vec::with_capacity(buffer_bytes))
            .collect();
        Self {
            free: RefCell::new(free),
            buffer_bytes,
            buffers_max,
        }
    }

    /// An empty buffer with `buffer_bytes` capacity.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer_bytes))
    }

    /// Returns a buffer, emptied here (the one place a pooled buffer is, so the next
    /// connection that takes it sees nothing of the last); dropped when the pool is full or
    /// the buffer changed size.
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.buffers_max && buf.capacity() == self.buffer_bytes {
            buf.clear();
            free.push(buf);
        }
    }

    /// Buffers currently idle in the pool.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the pool hands out preallocated buffers, allocates past its size, and never
    // grows beyond what it started with.
    #[test]
    fn pool_is_bounded() {
        let pool = BufferPool::new(64, 2);
        assert_eq!(pool.idle(), 2);
        let a = pool.take();
        let b = pool.take();
        let c = pool.take();
        assert_eq!(pool.idle(), 0);
        assert!(a.capacity() == 64 && b.capacity() == 64 && c.capacity() == 64);
        pool.give(a);
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.idle(), 2);
        pool.give(Vec::with_capacity(128));
        assert_eq!(pool.idle(), 2);
    }
}
