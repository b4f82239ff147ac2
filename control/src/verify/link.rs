//! Verification and magic sign-in links, scored by their label, their URL's words and
//! whether they carry a token; unsubscribe, legal, help and social links never count.

use super::keywords::{LINK_DECOYS, LINK_WEAK_WORDS, LINK_WORDS};
use super::text::{Document, LinkRef};
use super::{Kind, Verification};

/// Characters of a path segment or query value that make it a token.
const TOKEN_CHARS_MIN: usize = 16;

/// Scored links of `doc`, unsorted, one per distinct URL (its best score).
pub fn find(doc: &Document) -> Vec<Verification> {
    let mut out: Vec<Verification> = Vec::new();
    for l in &doc.links {
        let Some(score) = score(l) else { continue };
        match out.iter_mut().find(|v| v.value == l.url) {
            Some(v) => v.score = v.score.max(score),
            None => out.push(Verification {
                kind: Kind::Link,
                value: l.url.clone(),
                score,
            }),
        }
    }
    out
}

fn score(l: &LinkRef) -> Option<f32> {
    let url = l.url.as_str();
    let lower_url = url.to_lowercase();
    if !(lower_url.starts_with("https://") || lower_url.starts_with("http://")) {
        return None;
    }
    let label = l.label.to_lowercase();
    // The words of the URL past the host (a host named `login.` says nothing), without
    // tokens: a random token may spell `faq` or `auth`.
    let rest = lower_url.splitn(4, '/').nth(3).unwrap_or("");
    let url_words: Vec<&str> = rest
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.bytes().any(|b| b.is_ascii_digit()))
        .collect();
    let in_url = |list: &[&str]| url_words.iter().any(|w| list.iter().any(|d| w.contains(d)));
    let in_label = |list: &[&str]| list.iter().any(|w| label.contains(w));
    if in_label(LINK_DECOYS)
        || url_words
            .iter()
            .any(|w| LINK_DECOYS.iter().any(|d| w.starts_with(d)))
    {
        return Some(0.0);
    }
    let mut s: f32 = 0.1;
    if in_label(LINK_WORDS) {
        s += 0.45;
    } else if in_label(LINK_WEAK_WORDS) {
        s += 0.3;
    }
    if in_url(LINK_WORDS) {
        s += 0.3;
    } else if in_url(LINK_WEAK_WORDS) {
        s += 0.2;
    }
    if has_token(url) {
        s += 0.25;
    } else {
        // A link without a token opens a page, not a verification.
        s *= 0.5;
    }
    Some(s.clamp(0.0, 1.0))
}

/// Whether a path segment or query value looks like a one-time token: long, of URL-safe
/// characters, with letters and digits.
fn has_token(url: &str) -> bool {
    let rest = url.splitn(4, '/').nth(3).unwrap_or("");
    rest.split(['/', '?', '&', '=', '#', ';']).any(|part| {
        part.len() >= TOKEN_CHARS_MIN
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~%+".contains(&b))
            && part.bytes().any(|b| b.is_ascii_digit())
            && part.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(url: &str, label: &str) -> f32 {
        score(&LinkRef {
            url: url.into(),
            label: label.into(),
        })
        .unwrap_or(0.0)
    }

    // Goal: verification and magic links score high, page links and unsubscribe links
    // low. Method: a table of links and their side of the threshold.
    #[test]
    fn link_table() {
        let min = super::super::SCORE_MIN;
        assert!(
            link(
                "https://github.com/users/confirm/9f8e7d6c5b4a39281706",
                "Verify email address"
            ) >= min
        );
        assert!(
            link(
                "https://app.test/auth/magic?token=eyJhbGciOiJIUzI1NiJ9abc123",
                "Sign in"
            ) >= min
        );
        assert!(
            link(
                "https://click.esp.test/ls/click?upn=aB3dE5fG7hJ9kL1mN3pQ5",
                "Confirm my account"
            ) >= min
        );
        assert!(link("https://shop.test/login", "Log in") < min);
        assert!(
            link(
                "https://esp.test/unsubscribe?u=aB3dE5fG7hJ9kL1mN3pQ5",
                "Unsubscribe"
            ) < min
        );
        assert!(
            link(
                "https://shop.test/p/aB3dE5fG7hJ9kL1mN3pQ5",
                "See the new collection"
            ) < min
        );
        assert!(link("mailto:x@y.test", "Verify") < min);
    }
}
