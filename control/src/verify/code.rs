//! One-time codes: 4 to 8 digits (also written in groups, `123 456`, `1 2 3 4`,
//! `123-456`) or short upper-case alphanumerics, scored by how close a code word is, how
//! the code stands on its line, and whether the number is really money, a date, a phone
//! number or an order number.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use super::keywords::{CODE_WORDS, CURRENCY, DECOY_FILLERS, DECOY_WORDS};
use super::text::Document;
use super::{Kind, Verification};

/// Marker words counted per message (a hostile message repeating `code` gains nothing).
const HITS_MAX: usize = 512;
/// Candidates scored per message.
const CANDIDATES_MAX: usize = 256;
/// Bytes between a code word and a code within which the word counts fully.
const NEAR_BYTES: usize = 40;
/// Bytes beyond which a code word does not count.
const FAR_BYTES: usize = 320;
/// Bytes before a number within which a decoy word makes it something else.
const DECOY_BYTES: usize = 30;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Digits,
    Alnum,
    Letters,
}

#[derive(Debug)]
struct Candidate {
    start: usize,
    end: usize,
    value: String,
    shape: Shape,
}

/// Scored codes of `doc`, unsorted, one entry per distinct value (its best score).
pub fn find(doc: &Document) -> Vec<Verification> {
    let text = doc.text.as_str();
    let low = lower_same_len(text);
    let found = markers(&low);
    let hits = word_hits(&low, &found);
    let decoys = decoy_hits(&low, &found);
    let urls = url_ranges(text);
    let mut out: Vec<Verification> = Vec::new();
    for c in candidates(text).into_iter().take(CANDIDATES_MAX) {
        if urls.iter().any(|&(s, e)| c.start >= s && c.end <= e) || !clean_edges(text, &low, &c) {
            continue;
        }
        let score = score(text, &low, &c, &hits, &decoys);
        match out.iter_mut().find(|v| v.value == c.value) {
            Some(v) => v.score = v.score.max(score),
            None => out.push(Verification {
                kind: Kind::Code,
                value: c.value,
                score,
            }),
        }
    }
    out
}

/// Lower-cases character by character, keeping every byte offset (a character whose
/// lower case has another length stays as it is).
fn lower_same_len(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(x), None) if x.len_utf8() == c.len_utf8() => x,
                _ => c,
            }
        })
        .collect()
}

/// Alphabetic scripts where words are separated (Latin, Greek, Cyrillic); in others a
/// marker may touch the letters around it.
fn spaced_script(c: char) -> bool {
    c.is_alphabetic() && (c as u32) < 0x0590
}

/// One automaton over the code words and then the decoy words (pattern ids in that
/// order): one pass over a message's text instead of one per word (about 300).
static MARKERS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new(
        CODE_WORDS
            .iter()
            .map(|w| w.text)
            .chain(DECOY_WORDS.iter().copied()),
    )
    .expect("the marker words build an automaton")
});

/// Where each marker word occurs in `low`, as `(pattern id, start)` sorted by word, then
/// position: per word what `str::match_indices` finds (left to right, never overlapping
/// that word's previous match), so the hits below are the ones a search per word gave.
fn markers(low: &str) -> Vec<(usize, usize)> {
    let mut last_end = vec![0; MARKERS.patterns_len()];
    let mut found = Vec::new();
    // One word's matches come in order of their end, which for one length is their start.
    for m in MARKERS.find_overlapping_iter(low) {
        let p = m.pattern().as_usize();
        if m.start() >= last_end[p] {
            last_end[p] = m.end();
            found.push((p, m.start()));
        }
    }
    found.sort_unstable();
    found
}

/// The code words among `found` that stand as words, up to [`HITS_MAX`].
fn word_hits(low: &str, found: &[(usize, usize)]) -> Vec<(usize, usize, f32)> {
    let mut hits = Vec::new();
    for &(p, at) in found.iter().filter(|(p, _)| *p < CODE_WORDS.len()) {
        if hits.len() >= HITS_MAX {
            break;
        }
        let word = &CODE_WORDS[p];
        let end = at + word.text.len();
        if bounded(low, at, end, word.text, word.compound) {
            hits.push((at, end, word.weight));
        }
    }
    hits
}

