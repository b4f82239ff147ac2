//! Verification codes and links in a message: the one thing most temp-mail users want
//! from it.
//!
//! Extraction runs on first read, off the ingress path (an extraction costs far more than
//! the 2 % of an append the ingest budget allows; see BENCHMARKS.md), and its result is
//! cached per message id. Layout: `text` turns the MIME text and HTML parts into lines
//! and links, `code` finds one-time codes next to their keywords, `link` ranks
//! verification and magic sign-in links, `cache` keeps results.

mod cache;
mod code;
mod keywords;
mod link;
mod text;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use self::cache::VerifyCache;
pub use self::text::Document;

/// Bytes of decoded text and HTML looked at per message; verification mail is short and
/// the code sits near the top.
pub const TEXT_BYTES_MAX: usize = 256 * 1024;
/// MIME parts looked at per message.
pub const PARTS_MAX: usize = 64;
/// Verifications returned per message (best first).
pub const RESULTS_MAX: usize = 4;
/// Score below which a candidate is not reported.
pub const SCORE_MIN: f32 = 0.5;

/// What a verification is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A one-time code to type in.
    Code,
    /// A link to open (verify, confirm, magic sign-in).
    Link,
}

/// One extracted code or link, with how sure the extractor is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// `code` or `link`.
    pub kind: Kind,
    /// The code as to be typed (group separators removed from digit codes) or the URL.
    pub value: String,
    /// Confidence from 0 to 1; results are sorted by it, best first.
    pub score: f32,
}

/// Extracts the verifications of a raw RFC 5322 message, best first.
pub fn extract(raw: &[u8]) -> Vec<Verification> {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut doc = Document::default();
    if let Some(subject) = msg.subject() {
        doc.push_subject(subject);
    }
    let mut budget = TEXT_BYTES_MAX;
    for part in msg.parts.iter().take(PARTS_MAX) {
        if budget == 0 || part.is_content_type("text", "calendar") {
            continue;
        }
        let attached = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        match &part.body {
            PartType::Text(t) if !attached => doc.push_text(clip(t, &mut budget)),
            PartType::Html(h) if !attached => doc.push_html(clip(h, &mut budget)),
            _ => {}
        }
    }
    rank(&doc)
}

/// Ranks the candidates of a prepared document.
pub fn rank(doc: &Document) -> Vec<Verification> {
    let mut out: Vec<Verification> = code::find(doc);
    out.extend(link::find(doc));
    out.retain(|v| v.score >= SCORE_MIN);
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut seen = std::collections::HashSet::new();
    out.retain(|v| seen.insert((v.kind, v.value.clone())));
    out.truncate(RESULTS_MAX);
    out
}

/// The prefix of `s` that fits the remaining budget, cut on a character boundary.
fn clip<'a>(s: &'a str, budget: &mut usize) -> &'a str {
    let mut end = s.len().min(*budget);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    *budget -= end;
    &s[..end]
}
