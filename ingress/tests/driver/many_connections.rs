//! 10,000 concurrent connections from distinct loopback source addresses, on both backends.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempmx_ingress::Backend;

use crate::instances::child_arg;
use crate::on_both_backends;
use crate::support::{READ_TIMEOUT, Server};

/// Connections held open at the same time.
const CONNECTIONS: usize = 10_000;
/// The two backends' runs share this process's descriptor limit: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// Longest the child may take for all of them.
const CHILD_TIME_MAX: Duration = Duration::from_secs(120);

on_both_backends!(ten_thousand_connections);

/// The descriptor limit of this process raised to its hard limit (the server's 10,000
/// sockets need it; the clients live in a child process with its own limit).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the plain struct above.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// Resident memory of this process in KiB (VmRSS).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

// Goal: 10,000 connections open at once, each from its own 127.x.y.z source address, all get
// their greeting and an answer to NOOP; the server's resident memory with all of them open is
// reported. Method: the server runs here (descriptor limit raised); a child process opens the
// connections from distinct addresses, reads every greeting, then sends NOOP on each and
// reads every 250, holding all open until the parent has measured.
fn ten_thousand_connections(backend: Backend) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let limit = raise_nofile();
    assert!(
        limit as usize > CONNECTIONS + 100,
        "descriptor hard limit {limit} too low"
    );
    let rss_before = rss_kib();
    let server = Server::start(backend, |c| {
        c.connections_per_core_max = CONNECTIONS;
        c.read_buffers_per_core = 256;
    });
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "many_connections::ten_thousand_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TEMPMX_TEST_CHILD", server.addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let deadline = Instant::now() + CHILD_TIME_MAX;
    // The child prints "all answered" once every connection got its 250, and waits.
    while !String::from_utf8_lossy(&seen).contains("all answered") {
        assert!(
            Instant::now() < deadline,
            "child too slow: {}",
            String::from_utf8_lossy(&seen)
        );
        let mut chunk = [0u8; 1024];
        let n = stdout.read(&mut chunk).expect("child stdout");
        assert!(
            n > 0,
            "child ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
    let open = server.handle().counters().connections_accepted;
    let rss = rss_kib();
    eprintln!(
        "{backend:?}: {CONNECTIONS} connections open, server process RSS {rss} KiB ({} KiB over the idle process, {:.1} KiB per connection)",
        rss.saturating_sub(rss_before),
        rss.saturating_sub(rss_before) as f64 / CONNECTIONS as f64
    );
    assert_eq!(open, CONNECTIONS as u64);
    // Closing the child's stdin lets it close its connections and exit.
    drop(child.stdin.take());
    let status = child.wait().expect("child exit");
    assert!(status.success(), "child failed");
}

/// Child of [`ten_thousand_connections`]: the clients.
#[test]
#[ignore = "child process of ten_thousand_connections"]
fn ten_thousand_child() {
    let addr: SocketAddr = child_arg().parse().expect("address");
    let limit = raise_nofile();
    assert!(
        limit as usize > CONNECTIONS + 100,
        "descriptor hard limit {limit} too low"
    );
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        // 127.1.0.1 .. 127.1.39.250: distinct sources, none of them 127.0.0.1.
        let source = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::new(IpAddr::V4(source), 0).into())
            .expect("bind source");
        socket.connect(&addr.into()).expect("connect");
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        conns.push(stream);
    }
    for stream in &mut conns {
        expect_line(stream, b"220 ");
    }
    for stream in &mut conns {
        stream.write_all(b"NOOP\r\n").expect("send NOOP");
    }
    for stream in &mut conns {
        expect_line(stream, b"250 ");
    }
    println!("all answered");
    std::io::stdout().flush().expect("flush");
    // Hold every connection open until the parent has measured and closes our stdin.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// Reads one reply line (short: greeting or 250) and checks its start.
fn expect_line(stream: &mut TcpStream, start: &[u8]) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        assert!(line.len() < 512, "reply too long");
        let n = stream.read(&mut byte).expect("read reply");
        assert_eq!(n, 1, "EOF after {:?}", String::from_utf8_lossy(&line));
        line.push(byte[0]);
    }
    assert!(
        line.starts_with(start),
        "got {:?}",
        String::from_utf8_lossy(&line)
    );
}
