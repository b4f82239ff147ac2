//! What is sent: message sizes, recipients per message, and how recipients spread over
//! mailboxes and domains.
//!
//! Messages are built from a fixed body of plain lines (letters only, so no line starts
//! with '.' and DATA needs no dot-stuffing) behind a few real headers.

use std::fmt::Write as _;

use rand::Rng;
use thiserror::Error;

/// Largest message the generator builds (64 MiB).
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most recipients per message (RFC 5321 requires servers to take at least 100).
pub const RCPTS_MAX: u32 = 1000;
/// Most distinct mailboxes for a Zipf spread (its CDF is kept in memory: 8 bytes each).
pub const ZIPF_MAILBOXES_MAX: u64 = 1_000_000;
/// Most entries in a weighted size mix.
const SIZE_MIX_MAX: usize = 32;
/// Body line length including CRLF (RFC 5322 recommends at most 78 characters).
const LINE_BYTES: usize = 78;

/// A bad workload specification from the command line.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum SpecError {
    /// A size could not be parsed.
    #[error("bad size {0:?}: expected e.g. 4096, 4k, 1m")]
    Size(String),
    /// A size is above [`MESSAGE_BYTES_MAX`].
    #[error("size {0} is above the limit of {MESSAGE_BYTES_MAX} bytes")]
    SizeTooLarge(usize),
    /// A range has its bounds the wrong way round.
    #[error("range {0:?} has min > max")]
    Range(String),
    /// A weighted mix is malformed (too many entries, zero total weight, bad weight).
    #[error("bad size mix {0:?}: expected e.g. 1k:70,16k:25,256k:5 (at most 32 entries)")]
    Mix(String),
    /// A recipient count is malformed or out of range.
    #[error("bad recipient count {0:?}: expected N or MIN-MAX within 1..={RCPTS_MAX}")]
    Rcpts(String),
    /// A spread is malformed.
    #[error("bad spread {0:?}: expected uniform or zipf:S with S > 0")]
    Spread(String),
    /// Too many mailboxes for a Zipf spread.
    #[error("zipf spread supports at most {ZIPF_MAILBOXES_MAX} mailboxes")]
    ZipfTooLarge,
    /// No domain given.
    #[error("at least one recipient domain is needed")]
    NoDomain,
    /// A size distribution that cannot be sampled (reversed range, zero weights, too large).
    #[error("size distribution {0:?} cannot be sampled")]
    BadSizes(SizeDist),
}

/// Distribution of whole-message sizes (headers included), in bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeDist {
    /// Every message has this size.
    Fixed(usize),
    /// Uniform between min and max inclusive.
    Uniform(usize, usize),
    /// Sizes picked with integer weights, e.g. `1k:70,64k:30`.
    Weighted(Vec<(usize, u32)>),
}

impl SizeDist {
    /// Parses `4096`, `4k`, `1k-64k` (uniform) or `1k:70,16k:25,256k:5` (weighted).
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        if s.contains(':') {
            return parse_mix(s);
        }
        if let Some((a, b)) = s.split_once('-') {
            let (lo, hi) = (parse_size(a)?, parse_size(b)?);
            if lo > hi {
                return Err(SpecError::Range(s.into()));
            }
            return Ok(Self::Uniform(lo, hi));
        }
        Ok(Self::Fixed(parse_size(s)?))
    }

    /// Whether it can be sampled: non-empty range, some weight, every size within limits.
    pub fn is_valid(&self) -> bool {
        match self {
            Self::Fixed(n) => *n <= MESSAGE_BYTES_MAX,
            Self::Uniform(lo, hi) => lo <= hi && *hi <= MESSAGE_BYTES_MAX,
            Self::Weighted(v) => {
                v.len() <= SIZE_MIX_MAX
                    && v.iter().any(|(_, w)| *w > 0)
                    && v.iter().all(|(n, _)| *n <= MESSAGE_BYTES_MAX)
            }
        }
    }

    /// The largest size this distribution can produce.
    pub fn max(&self) -> usize {
        match self {
            Self::Fixed(n) => *n,
            Self::Uniform(_, hi) => *hi,
            Self::Weighted(v) => v.iter().map(|(n, _)| *n).max().unwrap_or(0),
        }
    }

    /// Draws one size.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        match self {
            Self::Fixed(n) => *n,
            Self::Uniform(lo, hi) => rng.random_range(*lo..=*hi),
            Self::Weighted(v) => {
                let total: u64 = v.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut pick = rng.random_range(0..total);
                for (n, w) in v {
                    if pick < u64::from(*w) {
                        return *n;
                    }
                    pick -= u64::from(*w);
                }
                self.max()
            }
        }
    }
}

