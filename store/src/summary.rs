//! The listing's `From:` and `Subject:`, decoded once when the record is built, so a
//! listing reads them as stored instead of parsing each message again.
//!
//! Records of format version 2 hold the values as received; readers decode those with
//! [`decoded`] (see [`crate::frame::FORMAT_VERSION`]).

use mail_parser::MessageParser;

use crate::mime::SUMMARY_VALUE_BYTES_MAX;

/// Decodes the summary's `from` and `subject` (as the ingest scan wrote them) in place:
/// RFC 2047 encoded words become text, `From:` becomes its first address as
/// `Name <address>`, `address` or `Name`, and both stay within
/// [`SUMMARY_VALUE_BYTES_MAX`] bytes without control characters. A value mail-parser
/// cannot read stays as it was.
pub fn decode_in_place(from: &mut String, subject: &mut String) {
    // Plain ASCII subjects without encoded words, the common case, decode to themselves.
    let subject_plain = !subject.contains("=?");
    if from.is_empty() && subject_plain {
        return;
    }
    let head = format!("From: {from}\r\nSubject: {subject}\r\n\r\n");
    let Some(m) = MessageParser::default().parse_headers(head.as_bytes()) else {
        return;
    };
    if let Some(a) = m.from().and_then(|a| a.first()) {
        let shown = match (a.name(), a.address()) {
            (Some(n), Some(ad)) => format!("{n} <{ad}>"),
            (None, Some(ad)) => ad.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        };
        bounded(&shown, from);
    }
    if !subject_plain && let Some(s) = m.subject() {
        bounded(s, subject);
    }
}

/// `from` and `subject` of a record stored undecoded (format version 2), decoded.
pub fn decoded(from: &str, subject: &str) -> (String, String) {
    let (mut f, mut s) = (from.to_owned(), subject.to_owned());
    decode_in_place(&mut f, &mut s);
    (f, s)
}

/// Splits a decoded `From:` summary into display name and address, as
/// [`decode_in_place`] joined them: `Name <address>`, `address` (has an `@`), or `Name`.
pub fn split_from(from: &str) -> (Option<&str>, Option<&str>) {
    if let Some(rest) = from.strip_suffix('>')
        && let Some((name, address)) = rest.rsplit_once(" <")
    {
        return (Some(name), Some(address));
    }
    match from {
        "" => (None, None),
        a if a.contains('@') => (None, Some(a)),
        n => (Some(n), None),
    }
}

/// Writes `v` into `out` cut at [`SUMMARY_VALUE_BYTES_MAX`] on a char boundary, without
/// control characters (a decoded word may carry a line break).
fn bounded(v: &str, out: &mut String) {
    out.clear();
    for c in v.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > SUMMARY_VALUE_BYTES_MAX {
            break;
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_are_decoded_and_from_is_shown_as_name_and_address() {
        // Goal: the ingest summary holds text, not RFC 2047 words. Method: decode Q and B
        // words in From and Subject, a quoted name, and a bare address.
        let (f, s) = decoded("=?utf-8?q?J=C3=BCrgen?= <j@x.test>", "=?utf-8?b?aMOkbGxv?=");
        assert_eq!((f.as_str(), s.as_str()), ("Jürgen <j@x.test>", "hällo"));
        let (f, s) = decoded("\"Doe, Jane\" <jane@x.test>", "plain =? not a word");
        assert_eq!(
            (f.as_str(), s.as_str()),
            ("Doe, Jane <jane@x.test>", "plain =? not a word")
        );
        assert_eq!(decoded("<a@x.test>", "").0, "a@x.test");
        assert_eq!(
            split_from("Doe, Jane <jane@x.test>"),
            (Some("Doe, Jane"), Some("jane@x.test"))
        );
        assert_eq!(split_from("a@x.test"), (None, Some("a@x.test")));
        assert_eq!(split_from("Team"), (Some("Team"), None));
    }

    #[test]
    fn missing_from_stays_empty_and_decoded_text_stays_bounded() {
        // Goal: no From gives an empty value, and a decoded word cannot bring line breaks
        // or more than the summary bound. Method: decode an empty From, a word encoding
        // CR LF, and a subject of many words that decodes past the bound.
        assert_eq!(decoded("", "=?utf-8?q?a?=").0, "");
        assert_eq!(decoded("", "=?utf-8?q?a=0D=0AX-Evil:_1?=").1, "aX-Evil: 1");
        let long = "=?utf-8?b?w6TDpMOkw6TDpMOkw6TDpA==?= ".repeat(20);
        let s = decoded("", &long).1;
        assert!(
            s.len() <= SUMMARY_VALUE_BYTES_MAX && s.starts_with("ää"),
            "{s}"
        );
    }
}
