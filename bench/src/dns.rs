//! The DNS load: UDP queries against any authoritative server, from a dnsperf-style
//! query list (`<name> <type>` per line) or generated names, open or closed loop.
//!
//! Queries are encoded once with hickory-proto; on the hot path only the 16-bit ID is
//! patched, and answers are matched by reading the 12-byte header (ID, RCODE), so the
//! generator spends its CPU on sockets, not on parsing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use thiserror::Error;
use tokio::net::UdpSocket;

use crate::pacing::{Mode, Schedule, Ticket};
use crate::report::{Stats, Summary, process_cpu};
use crate::runner::{LocalTask, Progress, RunError, merge, run_threads};

/// Most queries in a list (file or generated).
pub const QUERIES_MAX: usize = 1_000_000;
/// Longest line in a query file.
const LINE_BYTES_MAX: usize = 1024;
/// Bits of the DNS ID that index the in-flight slot; the rest is a generation
/// counter so a late answer to an expired query is not taken for its successor.
const SLOT_BITS: u32 = 12;
/// Most queries in flight per socket.
pub const INFLIGHT_MAX: usize = 1 << SLOT_BITS;
/// Most sockets per run.
pub const SOCKETS_MAX: usize = 1024;
/// How often in-flight queries are checked for timeout.
const EXPIRE_EVERY: Duration = Duration::from_millis(20);
/// Largest UDP answer read.
const ANSWER_BYTES_MAX: usize = 4096;
/// DNS header length.
const HEADER_BYTES: usize = 12;

/// A bad query list.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The file could not be read.
    #[error("reading the query file: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not `<name> <type>`.
    #[error("line {0}: expected `<name> <type>`")]
    Line(usize),
    /// A line is longer than the limit.
    #[error("line {0}: longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong(usize),
    /// A name or type did not parse.
    #[error("line {0}: {1}")]
    Parse(usize, String),
    /// More queries than [`QUERIES_MAX`], or none.
    #[error("a query list needs 1..={QUERIES_MAX} entries")]
    Count,
    /// Encoding failed.
    #[error("encoding query {0}: {1}")]
    Encode(String, String),
}

/// Everything `tempmx-bench dns` needs.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Server address.
    pub target: SocketAddr,
    /// Encoded queries, sent round robin.
    pub queries: Arc<Vec<Vec<u8>>>,
    /// Worker threads.
    pub threads: usize,
    /// UDP sockets (each a source port).
    pub sockets: usize,
    /// Queries in flight per socket (closed loop: the concurrency).
    pub inflight: usize,
    /// Open or closed loop.
    pub mode: Mode,
    /// Stop after this many queries.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// A query without an answer after this long counts as lost.
    pub timeout: Duration,
    /// Stop after this many socket errors.
    pub errors_max: u64,
    /// Progress bar on stderr.
    pub progress: bool,
}

/// Parses a dnsperf query list: `<name> <type>` per line; blank and `;`/`#` lines skipped.
pub fn parse_query_list(text: &str) -> Result<Vec<(Name, RecordType)>, QueryError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.len() > LINE_BYTES_MAX {
            return Err(QueryError::LineTooLong(n));
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_ascii_whitespace();
        let (Some(name), Some(ty), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(QueryError::Line(n));
        };
        let name = Name::from_ascii(name).map_err(|e| QueryError::Parse(n, e.to_string()))?;
        let ty: RecordType = ty.to_ascii_uppercase().parse().map_err(
            |e: hickory_proto::serialize::binary::DecodeError| QueryError::Parse(n, e.to_string()),
        )?;
        if out.len() == QUERIES_MAX {
            return Err(QueryError::Count);
        }
        out.push((name, ty));
    }
    if out.is_empty() {
        return Err(QueryError::Count);
    }
    Ok(out)
}

/// Generates `count` names `q<i>.<zone>` of one type.
pub fn generate_queries(
    count: usize,
    zone: &str,
    ty: RecordType,
) -> Result<Vec<(Name, RecordType)>, QueryError> {
    if count == 0 || count > QUERIES_MAX {
        return Err(QueryError::Count);
    }
    (0..count)
        .map(|i| {
            let s = format!("q{i}.{zone}");
            Name::from_ascii(&s)
                .map(|n| (n, ty))
                .map_err(|e| QueryError::Parse(i + 1, e.to_string()))
        })
        .collect()
}

/// Encodes one query (ID 0, recursion not desired: the target is authoritative).
pub fn encode_query(name: &Name, ty: RecordType) -> Result<Vec<u8>, QueryError> {
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(name.clone(), ty));
    m.to_vec()
        .map_err(|e| QueryError::Encode(name.to_string(), e.to_string()))
}

/// Encodes a whole list.
pub fn encode_all(list: &[(Name, RecordType)]) -> Result<Vec<Vec<u8>>, QueryError> {
    list.iter().map(|(n, t)| encode_query(n, *t)).collect()
}

