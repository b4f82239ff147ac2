//! The text a reader sees: the subject, text parts as they are and HTML parts flattened
//! to lines (block elements break lines, table cells sit side by side), plus every link
//! with the words it is shown with.

/// Links kept per message.
const LINKS_MAX: usize = 200;
/// Bytes of a URL looked at; longer ones are kept cut (they are still unique).
const URL_BYTES_MAX: usize = 2048;
/// Characters of a link's label kept.
const LABEL_CHARS_MAX: usize = 160;

/// A link and the words shown with it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkRef {
    /// The URL as written (entities decoded).
    pub url: String,
    /// Anchor text or image alt text (HTML), or the text just before it (plain text).
    pub label: String,
}

/// The subject and bodies of one message as plain lines, and its links.
#[derive(Debug, Default)]
pub struct Document {
    /// Subject, then each part's text; parts are separated by blank lines.
    pub text: String,
    /// Where the subject ends in `text`.
    pub subject_end: usize,
    /// Links in order of appearance.
    pub links: Vec<LinkRef>,
}

impl Document {
    /// Adds the subject as the first line.
    pub fn push_subject(&mut self, subject: &str) {
        self.text.push_str(&clean(subject));
        self.subject_end = self.text.len();
        self.text.push_str("\n\n");
    }

    /// Adds a text part and its bare URLs.
    pub fn push_text(&mut self, body: &str) {
        let body = clean(body);
        for (at, url) in bare_urls(&body) {
            let before = &body[..at];
            let line_start = before.trim_end().rfind('\n').map_or(0, |i| i + 1);
            let prev_start = before[..line_start.saturating_sub(1)]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let label = tail_chars(&before[prev_start..], LABEL_CHARS_MAX);
            self.push_link(url, label);
        }
        self.text.push_str(&body);
        self.text.push_str("\n\n");
    }

    /// Adds an HTML part flattened to text, and its anchors.
    pub fn push_html(&mut self, html: &str) {
        let mut flat = Flattener::default();
        flat.run(html);
        for l in flat.links {
            self.push_link(&l.url, &l.label);
        }
        self.text.push_str(&clean(&flat.out));
        self.text.push_str("\n\n");
    }

