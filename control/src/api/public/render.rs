//! MIME parsing on read (never on the ingress path), bounded in parts, nesting depth and
//! decoded bytes. A message over a bound is still listed and downloadable raw; only its
//! rendered view says why it is not shown.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::config::PublicConfig;

/// Header fields shown per message at most, and bytes per shown value.
const HEADERS_MAX: usize = 200;
const HEADER_VALUE_BYTES_MAX: usize = 4096;

/// Bounds applied to one parse.
#[derive(Clone, Copy, Debug)]
pub struct MimeLimits {
    /// Parts, counting nested messages' parts.
    pub parts_max: usize,
    /// Multipart and message/rfc822 nesting.
    pub depth_max: usize,
    /// Sum of decoded part sizes.
    pub decoded_bytes_max: usize,
}

impl From<&PublicConfig> for MimeLimits {
    fn from(c: &PublicConfig) -> Self {
        Self {
            parts_max: c.mime_parts_max,
            depth_max: c.mime_depth_max,
            decoded_bytes_max: c.mime_decoded_bytes_max,
        }
    }
}

/// One attachment as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct AttachmentInfo {
    /// File name from the part headers, if any.
    pub filename: Option<String>,
    /// `type/subtype`.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: usize,
}

/// The parts of a message the API shows.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Decoded `Subject:`.
    pub subject: Option<String>,
    /// Decoded `From:` addresses as `(name, address)`.
    pub from: Vec<(Option<String>, Option<String>)>,
    /// Decoded `To:` addresses.
    pub to: Vec<(Option<String>, Option<String>)>,
    /// Decoded `Cc:` addresses.
    pub cc: Vec<(Option<String>, Option<String>)>,
    /// `Date:` in RFC 3339.
    pub date: Option<String>,
    /// Top-level header fields as received (name, raw value), bounded.
    pub headers: Vec<(String, String)>,
    /// The first text body.
    pub text: Option<String>,
    /// The first HTML body, unsanitised (the caller sanitises).
    pub html: Option<String>,
    /// Attachments in order; index = download index.
    pub attachments: Vec<AttachmentInfo>,
}

/// Why a message is not rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// mail-parser found no message.
    #[error("not a parsable message")]
    Unparsable,
    /// More parts than `api.mime_parts_max`.
    #[error("more than {0} MIME parts")]
    TooManyParts(usize),
    /// Deeper than `api.mime_depth_max`.
    #[error("MIME nesting deeper than {0}")]
    TooDeep(usize),
    /// More decoded bytes than `api.mime_decoded_bytes_max`.
    #[error("more than {0} decoded bytes")]
    TooLarge(usize),
}

/// Parses `raw` and checks the bounds.
pub fn parse<'a>(raw: &'a [u8], limits: MimeLimits) -> Result<Message<'a>, RenderError> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(RenderError::Unparsable)?;
    let mut budget = Budget {
        parts: 0,
        bytes: 0,
        limits,
    };
    budget.walk(&msg, 0)?;
    Ok(msg)
}

struct Budget {
    parts: usize,
    bytes: usize,
    limits: MimeLimits,
}

