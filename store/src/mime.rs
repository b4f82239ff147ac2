//! Cheap ingest-time scan of a message: header summary and MIME part boundaries.
//!
//! This runs on the ingress core, so it never decodes anything: it reads the top-level
//! header block once, and for `multipart/*` bodies walks the boundary lines (depth and part
//! count bounded). Parts at least `part_min` bytes long are marked shareable, so the store
//! keeps them once by content. A single-part body that large is shareable as a whole.

use std::borrow::Cow;
use std::ops::Range;

use memchr::memmem::Finder;

/// Longest header value kept in the summary.
pub const SUMMARY_VALUE_BYTES_MAX: usize = 256;
/// Nesting of multiparts the scan follows.
const DEPTH_MAX: usize = 4;
/// Parts per multipart the scan follows; the rest stays inline.
const PARTS_MAX: usize = 64;
/// Longest boundary RFC 2046 allows.
const BOUNDARY_BYTES_MAX: usize = 70;

/// A contiguous piece of the body; pieces cover the body in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Byte range in the body.
    pub range: Range<usize>,
    /// Whether the piece may be stored once by content.
    pub shared: bool,
}

/// Result of the scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// `From:` value.
    pub from: String,
    /// `Subject:` value.
    pub subject: String,
    /// `Date:` value.
    pub date: String,
    /// `Message-ID:` value.
    pub message_id: String,
    /// Whether any part is an attachment.
    pub has_attachments: bool,
    /// The body split into pieces.
    pub pieces: Vec<Piece>,
}

/// Scans `body`; parts of at least `part_min` bytes become shareable (0 = never).
pub fn scan(body: &[u8], part_min: usize) -> Scan {
    let mut s = Scan::default();
    scan_into(body, part_min, &mut s);
    s
}

/// Like [`scan`], but fills `s`, reusing its buffers (the write path keeps one per core).
pub fn scan_into(body: &[u8], part_min: usize, s: &mut Scan) {
    for f in [&mut s.from, &mut s.subject, &mut s.date, &mut s.message_id] {
        f.clear();
    }
    s.has_attachments = false;
    s.pieces.clear();
    let mut w = Walker {
        body,
        part_min,
        pieces: std::mem::take(&mut s.pieces),
        attach: false,
    };
    // The top-level header block is read once, for the summary and for the walk.
    let mut fields = Fields::new(body);
    let boundary = w.entity_fields(&mut fields, |name, value| {
        let slot = if name.eq_ignore_ascii_case(b"from") {
            &mut s.from
        } else if name.eq_ignore_ascii_case(b"subject") {
            &mut s.subject
        } else if name.eq_ignore_ascii_case(b"date") {
            &mut s.date
        } else if name.eq_ignore_ascii_case(b"message-id") {
            &mut s.message_id
        } else {
            return;
        };
        if slot.is_empty() {
            summary_value(value, slot);
        }
    });
    w.parsed(0..body.len(), fields.body_start(), boundary, 0);
    s.has_attachments = w.attach;
    s.pieces = w.pieces;
}

struct Walker<'a> {
    body: &'a [u8],
    part_min: usize,
    pieces: Vec<Piece>,
    attach: bool,
}

