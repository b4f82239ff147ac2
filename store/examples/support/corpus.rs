//! The temp-mail dedup corpus shared by the `dedup_ratio` and `cluster_cost` examples
//! (deterministic): verification mails from 5 senders with a per-recipient code in both
//! text and HTML (and a shared 12 KiB inline logo), newsletters (half personalised in the
//! HTML, half identical) with a shared 30 KiB HTML, and spam runs: one body (HTML + 40 KiB
//! attachment) sent to thousands of addresses, some transactions with many RCPTs.

use tempmx_store::Mailbox;

/// Tiny deterministic generator (xorshift) so the corpus is the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn base64ish(seed: u64, len: usize) -> String {
    let mut r = Rng(seed | 1);
    let abc = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(len + len / 76 * 2);
    for i in 0..len {
        s.push(abc[(r.next() % 64) as usize] as char);
        if i % 76 == 75 {
            s.push_str("\r\n");
        }
    }
    s
}

fn verification(sender: usize, to: &str, code: u64, logo: &str) -> String {
    let html = format!(
        "<html><body><h1>Confirm</h1><p>Hi {to}, your code is <b>{code:06}</b></p>{}</body></html>",
        "<p>If you did not request this, ignore it.</p>".repeat(40)
    );
    format!(
        "From: no-reply@service{sender}.test\r\nTo: {to}\r\nSubject: Your code {code:06}\r\n\
         Message-ID: <{code}.{sender}@service.test>\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
         --rel\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain\r\n\r\nYour code is {code:06}\r\n\
         --alt\r\nContent-Type: text/html\r\n\r\n{html}\r\n--alt--\r\n\
         --rel\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <logo>\r\n\r\n{logo}\r\n--rel--\r\n"
    )
}

fn newsletter(to: &str, html: &str, token: Option<u64>) -> String {
    let html = match token {
        Some(t) => format!("{html}<a href=\"https://news.test/u/{t}\">unsubscribe</a>"),
        None => html.to_string(),
    };
    format!(
        "From: news@shop.test\r\nTo: {to}\r\nSubject: Weekly deals\r\nContent-Type: multipart/alternative; boundary=\"nl\"\r\n\r\n\
         --nl\r\nContent-Type: text/plain\r\n\r\nDeals for {to}\r\n--nl\r\nContent-Type: text/html\r\n\r\n{html}\r\n--nl--\r\n"
    )
}

fn spam(run: usize, to: &str, att: &str) -> String {
    format!(
        "From: \"Prize\" <win{run}@spam.test>\r\nTo: {to}\r\nSubject: You won {run}\r\nContent-Type: multipart/mixed; boundary=\"sp\"\r\n\r\n\
         --sp\r\nContent-Type: text/html\r\n\r\n<html>{}</html>\r\n\
         --sp\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=prize.pdf\r\n\r\n{att}\r\n--sp--\r\n",
        "<p>Claim your prize now!</p>".repeat(200)
    )
}

/// The corpus: message `i` of it is `next(i)`, recipients and body.
pub struct Corpus {
    rng: Rng,
    logos: Vec<String>,
    news_html: String,
    atts: Vec<String>,
}

impl Corpus {
    pub fn new() -> Self {
        Self {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            logos: (0..5).map(|s| base64ish(100 + s, 12 * 1024)).collect(),
            news_html: format!(
                "<html>{}</html>",
                "<div class=deal>50% off everything</div>".repeat(750)
            ),
            atts: (0..4).map(|s| base64ish(900 + s, 40 * 1024)).collect(),
        }
    }

    /// Message `i` (call with 0, 1, 2, … in order): its recipients (1, or up to 20 for a
    /// spam transaction, drawn from 200 000 addresses) and its body.
    pub fn next(&mut self, i: usize) -> (Vec<Mailbox>, String) {
        let rng = &mut self.rng;
        let kind = rng.next() % 10;
        let rcpt_count = if kind >= 8 && rng.next().is_multiple_of(4) {
            1 + (rng.next() % 20) as usize
        } else {
            1
        };
        let rcpts: Vec<Mailbox> = (0..rcpt_count)
            .map(|_| {
                Mailbox::parse(&format!("u{}@pool.test", rng.next() % 200_000)).expect("valid")
            })
            .collect();
        let body = match kind {
            0..=4 => verification(
                i % 5,
                rcpts[0].as_str(),
                rng.next() % 1_000_000,
                &self.logos[i % 5],
            ),
            5..=7 => newsletter(
                rcpts[0].as_str(),
                &self.news_html,
                rng.next().is_multiple_of(2).then(|| rng.next()),
            ),
            _ => spam(i % 4, rcpts[0].as_str(), &self.atts[i % 4]),
        };
        (rcpts, body)
    }
}
