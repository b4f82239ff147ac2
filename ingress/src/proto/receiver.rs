//! Incremental receivers for command lines, DATA and BDAT; split-invariant by construction.
//!
//! Every receiver takes whatever bytes arrived, returns how many it consumed and, when a unit
//! is complete, an event. Input over a limit is read and dropped (never buffered); the verdict
//! is given when the unit ends.
//!
//! Line endings (SMTP smuggling defence, SEC Consult 2023): only CRLF ends a valid command
//! line or a text line. In a command line every LF ends the line, so a person typing into
//! `nc` (which sends a bare LF) is answered at once; a line ended by a bare LF, or holding a
//! bare CR, is refused with 500 as a whole and never parsed. In DATA a bare CR or LF ends
//! nothing: it marks the message as refused, and the message still ends only at the exact
//! sequence CRLF "." CRLF. So nothing after a fake terminator
//! (`\n.\n`, `\r.\r`, `\n.\r\n`, `\r\n.\n`, ...) is ever taken as a command or a new message:
//! it is message content of a message that is refused with 550 5.6.0 after the real terminator.

/// Why a completed command line is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line; read it with [`LineReceiver::line`].
    Line,
    /// The line held a bare CR or ended at a bare LF.
    BareLineEnding,
    /// The line was over the limit and was dropped.
    TooLong,
}

/// Collects one command line up to its LF, at most `limit` bytes including CRLF.
#[derive(Debug)]
pub struct LineReceiver {
    buf: Vec<u8>,
    limit: usize,
    /// Bytes of the current line seen so far, including dropped ones.
    seen: usize,
    /// Last byte seen; a CR may sit in a previous chunk or in the dropped part of a long line.
    last: u8,
}

impl LineReceiver {
    /// A receiver for lines of at most `limit` bytes including CRLF.
    pub fn new(limit: usize) -> Self {
        Self::with_buffer(limit, Vec::new())
    }

    /// As [`LineReceiver::new`], reusing the allocation of `buf`, which must be empty (see
    /// [`crate::session::spare`]).
    pub(crate) fn with_buffer(limit: usize, mut buf: Vec<u8>) -> Self {
        debug_assert!(buf.is_empty(), "a reused line buffer is empty");
        buf.reserve(limit);
        Self {
            buf,
            limit,
            seen: 0,
            last: 0,
        }
    }

    /// The line buffer, for [`LineReceiver::with_buffer`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Consumes bytes up to and including the LF that ends the current line.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<LineEvent>) {
        match memchr::memchr(b'\n', input) {
            Some(lf) => {
                let before_lf = if lf > 0 { input[lf - 1] } else { self.last };
                self.push(&input[..=lf]);
                (lf + 1, Some(self.finish(before_lf == b'\r')))
            }
            None => {
                self.push(input);
                (input.len(), None)
            }
        }
    }

    /// The completed line without CRLF (valid after [`LineEvent::Line`] until the next feed).
    pub fn line(&self) -> &[u8] {
        &self.buf[..self.buf.len().saturating_sub(2)]
    }

    /// Allocated capacity (for tests of the memory bound).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn push(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        if self.seen == 0 {
            self.buf.clear();
        }
        self.last = last;
        self.seen += bytes.len();
        if self.seen <= self.limit {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn finish(&mut self, crlf: bool) -> LineEvent {
        let event = if self.seen > self.limit {
            LineEvent::TooLong
        } else if !crlf || self.line().contains(&b'\r') {
            LineEvent::BareLineEnding
        } else {
            LineEvent::Line
        };
        self.seen = 0;
        self.last = 0;
        event
    }
}

/// The first allocation of a message buffer: most mail fits, so a message costs one
/// allocation rather than a doubling per few lines (one per connection under churn).
const MESSAGE_BYTES_FIRST: usize = 8 * 1024;

/// The message bytes of one transaction, capped at `limit`; reused between transactions.
///
/// Capacity grows at most to `limit` (never by doubling past it), so a session holds at most
/// `message_bytes_max` bytes of message whatever the peer sends.
#[derive(Debug)]
pub struct MessageBuffer {
    bytes: Vec<u8>,
    limit: usize,
    over: bool,
}