/// The decoy words among `found` that stand as words, up to [`HITS_MAX`].
fn decoy_hits(low: &str, found: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut hits = Vec::new();
    for &(p, at) in found.iter().filter(|(p, _)| *p >= CODE_WORDS.len()) {
        if hits.len() >= HITS_MAX {
            break;
        }
        let word = DECOY_WORDS[p - CODE_WORDS.len()];
        let end = at + word.len();
        if bounded(low, at, end, word, false) {
            hits.push((at, end));
        }
    }
    hits
}

/// Whether a match at `start..end` is a word (or a word's start, for stems): no letter
/// of a spaced script just before it (unless it may end a compound), and none after a
/// short word (`pin` is not `pink`).
fn bounded(low: &str, start: usize, end: usize, word: &str, compound: bool) -> bool {
    let first = word.chars().next().is_some_and(spaced_script);
    let before = low[..start].chars().next_back();
    if first && !compound && before.is_some_and(spaced_script) {
        return false;
    }
    let short = word.chars().count() <= 4;
    let after = low[end..].chars().next();
    !(short && first && after.is_some_and(spaced_script))
}

/// Spans of URLs and e-mail-like words, whose digits are never codes.
fn url_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for pat in ["http://", "https://", "www."] {
        for (at, _) in text.match_indices(pat) {
            let end = text[at..]
                .find(char::is_whitespace)
                .map_or(text.len(), |e| at + e);
            out.push((at, end));
        }
    }
    out
}

/// Runs of ASCII letters and digits as `(start, end)`.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            let s = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Upper-case letters and digits, both present.
fn is_alnum_code(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().any(|b| b.is_ascii_uppercase())
}

/// Upper-case letters with at most one vowel (codes avoid words; `VERIFY` is a word).
fn is_letter_code(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_uppercase())
        && s.bytes().filter(|b| b"AEIOUY".contains(b)).count() <= 1
}

