//! A loopback DNS server for integration tests: serves configured records over UDP and TCP
//! on 127.0.0.1, authoritatively for every name (absent names get NXDOMAIN, never REFUSED,
//! so mail-auth's `_dmarc.<parent>` tree walk ends cleanly), counts the queries it receives,
//! and stops when dropped. No query ever leaves the machine.
//!
//! ```ignore
//! mod support_dns;
//! use support_dns::{Rr, TestDns, Zone};
//! let dns = TestDns::start(Zone::new().with("example.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all")));
//! // point the resolver at dns.addr(); later assert on dns.queries()
//! ```
#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

const TTL: u32 = 300;
const UDP_PAYLOAD_MAX: usize = 1232;
const TCP_MESSAGE_MAX: usize = 65_535;

/// One resource record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rr {
    /// TXT made of these character-strings (raw bytes; each at most 255).
    Txt(Vec<Vec<u8>>),
    /// A.
    A(Ipv4Addr),
    /// AAAA.
    Aaaa(Ipv6Addr),
    /// MX preference and exchange.
    Mx(u16, String),
    /// PTR target.
    Ptr(String),
    /// CNAME target (followed one level for other types).
    Cname(String),
}

impl Rr {
    /// A TXT record of `text`, split into 255-byte character-strings as DNS requires.
    pub fn txt(text: &str) -> Self {
        Rr::Txt(text.as_bytes().chunks(255).map(<[u8]>::to_vec).collect())
    }

    fn record_type(&self) -> RecordType {
        match self {
            Rr::Txt(_) => RecordType::TXT,
            Rr::A(_) => RecordType::A,
            Rr::Aaaa(_) => RecordType::AAAA,
            Rr::Mx(..) => RecordType::MX,
            Rr::Ptr(_) => RecordType::PTR,
            Rr::Cname(_) => RecordType::CNAME,
        }
    }

    fn rdata(&self) -> Option<RData> {
        Some(match self {
            Rr::Txt(parts) => {
                RData::TXT(TXT::from_bytes(parts.iter().map(Vec::as_slice).collect()))
            }
            Rr::A(ip) => RData::A(A(*ip)),
            Rr::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Rr::Mx(pref, host) => RData::MX(MX::new(*pref, fqdn(host)?)),
            Rr::Ptr(host) => RData::PTR(PTR(fqdn(host)?)),
            Rr::Cname(host) => RData::CNAME(CNAME(fqdn(host)?)),
        })
    }
}

/// The records the server answers with, and the names whose unanswered queries it drops.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: HashMap<String, Vec<Rr>>,
    silent: HashSet<String>,
    silent_all: bool,
    silent_over_tcp: bool,
    apex: Option<String>,
}

impl Zone {
    /// No records: every query gets NXDOMAIN.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record at `name` (case-insensitive, trailing dot optional).
    pub fn with(mut self, name: &str, rr: Rr) -> Self {
        self.add(name, rr);
        self
    }

    /// Adds a record at `name`.
    pub fn add(&mut self, name: &str, rr: Rr) {
        self.records.entry(key(name)).or_default().push(rr);
    }

    /// Queries for `name` of a type it has no record of are never answered (a timeout).
    pub fn silent(mut self, name: &str) -> Self {
        self.silent.insert(key(name));
        self
    }

    /// No query is ever answered: a server that reads and never replies.
    pub fn silent_all(mut self) -> Self {
        self.silent_all = true;
        self
    }

    /// Every UDP query gets a truncated reply (TC=1, no records), so the resolver asks again
    /// over TCP, where the server accepts the connection, reads, and never replies.
    pub fn silent_over_tcp(mut self) -> Self {
        self.silent_over_tcp = true;
        self
    }

    /// Names outside `apex` and its subdomains get REFUSED, as from an authoritative server
    /// asked about someone else's zone (tempmx's own DNS listener answers so).
    pub fn refuse_outside(mut self, apex: &str) -> Self {
        self.apex = Some(key(apex));
        self
    }

