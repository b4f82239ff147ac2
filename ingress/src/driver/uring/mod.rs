//! The io_uring backend on the `io-uring` crate: one ring per core, completion-driven, with
//! no futures and no epoll underneath. Per loop turn the core submits everything it queued
//! (sends of all sessions, re-armed receives) and waits for completions or its next deadline
//! in one `io_uring_enter`.
//!
//! - `ring`: setup with SINGLE_ISSUER/DEFER_TASKRUN (or COOP_TASKRUN, or plain) and probing;
//! - `bufring`: the provided-buffer ring the multishot receives take their buffers from;
//! - `timers`: the deadlines of the core's connections;
//! - `conn`: one connection, sans-io (session, TLS, pending input and output, its phase);
//! - `spares`: ended connections' emptied buffers, kept for new ones;
//! - `checks`: the hand-off thread for authentication checks, group-commit waits and stop;
//! - `event_loop`: accept, receive, send, wake-ups, timers and shutdown.
//!
//! Sockets are plain descriptors, not registered files. A direct descriptor has no
//! getpeername(2), so accepting into the file table takes single-shot accepts that bring
//! the peer's address (admission needs it); built and measured, that gained nothing on
//! churn (per-round median 1.005x), and neither did multishot accepts into the table with
//! the address left out (0.98x): BENCHMARKS.md, "Registered files, measured".
//!
//! A connection that ends has its receive and any send in flight cancelled on the ring
//! (`ASYNC_CANCEL`), and its socket is closed on the ring (`IORING_OP_CLOSE`) once both
//! finished: no dropped operation keeps a socket open, and no connection costs a
//! shutdown(2) or close(2) of its own.

mod bufring;
mod checks;
mod conn;
mod event_loop;
mod ring;
mod spares;
#[cfg(test)]
mod tests;
mod timers;

pub(crate) use event_loop::run;
pub(crate) use ring::probe;
