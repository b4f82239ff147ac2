//! Slowloris: a client that drips bytes into a command line, a message or a BDAT chunk is cut
//! off by the per-record deadline, however steadily it drips; a bare-LF line gets a reply.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempmx_ingress::Backend;

use crate::on_both_backends;
use crate::support::{Raw, Server};

/// The idle timeout of these tests; the drip interval is well inside it.
const IDLE_MS: u64 = 300;
/// Pause between two dripped bytes: each one alone would reset an idle timer.
const DRIP_PAUSE: Duration = Duration::from_millis(40);
/// Most bytes one drip sends (bounds the test at 200 × 40 ms = 8 s).
const DRIP_BYTES_MAX: usize = 200;

on_both_backends!(
    command_line_drip_cut_off,
    data_drip_cut_off,
    bdat_drip_cut_off,
    bare_lf_command_answered,
);

/// Drips `byte` on a clone of the client's socket until told to stop (or the bound).
fn drip(raw: &Raw, byte: u8) -> (Arc<AtomicBool>, JoinHandle<usize>) {
    let mut stream = raw.stream.try_clone().expect("clone socket");
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut sent = 0;
            while sent < DRIP_BYTES_MAX && !stop.load(Ordering::Relaxed) {
                if stream.write_all(&[byte]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(DRIP_PAUSE);
            }
            sent
        }
    });
    (stop, thread)
}

/// Starts the drip, waits for 421 4.4.2 and EOF; returns how long the cut-off took.
fn expect_cut_off(server: &Server, raw: &mut Raw, byte: u8) -> Duration {
    let started = Instant::now();
    let (stop, dripper) = drip(raw, byte);
    raw.expect("421 4.4.2");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    raw.expect_eof();
    let sent = dripper.join().expect("drip thread");
    // The drip went on past several idle timeouts' worth of bytes before the cut-off.
    assert!(sent >= 3, "only {sent} bytes dripped");
    assert_eq!(server.handle().counters().sessions_timed_out, 1);
    took
}

/// The bound a cut-off must come within: twice the idle timeout, plus slack for a loaded VM.
fn cut_off_bound() -> Duration {
    Duration::from_millis(2 * IDLE_MS) + Duration::from_millis(700)
}

// Goal: a command line dripped one byte every 40 ms (each byte within the 300 ms idle
// timeout) is cut off with 421 4.4.2 and closed within about twice the idle timeout; method:
// a thread drips "x" into an unfinished line while the test waits for the reply.
fn command_line_drip_cut_off(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.idle_timeout_ms = IDLE_MS);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.send(b"NOOP ");
    let took = expect_cut_off(&server, &mut raw, b'x');
    assert!(took <= cut_off_bound(), "cut off after {took:?}");
}

// Goal: a message dripped into DATA without ever ending a line is cut off the same way.
fn data_drip_cut_off(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.idle_timeout_ms = IDLE_MS);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    raw.cmd("RCPT TO:<u@tempmx.test>", "250");
    raw.cmd("DATA", "354");
    let took = expect_cut_off(&server, &mut raw, b'y');
    assert!(took <= cut_off_bound(), "cut off after {took:?}");
    assert!(
        server.shelf.all().is_empty(),
        "a dripped message was stored"
    );
}

// Goal: a BDAT chunk dripped slower than a text line's worth of bytes per idle timeout is
// cut off too (a chunk has no lines; its records are stretches of text_line_bytes_max).
fn bdat_drip_cut_off(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.idle_timeout_ms = IDLE_MS);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    raw.cmd("RCPT TO:<u@tempmx.test>", "250");
    raw.send(b"BDAT 100000 LAST\r\n");
    let took = expect_cut_off(&server, &mut raw, b'z');
    assert!(took <= cut_off_bound(), "cut off after {took:?}");
    assert!(
        server.shelf.all().is_empty(),
        "a dripped message was stored"
    );
}

// Goal: a command ended by a bare LF (what nc sends) is answered 500 5.5.2 at once, without
// waiting for a CRLF, and the session goes on.
fn bare_lf_command_answered(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let mut raw = server.connect();
    raw.send(b"EHLO client.test\n");
    raw.expect("500 5.5.2");
    raw.cmd("EHLO client.test", "250");
}