impl Walker<'_> {
    fn push(&mut self, range: Range<usize>, shared: bool) {
        if range.is_empty() {
            return;
        }
        if let Some(last) = self.pieces.last_mut()
            && !shared
            && !last.shared
        {
            last.range.end = range.end;
            return;
        }
        self.pieces.push(Piece { range, shared });
    }

    fn entity(&mut self, r: Range<usize>, depth: usize) {
        let mut fields = Fields::new(&self.body[r.clone()]);
        let boundary = self.entity_fields(&mut fields, |_, _| {});
        self.parsed(r, fields.body_start(), boundary, depth);
    }

    /// Reads an entity's header block to its end: notes an attachment, returns the
    /// multipart boundary, and hands every field to `each` (name, unfolded value).
    fn entity_fields(
        &mut self,
        fields: &mut Fields<'_>,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> Option<Vec<u8>> {
        let mut boundary = None;
        for (name, value) in fields {
            if name.eq_ignore_ascii_case(b"content-disposition")
                && starts_with_ci(&value, b"attachment")
            {
                self.attach = true;
            }
            if name.eq_ignore_ascii_case(b"content-type") && starts_with_ci(&value, b"multipart/") {
                boundary = boundary_param(&value);
            }
            each(name, &value);
        }
        boundary
    }

    /// Walks the entity `r` whose body starts at `body_start` (relative to `r`), a
    /// multipart if its header gave a `boundary`.
    fn parsed(
        &mut self,
        r: Range<usize>,
        body_start: usize,
        boundary: Option<Vec<u8>>,
        depth: usize,
    ) {
        let body = r.start + body_start..r.end;
        match boundary {
            Some(b) if depth < DEPTH_MAX => {
                self.push(r.start..body.start, false);
                self.multipart(body, &b, depth);
            }
            _ => {
                let share = self.part_min > 0 && body.len() >= self.part_min;
                self.push(r.start..body.start, false);
                self.push(body, share);
            }
        }
    }

    fn multipart(&mut self, r: Range<usize>, boundary: &[u8], depth: usize) {
        let mut delim = Vec::with_capacity(boundary.len() + 2);
        delim.extend_from_slice(b"--");
        delim.extend_from_slice(boundary);
        let mut pos = r.start;
        let mut parts = 0;
        // `pos` is where the not-yet-emitted bytes start; each loop emits one delimiter line.
        // Built once per multipart: the SIMD search is what keeps big bodies cheap to walk.
        let finder = Finder::new(&delim);
        while let Some(d) = find_line(self.body, pos..r.end, &finder) {
            let line_end = line_end(self.body, d, r.end);
            let closing = self.body[d + delim.len()..].starts_with(b"--");
            if parts > 0 {
                // The part ends before the line break that precedes the delimiter.
                let part_end = trim_break(self.body, pos, d);
                self.entity(pos..part_end, depth + 1);
                self.push(part_end..line_end, false);
            } else {
                self.push(pos..line_end, false);
            }
            pos = line_end;
            parts += 1;
            if closing || parts > PARTS_MAX {
                break;
            }
        }
        self.push(pos..r.end, false);
    }
}

/// The header fields (name, unfolded value) of an entity, read lazily up to the blank line
/// that ends the header block; malformed lines are skipped, and a continuation line after
/// one still belongs to the field before it. Values borrow from the input unless folded.
struct Fields<'a> {
    b: &'a [u8],
    pos: usize,
    /// Where the body starts, once the blank line (or the end) is reached.
    body: Option<usize>,
    /// The line at `pos` when already read: the look-ahead for continuation lines reads
    /// each field's next line, which the next call then starts with.
    ahead: Option<Line<'a>>,
}

/// One line of a header block.
#[derive(Clone, Copy)]
struct Line<'a> {
    /// Without its line break.
    text: &'a [u8],
    /// Where the next line starts.
    next: usize,
}

impl Line<'_> {
    /// Position of the first `:`; a plain scan, as it ends after the short field name.
    fn colon(&self) -> Option<usize> {
        self.text.iter().position(|&c| c == b':')
    }
}

impl<'a> Fields<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self {
            b,
            pos: 0,
            body: None,
            ahead: None,
        }
    }

    /// Start of the body within the entity; reads the rest of the header block if needed.
    fn body_start(&mut self) -> usize {
        while self.next().is_some() {}
        self.body.unwrap_or(self.b.len())
    }

    /// The line at `pos`.
    fn line(&mut self) -> Line<'a> {
        if let Some(l) = self.ahead {
            return l;
        }
        let rest = &self.b[self.pos..];
        let (text, next) = match memchr::memchr(b'\n', rest) {
            Some(n) => (&rest[..n], self.pos + n + 1),
            None => (rest, self.b.len()),
        };
        let l = Line {
            text: text.strip_suffix(b"\r").unwrap_or(text),
            next,
        };
        self.ahead = Some(l);
        l
    }

    /// Moves past the line at `pos`.
    fn skip(&mut self, l: &Line<'_>) {
        self.pos = l.next;
        self.ahead = None;
    }

    /// Ends the header block at a blank line starting at `pos`.
    fn blank(&mut self, l: &Line<'_>) -> bool {
        if l.text.is_empty() {
            self.body = Some(l.next);
            self.pos = self.b.len();
            self.ahead = None;
        }
        l.text.is_empty()
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], Cow<'a, [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let (name, mut value) = loop {
            if self.pos >= self.b.len() {
                return None;
            }
            let l = self.line();
            if self.blank(&l) {
                return None;
            }
            self.skip(&l);
            if starts_folded(l.text) {
                continue;
            }
            if let Some(colon) = l.colon() {
                break (
                    trim(&l.text[..colon]),
                    Cow::Borrowed(trim(&l.text[colon + 1..])),
                );
            }
        };
        while self.pos < self.b.len() {
            let l = self.line();
            if starts_folded(l.text) {
                if value.len() < 4 * SUMMARY_VALUE_BYTES_MAX {
                    value.to_mut().extend_from_slice(l.text);
                }
            } else if l.text.is_empty() || l.colon().is_some() {
                break;
            }
            self.skip(&l);
        }
        Some((name, value))
    }
}

