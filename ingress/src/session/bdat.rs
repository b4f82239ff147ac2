//! BDAT (RFC 3030 CHUNKING).
//!
//! Every syntactically valid BDAT has its chunk consumed, even when the command is refused
//! (bad sequence): the chunk bytes are then dropped and answered 503 after the chunk, so they
//! are never read as commands. Non-final chunks of a message that went over the size limit are
//! still answered 250 (the rest is drained); the 552 5.3.4 comes after the LAST chunk. Bare CR/LF
//! are not checked in chunks: BDAT has no terminator that could be faked.

use std::time::SystemTime;

use super::{Output, Session, State};
use crate::proto::decimal::Decimal;
use crate::proto::receiver::ChunkReceiver;
use crate::proto::reply::Reply;

impl Session {
    /// BDAT: starts reading the chunk; a zero-size chunk completes at once.
    pub(super) fn bdat(&mut self, size: u64, last: bool, now: SystemTime, out: &mut Output) {
        let refuse = self.transaction_not_ready();
        if refuse.is_none() {
            self.txn.bdat = true;
        }
        self.state = State::Chunk {
            rx: ChunkReceiver::new(size),
            size,
            last,
            refuse,
        };
        if size == 0 {
            self.chunk_done(now, out);
        }
    }

    pub(super) fn ingest_chunk(
        &mut self,
        input: &[u8],
        now: SystemTime,
        out: &mut Output,
    ) -> usize {
        let State::Chunk { rx, refuse, .. } = &mut self.state else {
            return 0;
        };
        let body = if refuse.is_none() {
            Some(&mut self.txn.body)
        } else {
            None
        };
        // A chunk has no lines: every stretch of a text line's worth of bytes is a record.
        let stretch = self.ctx.limits.text_line_bytes_max.max(1) as u64;
        let before = rx.remaining();
        let (n, done) = rx.feed(input, body);
        self.records += before / stretch - rx.remaining() / stretch + u64::from(done);
        if done {
            self.chunk_done(now, out);
        }
        n
    }

    fn chunk_done(&mut self, now: SystemTime, out: &mut Output) {
        let State::Chunk {
            size, last, refuse, ..
        } = std::mem::replace(&mut self.state, State::Command)
        else {
            return;
        };
        if let Some(reply) = refuse {
            return self.fail(reply, out);
        }
        if !last {
            return Reply::ChunkOk.write_detail(&mut out.replies, Decimal::new(size).as_bytes());
        }
        let fault = self.txn.body.is_over().then_some(Reply::MessageTooLarge);
        self.end_of_message(fault, now, out);
    }
}
