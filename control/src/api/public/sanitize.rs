//! HTML mail sanitising with ammonia: no scripts, handlers, forms or active CSS; remote
//! images blocked (and counted) unless asked for; links open in a new tab without opener
//! or referrer. The output is served only under a strict CSP into a sandboxed iframe.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ammonia::{Builder, UrlRelative};

use super::render::InlineImages;

/// CSS properties kept in `style` attributes: layout and typography only, nothing that
/// takes a URL (`background`, `list-style-image`, `content`, `behavior`, …).
const STYLE_PROPERTIES: &[&str] = &[
    "background-color",
    "border",
    "border-bottom",
    "border-collapse",
    "border-color",
    "border-left",
    "border-radius",
    "border-right",
    "border-spacing",
    "border-style",
    "border-top",
    "border-width",
    "color",
    "direction",
    "display",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "height",
    "letter-spacing",
    "line-height",
    "margin",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "margin-top",
    "max-width",
    "min-width",
    "padding",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "padding-top",
    "text-align",
    "text-decoration",
    "text-transform",
    "vertical-align",
    "white-space",
    "width",
    "word-break",
];

/// Value fragments that make a kept CSS property dangerous or a beacon anyway.
const STYLE_VALUE_DENY: &[&str] = &[
    "url(",
    "expression",
    "javascript:",
    "@import",
    "behavior",
    "\\",
];

/// Layout attributes older HTML mail relies on.
const LAYOUT_ATTRIBUTES: &[&str] = &["align", "bgcolor", "height", "style", "valign", "width"];

/// The outcome of sanitising one HTML body.
#[derive(Debug)]
pub struct Sanitized {
    /// Safe HTML.
    pub html: String,
    /// Remote images removed (tracking pixels included).
    pub remote_images_blocked: usize,
}

/// Sanitises `html`; remote `img` sources are kept only when `remote_images` is set, and a
/// `cid:` source becomes its inline image from `inline` (or is dropped).
pub fn sanitize(html: &str, remote_images: bool, inline: &InlineImages) -> Sanitized {
    let blocked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&blocked);
    let inline = Arc::clone(inline);
    let mut b = Builder::default();
    b.add_tags(["center", "font"])
        .add_generic_attributes(LAYOUT_ATTRIBUTES)
        .add_tag_attributes("table", ["border", "cellpadding", "cellspacing"])
        .add_tag_attributes("font", ["color", "face", "size"])
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect::<HashSet<_>>())
        // `cid:` passes the scheme check only to be replaced or dropped by the filter below.
        .url_schemes(["http", "https", "mailto", "cid"].into_iter().collect())
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true)
        .attribute_filter(move |element, attribute, value| {
            filter_attribute(element, attribute, value, remote_images, &inline, &counter)
        });
    let html = b.clean(html).to_string();
    Sanitized {
        html,
        remote_images_blocked: blocked.load(Ordering::Relaxed),
    }
}