fn parse_mix(s: &str) -> Result<SizeDist, SpecError> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let (size, weight) = part.split_once(':').ok_or(SpecError::Mix(s.into()))?;
        let w: u32 = weight
            .trim()
            .parse()
            .map_err(|_| SpecError::Mix(s.into()))?;
        v.push((parse_size(size)?, w));
        if v.len() > SIZE_MIX_MAX {
            return Err(SpecError::Mix(s.into()));
        }
    }
    if v.iter().all(|(_, w)| *w == 0) {
        return Err(SpecError::Mix(s.into()));
    }
    Ok(SizeDist::Weighted(v))
}

/// Parses a byte count with an optional k/m suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, SpecError> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.strip_suffix('k') {
        Some(n) => (n, 1024),
        None => match t.strip_suffix('m') {
            Some(n) => (n, 1024 * 1024),
            None => (t.as_str(), 1),
        },
    };
    let n: usize = num.parse().map_err(|_| SpecError::Size(s.into()))?;
    let bytes = n.checked_mul(mult).ok_or(SpecError::Size(s.into()))?;
    if bytes > MESSAGE_BYTES_MAX {
        return Err(SpecError::SizeTooLarge(bytes));
    }
    Ok(bytes)
}

/// Recipients per message: uniform between min and max inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RcptCount {
    /// Fewest recipients.
    pub min: u32,
    /// Most recipients.
    pub max: u32,
}

impl RcptCount {
    /// Parses `N` or `MIN-MAX`, each within `1..=RCPTS_MAX`.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let err = || SpecError::Rcpts(s.into());
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let min: u32 = a.trim().parse().map_err(|_| err())?;
        let max: u32 = b.trim().parse().map_err(|_| err())?;
        if min == 0 || min > max || max > RCPTS_MAX {
            return Err(err());
        }
        Ok(Self { min, max })
    }
}

/// How recipients are spread over the mailbox pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Spread {
    /// Every mailbox equally likely.
    Uniform,
    /// Zipf with this exponent: a few hot mailboxes get most of the mail.
    Zipf(f64),
}

impl Spread {
    /// Parses `uniform` or `zipf:S`.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        if s == "uniform" {
            return Ok(Self::Uniform);
        }
        let exp = s
            .strip_prefix("zipf:")
            .and_then(|e| e.parse::<f64>().ok())
            .filter(|e| e.is_finite() && *e > 0.0)
            .ok_or(SpecError::Spread(s.into()))?;
        Ok(Self::Zipf(exp))
    }
}

/// The workload: everything needed to build the next message.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Message size distribution.
    pub size: SizeDist,
    /// Recipients per message.
    pub rcpts: RcptCount,
    /// Number of distinct mailboxes; 0 means a fresh address for every recipient.
    pub mailboxes: u64,
    /// How recipients spread over the mailboxes.
    pub spread: Spread,
    /// Recipient domains, picked uniformly.
    pub domains: Vec<String>,
    /// Envelope sender.
    pub from: String,
}

/// A validated workload with its precomputed body text and mailbox CDF.
#[derive(Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    body: Vec<u8>,
    zipf_cdf: Vec<f64>,
    pid: u32,
}

