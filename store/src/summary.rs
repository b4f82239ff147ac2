//! The listing's `From:` and `Subject:`, decoded once when the record is built, so a
//! listing reads them as stored instead of parsing each message again.
//!
//! Records of format version 2 hold the values as received; readers decode those with
//! [`decoded`] (see [`crate::frame::FORMAT_VERSION`]).

use std::ops::Range;

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
    if subject_plain && let Some(shown) = plain_from(from) {
        // What mail-parser would give (the differential test below checks it), cut in
        // place: a plain value is ASCII without control characters, so `bounded` would
        // only cut it at the bound.
        from.truncate(shown.end.min(shown.start + SUMMARY_VALUE_BYTES_MAX));
        from.drain(..shown.start);
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

/// A `From:` value in one of the plain forms, `a@b`, `<a@b>` or `Name Words <a@b>`: where
/// in `from` the text [`decode_in_place`] would show is, found without parsing the header.
/// `None` for anything with quotes, comments, encoded words, groups, escapes, tabs or runs
/// of spaces, which take mail-parser's path.
fn plain_from(from: &str) -> Option<Range<usize>> {
    let lead = from.len() - from.trim_start_matches(' ').len();
    let value = from.trim_matches(' ');
    let Some(inner) = value.strip_suffix('>') else {
        return plain_address(value).then(|| lead..lead + value.len());
    };
    let (name, address) = inner.split_once('<')?;
    if !plain_address(address) {
        return None;
    }
    if name.is_empty() {
        // Inside the angle brackets.
        return Some(lead + 1..lead + 1 + address.len());
    }
    // One space before the `<`, as the shown form has it.
    let name = name.strip_suffix(' ')?;
    let words_ok = name.split(' ').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'\''))
    });
    // `Name <a@b>` is shown as it is written, from the name's first byte.
    words_ok.then(|| lead..lead + name.len() + address.len() + 3)
}

/// An address of ASCII letters, digits and `._+-`, with one `@` inside it.
fn plain_address(a: &str) -> bool {
    let b = a.as_bytes();
    let at = b.iter().filter(|&&c| c == b'@').count();
    at == 1
        && b.first().is_some_and(|&c| c != b'@')
        && b.last().is_some_and(|&c| c != b'@')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-' | b'@'))
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

    /// What `decode_in_place` gives for `from` through mail-parser alone.
    fn parsed_from(from: &str) -> String {
        let mut shown = from.to_owned();
        let head = format!("From: {from}\r\n\r\n");
        if let Some(a) = MessageParser::default()
            .parse_headers(head.as_bytes())
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
        {
            let text = match (a.name(), a.address()) {
                (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                (None, Some(ad)) => ad.to_owned(),
                (Some(n), None) => n.to_owned(),
                (None, None) => String::new(),
            };
            bounded(&text, &mut shown);
        }
        shown
    }

    #[test]
    fn plain_from_values_are_shown_as_mail_parser_shows_them() {
        // Goal: the shortcut for plain From values changes nothing. Method: the common
        // forms, the near misses that must take mail-parser's path, and (below) random
        // values over the characters the shortcut looks at, each against mail-parser.
        for from in [
            "s@tempmx.test",
            "<s@tempmx.test>",
            " <s@tempmx.test> ",
            "Jane Doe <jane.doe+x@mail.example>",
            "O'Brien-Smith_2 <o@x.test>",
            "Name<n@x.test>",
            "Two  Spaces <t@x.test>",
            "\"Doe, Jane\" <jane@x.test>",
            "Jane (work) <jane@x.test>",
            "a@b@c",
            "@x.test",
            "<>",
            "Team",
            "Dr. Who <who@x.test>",
        ] {
            let mut fast = from.to_owned();
            decode_in_place(&mut fast, &mut String::new());
            assert_eq!(fast, parsed_from(from), "{from:?}");
        }
        // At the summary bound and past it (a record of format version 2 is decoded from
        // what it stored): cut as mail-parser's path cuts.
        for len in [SUMMARY_VALUE_BYTES_MAX, SUMMARY_VALUE_BYTES_MAX + 44] {
            let local = "l".repeat(len - "Jo Doe <@x.test>".len());
            let from = format!("Jo Doe <{local}@x.test>");
            assert_eq!(from.len(), len);
            assert!(plain_from(&from).is_some());
            let mut fast = from.clone();
            decode_in_place(&mut fast, &mut String::new());
            assert_eq!(fast, parsed_from(&from), "{len} bytes");
            assert!(fast.len() <= SUMMARY_VALUE_BYTES_MAX);
        }
        // The common forms do take the shortcut.
        for from in ["s@x.test", "<s@x.test>", "Jane Doe <jane@x.test>"] {
            assert!(plain_from(from).is_some(), "{from:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn plain_from_agrees_with_mail_parser(
            name in "[ a-zA-Z0-9._'\"(),-]{0,14}",
            address in "[a-z0-9._+@<>-]{0,14}",
            lead in " {0,2}",
            gap in " {0,2}",
            shape in 0..3u8,
        ) {
            let from = match shape {
                0 => format!("{lead}{address}"),
                1 => format!("{lead}<{address}>{gap}"),
                _ => format!("{lead}{name}{gap}<{address}>"),
            };
            let mut fast = from.clone();
            decode_in_place(&mut fast, &mut String::new());
            proptest::prop_assert_eq!(fast, parsed_from(&from));
        }
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