fn filter_attribute<'u>(
    element: &str,
    attribute: &str,
    value: &'u str,
    remote_images: bool,
    inline: &HashMap<String, String>,
    blocked: &AtomicUsize,
) -> Option<Cow<'u, str>> {
    let trimmed = value.trim_start();
    if let Some(rest) = trimmed
        .get(..4)
        .filter(|scheme| scheme.eq_ignore_ascii_case("cid:"))
        .map(|_| &trimmed[4..])
    {
        if (element, attribute) != ("img", "src") {
            return None;
        }
        let cid = percent_encoding::percent_decode_str(rest).decode_utf8_lossy();
        return inline.get(cid.trim()).map(|uri| Cow::Owned(uri.clone()));
    }
    match (element, attribute) {
        ("img", "src" | "srcset") => {
            let v = value.trim_start().to_ascii_lowercase();
            let remote = v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//");
            if remote && !remote_images {
                blocked.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(value.into())
        }
        (_, "style") => {
            let v = value.to_ascii_lowercase();
            if STYLE_VALUE_DENY.iter().any(|d| v.contains(d)) {
                None
            } else {
                Some(value.into())
            }
        }
        _ => Some(value.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: each hostile construct of the corpus is neutralised. Method: sanitise and look
    // for anything that could run or phone home.
    #[test]
    fn hostile_corpus_is_neutralised() {
        let cases = [
            r#"<script>alert(1)</script><p>x</p>"#,
            r#"<img src=x onerror="alert(1)">"#,
            r#"<a href="javascript:alert(1)">x</a>"#,
            r#"<svg onload="alert(1)"><circle/></svg>"#,
            r#"<div style="width: expression(alert(1))">x</div>"#,
            r#"<div style="background-image:url(http://t.example/p.gif)">x</div>"#,
            r#"<meta http-equiv="refresh" content="0;url=http://evil.example/">"#,
            r#"<form action="http://evil.example/"><input name=p><button>go</button></form>"#,
            r#"<iframe src="http://evil.example/"></iframe><object data=x></object>"#,
            r#"<style>body{background:url(http://t.example/)}</style>"#,
            r#"<base href="http://evil.example/"><a href="/x">rel</a>"#,
        ];
        for c in cases {
            let out = sanitize(c, false, &InlineImages::default())
                .html
                .to_ascii_lowercase();
            for bad in [
                "<script",
                "onerror",
                "onload",
                "javascript:",
                "expression",
                "url(",
                "<meta",
                "<form",
                "<input",
                "<iframe",
                "<object",
                "<style",
                "<base",
                "evil.example",
                "<svg",
            ] {
                assert!(!out.contains(bad), "{c} -> {out}");
            }
        }
    }

    // Goal: remote images are blocked and counted by default, kept on request; links get
    // target and rel.
    #[test]
    fn images_and_links() {
        let html = r#"<img src="https://t.example/pixel.gif" width=1><img src="//t.example/b"><a href="https://ok.example/">l</a>"#;
        let s = sanitize(html, false, &InlineImages::default());
        // The protocol-relative one is dropped earlier, as a relative URL, uncounted.
        assert_eq!(s.remote_images_blocked, 1);
        assert!(!s.html.contains("t.example"));
        assert!(s.html.contains(r#"target="_blank""#), "{}", s.html);
        assert!(s.html.contains("noopener noreferrer"), "{}", s.html);
        let s = sanitize(html, true, &InlineImages::default());
        assert_eq!(s.remote_images_blocked, 0);
        assert!(s.html.contains("https://t.example/pixel.gif"));
    }

    // Goal: harmless layout survives, so real newsletters still look right.
    #[test]
    fn layout_survives() {
        let s = sanitize(
            r#"<table border=0 cellpadding=2><tr><td style="color: red; padding: 4px" align=center><b>hi</b></td></tr></table>"#,
            false,
            &InlineImages::default(),
        );
        assert!(s.html.contains("color:red;padding:4px"), "{}", s.html);
        assert!(s.html.contains(r#"align="center""#), "{}", s.html);
    }

    // Goal: a `cid:` image shows its inline part (RFC 2392, percent-encoded or not); an
    // unknown cid and a `cid:` anywhere but an img src are dropped, never left for the
    // browser to resolve.
    #[test]
    fn cid_images_map_to_inline_parts() {
        let inline = Arc::new(HashMap::from([(
            "logo@x.example".to_owned(),
            "data:image/png;base64,iVBORw0KGgo=".to_owned(),
        )]));
        let html = r#"<img src="cid:logo@x.example"><img src="CID:logo%40x.example"><img src="cid:other@x.example" alt=o><a href="cid:logo@x.example">l</a>"#;
        let s = sanitize(html, false, &inline);
        assert_eq!(
            s.html
                .matches(r#"src="data:image/png;base64,iVBORw0KGgo=""#)
                .count(),
            2,
            "{}",
            s.html
        );
        assert!(!s.html.contains("cid:"), "{}", s.html);
        assert!(s.html.contains(r#"<img alt="o">"#), "{}", s.html);
        assert_eq!(s.remote_images_blocked, 0);
        let s = sanitize("<img src=\"cid:\u{e9}t\u{e9}\">", false, &inline);
        assert!(!s.html.contains("cid:"), "{}", s.html);
    }
}
