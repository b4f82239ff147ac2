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
    let (head_end, body_start) = split_head(body);
    // The top-level header block is parsed once, for the summary and for the walk.
    let fields = header_fields(&body[..head_end]);
    for (name, value) in &fields {
        let slot = if name.eq_ignore_ascii_case(b"from") {
            &mut s.from
        } else if name.eq_ignore_ascii_case(b"subject") {
            &mut s.subject
        } else if name.eq_ignore_ascii_case(b"date") {
            &mut s.date
        } else if name.eq_ignore_ascii_case(b"message-id") {
            &mut s.message_id
        } else {
            continue;
        };
        if slot.is_empty() {
            summary_value(value, slot);
        }
    }
    s.pieces.clear();
    let mut w = Walker {
        body,
        part_min,
        pieces: std::mem::take(&mut s.pieces),
        attach: false,
    };
    w.parsed(0..body.len(), body_start, &fields, 0);
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
        let bytes = &self.body[r.clone()];
        let (head_end, body_start) = split_head(bytes);
        let fields = header_fields(&bytes[..head_end]);
        self.parsed(r, body_start, &fields, depth);
    }

    /// Walks the entity `r` whose header `fields` are parsed and whose body starts at
    /// `body_start` (relative to `r`).
    fn parsed(
        &mut self,
        r: Range<usize>,
        body_start: usize,
        fields: &[(&[u8], Cow<'_, [u8]>)],
        depth: usize,
    ) {
        let mut boundary = None;
        for (name, value) in fields {
            if name.eq_ignore_ascii_case(b"content-disposition")
                && starts_with_ci(value, b"attachment")
            {
                self.attach = true;
            }
            if name.eq_ignore_ascii_case(b"content-type") && starts_with_ci(value, b"multipart/") {
                boundary = boundary_param(value);
            }
        }
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

/// Returns (end of header block, start of body) for an entity.
fn split_head(b: &[u8]) -> (usize, usize) {
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

/// Header fields (name, unfolded value) of a header block; malformed lines are skipped.
/// Values borrow from the input unless folded.
fn header_fields(head: &[u8]) -> Vec<(&[u8], Cow<'_, [u8]>)> {
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

/// Writes the summary form of a header value into `out` (empty): trimmed, cut at
/// [`SUMMARY_VALUE_BYTES_MAX`] on a char boundary, invalid UTF-8 replaced, controls dropped.
fn summary_value(v: &[u8], out: &mut String) {
    let v = trim(v);
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
}
