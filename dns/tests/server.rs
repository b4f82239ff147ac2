//! Integration tests: the real listener on 127.0.0.1 port 0, queried over
//! UDP and TCP with hickory-proto messages on std sockets and with
//! hickory-resolver.
// Tests start from the defaults and change one field: that is the point.
#![allow(clippy::field_reassign_with_default)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tempmx_dns::{DnsConfig, DnsHandle, MxHost, ZoneSnapshot, ZoneState, start};

const WAIT: Duration = Duration::from_secs(3);

fn config() -> DnsConfig {
    let mut c = DnsConfig::default();
    c.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    c.udp_workers = 2;
    c.axfr_allow = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    c
}

fn snapshot() -> ZoneSnapshot {
    ZoneSnapshot {
        serial: None,
        domains: vec![
            (
                tempmx_store::Domain::parse("pool.test").expect("test domain"),
                ZoneState::Serving,
            ),
            (
                tempmx_store::Domain::parse("tempmx.test").expect("test domain"),
                ZoneState::Serving,
            ),
            (
                tempmx_store::Domain::parse("old.test").expect("test domain"),
                ZoneState::Retired,
            ),
        ],
    }
}

fn server() -> DnsHandle {
    start(&config(), snapshot()).expect("server starts")
}

fn query_bytes(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("client socket");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Sends raw bytes over UDP; the answer, or None when none came in time.
fn udp_raw(addr: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let s = client();
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.send_to(packet, addr).expect("send");
    let mut buf = vec![0u8; 65_535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn udp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let reply = udp_raw(addr, &query_bytes(name, rtype, false), WAIT).expect("answer");
    Message::from_vec(&reply).expect("parse answer")
}

fn tcp_stream(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

fn tcp_send(s: &mut TcpStream, packet: &[u8]) {
    let len = u16::try_from(packet.len()).expect("fits");
    s.write_all(&len.to_be_bytes()).expect("write len");
    s.write_all(packet).expect("write");
}

fn tcp_read(s: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).ok()?;
    Some(Message::from_vec(&buf).expect("parse tcp answer"))
}

fn rdata(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

fn soa_serial(m: &Message) -> u32 {
    let soa = m
        .answers
        .iter()
        .chain(&m.authorities)
        .find_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        });
    soa.expect("an SOA record")
}

// Goal: each record the issue lists is published for a serving domain.
// Method: one UDP query per (name, type), compare the sorted rdata.
#[test]
fn serving_domain_records() {
    let srv = server();
    let a = srv.local_addr();
    let cases: [(&str, RecordType, &[&str]); 7] = [
        ("pool.test.", RecordType::MX, &["10 mx.tempmx.test."]),
        ("pool.test.", RecordType::NS, &["ns1.tempmx.test."]),
        ("pool.test.", RecordType::TXT, &["v=spf1 -all"]),
        (
            "_dmarc.pool.test.",
            RecordType::TXT,
            &["v=DMARC1; p=reject"],
        ),
        ("mx.tempmx.test.", RecordType::A, &["127.0.0.1"]),
        ("ns1.tempmx.test.", RecordType::A, &["127.0.0.1"]),
        ("old.test.", RecordType::MX, &["0 ."]),
    ];
    for (name, rtype, want) in cases {
        let m = udp(a, name, rtype);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name} {rtype}"
        );
        assert!(m.metadata.authoritative, "{name} {rtype}");
        assert_eq!(rdata(&m), want, "{name} {rtype}");
    }
    let soa = udp(a, "pool.test.", RecordType::SOA);
    assert!(
        soa_serial(&soa) > 1_700_000_000,
        "serial is unix-time based"
    );
    // The MX answer for tempmx.test carries the MX host's address.
    let mx = udp(a, "tempmx.test.", RecordType::MX);
    assert_eq!(mx.additionals.len(), 1);
    srv.shutdown();
}

// Goal: NXDOMAIN and NODATA carry the zone's SOA; names outside our zones,
// including look-alikes, are REFUSED; other classes too.
#[test]
fn negative_answers_and_refused() {
    let srv = server();
    let a = srv.local_addr();
    let nx = udp(a, "nope.pool.test.", RecordType::MX);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative && nx.answers.is_empty());
    assert_eq!(nx.authorities[0].name.to_ascii(), "pool.test.");
    let nodata = udp(a, "pool.test.", RecordType::AAAA);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    for outside in [
        "example.com.",
        "pool.test.evil.example.",
        "tempmx.test.evil.example.",
        "test.",
    ] {
        let m = udp(a, outside, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{outside}");
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        assert!(!m.metadata.authoritative);
    }
    let mut chaos = query_bytes("pool.test.", RecordType::TXT, false);
    let len = chaos.len();
    chaos[len - 1] = 3; // class CH
    let m = Message::from_vec(&udp_raw(a, &chaos, WAIT).expect("answer")).expect("parse");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let c = srv.counters();
    assert_eq!((c.responses("NXDOMAIN"), c.responses("REFUSED")), (1, 5));
    assert_eq!(c.queries("MX"), 1);
    srv.shutdown();
}