/// One message ready to send: envelope recipients and the message bytes (ending CRLF).
#[derive(Debug, Default)]
pub struct Message {
    /// Envelope recipients.
    pub rcpts: Vec<String>,
    /// Message content, headers and body, each line ending in CRLF.
    pub data: Vec<u8>,
}

impl Workload {
    /// Validates the spec and precomputes what the hot path needs.
    pub fn new(spec: WorkloadSpec) -> Result<Self, SpecError> {
        if spec.domains.is_empty() {
            return Err(SpecError::NoDomain);
        }
        // The spec's fields are public, so check here what the parsers check too:
        // sampling below must never see an empty range.
        let r = spec.rcpts;
        if r.min == 0 || r.min > r.max || r.max > RCPTS_MAX {
            return Err(SpecError::Rcpts(format!("{}-{}", r.min, r.max)));
        }
        if !spec.size.is_valid() {
            return Err(SpecError::BadSizes(spec.size.clone()));
        }
        if let Spread::Zipf(e) = spec.spread
            && !(e.is_finite() && e > 0.0)
        {
            return Err(SpecError::Spread(format!("zipf:{e}")));
        }
        let zipf_cdf = match spec.spread {
            Spread::Zipf(s) if spec.mailboxes > 0 => {
                if spec.mailboxes > ZIPF_MAILBOXES_MAX {
                    return Err(SpecError::ZipfTooLarge);
                }
                zipf_cdf(spec.mailboxes, s)
            }
            _ => Vec::new(),
        };
        let body = body_text(spec.size.max());
        Ok(Self {
            spec,
            body,
            zipf_cdf,
            pid: std::process::id(),
        })
    }

    /// The envelope sender.
    pub fn from(&self) -> &str {
        &self.spec.from
    }

    /// Fills `msg` with message number `seq` (recipients and content).
    pub fn fill(&self, rng: &mut impl Rng, seq: u64, msg: &mut Message) {
        msg.rcpts.clear();
        let n = rng.random_range(self.spec.rcpts.min..=self.spec.rcpts.max);
        for i in 0..n {
            let rcpt = self.recipient(rng, seq, i);
            msg.rcpts.push(rcpt);
        }
        self.write_content(rng, seq, msg);
    }

    /// Fills `msg` with message number `seq` for one given recipient.
    pub fn fill_to(&self, rng: &mut impl Rng, seq: u64, rcpt: &str, msg: &mut Message) {
        msg.rcpts.clear();
        msg.rcpts.push(rcpt.to_owned());
        self.write_content(rng, seq, msg);
    }

    fn write_content(&self, rng: &mut impl Rng, seq: u64, msg: &mut Message) {
        let size = self.spec.size.sample(rng);
        msg.data.clear();
        write_headers(&mut msg.data, &self.spec.from, &msg.rcpts[0], seq, self.pid);
        let body_len = size.saturating_sub(msg.data.len());
        self.write_body(&mut msg.data, body_len);
    }

    fn recipient(&self, rng: &mut impl Rng, seq: u64, i: u32) -> String {
        let d = &self.spec.domains[rng.random_range(0..self.spec.domains.len())];
        if self.spec.mailboxes == 0 {
            return format!("u{seq}.{i}@{d}");
        }
        let mbox = if self.zipf_cdf.is_empty() {
            rng.random_range(0..self.spec.mailboxes)
        } else {
            let u: f64 = rng.random();
            self.zipf_cdf.partition_point(|c| *c < u) as u64
        };
        format!("m{mbox}@{d}")
    }

    /// Appends `len` bytes of body made of CRLF-terminated lines (len 1 becomes 2).
    fn write_body(&self, out: &mut Vec<u8>, len: usize) {
        if len == 0 {
            return;
        }
        let len = len.max(2);
        let full = len / LINE_BYTES;
        let rem = len % LINE_BYTES;
        if rem == 0 || rem >= 2 || full == 0 {
            out.extend_from_slice(&self.body[..full * LINE_BYTES]);
            if rem > 0 {
                let rem = rem.max(2);
                out.extend_from_slice(&self.body[..rem - 2]);
                out.extend_from_slice(b"\r\n");
            }
            return;
        }
        // One byte left over: make the last full line one character longer instead.
        out.extend_from_slice(&self.body[..(full - 1) * LINE_BYTES]);
        out.extend_from_slice(&self.body[..LINE_BYTES - 2]);
        out.extend_from_slice(b"x\r\n");
    }
}