fn candidates(text: &str) -> Vec<Candidate> {
    let toks = tokens(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() && out.len() < CANDIDATES_MAX {
        let (s, e) = toks[i];
        let t = &text[s..e];
        if is_digits(t) {
            // A run of digit groups joined by one space or hyphen is one number.
            let mut j = i;
            while j + 1 < toks.len()
                && is_digits(&text[toks[j + 1].0..toks[j + 1].1])
                && matches!(&text[toks[j].1..toks[j + 1].0], " " | "-")
            {
                j += 1;
            }
            let groups: Vec<&str> = toks[i..=j].iter().map(|&(a, b)| &text[a..b]).collect();
            let total: usize = groups.iter().map(|g| g.len()).sum();
            let even = groups.iter().all(|g| g.len() == 1)
                || groups
                    .iter()
                    .all(|g| g.len() == groups[0].len() && g.len() <= 4);
            if (4..=8).contains(&total) && (groups.len() == 1 || even) {
                out.push(Candidate {
                    start: s,
                    end: toks[j].1,
                    value: groups.concat(),
                    shape: Shape::Digits,
                });
            }
            i = j + 1;
            continue;
        }
        if is_alnum_code(t) || is_digits(t) {
            // `X7K-2QF`: two alphanumeric halves joined by a hyphen stay one code.
            if let Some(&(s2, e2)) = toks.get(i + 1)
                && &text[e..s2] == "-"
                && (3..=5).contains(&t.len())
                && (3..=5).contains(&(e2 - s2))
                && (is_alnum_code(&text[s2..e2]) || is_digits(&text[s2..e2]))
            {
                out.push(Candidate {
                    start: s,
                    end: e2,
                    value: text[s..e2].to_owned(),
                    shape: Shape::Alnum,
                });
                i += 2;
                continue;
            }
            if (4..=10).contains(&t.len()) {
                out.push(Candidate {
                    start: s,
                    end: e,
                    value: t.to_owned(),
                    shape: Shape::Alnum,
                });
            }
        } else if (5..=8).contains(&t.len()) && is_letter_code(t) {
            out.push(Candidate {
                start: s,
                end: e,
                value: t.to_owned(),
                shape: Shape::Letters,
            });
        }
        i += 1;
    }
    out
}

/// False when the characters around the candidate make it part of something else: an
/// address, a path, money, a decimal, a date or a time.
fn clean_edges(text: &str, low: &str, c: &Candidate) -> bool {
    let before = text[..c.start].chars().next_back();
    let mut after_it = text[c.end..].chars();
    let after = after_it.next();
    let after2 = after_it.next();
    let before2 = text[..c.start].chars().rev().nth(1);
    if before.is_some_and(|b| "@/=&?_#+\\|".contains(b) || CURRENCY.contains(&b))
        || after.is_some_and(|a| "@/_%\\|".contains(a) || CURRENCY.contains(&a))
    {
        return false;
    }
    // 1.234,56 / 12:30 / 03.12.2026 / 12/03
    let numeric_join = |c: Option<char>| c.is_some_and(|c| ".,:".contains(c));
    if numeric_join(after) && after2.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    if numeric_join(before) && before2.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    if c.shape == Shape::Digits || c.shape == Shape::Alnum {
        let head = &low[floor(low, c.start.saturating_sub(5))..c.start];
        let tail_end = ceil(low, (c.end + 5).min(low.len()));
        let tail = &low[c.end..tail_end];
        let money = |s: &str| {
            s.chars().any(|ch| CURRENCY.contains(&ch))
                || [
                    "usd", "eur", "gbp", "rub", "jpy", "cny", "brl", "inr", "chf",
                ]
                .iter()
                .any(|m| s.contains(m))
        };
        if money(head) || money(tail) {
            return false;
        }
    }
    true
}

fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn score(
    text: &str,
    low: &str,
    c: &Candidate,
    hits: &[(usize, usize, f32)],
    decoys: &[(usize, usize)],
) -> f32 {
    let mut kw = 0.0f32;
    let mut nearest = usize::MAX;
    for &(s, e, weight) in hits {
        let (d, dir) = if e <= c.start {
            (c.start - e, 1.0)
        } else if s >= c.end {
            (s - c.end, 0.85)
        } else {
            continue;
        };
        nearest = nearest.min(d);
        kw = kw.max(weight * dir * proximity(d));
    }
    // `Order #552910`, `Card **** 7128`, `Tel. 0800 123 4567`: a decoy word right before
    // the number with nothing but filler between (`BOOKING.COM es 511521` is no order).
    let decoyed = decoys.iter().any(|&(_, e)| {
        e <= c.start
            && c.start - e <= DECOY_BYTES
            && c.start - e < nearest
            && only_filler(&low[e..c.start])
    });
    let shape = match (c.shape, c.value.len()) {
        (Shape::Digits, 6) => 1.0,
        (Shape::Digits, 4 | 5 | 8) => 0.8,
        (Shape::Digits, _) => 0.7,
        (Shape::Alnum, _) => 0.85,
        (Shape::Letters, _) => 0.5,
    };
    let line_start = text[..c.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[c.end..].find('\n').map_or(text.len(), |i| c.end + i);
    let trim = |s: &str| {
        s.trim_matches(|ch: char| ch.is_whitespace() || ":：.,;!|*\"'«»“”()[]-–—".contains(ch))
            .is_empty()
    };
    let alone = trim(&text[line_start..c.start]) && trim(&text[c.end..line_end]);
    let after_colon = text[..c.start].trim_end().ends_with([':', '：', '：']);
    if c.shape == Shape::Letters && !(alone || after_colon) {
        return 0.0;
    }
    let mut s = 0.6 * kw + 0.25 * shape;
    if alone {
        s += 0.15;
    } else if after_colon {
        s += 0.1;
    }
    // `SAVE20 for 20% off`: a discount, not a code.
    let tail = &text[c.end..ceil(text, (c.end + 25).min(text.len()))];
    if decoyed || tail.contains('%') {
        s -= 0.6;
    }
    let line = &low[line_start..line_end];
    // Footers and postal addresses: `© 2026 Shop, 1 Market Street, CA 94043`.
    if line.contains('©')
        || text[..c.start]
            .trim_end()
            .ends_with(|ch: char| ch.is_ascii_uppercase())
            && state_before(&text[line_start..c.start])
    {
        return 0.0;
    }
    if ADDRESS_WORDS.iter().any(|w| line.contains(w)) {
        s -= 0.5;
    }
    let year = (1900..=2099).contains(&c.value.parse::<u32>().unwrap_or(0));
    if c.shape == Shape::Digits && c.value.len() == 4 && year && nearest > NEAR_BYTES {
        let head = &low[floor(low, c.start.saturating_sub(14))..c.start];
        if head.contains('©') || head.contains("copyright") || head.contains("(c)") {
            return 0.0;
        }
        s -= 0.35;
    }
    s.clamp(0.0, 1.0)
}

/// Words of postal addresses.
const ADDRESS_WORDS: &[&str] = &[
    " street", " st.", " avenue", " ave", " road", " suite", "straße", "strasse", " calle ",
    " rue ", " via ", "ул.", " blvd", " floor",
];

/// Whether the text before a number ends in a two-letter state code (`, CA 94043`).
fn state_before(before: &str) -> bool {
    let t = before.trim_end();
    let b = t.as_bytes();
    b.len() >= 4
        && b[b.len() - 2..].iter().all(u8::is_ascii_uppercase)
        && matches!(b[b.len() - 3], b' ')
        && matches!(b[b.len() - 4], b',')
}

/// Whether the words between a decoy and a number are only fillers (`number`, `no.`).
fn only_filler(between: &str) -> bool {
    between
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .all(|w| DECOY_FILLERS.contains(&w))
}

/// How much a code word `d` bytes away counts: fully when near, fading to nothing.
fn proximity(d: usize) -> f32 {
    if d <= NEAR_BYTES {
        1.0
    } else if d >= FAR_BYTES {
        0.0
    } else {
        1.0 - 0.75 * (d - NEAR_BYTES) as f32 / (FAR_BYTES - NEAR_BYTES) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<(String, f32)> {
        let mut d = Document::default();
        d.push_text(text);
        let mut v: Vec<_> = find(&d)
            .into_iter()
            .filter(|v| v.score >= super::super::SCORE_MIN)
            .map(|v| (v.value, v.score))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// Every marker word's matches as a search per word finds them, by word then position.
    fn per_word(text: &str) -> Vec<(usize, usize)> {
        let words = CODE_WORDS
            .iter()
            .map(|w| w.text)
            .chain(DECOY_WORDS.iter().copied());
        words
            .enumerate()
            .flat_map(|(p, w)| text.match_indices(w).map(move |(at, _)| (p, at)))
            .collect()
    }

    // Goal: a text as long as a message's text may be (`TEXT_BYTES_MAX`), made of nothing
    // but marker words, keeps at most `HITS_MAX` hits of each kind, and the one pass finds
    // what a search per word finds (left to right, none overlapping that word's previous
    // match), words run together included. Method: `markers` against `match_indices`.
    #[test]
    fn marker_words_at_the_text_limit() {
        let unit = "code pin otp order total ";
        let text = unit.repeat(super::super::TEXT_BYTES_MAX / unit.len());
        let found = markers(&text);
        assert_eq!(found, per_word(&text));
        assert_eq!(word_hits(&text, &found).len(), HITS_MAX);
        assert_eq!(decoy_hits(&text, &found).len(), HITS_MAX);
        let joined = "pinpinpin codecodecode ordertotalorder";
        assert_eq!(markers(joined), per_word(joined));
    }

    // Goal: the shapes of codes and the usual decoys, one line each. Method: a table of
    // texts and the best code expected (or none).
    #[test]
    fn code_table() {
        let table: &[(&str, Option<&str>)] = &[
            ("Your verification code is 482913.", Some("482913")),
            ("Ihr Bestätigungscode: 5521", Some("5521")),
            ("Tu código es\n\n  734 112  \n", Some("734112")),
            ("Код подтверждения: 90817", Some("90817")),
            ("您的验证码是 662301，5分钟内有效。", Some("662301")),
            ("Enter this code:\n1 2 3 4 5 6", Some("123456")),
            ("Your login code is X7K-2QF", Some("X7K-2QF")),
            ("Order #552910 total $129.99, call 555 123 4567", None),
            ("Your code expires on 12/03/2026 at 14:30.", None),
            ("© 2026 Example Inc, 1600 Main St, CA 94043", None),
            ("Use code SAVE20 for 20% off your next order", None),
            ("Invoice 20261204: amount 1234 EUR", None),
        ];
        for (text, want) in table {
            let got = codes(text);
            assert_eq!(
                got.first().map(|g| g.0.as_str()),
                *want,
                "{text:?}: {got:?}"
            );
        }
    }
}
