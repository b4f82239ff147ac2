//! Finds incoming `Authentication-Results:` fields that claim our authserv-id
//! (RFC 8601 §5: a receiver must remove them, since a sender could forge our verdicts).

use std::ops::Range;

const FIELD: &[u8] = b"authentication-results";

/// Byte ranges of the header section's `Authentication-Results:` fields whose authserv-id is
/// `authserv_id` (ASCII case-insensitive), each with its folded lines and line ending.
pub(crate) fn forged_ranges(message: &[u8], authserv_id: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut start = 0;
    while start < message.len() {
        let end = field_end(message, start);
        let field = message.get(start..end).unwrap_or_default();
        if is_blank_line(field) {
            break;
        }
        if claims_id(field, authserv_id.as_bytes()) {
            found.push(start..end);
        }
        start = end;
    }
    found
}

/// End of the field starting at `start`: past its line ending and every continuation line.
fn field_end(message: &[u8], start: usize) -> usize {
    let mut end = line_end(message, start);
    while matches!(message.get(end), Some(b' ' | b'\t')) {
        end = line_end(message, end);
    }
    end
}

fn line_end(message: &[u8], from: usize) -> usize {
    let rest = message.get(from..).unwrap_or_default();
    match memchr::memchr(b'\n', rest) {
        Some(i) => from + i + 1,
        None => message.len(),
    }
}

fn is_blank_line(field: &[u8]) -> bool {
    field == b"\r\n" || field == b"\n"
}

fn claims_id(field: &[u8], id: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', field) else {
        return false;
    };
    let (name, value) = field.split_at(colon);
    if !name.trim_ascii_end().eq_ignore_ascii_case(FIELD) {
        return false;
    }
    authserv_id(value.get(1..).unwrap_or_default())
        .is_some_and(|found| found.eq_ignore_ascii_case(id))
}

/// The authserv-id at the start of a field value, after any CFWS; quoted-strings unquoted.
fn authserv_id(value: &[u8]) -> Option<Vec<u8>> {
    let rest = skip_cfws(value);
    if let Some(quoted) = rest.strip_prefix(b"\"") {
        return Some(unquote(quoted));
    }
    let len = rest
        .iter()
        .position(|b| matches!(b, b';' | b'(' | b'"' | b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(rest.len());
    let token = rest.get(..len).unwrap_or_default();
    (!token.is_empty()).then(|| token.to_vec())
}

/// Skips folding white space and (nested, escaped) comments.
fn skip_cfws(s: &[u8]) -> &[u8] {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b'\\' if depth > 0 => i += 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => return s.get(i..).unwrap_or_default(),
        }
        i += 1;
    }
    &[]
}

fn unquote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut escaped = false;
    for &b in s {
        match (escaped, b) {
            (false, b'\\') => escaped = true,
            (false, b'"') => break,
            _ => {
                out.push(b);
                escaped = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(message: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        for r in ranges {
            out.extend_from_slice(&message[at..r.start]);
            at = r.end;
        }
        out.extend_from_slice(&message[at..]);
        out
    }

    #[test]
    fn finds_our_id_with_folding_comments_and_case_and_keeps_others() {
        let message = b"Received: x\r\n\
Authentication-Results: MX.Test;\r\n\tspf=pass smtp.mailfrom=a.example\r\n\
Authentication-Results: other.example; dkim=pass\r\n\
authentication-results : (forged) \"mx.test\" 1; none\r\n\
Authentication-Results: mx.test.evil; none\r\n\
Subject: hi\r\n\r\n\
Authentication-Results: mx.test; none\r\n";
        let ranges = forged_ranges(message, "mx.test");
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            cut(message, &ranges),
            b"Received: x\r\n\
Authentication-Results: other.example; dkim=pass\r\n\
Authentication-Results: mx.test.evil; none\r\n\
Subject: hi\r\n\r\n\
Authentication-Results: mx.test; none\r\n"
        );
    }

    #[test]
    fn bare_lf_and_unterminated_input_do_not_panic() {
        let message = b"Authentication-Results: mx.test;\n none\nX: y";
        let end = message.len() - b"X: y".len();
        assert_eq!(forged_ranges(message, "mx.test"), vec![0..end]);
        for input in [
            &b""[..],
            b"(",
            b"Authentication-Results:",
            b"Authentication-Results: (\\",
            b":\"",
        ] {
            assert!(forged_ranges(input, "mx.test").len() <= 1);
        }
        assert!(forged_ranges(b"Authentication-Results: \"mx.test", "mx.test").len() == 1);
    }
}