impl MessageBuffer {
    /// An empty buffer for messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self::with_buffer(limit, Vec::new())
    }

    /// As [`MessageBuffer::new`], reusing the allocation of `bytes`, which must be empty (see
    /// [`crate::session::spare`]).
    pub(crate) fn with_buffer(limit: usize, bytes: Vec<u8>) -> Self {
        debug_assert!(bytes.is_empty(), "a reused message buffer is empty");
        Self {
            bytes,
            limit,
            over: false,
        }
    }

    /// The message bytes' allocation, for [`MessageBuffer::with_buffer`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    /// Appends bytes; once over the limit everything further is dropped.
    pub fn push(&mut self, data: &[u8]) {
        if self.over || data.is_empty() {
            return;
        }
        let needed = self.bytes.len() + data.len();
        if needed > self.limit {
            self.over = true;
            return;
        }
        if needed > self.bytes.capacity() {
            let target = needed
                .max(self.bytes.capacity() * 2)
                .max(MESSAGE_BYTES_FIRST)
                .min(self.limit);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(data);
    }

    /// Whether the message went over the limit.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// The bytes received (meaningless once over the limit).
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Allocated capacity (for tests of the memory bound).
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Removes byte ranges (ascending, not overlapping, in bounds) from the message; a
    /// range that breaks those rules is skipped, never a panic.
    pub fn remove_ranges(&mut self, ranges: &[std::ops::Range<usize>]) {
        let mut kept_to = 0;
        let mut write = 0;
        for r in ranges {
            if r.start < kept_to || r.start > r.end || r.end > self.bytes.len() {
                continue;
            }
            self.bytes.copy_within(kept_to..r.start, write);
            write += r.start - kept_to;
            kept_to = r.end;
        }
        let len = self.bytes.len();
        self.bytes.copy_within(kept_to..len, write);
        self.bytes.truncate(write + len - kept_to);
    }

    /// Empties the buffer for the next transaction, keeping its allocation.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.over = false;
    }
}

/// What was wrong with a DATA message, reported at its terminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataFault {
    /// A bare CR or LF somewhere in the message.
    BareLineEnding,
    /// A text line over the limit.
    LineTooLong,
}

/// Position of the DATA receiver relative to the CRLF "." CRLF terminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DotState {
    /// Just after CRLF (or at the start of the data).
    LineStart,
    /// After a "." at line start.
    Dot,
    /// After "." CR at line start.
    DotCr,
    /// Inside a line.
    Text,
    /// After a CR inside a line.
    Cr,
}

/// Receives DATA content: dot-unstuffing, terminator exactly CRLF "." CRLF.
#[derive(Debug)]
pub struct DataReceiver {
    state: DotState,
    /// Length of the current text line after unstuffing, including CRLF.
    line_len: usize,
    line_max: usize,
    fault: Option<DataFault>,
    /// Text lines completed (CRLF-ended), for the driver's per-record deadline.
    lines: u64,
}

impl DataReceiver {
    /// A receiver for text lines of at most `line_max` bytes including CRLF.
    pub fn new(line_max: usize) -> Self {
        Self {
            state: DotState::LineStart,
            line_len: 0,
            line_max,
            fault: None,
            lines: 0,
        }
    }

