//! Result rows and the `Authentication-Results:` header (RFC 8601) built from them.
//!
//! Every value echoed comes from the peer (domains, selectors) and is sanitised to RFC 8601
//! value syntax and truncated, so a row can always be folded under 78 columns.

use tempmx_store::AuthResult;

use super::values::{AuthMethod, AuthValue};

/// Longest echoed value, in characters before quoting: the longest property line is then
/// `\t` + `smtp.mailfrom=` + `"` + 56 escaped-and-cut chars + `"` + `;` = 74 columns.
pub const VALUE_CHARS_MAX: usize = 56;
/// Longest authserv-id; it sits alone on a continuation line when the first line is full.
pub const AUTHSERV_ID_CHARS_MAX: usize = 64;
const LINE_COLUMNS_MAX: usize = 78;
const FIELD_NAME: &str = "Authentication-Results:";

/// One resinfo: method, result and its `ptype.property=value` tokens (already sanitised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) method: AuthMethod,
    pub(crate) value: AuthValue,
    props: Vec<String>,
}

impl Row {
    /// A row whose properties are `(name, raw peer value)`; empty values are left out.
    pub(crate) fn new(method: AuthMethod, value: AuthValue, props: &[(&str, &str)]) -> Self {
        let props = props
            .iter()
            .filter_map(|(name, raw)| sanitize_value(raw).map(|v| format!("{name}={v}")))
            .collect();
        Self {
            method,
            value,
            props,
        }
    }

    /// The row as the store keeps it.
    pub(crate) fn to_store(&self) -> AuthResult {
        AuthResult {
            method: self.method.label().to_owned(),
            result: self.value.label().to_owned(),
            props: self.props.join(" "),
        }
    }
}

/// `raw` as an RFC 8601 value: a token when it only has domain-name characters, else a
/// quoted-string of its printable ASCII (others dropped); at most [`VALUE_CHARS_MAX`] chars.
/// `None` when nothing printable is left.
pub fn sanitize_value(raw: &str) -> Option<String> {
    let is_plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if !raw.is_empty() && raw.len() <= VALUE_CHARS_MAX && raw.chars().all(is_plain) {
        return Some(raw.to_owned());
    }
    let mut quoted = String::with_capacity(VALUE_CHARS_MAX + 2);
    quoted.push('"');
    let mut used = 0;
    for c in raw.chars().filter(|c| c.is_ascii_graphic() || *c == ' ') {
        let width = if matches!(c, '"' | '\\') { 2 } else { 1 };
        if used + width > VALUE_CHARS_MAX {
            break;
        }
        if width == 2 {
            quoted.push('\\');
        }
        quoted.push(c);
        used += width;
    }
    quoted.push('"');
    (used > 0).then_some(quoted)
}

/// True when `id` can be our authserv-id: a non-empty dot-atom of domain characters.
pub(crate) fn valid_authserv_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= AUTHSERV_ID_CHARS_MAX
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The complete header field, CRLF-terminated, one resinfo per folded line.
pub(crate) fn header(authserv_id: &str, rows: &[Row]) -> Vec<u8> {
    let mut out = String::with_capacity(64 + rows.len() * 48);
    out.push_str(FIELD_NAME);
    let first = format!("{authserv_id};");
    if FIELD_NAME.len() + 1 + first.len() <= LINE_COLUMNS_MAX {
        out.push(' ');
    } else {
        out.push_str("\r\n\t");
    }
    out.push_str(&first);
    if rows.is_empty() {
        // RFC 8601 §2.2: "none" says no method was applied.
        out.push_str(" none");
    }
    for (i, row) in rows.iter().enumerate() {
        let last = i + 1 == rows.len();
        push_resinfo(&mut out, row, last);
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Appends `\r\n\t<method>=<result> <props…>[;]`, folding before a token that would pass
/// [`LINE_COLUMNS_MAX`].
fn push_resinfo(out: &mut String, row: &Row, last: bool) {
    let head = format!("{}={}", row.method.label(), row.value.label());
    let mut tokens: Vec<&str> = Vec::with_capacity(row.props.len() + 1);
    tokens.push(&head);
    tokens.extend(row.props.iter().map(String::as_str));
    let mut column = 1;
    out.push_str("\r\n\t");
    for (i, token) in tokens.iter().enumerate() {
        let tail = usize::from(!last && i + 1 == tokens.len());
        if i > 0 {
            if column + 1 + token.len() + tail > LINE_COLUMNS_MAX {
                out.push_str("\r\n\t");
                column = 1;
            } else {
                out.push(' ');
                column += 1;
            }
        }
        out.push_str(token);
        column += token.len();
    }
    if !last {
        out.push(';');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_domains_stay_tokens_and_odd_values_are_quoted() {
        assert_eq!(
            sanitize_value("mail.example.com").as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(sanitize_value("a b;c").as_deref(), Some("\"a b;c\""));
        assert_eq!(sanitize_value("x\"y\\").as_deref(), Some("\"x\\\"y\\\\\""));
        assert_eq!(sanitize_value("é\r\n\u{7}").as_deref(), None);
        assert_eq!(sanitize_value(""), None);
        assert_eq!(sanitize_value("::1").as_deref(), Some("\"::1\""));
    }

    #[test]
    fn values_are_cut_at_the_limit() {
        let long = "a".repeat(300);
        let v = sanitize_value(&long).expect("printable");
        assert_eq!(v.len(), VALUE_CHARS_MAX + 2);
        let slashes = "\\".repeat(300);
        let v = sanitize_value(&slashes).expect("printable");
        assert!(v.len() <= VALUE_CHARS_MAX + 2);
        assert!(v.ends_with("\\\\\""), "an escape pair is never split: {v}");
    }

    #[test]
    fn header_lines_stay_under_78_columns_with_worst_case_values() {
        let nasty = "\\\"".repeat(200);
        let rows = vec![
            Row::new(
                AuthMethod::Spf,
                AuthValue::Pass,
                &[("smtp.mailfrom", &nasty)],
            ),
            Row::new(
                AuthMethod::Dkim,
                AuthValue::PermError,
                &[("header.d", &nasty), ("header.s", &nasty)],
            ),
            Row::new(
                AuthMethod::Dmarc,
                AuthValue::Fail,
                &[("header.from", &nasty)],
            ),
            Row::new(AuthMethod::Arc, AuthValue::None, &[]),
        ];
        let id = "m".repeat(AUTHSERV_ID_CHARS_MAX);
        let text = String::from_utf8(header(&id, &rows)).expect("ascii");
        assert!(text.ends_with("\r\n"));
        for line in text.trim_end_matches("\r\n").split("\r\n") {
            assert!(
                line.len() <= LINE_COLUMNS_MAX,
                "{} columns: {line}",
                line.len()
            );
        }
        assert!(text.starts_with("Authentication-Results:\r\n\tmmmm"));
    }

    #[test]
    fn header_shape() {
        let rows = vec![
            Row::new(
                AuthMethod::Spf,
                AuthValue::Pass,
                &[("smtp.mailfrom", "a.example")],
            ),
            Row::new(AuthMethod::Arc, AuthValue::None, &[]),
        ];
        assert_eq!(
            header("mx.test", &rows),
            b"Authentication-Results: mx.test;\r\n\tspf=pass smtp.mailfrom=a.example;\r\n\tarc=none\r\n"
        );
        assert_eq!(
            header("mx.test", &[]),
            b"Authentication-Results: mx.test; none\r\n"
        );
        assert_eq!(rows[0].to_store().props, "smtp.mailfrom=a.example");
    }
}