    /// The answer to one query: `None` means stay silent.
    fn answer(&self, name: &str, qtype: RecordType) -> Option<(ResponseCode, Vec<(String, &Rr)>)> {
        if self.silent_all {
            return None;
        }
        if let Some(apex) = &self.apex
            && name != apex
            && !name.ends_with(&format!(".{apex}"))
        {
            return Some((ResponseCode::Refused, Vec::new()));
        }
        let here = self
            .records
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let matching: Vec<(String, &Rr)> = here
            .iter()
            .filter(|rr| rr.record_type() == qtype)
            .map(|rr| (name.to_owned(), rr))
            .collect();
        if !matching.is_empty() {
            return Some((ResponseCode::NoError, matching));
        }
        if let Some(cname @ Rr::Cname(target)) = here.iter().find(|rr| matches!(rr, Rr::Cname(_))) {
            let target = key(target);
            let followed = self
                .records
                .get(&target)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut chain = vec![(name.to_owned(), cname)];
            chain.extend(
                followed
                    .iter()
                    .filter(|rr| rr.record_type() == qtype)
                    .map(|rr| (target.clone(), rr)),
            );
            return Some((ResponseCode::NoError, chain));
        }
        if self.silent.contains(name) {
            return None;
        }
        if self.exists(name) {
            return Some((ResponseCode::NoError, Vec::new()));
        }
        Some((ResponseCode::NXDomain, Vec::new()))
    }

    /// A name exists when it owns records, is silent, or is an ancestor of one that does.
    fn exists(&self, name: &str) -> bool {
        let suffix = format!(".{name}");
        self.silent.contains(name)
            || self
                .records
                .keys()
                .chain(self.silent.iter())
                .any(|k| k == name || k.ends_with(&suffix))
    }
}