    fn push_link(&mut self, url: &str, label: &str) {
        if self.links.len() >= LINKS_MAX {
            return;
        }
        let mut end = url.len().min(URL_BYTES_MAX);
        while !url.is_char_boundary(end) {
            end -= 1;
        }
        self.links.push(LinkRef {
            url: url[..end].trim().to_owned(),
            label: clean(label)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
}

/// Drops invisible characters senders insert against auto-linking and folds no-break
/// spaces into spaces.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{ad}' | '\r'
            )
        })
        .map(|c| {
            if matches!(c, '\u{a0}' | '\u{202f}' | '\u{2007}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn tail_chars(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    match s.char_indices().nth(count.saturating_sub(n)) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// `http(s)://` URLs in plain text with their byte offsets.
fn bare_urls(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("http").map(|i| i + from) {
        let rest = &s[i..];
        if !(rest.starts_with("https://") || rest.starts_with("http://")) {
            from = i + 4;
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ')' | ']'))
            .unwrap_or(rest.len());
        let url = rest[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        out.push((i, url));
        from = i + end.max(1);
    }
    out
}

/// One pass over HTML: text with line breaks where blocks end, anchors with their text.
#[derive(Default)]
struct Flattener {
    out: String,
    links: Vec<LinkRef>,
    /// The open anchor: its URL and where its text starts in `out`.
    anchor: Option<(String, usize, String)>,
}

impl Flattener {
    fn run(&mut self, html: &str) {
        let mut rest = html;
        while let Some(lt) = rest.find('<') {
            self.text(&rest[..lt]);
            rest = &rest[lt..];
            if let Some(after) = rest.strip_prefix("<!--") {
                rest = after.find("-->").map_or("", |e| &after[e + 3..]);
                continue;
            }
            let Some(gt) = tag_end(rest) else {
                rest = "";
                break;
            };
            let tag = &rest[1..gt];
            rest = &rest[gt + 1..];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if !closing && matches!(name.as_str(), "style" | "script" | "head" | "title") {
                let close = format!("</{name}");
                rest = find_ci(rest, &close).map_or("", |e| &rest[e..]);
                continue;
            }
            self.tag(&name, tag, closing);
        }
        self.text(rest);
        self.close_anchor();
    }

    fn text(&mut self, s: &str) {
        let decoded = decode_entities(s);
        // Source whitespace is layout, not content: one space, like a browser.
        let mut last_space = self.out.ends_with([' ', '\n']) || self.out.is_empty();
        for c in decoded.chars() {
            if c.is_whitespace() && c != '\u{a0}' {
                if !last_space {
                    self.out.push(' ');
                    last_space = true;
                }
            } else {
                self.out.push(c);
                last_space = false;
            }
        }
    }

    fn tag(&mut self, name: &str, tag: &str, closing: bool) {
        match name {
            "a" if closing => self.close_anchor(),
            "a" => {
                self.close_anchor();
                if let Some(href) = attr(tag, "href") {
                    self.anchor = Some((decode_entities(&href), self.out.len(), String::new()));
                }
            }
            "img" => {
                if let Some((_, _, alt)) = &mut self.anchor
                    && let Some(a) = attr(tag, "alt")
                {
                    alt.push_str(&decode_entities(&a));
                    alt.push(' ');
                }
            }
            "td" | "th" => self.space(),
            "br" | "p" | "div" | "tr" | "table" | "li" | "ul" | "ol" | "h1" | "h2" | "h3"
            | "h4" | "h5" | "h6" | "blockquote" | "center" | "section" | "header" | "footer"
            | "hr" | "pre" | "tbody" | "thead" | "tfoot" | "article" | "main" | "body" => {
                self.newline()
            }
            _ => {}
        }
    }

    fn space(&mut self) {
        if !self.out.ends_with([' ', '\n']) && !self.out.is_empty() {
            self.out.push(' ');
        }
    }

    fn newline(&mut self) {
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        if !self.out.ends_with("\n\n") && !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn close_anchor(&mut self) {
        if let Some((url, start, alt)) = self.anchor.take()
            && self.links.len() < LINKS_MAX
        {
            let start = start.min(self.out.len());
            let mut label = self.out[start..].to_owned();
            label.truncate(
                label
                    .char_indices()
                    .nth(LABEL_CHARS_MAX)
                    .map_or(label.len(), |(i, _)| i),
            );
            label.push(' ');
            label.push_str(&alt);
            self.links.push(LinkRef { url, label });
        }
    }
}

/// End of a tag, skipping `>` inside quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    h.windows(n.len()).position(|w| w.eq_ignore_ascii_case(n))
}

/// The value of attribute `name` in a tag's source.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|i| i + from) {
        let before_ok = i > 0 && lower.as_bytes()[i - 1].is_ascii_whitespace();
        let after = lower[i + name.len()..].trim_start();
        if before_ok && after.starts_with('=') {
            let vstart = tag.len() - after.len() + 1;
            let v = tag[vstart..].trim_start();
            return Some(match v.chars().next() {
                Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or("").to_owned(),
                _ => v
                    .split(|c: char| c.is_whitespace() || c == '>')
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        from = i + name.len();
    }
    None
}

/// Decodes the HTML character references mail uses.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..].find(';').map(|e| e + 1).filter(|&e| e <= 10);
        let decoded = end.and_then(|e| entity(&rest[1..e]));
        match (end, decoded) {
            (Some(e), Some(c)) => {
                if let Some(c) = c {
                    out.push(c);
                }
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One entity's character; `Some(None)` for those that render as nothing.
fn entity(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return Some(
            char::from_u32(n)
                .filter(|c| !matches!(c, '\u{200b}'..='\u{200d}' | '\u{ad}' | '\u{feff}')),
        );
    }
    Some(Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "zwnj" | "zwj" | "shy" => return Some(None),
        "copy" => '©',
        "reg" => '®',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "mdash" => '—',
        "ndash" => '–',
        "rsquo" => '’',
        "lsquo" => '‘',
        "ldquo" => '“',
        "rdquo" => '”',
        "hellip" => '…',
        "middot" => '·',
        "bull" => '•',
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: HTML flattens the way a reader sees it: cells side by side, blocks on lines,
    // entities decoded, styles dropped, anchors kept with their text and alt text.
    #[test]
    fn html_flattens_with_links() {
        let mut d = Document::default();
        d.push_html(
            "<html><head><style>td{color:red}</style></head><body><p>Your&nbsp;code:</p>\
             <table><tr><td>1</td><td>2</td><td>3</td></tr></table>\
             <a href=\"https://x.test/v?t=a&amp;b=1\">Verify <b>now</b></a>\
             <a href='https://x.test/u'><img src=x alt=\"Unsubscribe\"></a><!-- <a href=no> --></body></html>",
        );
        let lines: Vec<&str> = d.text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[..2], ["Your code:", "1 2 3"], "{:?}", d.text);
        assert!(!d.text.contains("color"));
        assert_eq!(d.links.len(), 2, "{:?}", d.links);
        assert_eq!(d.links[0].url, "https://x.test/v?t=a&b=1");
        assert_eq!(d.links[0].label, "Verify now");
        assert_eq!(d.links[1].label, "Unsubscribe");
    }

    // Goal: bare URLs in text parts are found with the words before them.
    #[test]
    fn text_urls_with_labels() {
        let mut d = Document::default();
        d.push_text("Hi,\r\nConfirm your address:\r\nhttps://a.test/c/XYZ.\r\n");
        assert_eq!(d.links.len(), 1);
        assert_eq!(d.links[0].url, "https://a.test/c/XYZ");
        assert!(
            d.links[0].label.contains("Confirm your address"),
            "{:?}",
            d.links[0]
        );
    }
}