/// Runs the DNS load and returns its summary.
pub fn run(cfg: DnsConfig) -> Result<Summary, RunError> {
    if cfg.count.is_none() && cfg.duration.is_none() {
        return Err(RunError::Unbounded);
    }
    if cfg.sockets == 0 || cfg.sockets > SOCKETS_MAX {
        return Err(RunError::Option(format!(
            "sockets must be within 1..={SOCKETS_MAX}"
        )));
    }
    if cfg.inflight == 0 || cfg.inflight > INFLIGHT_MAX {
        return Err(RunError::Option(format!(
            "inflight must be within 1..={INFLIGHT_MAX}"
        )));
    }
    if cfg.queries.is_empty() {
        return Err(RunError::Option("no queries".into()));
    }
    let schedule = Arc::new(Schedule::new(cfg.mode, cfg.count, cfg.duration));
    let progress = Arc::new(Progress::default());
    let threads = cfg.threads.clamp(1, cfg.sockets);
    let cpu0 = process_cpu();
    let shared = Arc::new((cfg.clone(), Arc::clone(&schedule), Arc::clone(&progress)));
    let (all, elapsed) = run_threads(threads, schedule, progress, cfg.progress, move |i| {
        let sh = Arc::clone(&shared);
        let task: LocalTask = Box::pin(async move {
            let (cfg, schedule, progress) = &*sh;
            let mut tasks = Vec::new();
            for _ in (i..cfg.sockets).step_by(threads) {
                let w = SocketWorker::new(cfg.clone(), Arc::clone(schedule), Arc::clone(progress));
                tasks.push(tokio::task::spawn_local(w.run()));
            }
            let mut stats = Stats::new();
            for t in tasks {
                if let Ok(s) = t.await {
                    stats.merge(&s);
                }
            }
            stats
        });
        task
    })?;
    Ok(Summary::new(
        "dns",
        cfg.target.to_string(),
        cfg.mode.describe(),
        &merge(&all),
        elapsed,
        process_cpu().saturating_sub(cpu0),
    ))
}

/// One in-flight query.
#[derive(Debug, Clone, Copy)]
struct Slot {
    due: Instant,
    expires: Instant,
}

/// One UDP socket with its in-flight table.
struct SocketWorker {
    cfg: DnsConfig,
    schedule: Arc<Schedule>,
    progress: Arc<Progress>,
    stats: Stats,
    slots: Vec<Option<Slot>>,
    generation: Vec<u16>,
    free: Vec<u16>,
    out: Vec<u8>,
}

impl SocketWorker {
    fn new(cfg: DnsConfig, schedule: Arc<Schedule>, progress: Arc<Progress>) -> Self {
        let n = cfg.inflight;
        Self {
            cfg,
            schedule,
            progress,
            stats: Stats::new(),
            slots: vec![None; n],
            generation: vec![0; n],
            // n <= INFLIGHT_MAX = 4096, so every index fits in u16.
            free: (0..n as u16).rev().collect(),
            out: Vec::with_capacity(512),
        }
    }

    async fn run(mut self) -> Stats {
        let bind: SocketAddr = if self.cfg.target.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let sock = match open_socket(bind, self.cfg.target).await {
            Ok(s) => s,
            Err(_) => {
                self.stats.count_error("socket");
                self.progress.error(&self.schedule, self.cfg.errors_max);
                return self.stats;
            }
        };
        self.stats.connections += 1;
        let mut buf = vec![0u8; ANSWER_BYTES_MAX];
        let mut pending = self.schedule.next();
        let mut expire = tokio::time::interval(EXPIRE_EVERY);
        // Ends when the schedule is out of tickets and nothing is in flight; every
        // in-flight query ends by answer or timeout, so this loop is bounded.
        while pending.is_some() || self.free.len() < self.slots.len() {
            // Send whatever is due without a timer (closed loop: everything is due).
            while let Some(t) = pending.filter(|t| t.due <= Instant::now()) {
                if self.free.is_empty() {
                    break;
                }
                self.send(&sock, t).await;
                pending = self.schedule.next();
            }
            let can_send = pending.is_some() && !self.free.is_empty();
            let due = pending.map_or_else(Instant::now, |t| t.due);
            tokio::select! {
                biased;
                r = sock.recv(&mut buf) => match r {
                    Ok(n) => self.answer(&buf[..n]),
                    Err(_) => self.io_error(),
                },
                _ = tokio::time::sleep_until(due.into()), if can_send => {
                    if let Some(t) = pending.take() {
                        self.send(&sock, t).await;
                    }
                    pending = self.schedule.next();
                }
                _ = expire.tick() => self.expire(),
            }
        }
        self.stats
    }