fn write_headers(out: &mut Vec<u8>, from: &str, to: &str, seq: u64, pid: u32) {
    let mut h = String::with_capacity(256);
    let _ = write!(
        h,
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: tempmx-bench {seq}\r\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n\
         Message-ID: <{seq}.{pid}@tempmx-bench>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    );
    out.extend_from_slice(h.as_bytes());
}

/// Body text of at least `len` bytes: 76 letters + CRLF per line, never a leading '.'.
fn body_text(len: usize) -> Vec<u8> {
    let lines = len / LINE_BYTES + 1;
    let mut v = Vec::with_capacity(lines * LINE_BYTES);
    for l in 0..lines {
        for c in 0..LINE_BYTES - 2 {
            v.push(b'a' + ((l + c) % 26) as u8);
        }
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn zipf_cdf(n: u64, s: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut acc = 0.0;
    for k in 1..=n {
        acc += 1.0 / (k as f64).powf(s);
        cdf.push(acc);
    }
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn spec(size: &str, rcpts: &str, mailboxes: u64, spread: &str) -> WorkloadSpec {
        WorkloadSpec {
            size: SizeDist::parse(size).unwrap_or(SizeDist::Fixed(0)),
            rcpts: RcptCount::parse(rcpts).unwrap_or(RcptCount { min: 1, max: 1 }),
            mailboxes,
            spread: Spread::parse(spread).unwrap_or(Spread::Uniform),
            domains: vec!["a.test".into(), "b.test".into()],
            from: "bench@bench.test".into(),
        }
    }

    #[test]
    fn size_specs_parse() {
        // Goal: every size form parses; bad and oversized forms are refused.
        assert_eq!(SizeDist::parse("4096"), Ok(SizeDist::Fixed(4096)));
        assert_eq!(SizeDist::parse("4k"), Ok(SizeDist::Fixed(4096)));
        assert_eq!(SizeDist::parse("1k-2k"), Ok(SizeDist::Uniform(1024, 2048)));
        assert_eq!(
            SizeDist::parse("1k:70,1m:30"),
            Ok(SizeDist::Weighted(vec![(1024, 70), (1 << 20, 30)]))
        );
        assert!(matches!(SizeDist::parse("2k-1k"), Err(SpecError::Range(_))));
        assert!(matches!(SizeDist::parse("x"), Err(SpecError::Size(_))));
        assert!(matches!(SizeDist::parse("1k:0"), Err(SpecError::Mix(_))));
        assert_eq!(
            SizeDist::parse("64m"),
            Ok(SizeDist::Fixed(MESSAGE_BYTES_MAX))
        );
        assert!(matches!(
            SizeDist::parse("65m"),
            Err(SpecError::SizeTooLarge(_))
        ));
        let mix = vec!["1k:1"; SIZE_MIX_MAX + 1].join(",");
        assert!(matches!(SizeDist::parse(&mix), Err(SpecError::Mix(_))));
    }

    #[test]
    fn rcpt_counts_parse_within_limits() {
        // Goal: recipient counts accept 1..=RCPTS_MAX and refuse 0, reversed and too many.
        assert_eq!(RcptCount::parse("3"), Ok(RcptCount { min: 3, max: 3 }));
        assert_eq!(RcptCount::parse("1-5"), Ok(RcptCount { min: 1, max: 5 }));
        assert!(RcptCount::parse("1000").is_ok());
        assert!(RcptCount::parse("1001").is_err());
        assert!(RcptCount::parse("0").is_err());
        assert!(RcptCount::parse("5-1").is_err());
    }

    #[test]
    fn messages_have_the_requested_size_and_clean_lines() {
        // Goal: built messages are exactly the drawn size, every line ends in CRLF, no
        // bare CR/LF and no line starts with '.', for every size around line boundaries.
        for size in (300..700).chain([4096, 65536]) {
            let w = Workload::new(spec(&size.to_string(), "1", 0, "uniform"));
            let w = w.unwrap_or_else(|e| panic!("{e}"));
            let mut rng = SmallRng::seed_from_u64(size as u64);
            let mut m = Message::default();
            w.fill(&mut rng, 7, &mut m);
            assert_eq!(m.data.len(), size, "size {size}");
            assert!(m.data.ends_with(b"\r\n"));
            for line in m.data.split(|b| *b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                assert!(line.ends_with(b"\r"), "size {size}: line without CRLF");
                assert!(!line[..line.len() - 1].contains(&b'\r'));
                assert!(!line.starts_with(b"."));
                assert!(line.len() <= 1000);
            }
        }
    }

    #[test]
    fn recipients_follow_count_and_domains() {
        // Goal: unique addresses when mailboxes = 0; counts within range; both domains used.
        let w = Workload::new(spec("1k", "2-4", 0, "uniform")).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = SmallRng::seed_from_u64(1);
        let mut m = Message::default();
        let mut seen = std::collections::HashSet::new();
        let mut domains = std::collections::HashSet::new();
        for seq in 0..200 {
            w.fill(&mut rng, seq, &mut m);
            assert!((2..=4).contains(&m.rcpts.len()));
            for r in &m.rcpts {
                assert!(seen.insert(r.clone()), "duplicate {r}");
                domains.insert(r.split_once('@').map(|x| x.1.to_owned()));
            }
        }
        assert_eq!(domains.len(), 2);
    }

    #[test]
    fn hand_built_specs_are_checked() {
        // Goal: a spec built in code (bypassing the parsers) cannot make sampling panic.
        let mut s = spec("1k", "1", 0, "uniform");
        s.rcpts = RcptCount { min: 0, max: 1 };
        assert!(matches!(Workload::new(s), Err(SpecError::Rcpts(_))));
        let mut s = spec("1k", "1", 0, "uniform");
        s.size = SizeDist::Uniform(10, 5);
        assert!(matches!(Workload::new(s), Err(SpecError::BadSizes(_))));
        let mut s = spec("1k", "1", 0, "uniform");
        s.size = SizeDist::Weighted(vec![(10, 0)]);
        assert!(matches!(Workload::new(s), Err(SpecError::BadSizes(_))));
        let mut s = spec("1k", "1", 10, "uniform");
        s.spread = Spread::Zipf(f64::NAN);
        assert!(matches!(Workload::new(s), Err(SpecError::Spread(_))));
        let mut s = spec("1k", "1", 0, "uniform");
        s.domains.clear();
        assert!(matches!(Workload::new(s), Err(SpecError::NoDomain)));
    }

    #[test]
    fn zipf_spread_concentrates_on_hot_mailboxes() {
        // Goal: with zipf:1.2 over 1000 mailboxes, mailbox m0 gets far more than 1/1000
        // of the mail, and every pick stays in range; uniform stays flat.
        let w = Workload::new(spec("1k", "1", 1000, "zipf:1.2")).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = SmallRng::seed_from_u64(2);
        let mut m = Message::default();
        let mut hot = 0;
        for seq in 0..10_000 {
            w.fill(&mut rng, seq, &mut m);
            let local = m.rcpts[0].split('@').next().unwrap_or("");
            let n: u64 = local[1..].parse().unwrap_or(u64::MAX);
            assert!(n < 1000);
            if n == 0 {
                hot += 1;
            }
        }
        assert!(hot > 1000, "m0 got {hot} of 10000");
        assert!(matches!(
            Workload::new(spec("1k", "1", ZIPF_MAILBOXES_MAX + 1, "zipf:1")),
            Err(SpecError::ZipfTooLarge)
        ));
        assert!(Spread::parse("zipf:0").is_err());
        assert!(Spread::parse("zipf:x").is_err());
    }
}