// Goal: names match case-insensitively and the question keeps the sender's case.
#[test]
fn case_insensitive() {
    let srv = server();
    let m = udp(srv.local_addr(), "PoOl.TeSt.", RecordType::MX);
    // Names compressed against the question take its case (RFC 4343 §4.1).
    let got: Vec<String> = rdata(&m).iter().map(|s| s.to_ascii_lowercase()).collect();
    assert_eq!(got, ["10 mx.tempmx.test."]);
    assert_eq!(m.queries[0].name().to_ascii(), "PoOl.TeSt.");
    assert_eq!(m.answers[0].name.to_ascii(), "PoOl.TeSt.");
    srv.shutdown();
}

// Goal: an EDNS0 query gets an OPT record back with our payload size.
#[test]
fn edns0() {
    let srv = server();
    let reply = udp_raw(
        srv.local_addr(),
        &query_bytes("pool.test.", RecordType::MX, true),
        WAIT,
    )
    .expect("answer");
    let m = Message::from_vec(&reply).expect("parse");
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    assert_eq!(rdata(&m), ["10 mx.tempmx.test."]);
    srv.shutdown();
}

// Goal: a published snapshot is visible to the very next query and the
// changed zone's SOA serial grows; a retired domain switches to null MX.
#[test]
fn publish_is_visible_to_next_query() {
    let srv = server();
    let a = srv.local_addr();
    let before = soa_serial(&udp(a, "pool.test.", RecordType::SOA));
    assert_eq!(
        udp(a, "new.test.", RecordType::MX).metadata.response_code,
        ResponseCode::Refused
    );
    let mut snap = snapshot();
    snap.domains[0].1 = ZoneState::Retired;
    snap.domains.push((
        tempmx_store::Domain::parse("new.test").expect("test domain"),
        ZoneState::Serving,
    ));
    srv.publish(snap);
    assert_eq!(rdata(&udp(a, "pool.test.", RecordType::MX)), ["0 ."]);
    assert_eq!(
        rdata(&udp(a, "new.test.", RecordType::MX)),
        ["10 mx.tempmx.test."]
    );
    let after = soa_serial(&udp(a, "pool.test.", RecordType::SOA));
    assert!(after > before, "serial {before} -> {after}");
    assert_eq!(srv.serial("pool.test"), Some(after));
    // An unchanged zone keeps its serial.
    let tm = srv.serial("tempmx.test").expect("served");
    assert!(tm < after);
    srv.publish(ZoneSnapshot::default());
    assert_eq!(
        udp(a, "pool.test.", RecordType::MX).metadata.response_code,
        ResponseCode::Refused
    );
    assert_eq!(srv.counters().zones, 0);
    srv.shutdown();
}

// Goal: TCP answers with the length prefix, several queries per connection.
#[test]
fn tcp_queries() {
    let srv = server();
    let mut s = tcp_stream(srv.local_addr());
    for _ in 0..3 {
        tcp_send(&mut s, &query_bytes("pool.test.", RecordType::MX, false));
        let m = tcp_read(&mut s).expect("tcp answer");
        assert_eq!(rdata(&m), ["10 mx.tempmx.test."]);
    }
    tcp_send(&mut s, &[0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f]);
    assert_eq!(
        tcp_read(&mut s).expect("formerr").metadata.response_code,
        ResponseCode::FormErr
    );
    srv.shutdown();
}

// Goal: AXFR from an allowed address returns the whole zone framed by SOAs;
// from any other address it is REFUSED; over UDP it is REFUSED.
#[test]
fn axfr_allow_list() {
    let srv = server();
    let mut s = tcp_stream(srv.local_addr());
    tcp_send(&mut s, &query_bytes("pool.test.", RecordType::AXFR, false));
    let m = tcp_read(&mut s).expect("axfr");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.first(), Some(&RecordType::SOA));
    assert_eq!(types.last(), Some(&RecordType::SOA));
    for t in [RecordType::NS, RecordType::MX, RecordType::TXT] {
        assert!(types.contains(&t), "{t} in transfer");
    }
    tcp_send(&mut s, &query_bytes("nope.test.", RecordType::AXFR, false));
    assert_eq!(
        tcp_read(&mut s).expect("notauth").metadata.response_code,
        ResponseCode::NotAuth
    );
    let udp_axfr = udp(srv.local_addr(), "pool.test.", RecordType::AXFR);
    assert_eq!(udp_axfr.metadata.response_code, ResponseCode::Refused);
    srv.shutdown();

    let mut c = config();
    c.axfr_allow = vec![IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let srv = start(&c, snapshot()).expect("server");
    let mut s = tcp_stream(srv.local_addr());
    tcp_send(&mut s, &query_bytes("pool.test.", RecordType::AXFR, false));
    let m = tcp_read(&mut s).expect("refused");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    assert_eq!(srv.counters().axfr_refused, 1);
    srv.shutdown();
}