/// Whether a header line continues the field before it.
fn starts_folded(line: &[u8]) -> bool {
    line.first().is_some_and(|c| *c == b' ' || *c == b'\t')
}

/// Writes the summary form of a header value into `out` (empty): trimmed, cut at
/// [`SUMMARY_VALUE_BYTES_MAX`] on a char boundary, invalid UTF-8 replaced, controls dropped.
fn summary_value(v: &[u8], out: &mut String) {
    let v = trim(v);
    let cut = &v[..v.len().min(SUMMARY_VALUE_BYTES_MAX)];
    // Printable ASCII, the common case, needs neither cutting at a char nor filtering.
    if cut.iter().all(|&c| (0x20..0x7f).contains(&c))
        && let Ok(text) = std::str::from_utf8(cut)
    {
        out.push_str(text);
        return;
    }
    let mut end = v.len().min(SUMMARY_VALUE_BYTES_MAX);
    let text = loop {
        match std::str::from_utf8(&v[..end]) {
            Ok(s) => break Cow::Borrowed(s),
            Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => end = e.valid_up_to(),
            Err(_) => break String::from_utf8_lossy(&v[..end]),
        }
    };
    if text.chars().any(char::is_control) {
        out.extend(text.chars().filter(|c| !c.is_control()));
    } else {
        out.push_str(&text);
    }
}

fn boundary_param(ct: &[u8]) -> Option<Vec<u8>> {
    let lower = ct.to_ascii_lowercase();
    let at = memchr::memmem::find(&lower, b"boundary=")? + b"boundary=".len();
    let rest = &ct[at..];
    let value: Vec<u8> = if let Some(q) = rest.strip_prefix(b"\"") {
        q.iter().take_while(|&&c| c != b'"').copied().collect()
    } else {
        rest.iter()
            .take_while(|&&c| c != b';' && !c.is_ascii_whitespace())
            .copied()
            .collect()
    };
    (!value.is_empty() && value.len() <= BOUNDARY_BYTES_MAX).then_some(value)
}