    /// Consumes DATA bytes into `body`; returns bytes consumed and whether the terminator was
    /// reached (it is consumed, not stored).
    pub fn feed(&mut self, input: &[u8], body: &mut MessageBuffer) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.state == DotState::LineStart && !matches!(input[i], b'.' | b'\r' | b'\n') {
                // An ordinary first byte is text: copied with the rest of its line below.
                self.state = DotState::Text;
            }
            if self.state == DotState::Text {
                // Fast path: find the next line ending with SIMD and copy the run at once,
                // with its CRLF when that is the ending (one copy per line).
                let Some(r) = memchr::memchr2(b'\r', b'\n', &input[i..]) else {
                    self.emit(&input[i..], body);
                    break;
                };
                let end = i + r;
                if input[end] == b'\r' && input.get(end + 1) == Some(&b'\n') {
                    self.emit(&input[i..end + 2], body);
                    self.end_line();
                    i = end + 2;
                    continue;
                }
                self.emit(&input[i..end], body);
                i = end;
            }
            let b = input[i];
            i += 1;
            if self.step(b, body) {
                return (i, true);
            }
        }
        (input.len(), false)
    }

    /// The fault seen in the message, if any.
    pub fn fault(&self) -> Option<DataFault> {
        self.fault
    }

    /// Text lines completed so far (a bare LF ends none).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// One byte of the state machine; returns true at the end of the terminator.
    fn step(&mut self, b: u8, body: &mut MessageBuffer) -> bool {
        match (self.state, b) {
            (DotState::LineStart, b'.') => self.state = DotState::Dot,
            (DotState::Dot, b'\r') => self.state = DotState::DotCr,
            (DotState::DotCr, b'\n') => return true,
            (DotState::DotCr, _) => {
                // ".<CR>x": the CR is bare; the leading dot was stuffing.
                self.bare();
                self.emit(b"\r", body);
                self.text_byte(b, body);
            }
            (DotState::Cr, b'\n') => {
                self.emit(b"\n", body);
                self.end_line();
            }
            (DotState::Cr, _) => {
                self.bare();
                self.text_byte(b, body);
            }
            // LineStart with anything but ".", Dot with anything but CR (the dot was
            // stuffing and is dropped), and Text.
            _ => self.text_byte(b, body),
        }
        false
    }

    fn text_byte(&mut self, b: u8, body: &mut MessageBuffer) {
        match b {
            b'\r' => {
                self.emit(b"\r", body);
                self.state = DotState::Cr;
            }
            b'\n' => {
                // A bare LF: stays inside the line so a following "." is not at line start.
                self.bare();
                self.emit(b"\n", body);
                self.state = DotState::Text;
            }
            _ => {
                self.emit(&[b], body);
                self.state = DotState::Text;
            }
        }
    }

    fn emit(&mut self, data: &[u8], body: &mut MessageBuffer) {
        self.line_len += data.len();
        if self.line_len > self.line_max && self.fault.is_none() {
            self.fault = Some(DataFault::LineTooLong);
        }
        // A faulty message is refused anyway: drain it instead of buffering.
        if self.fault.is_none() {
            body.push(data);
        }
    }

    fn bare(&mut self) {
        // A bare line ending outranks a long line: it is the security-relevant verdict.
        self.fault = Some(DataFault::BareLineEnding);
    }

    fn end_line(&mut self) {
        self.lines += 1;
        self.line_len = 0;
        self.state = DotState::LineStart;
    }
}

/// Receives one BDAT chunk of an exact byte count (no dot-stuffing, RFC 3030).
#[derive(Debug)]
pub struct ChunkReceiver {
    remaining: u64,
}