// Goal: truncated, garbage and oversized datagrams get FORMERR or no answer,
// never a crash, and the server keeps answering.
#[test]
fn malformed_packets() {
    let srv = server();
    let a = srv.local_addr();
    let good = query_bytes("pool.test.", RecordType::MX, false);
    let short = Duration::from_millis(300);
    let formerr_cases: [&[u8]; 3] = [
        &good[..good.len() - 3],
        &[0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
        &[0xab, 0xcd, 0x01, 0, 0, 9, 0, 0, 0, 0, 0, 0],
    ];
    for p in formerr_cases {
        let m = Message::from_vec(&udp_raw(a, p, WAIT).expect("formerr")).expect("parse");
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{p:?}");
    }
    let huge = vec![0x41u8; 60_000];
    for p in [&[][..], &[1, 2, 3][..], &huge[..]] {
        assert!(udp_raw(a, p, short).is_none(), "dropped: {} bytes", p.len());
    }
    assert_eq!(
        rdata(&udp(a, "pool.test.", RecordType::MX)),
        ["10 mx.tempmx.test."]
    );
    assert!(
        srv.counters().dropped >= 2,
        "runts and the oversize datagram are counted"
    );
    srv.shutdown();
}

// Goal: the TCP connection limit closes extra connections at once, and an
// idle connection is closed after the idle timeout.
#[test]
fn tcp_limits() {
    let mut c = config();
    c.tcp_connections_max = 1;
    c.tcp_idle_timeout_ms = 300;
    let srv = start(&c, snapshot()).expect("server");
    let a = srv.local_addr();
    let mut first = tcp_stream(a);
    tcp_send(
        &mut first,
        &query_bytes("pool.test.", RecordType::MX, false),
    );
    assert!(tcp_read(&mut first).is_some(), "first connection served");
    let mut second = tcp_stream(a);
    let mut byte = [0u8; 1];
    assert!(
        matches!(second.read(&mut byte), Ok(0) | Err(_)),
        "second connection closed"
    );
    assert_eq!(srv.counters().tcp_connections_rejected, 1);
    let t0 = Instant::now();
    assert!(
        matches!(first.read(&mut byte), Ok(0) | Err(_)),
        "idle connection closed"
    );
    assert!(
        t0.elapsed() < WAIT,
        "closed by the idle timeout, not the client's"
    );
    srv.shutdown();
}

// Goal: a real resolver (hickory-resolver over UDP) gets the MX and SOA.
#[tokio::test]
async fn hickory_resolver_lookup() {
    use hickory_resolver::config::{
        ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
    };
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let srv = server();
    let mut conn = ConnectionConfig::udp();
    conn.port = srv.local_addr().port();
    let ns = NameServerConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), true, vec![conn]);
    let mut opts = ResolverOpts::default();
    opts.timeout = WAIT;
    opts.attempts = 1;
    let resolver = hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .expect("resolver");
    let mx = resolver
        .lookup("pool.test.", RecordType::MX)
        .await
        .expect("mx lookup");
    let got: Vec<String> = mx.answers().iter().map(|r| r.data.to_string()).collect();
    assert_eq!(got, ["10 mx.tempmx.test."]);
    let retired = resolver
        .lookup("old.test.", RecordType::MX)
        .await
        .expect("null mx");
    assert_eq!(retired.answers()[0].data.to_string(), "0 .");
    srv.shutdown();
}

// Goal: per-domain MX hosts (`mx.@`) and several priorities, as the anchors'
// zones use them; ANY gets one RRset (RFC 8482).
#[test]
fn relative_hosts_and_any() {
    let mut c = config();
    c.mx_hosts = vec![
        MxHost {
            priority: 10,
            host: "mx.@".into(),
        },
        MxHost {
            priority: 20,
            host: "mx.tempmx.test".into(),
        },
    ];
    c.name_servers = vec!["ns1.@".into()];
    c.host_addresses
        .insert("mx.@".into(), vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]);
    let srv = start(&c, snapshot()).expect("server");
    let a = srv.local_addr();
    assert_eq!(
        rdata(&udp(a, "pool.test.", RecordType::MX)),
        ["10 mx.pool.test.", "20 mx.tempmx.test."]
    );
    assert_eq!(
        rdata(&udp(a, "mx.pool.test.", RecordType::A)),
        ["127.0.0.2"]
    );
    assert_eq!(
        rdata(&udp(a, "pool.test.", RecordType::NS)),
        ["ns1.pool.test."]
    );
    let any = udp(a, "pool.test.", RecordType::ANY);
    assert_eq!(any.answers.len(), 2);
    assert!(
        any.answers
            .iter()
            .all(|r| r.record_type() == RecordType::MX)
    );
    srv.shutdown();
}

// Goal: a second server on the same fixed port fails to start (TCP has no
// SO_REUSEPORT), and shutdown releases the port.
#[test]
fn port_in_use_and_release() {
    let srv = server();
    let mut c = config();
    c.listen = srv.local_addr();
    assert!(start(&c, snapshot()).is_err(), "second instance refused");
    srv.shutdown();
    let again = start(&c, snapshot()).expect("port released after shutdown");
    again.shutdown();
}