impl Budget {
    /// Walks a message's part tree with an explicit stack (depth counted per level).
    fn walk(&mut self, msg: &Message<'_>, base_depth: usize) -> Result<(), RenderError> {
        let mut stack = vec![(0u32, base_depth)];
        while let Some((id, depth)) = stack.pop() {
            if depth > self.limits.depth_max {
                return Err(RenderError::TooDeep(self.limits.depth_max));
            }
            self.parts += 1;
            if self.parts > self.limits.parts_max {
                return Err(RenderError::TooManyParts(self.limits.parts_max));
            }
            let Some(part) = msg.part(id) else { continue };
            match &part.body {
                PartType::Multipart(children) => {
                    stack.extend(children.iter().map(|&c| (c, depth + 1)))
                }
                PartType::Message(inner) => self.walk(inner, depth + 1)?,
                _ => {
                    self.bytes += part.len();
                    if self.bytes > self.limits.decoded_bytes_max {
                        return Err(RenderError::TooLarge(self.limits.decoded_bytes_max));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Extracts what the detail view shows from a parsed message.
pub fn render(msg: &Message<'_>) -> Rendered {
    let addrs = |a: Option<&mail_parser::Address<'_>>| -> Vec<(Option<String>, Option<String>)> {
        a.map(|a| {
            a.iter()
                .map(|x| (x.name().map(str::to_owned), x.address().map(str::to_owned)))
                .collect()
        })
        .unwrap_or_default()
    };
    // In multipart/mixed both bodies can sit in either list, so pick by real type.
    let html = msg
        .html_bodies()
        .find(|p| p.is_text_html())
        .and_then(|p| p.text_contents().map(str::to_owned));
    let text = msg
        .text_bodies()
        .find(|p| p.is_text() && !p.is_text_html())
        .and_then(|p| p.text_contents().map(str::to_owned));
    Rendered {
        subject: msg.subject().map(str::to_owned),
        from: addrs(msg.from()),
        to: addrs(msg.to()),
        cc: addrs(msg.cc()),
        date: msg.date().map(|d| d.to_rfc3339()),
        headers: msg
            .headers_raw()
            .take(HEADERS_MAX)
            .map(|(n, v)| (n.to_owned(), truncate(v.trim(), HEADER_VALUE_BYTES_MAX)))
            .collect(),
        text,
        html,
        attachments: msg.attachments().map(attachment_info).collect(),
    }
}

/// Image types shown inline: raster formats only (an SVG can carry script and links).
const INLINE_IMAGE_TYPES: &[&str] = &["gif", "jpeg", "png", "webp"];
/// Decoded image bytes inlined per message: keeps the HTML document (base64 makes it 4/3
/// larger) a few MiB at most; images past it stay attachments only.
const INLINE_IMAGES_BYTES_MAX: usize = 4 << 20;

/// Inline images by Content-ID, as `data:` URIs (shared with the sanitiser's filter).
pub type InlineImages = Arc<HashMap<String, String>>;

/// Inline images (parts with a `Content-ID:` and an image type of [`INLINE_IMAGE_TYPES`]) as
/// `data:` URIs by Content-ID (without the angle brackets), for `cid:` references in the
/// HTML (RFC 2392). The sandboxed frame loads no URL of ours, so the bytes travel in the
/// document; at most [`INLINE_IMAGES_BYTES_MAX`] decoded bytes are inlined.
pub fn inline_images(msg: &Message<'_>) -> InlineImages {
    let mut images = HashMap::new();
    let mut budget = INLINE_IMAGES_BYTES_MAX;
    for part in msg.attachments() {
        let (Some(cid), Some(ct)) = (part.content_id(), part.content_type()) else {
            continue;
        };
        let Some(subtype) = ct.subtype().map(str::to_ascii_lowercase) else {
            continue;
        };
        if !ct.ctype().eq_ignore_ascii_case("image")
            || !INLINE_IMAGE_TYPES.contains(&subtype.as_str())
        {
            continue;
        }
        let bytes = part.contents();
        if bytes.len() > budget {
            continue;
        }
        budget -= bytes.len();
        let cid = cid.trim().trim_start_matches('<').trim_end_matches('>');
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        images.insert(
            cid.to_owned(),
            format!("data:image/{subtype};base64,{data}"),
        );
    }
    Arc::new(images)
}

/// Type, name and size of an attachment part.
pub fn attachment_info(p: &MessagePart<'_>) -> AttachmentInfo {
    let content_type = p.content_type().map_or_else(
        || "application/octet-stream".to_owned(),
        |c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_ascii_lowercase(),
    );
    AttachmentInfo {
        filename: p.attachment_name().map(str::to_owned),
        content_type,
        size: p.len(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MimeLimits = MimeLimits {
        parts_max: 10,
        depth_max: 3,
        decoded_bytes_max: 1000,
    };

    fn multipart(depth: usize) -> String {
        let mut body = "Content-Type: text/plain\r\n\r\nleaf\r\n".to_owned();
        for i in 0..depth {
            body = format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n{body}--b{i}--\r\n"
            );
        }
        format!("Subject: s\r\n{body}")
    }

    // Goal: text, html and attachments come out of a normal multipart message.
    #[test]
    fn renders_parts() {
        let raw = "From: =?utf-8?q?J=C3=BCrgen?= <j@x.test>\r\nTo: a@p.test\r\nSubject: =?utf-8?b?aMOkbGxv?=\r\n\
            Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
            --B\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--B\r\nContent-Type: application/pdf\r\n\
            Content-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--B--\r\n";
        let m = parse(raw.as_bytes(), LIMITS).expect("parse");
        let r = render(&m);
        assert_eq!(r.subject.as_deref(), Some("hällo"));
        assert_eq!(r.from[0].0.as_deref(), Some("Jürgen"));
        assert_eq!(r.text.as_deref().map(str::trim), Some("hello"));
        assert!(r.html.as_deref().is_some_and(|h| h.contains("<p>hi</p>")));
        assert_eq!(
            r.attachments,
            vec![AttachmentInfo {
                filename: Some("a.pdf".into()),
                content_type: "application/pdf".into(),
                size: 5
            }]
        );
    }

    // Goal: each bound refuses at one past its limit and passes at it.
    #[test]
    fn bounds_hold() {
        assert!(parse(multipart(2).as_bytes(), LIMITS).is_ok());
        assert_eq!(
            parse(multipart(4).as_bytes(), LIMITS).expect_err("must fail"),
            RenderError::TooDeep(3)
        );
        let many: String = (0..12)
            .map(|_| "--B\r\nContent-Type: text/plain\r\n\r\nx\r\n")
            .collect();
        let raw = format!("Content-Type: multipart/mixed; boundary=B\r\n\r\n{many}--B--\r\n");
        assert_eq!(
            parse(raw.as_bytes(), LIMITS).expect_err("must fail"),
            RenderError::TooManyParts(10)
        );
        let raw = format!("Subject: s\r\n\r\n{}", "x".repeat(1001));
        assert_eq!(
            parse(raw.as_bytes(), LIMITS).expect_err("must fail"),
            RenderError::TooLarge(1000)
        );
    }

    // Goal: inline images stop at INLINE_IMAGES_BYTES_MAX decoded bytes per message: the
    // first image that fits is inlined, one that would pass the bound is not (it stays an
    // attachment), and a later small one still fits. Method: 3 MiB, 3 MiB and 1 KiB parts.
    #[test]
    fn inline_images_stop_at_the_bound() {
        let part = |cid: &str, bytes: usize| {
            let data = base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes]);
            format!(
                "--R\r\nContent-Type: image/png\r\nContent-ID: <{cid}>\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{data}\r\n"
            )
        };
        let raw = format!(
            "Subject: s\r\nContent-Type: multipart/related; boundary=R\r\n\r\n\
             --R\r\nContent-Type: text/html\r\n\r\n<img src=cid:a>\r\n{}{}{}--R--\r\n",
            part("a", 3 << 20),
            part("b", 3 << 20),
            part("c", 1024)
        );
        let msg = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parsable");
        let images = inline_images(&msg);
        let mut cids: Vec<&str> = images.keys().map(String::as_str).collect();
        cids.sort_unstable();
        assert_eq!(cids, ["a", "c"]);
        assert!(images["c"].starts_with("data:image/png;base64,Bw"));
    }
}