/// A running loopback DNS server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    muted: Arc<AtomicBool>,
    log: Arc<parking_lot::Mutex<Vec<(String, RecordType)>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestDns {
    /// Starts a server for `zone` on 127.0.0.1 (an OS-chosen port, UDP and TCP alike).
    pub fn start(zone: Zone) -> TestDns {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel();
        let queries = Arc::new(AtomicUsize::new(0));
        let muted = Arc::new(AtomicBool::new(false));
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let shared = Served {
            zone: Arc::new(zone),
            queries: queries.clone(),
            muted: muted.clone(),
            log: log.clone(),
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime");
            rt.block_on(serve(shared, ready_tx, stop_rx));
        });
        let addr = ready_rx.recv().expect("test DNS server started");
        TestDns {
            addr,
            queries,
            muted,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Mutes the server (`true`: it reads and counts queries, over UDP and TCP, and answers
    /// none, as a resolver in an outage) or brings it back (`false`), on the same address.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::SeqCst);
    }

    /// Queries received so far (answered or not).
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// Names (lowercase, trailing dot) and types queried so far, in order.
    pub fn queried(&self) -> Vec<(String, RecordType)> {
        self.log.lock().clone()
    }

    /// How many queries asked for `name` (any type).
    pub fn queries_for(&self, name: &str) -> usize {
        let name = key(name);
        self.log.lock().iter().filter(|(n, _)| *n == name).count()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct Served {
    zone: Arc<Zone>,
    queries: Arc<AtomicUsize>,
    muted: Arc<AtomicBool>,
    log: Arc<parking_lot::Mutex<Vec<(String, RecordType)>>>,
}

async fn serve(
    served: Served,
    ready: std::sync::mpsc::Sender<SocketAddr>,
    stop: oneshot::Receiver<()>,
) {
    let (udp, tcp, addr) = bind_pair().await;
    ready.send(addr).expect("starter waits");
    tokio::select! {
        _ = stop => {}
        _ = serve_udp(&udp, &served) => {}
        _ = serve_tcp(&tcp, &served) => {}
    }
}

/// Binds UDP on an OS-chosen port and TCP on the same number, trying again with a new port
/// when another process already holds that number for TCP.
async fn bind_pair() -> (UdpSocket, TcpListener, SocketAddr) {
    const ATTEMPTS: usize = 32;
    for _ in 0..ATTEMPTS {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind test DNS UDP");
        let addr = udp.local_addr().expect("UDP address");
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp, addr),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("bind test DNS TCP on {addr}: {e}"),
        }
    }
    panic!("no loopback port free for both UDP and TCP after {ATTEMPTS} attempts");
}

async fn serve_udp(udp: &UdpSocket, served: &Served) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
            continue;
        };
        // A zero limit truncates every reply: the resolver must come back over TCP.
        let size_max = if served.zone.silent_over_tcp {
            0
        } else {
            UDP_PAYLOAD_MAX
        };
        if let Some(reply) = served.reply(&buf[..n], size_max) {
            let _ = udp.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(tcp: &TcpListener, served: &Served) {
    loop {
        let Ok((mut stream, _)) = tcp.accept().await else {
            continue;
        };
        let served = served.clone();
        tokio::spawn(async move {
            let mut len = [0u8; 2];
            while stream.read_exact(&mut len).await.is_ok() {
                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut msg).await.is_err() {
                    return;
                }
                let reply = served.reply(&msg, TCP_MESSAGE_MAX);
                let Some(reply) = reply.filter(|_| !served.zone.silent_over_tcp) else {
                    continue;
                };
                let Ok(n) = u16::try_from(reply.len()) else {
                    return;
                };
                if stream.write_all(&n.to_be_bytes()).await.is_err()
                    || stream.write_all(&reply).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

impl Served {
    /// The encoded reply to one request; `None` to stay silent.
    fn reply(&self, request: &[u8], size_max: usize) -> Option<Vec<u8>> {
        let request = Message::from_vec(request).ok()?;
        let query = request.queries.first()?.clone();
        let name = key(&query.name.to_ascii());
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.log.lock().push((name.clone(), query.query_type));
        if self.muted.load(Ordering::SeqCst) {
            return None;
        }
        let (code, records) = self.zone.answer(&name, query.query_type)?;
        let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
        reply.metadata.message_type = MessageType::Response;
        reply.metadata.authoritative = true;
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.response_code = code;
        reply.add_query(query);
        for (owner, rr) in records {
            reply.add_answer(Record::from_rdata(fqdn(&owner)?, TTL, rr.rdata()?));
        }
        if reply.answers.is_empty() {
            // The SOA lets the resolver cache the negative answer (RFC 2308).
            let soa = SOA::new(
                fqdn("ns.test")?,
                fqdn("hostmaster.test")?,
                1,
                3600,
                600,
                86400,
                TTL,
            );
            reply.add_authority(Record::from_rdata(Name::root(), TTL, RData::SOA(soa)));
        }
        if let Some(edns) = &request.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(edns.max_payload().max(512));
            reply.set_edns(ours);
        }
        let size_max = request
            .edns
            .as_ref()
            .map_or(512, |e| usize::from(e.max_payload()).max(512))
            .min(size_max);
        if size_max == 0 {
            return truncated(reply);
        }
        let bytes = reply.to_vec().ok()?;
        if bytes.len() <= size_max {
            return Some(bytes);
        }
        truncated(reply)
    }
}

/// `reply` without its records and with TC=1: the client must ask again over TCP.
fn truncated(mut reply: Message) -> Option<Vec<u8>> {
    reply.answers.clear();
    reply.authorities.clear();
    reply.metadata.truncation = true;
    reply.to_vec().ok()
}

fn key(name: &str) -> String {
    let mut k = name.trim_end_matches('.').to_ascii_lowercase();
    k.push('.');
    k
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(key(name)).ok()
}