impl ChunkReceiver {
    /// A receiver for a chunk of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self { remaining: size }
    }

    /// Consumes up to the rest of the chunk into `body` (or drops it when `body` is `None`);
    /// returns bytes consumed and whether the chunk is complete.
    pub fn feed(&mut self, input: &[u8], body: Option<&mut MessageBuffer>) -> (usize, bool) {
        let take = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        if let Some(body) = body {
            body.push(&input[..take]);
        }
        self.remaining -= take as u64;
        (take, self.remaining == 0)
    }

    /// Bytes still to come in this chunk.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (consumed, event or end, body).
    fn data(input: &[u8], step: usize) -> (usize, bool, Option<DataFault>, Vec<u8>) {
        let mut rx = DataReceiver::new(10);
        let mut body = MessageBuffer::new(32);
        let mut consumed = 0;
        for piece in input.chunks(step.max(1)) {
            let (n, done) = rx.feed(piece, &mut body);
            consumed += n;
            if done {
                return (consumed, true, rx.fault(), kept(&rx, &body));
            }
            assert_eq!(n, piece.len());
        }
        (consumed, false, rx.fault(), kept(&rx, &body))
    }

    /// The body of a faulty message is partial and never used, so it is not compared.
    fn kept(rx: &DataReceiver, body: &MessageBuffer) -> Vec<u8> {
        if rx.fault().is_some() {
            Vec::new()
        } else {
            body.as_slice().to_vec()
        }
    }

    // Goal: dot-unstuffing, the exact terminator and the fault verdicts; method: (input,
    // consumed, terminated, fault, body) table, each checked at every split step.
    #[test]
    fn data_receiver_table() {
        use DataFault::*;
        type Case = (&'static [u8], usize, bool, Option<DataFault>, &'static [u8]);
        let cases: [Case; 14] = [
            (b".\r\n", 3, true, None, b""),
            (b"a\r\n.\r\nNOOP\r\n", 6, true, None, b"a\r\n"),
            (b"..a\r\n.\r\n", 8, true, None, b".a\r\n"),
            (b"...\r\n.\r\n", 8, true, None, b"..\r\n"),
            (b"a.\r\n.\r\n", 7, true, None, b"a.\r\n"),
            (b"a\r\n. \r\n.\r\n", 10, true, None, b"a\r\n \r\n"),
            (b"a\n.\nb\r\n.\r\n", 10, true, Some(BareLineEnding), b""),
            (b"a\r.\rb\r\n.\r\n", 10, true, Some(BareLineEnding), b""),
            (b"a\n.\r\nb\r\n.\r\n", 11, true, Some(BareLineEnding), b""),
            (b"a\r\n.\nb\r\n.\r\n", 11, true, Some(BareLineEnding), b""),
            (b"a\r\n.\rb\r\n.\r\n", 11, true, Some(BareLineEnding), b""),
            (b"a\n.\r", 4, false, Some(BareLineEnding), b""),
            (b"12345678\r\n.\r\n", 13, true, None, b"12345678\r\n"),
            (b"123456789\r\n.\r\n", 14, true, Some(LineTooLong), b""),
        ];
        for (input, consumed, done, fault, body) in cases {
            for step in 1..=input.len() {
                let got = data(input, step);
                assert_eq!(
                    got,
                    (consumed, done, fault, body.to_vec()),
                    "{input:?} step {step}"
                );
            }
        }
    }

    // Goal: the message buffer stops at its limit and keeps its allocation across clears.
    #[test]
    fn message_buffer_limit() {
        let mut b = MessageBuffer::new(8);
        b.push(b"12345678");
        assert!(!b.is_over());
        b.push(b"9");
        assert!(b.is_over());
        assert_eq!(b.as_slice(), b"12345678");
        assert!(b.capacity() <= 8);
        b.clear();
        assert!(!b.is_over() && b.as_slice().is_empty() && b.capacity() == 8);
    }

    // Goal: command lines: CRLF only, bare CR/LF refuse the whole line, limit includes CRLF.
    #[test]
    fn line_receiver_table() {
        type Case = (&'static [u8], usize, Option<LineEvent>, &'static [u8]);
        let cases: [Case; 8] = [
            (b"NOOP\r\nQUIT\r\n", 6, Some(LineEvent::Line), b"NOOP"),
            (b"NOOP\nQUIT\r\n", 5, Some(LineEvent::BareLineEnding), b""),
            (b"\n", 1, Some(LineEvent::BareLineEnding), b""),
            (b"NO\rOP\r\n", 7, Some(LineEvent::BareLineEnding), b""),
            (b"\r\r\n", 3, Some(LineEvent::BareLineEnding), b""),
            (b"1234567890\r\n", 12, Some(LineEvent::Line), b"1234567890"),
            (b"12345678901\r\nX", 13, Some(LineEvent::TooLong), b""),
            (b"NOOP\r", 5, None, b""),
        ];
        for (input, consumed, event, line) in cases {
            for step in 1..=input.len() {
                let mut rx = LineReceiver::new(12);
                let (mut total, mut got) = (0, None);
                for piece in input.chunks(step) {
                    let (n, ev) = rx.feed(piece);
                    total += n;
                    if ev.is_some() {
                        got = ev;
                        break;
                    }
                }
                assert_eq!((total, got), (consumed, event), "{input:?} step {step}");
                if got == Some(LineEvent::Line) {
                    assert_eq!(rx.line(), line);
                }
                assert!(rx.capacity() <= 12);
            }
        }
    }

    // Goal: BDAT chunks take exactly their size, with or without a body to keep them.
    #[test]
    fn chunk_receiver() {
        let mut body = MessageBuffer::new(100);
        let mut rx = ChunkReceiver::new(5);
        assert_eq!(rx.feed(b"ab", Some(&mut body)), (2, false));
        assert_eq!(rx.feed(b"c\r\n.\r\n", Some(&mut body)), (3, true));
        assert_eq!(body.as_slice(), b"abc\r\n");
        let mut rx = ChunkReceiver::new(3);
        assert_eq!(rx.feed(b"xyzNOOP", None), (3, true));
        let mut rx = ChunkReceiver::new(u64::MAX);
        assert_eq!(rx.feed(b"xyz", None), (3, false));
    }

    // Goal: removing forged header ranges keeps the rest in order; bad ranges are skipped.
    #[test]
    fn remove_ranges_keeps_the_rest() {
        let mut b = MessageBuffer::new(64);
        b.push(b"A: 1\r\nX: forged\r\nB: 2\r\nX: again\r\n\r\nbody");
        b.remove_ranges(&[6..17, 23..33]);
        assert_eq!(b.as_slice(), b"A: 1\r\nB: 2\r\n\r\nbody");
        let mut b = MessageBuffer::new(64);
        b.push(b"0123456789");
        // A reversed range, then one overlapping the last kept one, then one out of bounds.
        let reversed = std::ops::Range { start: 5, end: 3 };
        b.remove_ranges(&[reversed, 2..4, 3..5, 8..99]);
        assert_eq!(b.as_slice(), b"01456789");
    }
}