    async fn send(&mut self, sock: &UdpSocket, t: Ticket) {
        let Some(slot) = self.free.pop() else { return };
        let i = usize::from(slot);
        let id = (self.generation[i] << SLOT_BITS) | slot;
        let q = &self.cfg.queries[(t.seq % self.cfg.queries.len() as u64) as usize];
        self.out.clear();
        self.out.extend_from_slice(q);
        self.out[..2].copy_from_slice(&id.to_be_bytes());
        self.stats.attempted += 1;
        if sock.send(&self.out).await.is_err() {
            self.free.push(slot);
            self.stats.failed += 1;
            self.progress.finish(false);
            self.io_error();
            return;
        }
        self.slots[i] = Some(Slot {
            due: t.due,
            expires: Instant::now() + self.cfg.timeout,
        });
    }

    fn answer(&mut self, msg: &[u8]) {
        let Some((id, rcode)) = parse_header(msg) else {
            self.stats.count_error("malformed_answer");
            return;
        };
        let i = usize::from(id & ((1 << SLOT_BITS) - 1));
        let generation = id >> SLOT_BITS;
        let matches = i < self.slots.len() && self.generation[i] == generation;
        let Some(slot) = self
            .slots
            .get_mut(i)
            .filter(|_| matches)
            .and_then(Option::take)
        else {
            self.stats.count_error("unexpected_answer");
            return;
        };
        self.release(i);
        self.stats.record_latency(slot.due.elapsed());
        self.stats.count_code(rcode.to_str());
        let ok = matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain);
        if ok {
            self.stats.ok += 1;
        } else {
            self.stats.rejected += 1;
        }
        self.progress.finish(ok);
    }

    fn expire(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].is_some_and(|s| s.expires <= now) {
                self.slots[i] = None;
                self.release(i);
                self.stats.failed += 1;
                self.stats.count_error("timeout");
                self.progress.finish(false);
            }
        }
    }

    fn release(&mut self, i: usize) {
        self.generation[i] = (self.generation[i] + 1) % (1 << (16 - SLOT_BITS));
        // i < inflight <= INFLIGHT_MAX, so it fits in u16.
        self.free.push(i as u16);
    }

    fn io_error(&mut self) {
        self.stats.count_error("io");
        self.progress.error(&self.schedule, self.cfg.errors_max);
    }
}

async fn open_socket(bind: SocketAddr, target: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(bind).await?;
    s.connect(target).await?;
    Ok(s)
}

/// Reads (ID, RCODE) from an answer's header; `None` if it is not an answer.
pub fn parse_header(msg: &[u8]) -> Option<(u16, ResponseCode)> {
    if msg.len() < HEADER_BYTES || msg[2] & 0x80 == 0 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    Some((id, ResponseCode::from_low(msg[3] & 0x0f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_round_trips() {
        // Goal: an encoded query decodes to the same name, type, ID 0, no RD flag.
        let name = Name::from_ascii("mx.tempmx.test.").unwrap_or_default();
        let bytes = encode_query(&name, RecordType::MX).unwrap_or_default();
        let m = Message::from_vec(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.metadata.id, 0);
        assert!(!m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name(), &name);
        assert_eq!(m.queries[0].query_type(), RecordType::MX);
    }

    #[test]
    fn query_list_parses_dnsperf_format() {
        // Goal: names and types parse, comments and blanks are skipped, errors name the line.
        let list = parse_query_list("; comment\n\nexample.test A\nmx.example.test mx\n")
            .unwrap_or_default();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].1, RecordType::MX);
        assert!(matches!(
            parse_query_list("a.test"),
            Err(QueryError::Line(1))
        ));
        assert!(matches!(
            parse_query_list("a.test A extra"),
            Err(QueryError::Line(1))
        ));
        assert!(matches!(
            parse_query_list("x.test NOPE"),
            Err(QueryError::Parse(1, _))
        ));
        assert!(matches!(
            parse_query_list("; only\n"),
            Err(QueryError::Count)
        ));
        let long = format!("{} A", "a".repeat(LINE_BYTES_MAX));
        assert!(matches!(
            parse_query_list(&long),
            Err(QueryError::LineTooLong(1))
        ));
    }

    #[test]
    fn generated_names_within_limits() {
        // Goal: generation gives the count asked for and refuses 0 and > QUERIES_MAX.
        let v = generate_queries(3, "tempmx.test", RecordType::A).unwrap_or_default();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2].0.to_ascii(), "q2.tempmx.test");
        assert!(generate_queries(0, "t", RecordType::A).is_err());
        assert!(generate_queries(QUERIES_MAX + 1, "t", RecordType::A).is_err());
    }

    #[test]
    fn answer_header_parse() {
        // Goal: ID and RCODE come from the header; queries and short packets are refused.
        let mut a = [0u8; 12];
        a[0] = 0x12;
        a[1] = 0x34;
        a[2] = 0x84; // QR + AA
        a[3] = 0x03; // NXDOMAIN
        assert_eq!(parse_header(&a), Some((0x1234, ResponseCode::NXDomain)));
        a[2] = 0;
        assert_eq!(parse_header(&a), None);
        assert_eq!(parse_header(&a[..11]), None);
    }
}