/// Finds `delim` at the start of a line within `r`.
fn find_line(b: &[u8], r: Range<usize>, delim: &Finder<'_>) -> Option<usize> {
    let mut from = r.start;
    while from < r.end {
        let at = from + delim.find(&b[from..r.end])?;
        if at == 0 || b[at - 1] == b'\n' {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// End of the line starting at or containing `at` (after its `\n`), capped at `end`.
fn line_end(b: &[u8], at: usize, end: usize) -> usize {
    memchr::memchr(b'\n', &b[at..end]).map_or(end, |n| at + n + 1)
}

/// Position of the line break that ends the content before a delimiter at `d`.
fn trim_break(b: &[u8], start: usize, d: usize) -> usize {
    let mut e = d;
    if e > start && b[e - 1] == b'\n' {
        e -= 1;
        if e > start && b[e - 1] == b'\r' {
            e -= 1;
        }
    }
    e
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e]
}

fn starts_with_ci(v: &[u8], p: &[u8]) -> bool {
    v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(body: &[u8], s: &Scan) -> Vec<u8> {
        s.pieces
            .iter()
            .flat_map(|p| body[p.range.clone()].to_vec())
            .collect()
    }

    #[test]
    fn summary_and_single_part_sharing() {
        // Goal: summary fields are found (folded, case-insensitive); a big single body is shared.
        let body = format!(
            "from: A <a@x.test>\r\nSubject: hello\r\n  world\r\nDate: today\r\n\r\n{}",
            "x".repeat(5000)
        );
        let s = scan(body.as_bytes(), 4096);
        assert_eq!(s.from, "A <a@x.test>");
        assert_eq!(s.subject, "hello  world");
        assert_eq!(s.date, "today");
        assert_eq!(s.pieces.len(), 2);
        assert!(s.pieces[1].shared);
        assert_eq!(covers(body.as_bytes(), &s), body.as_bytes());
        let small = scan(b"Subject: a\r\n\r\nbody", 4096);
        assert_eq!(small.pieces.len(), 1);
        assert!(!small.has_attachments);
    }

    #[test]
    fn multipart_parts_and_attachments() {
        // Goal: the large attachment part is shared, small parts inline, bytes covered exactly.
        let att = "QUJD".repeat(2000);
        let body = format!(
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npre\r\n--b1\r\n\
             Content-Type: text/plain\r\n\r\nhi code 123\r\n--b1\r\n\
             Content-Disposition: attachment; filename=a.bin\r\n\r\n{att}\r\n--b1--\r\nepi\r\n"
        );
        let s = scan(body.as_bytes(), 4096);
        assert!(s.has_attachments);
        let shared: Vec<_> = s.pieces.iter().filter(|p| p.shared).collect();
        assert_eq!(shared.len(), 1);
        assert_eq!(&body.as_bytes()[shared[0].range.clone()], att.as_bytes());
        assert_eq!(covers(body.as_bytes(), &s), body.as_bytes());
    }

    #[test]
    fn hostile_input_is_bounded() {
        // Goal: no header block, endless boundaries and bare bytes neither panic nor lose bytes.
        let mut b = b"Content-Type: multipart/mixed; boundary=z\n\n".to_vec();
        for _ in 0..1000 {
            b.extend_from_slice(b"--z\nContent-Type: multipart/mixed; boundary=z\n\n");
        }
        let s = scan(&b, 256);
        assert_eq!(covers(&b, &s), b);
        for raw in [&b""[..], b"\n", b"no colon line", b"\xff\xfe: \xff\r\n\r\n"] {
            assert_eq!(covers(raw, &scan(raw, 256)), raw);
        }
    }

    /// The header-block split the lazy reader replaced, kept as the reference.
    fn reference_split(b: &[u8]) -> (usize, usize) {
        let mut i = 0;
        while i < b.len() {
            let rest = &b[i..];
            if rest.starts_with(b"\r\n") {
                return (i, i + 2);
            }
            if rest.starts_with(b"\n") {
                return (i, i + 1);
            }
            match memchr::memchr(b'\n', rest) {
                Some(n) => i += n + 1,
                None => return (b.len(), b.len()),
            }
        }
        (b.len(), b.len())
    }

    /// The eager field reader the lazy one replaced, kept as the reference.
    fn reference_fields(head: &[u8]) -> Vec<(&[u8], Cow<'_, [u8]>)> {
        let mut out: Vec<(&[u8], Cow<'_, [u8]>)> = Vec::new();
        for line in head.split(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
                if let Some(last) = out.last_mut()
                    && last.1.len() < 4 * SUMMARY_VALUE_BYTES_MAX
                {
                    last.1.to_mut().extend_from_slice(line);
                }
                continue;
            }
            if let Some(colon) = line.iter().position(|&c| c == b':') {
                out.push((
                    trim(&line[..colon]),
                    Cow::Borrowed(trim(&line[colon + 1..])),
                ));
            }
        }
        out
    }

    #[test]
    fn lazy_fields_match_the_reference() {
        // Goal: the lazy reader yields exactly the fields and body start the eager split and
        // reader did: folding, malformed lines, leading continuations, bare LF, a blank
        // line first or last, a stray CR and long folds included.
        let long = format!("Subject: a\r\n{}", " b\r\n".repeat(600));
        let heads: [&[u8]; 14] = [
            b"",
            b"\r\n",
            b"From: a\r\nSubject: b\r\n",
            b"  lead\r\nFrom: a\r\n\tfold\r\n",
            b"Subject: a\r\nmalformed\r\n b\r\nDate: d",
            b"X:\nY :  v  \n :w\n\n",
            b"no colon\nstill none\n",
            b"A: 1\r\n\r\n B\r\nC: 3",
            long.as_bytes(),
            b"A: 1\r\n B\r\n\r\nbody: x\r\n",
            b"A: 1\nbad\n\nC: 2",
            b"\r\n\r\nA: 1",
            b"A: 1\r",
            b"A: 1\r\n\r",
        ];
        for h in heads {
            let (head_end, body_start) = reference_split(h);
            let mut f = Fields::new(h);
            let lazy: Vec<_> = f.by_ref().collect();
            let shown = String::from_utf8_lossy(h);
            assert_eq!(lazy, reference_fields(&h[..head_end]), "{shown:?}");
            assert_eq!(f.body_start(), body_start, "{shown:?}");
        }
        let s = scan(b"Subject: \xc3\xa9t\xc3\xa9\x01!\r\nFrom: \xff\r\n\r\n", 0);
        assert_eq!(s.subject, "\u{e9}t\u{e9}!");
        assert_eq!(s.from, "\u{fffd}");
    }
}
