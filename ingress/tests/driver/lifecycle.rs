//! Connection lifecycle: timers, admission caps, graceful shutdown, concurrency.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tempmx_ingress::Backend;

use crate::on_both_backends;
use crate::support::{NullSink, Raw, SLOW_SINK_PAUSE, Server, SinkMode};

on_both_backends!(
    idle_client_disconnected,
    session_duration_cap,
    per_ip_cap,
    per_core_cap,
    graceful_shutdown_tells_open_sessions,
    queued_during_shutdown_told_421,
    concurrent_sessions_all_delivered,
);

// Goal: a client silent for idle_timeout_ms gets 421 4.4.2 and then EOF (the socket is
// really shut down; on io_uring a dropped read alone would leave it open).
fn idle_client_disconnected(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.idle_timeout_ms = 300);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.expect("421 4.4.2");
    raw.expect_eof();
    assert_eq!(server.handle().counters().sessions_timed_out, 1);
}

// Goal: a client that keeps talking is still cut off at session_duration_max_ms.
fn session_duration_cap(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.session_duration_max_ms = 400);
    let mut raw = server.connect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "session never capped");
        raw.send(b"NOOP\r\n");
        let reply = raw.reply();
        if reply.starts_with("421 4.4.2") {
            break;
        }
        assert!(reply.starts_with("250"), "NOOP: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    raw.expect_eof();
}

// Goal: connection connections_per_ip_max + 1 from one address gets 421 4.7.0 and EOF; once
// a session ends its slot is free again.
fn per_ip_cap(backend: Backend) {
    let server = Server::start(backend, |c| {
        c.cores = 1;
        c.connections_per_ip_max = 3;
    });
    let mut open: Vec<Raw> = (0..3).map(|_| server.connect()).collect();
    let mut refused = Raw::connect(server.addr);
    refused.expect("421 4.7.0");
    refused.expect_eof();
    assert_eq!(server.handle().counters().connections_refused_ip, 1);
    let mut first = open.remove(0);
    first.cmd("QUIT", "221");
    first.expect_eof();
    drop(first);
    // The slot is freed right after the server's shutdown of that socket; retry briefly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = Raw::connect(server.addr);
        let reply = again.reply();
        if reply.starts_with("220") {
            break;
        }
        assert!(reply.starts_with("421 4.7.0"), "unexpected {reply:?}");
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Goal: the connection after connections_per_core_max gets 421 4.7.0.
fn per_core_cap(backend: Backend) {
    let server = Server::start(backend, |c| {
        c.cores = 1;
        c.connections_per_core_max = 2;
    });
    let _open: Vec<Raw> = (0..2).map(|_| server.connect()).collect();
    let mut refused = Raw::connect(server.addr);
    refused.expect("421 4.7.0");
    refused.expect_eof();
    assert_eq!(server.handle().counters().connections_refused_core, 1);
}

// Goal: shutdown gives open sessions the grace period, then says 421 4.3.2 and closes them;
// it returns only when all cores have stopped, after which nothing listens.
fn graceful_shutdown_tells_open_sessions(backend: Backend) {
    let mut server = Server::start(backend, |c| c.shutdown_grace_ms = 200);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    let handle = server.handle.take().expect("handle");
    let counters = Arc::new(std::sync::Mutex::new(None));
    let stopper = std::thread::spawn({
        let counters = Arc::clone(&counters);
        move || {
            let started = Instant::now();
            let snapshot = handle.counters();
            handle.shutdown();
            *counters.lock().expect("lock") = Some(snapshot);
            started.elapsed()
        }
    });
    raw.expect("421 4.3.2");
    raw.expect_eof();
    let took = stopper.join().expect("shutdown thread");
    assert!(
        took >= Duration::from_millis(200),
        "grace period skipped: {took:?}"
    );
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "still listening after shutdown"
    );
}

// Goal: connections the kernel queued for a core while it was busy, and that it accepts
// only once shutdown has begun, are answered 421 4.3.2 (after a greeting at most), never
// reset or left silent. Method: a slow sink blocks the core's thread for 800 ms on a
// delivery; five clients connect meanwhile, shutdown is requested meanwhile, then every
// client reads until 421 4.3.2.
fn queued_during_shutdown_told_421(backend: Backend) {
    let mut config = crate::support::config(backend);
    config.cores = 1;
    config.shutdown_grace_ms = 200;
    let mut server = Server::start_with(config, SinkMode::Slow);
    let mut busy = server.connect();
    busy.cmd("EHLO client.test", "250");
    busy.cmd("MAIL FROM:<s@example.test>", "250");
    busy.cmd("RCPT TO:<u@tempmx.test>", "250");
    busy.cmd("DATA", "354");
    busy.send(b"Subject: slow\r\n\r\nbody\r\n.\r\n");
    // The core is now inside the sink: these wait in the accept queue.
    std::thread::sleep(SLOW_SINK_PAUSE / 8);
    let mut queued: Vec<Raw> = (0..5).map(|_| Raw::connect(server.addr)).collect();
    let handle = server.handle.take().expect("handle");
    let stopper = std::thread::spawn(move || handle.shutdown());
    for client in &mut queued {
        let first = client.reply();
        let last = if first.starts_with("220") {
            client.reply()
        } else {
            first
        };
        assert!(last.starts_with("421 4.3.2"), "queued client got {last:?}");
        client.expect_eof();
    }
    stopper.join().expect("shutdown thread");
}

// Goal: 200 sessions open at the same time (two cores) each deliver a message and get 250.
fn concurrent_sessions_all_delivered(backend: Backend) {
    const SESSIONS: usize = 200;
    let server = Server::start(backend, |c| {
        c.connections_per_ip_max = SESSIONS;
        c.read_buffers_per_core = SESSIONS / 2;
    });
    let all_connected = Arc::new(Barrier::new(SESSIONS));
    let clients: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let addr = server.addr;
            let all_connected = Arc::clone(&all_connected);
            std::thread::spawn(move || {
                let mut raw = Raw::connect(addr);
                raw.expect("220");
                all_connected.wait();
                raw.send_mail(
                    &format!("user{i}@tempmx.test"),
                    &format!("Subject: {i}\r\n\r\nmessage {i}\r\n"),
                );
                raw.cmd("QUIT", "221");
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
    let stored = server.shelf.wait_for(SESSIONS);
    assert_eq!(stored.len(), SESSIONS);
    let counters = server.handle().counters();
    assert_eq!(counters.messages_accepted, SESSIONS as u64);
    assert_eq!(counters.connections_accepted, SESSIONS as u64);
}

// Goal: Auto resolves to a concrete backend (io_uring on this kernel) and serves, with the
// core thread pinned.
#[test]
fn auto_backend_resolves() {
    let mut config = crate::support::config(Backend::Auto);
    config.cores = 1;
    config.pin_threads = true;
    let shelf_server = {
        let sinks = vec![Box::new(NullSink) as Box<dyn tempmx_store::MessageSink + Send>];
        tempmx_ingress::driver::start(&config, crate::support::policy(), sinks).expect("start")
    };
    assert_ne!(shelf_server.backend(), Backend::Auto);
    let mut raw = Raw::connect(shelf_server.local_addr());
    raw.expect("220");
    raw.cmd("QUIT", "221");
    shelf_server.shutdown();
}
