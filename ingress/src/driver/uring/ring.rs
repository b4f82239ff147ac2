//! Setting up a core's ring: the fast setup flags where the kernel has them, with fallbacks.

use std::io;

use io_uring::{IoUring, squeue};

use super::bufring::BufRing;

/// Submission queue entries per ring; the completion queue is [`CQ_ENTRIES`].
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: room for a multishot burst from every connection of a loop turn.
const CQ_ENTRIES: u32 = 8192;

/// Whether this backend can run here: a ring can be set up (seccomp and the
/// `io_uring_disabled` sysctl make that fail with EPERM, old kernels with ENOSYS) and takes
/// a provided-buffer ring (kernel 5.19, as multishot accept and receive need).
pub(crate) fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::other("kernel lacks IORING_FEAT_EXT_ARG"));
    }
    BufRing::new(&ring, 2, 64).map(drop)
}

/// Builds the ring of one core: SINGLE_ISSUER + DEFER_TASKRUN (completions run only when
/// this thread enters the kernel, never as interrupts into it), else COOP_TASKRUN, else
/// plain; returns the ring and which setup it got, for the log.
pub(super) fn build() -> io::Result<(IoUring, &'static str)> {
    let mut fast = IoUring::builder();
    fast.setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(CQ_ENTRIES)
        .setup_submit_all();
    if let Ok(ring) = fast.build(SQ_ENTRIES) {
        return Ok((ring, "single_issuer+defer_taskrun"));
    }
    let mut coop = IoUring::builder();
    coop.setup_coop_taskrun().setup_cqsize(CQ_ENTRIES);
    if let Ok(ring) = coop.build(SQ_ENTRIES) {
        return Ok((ring, "coop_taskrun"));
    }
    let mut plain = IoUring::builder();
    plain.setup_cqsize(CQ_ENTRIES);
    Ok((plain.build(SQ_ENTRIES)?, "plain"))
}

/// Queues `entry`, submitting first if the submission queue is full.
pub(super) fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every entry the driver builds points at memory that outlives the operation:
        // a connection's send buffer and the eventfd counter live until their completion is
        // reaped (connections are freed only with no operation in flight), and the buffer
        // ring lives as long as the ring.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}
