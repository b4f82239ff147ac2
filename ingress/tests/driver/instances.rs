//! Two processes on one machine: a second ingress on a held SMTP port is refused, and a
//! process denied io_uring falls back to epoll and says so. Both run the test binary itself
//! again as a real child process (an ignored test that only runs when the parent asks).

use std::net::SocketAddr;
use std::process::{Command, Output};

use tempmx_ingress::Backend;
use tempmx_ingress::driver::{self, IngressError};

use crate::support::{NullSink, Raw, Server, config, policy};

/// Environment variable that tells a child test what to do (and that it is a child).
const CHILD_ENV: &str = "TEMPMX_TEST_CHILD";

/// Runs the ignored test `name` in a child process of this test binary, with `arg` for it.
pub fn run_child(name: &str, arg: &str) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, arg)
        .output()
        .expect("child test process runs")
}

/// The argument the parent gave this child test; panics when run on its own.
pub fn child_arg() -> String {
    std::env::var(CHILD_ENV).expect("a child test runs only under its parent test")
}

fn one_core_sinks() -> Vec<Box<dyn tempmx_store::MessageSink + Send>> {
    vec![Box::new(NullSink)]
}

// Goal: while one ingress (two cores, SO_REUSEPORT between them) serves a port, a second
// ingress in another process on the same port fails to start with AddrInUse instead of
// joining the first one's group; the first keeps serving. Method: the child process tries
// to start on the parent's port and reports the error it got.
#[test]
fn second_instance_refused() {
    let server = Server::start(Backend::Epoll, |_| {});
    let out = run_child("instances::second_instance_child", &server.addr.to_string());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("another process already listens there"),
        "{stdout}"
    );
    server.connect().cmd("NOOP", "250");
}

/// Child of [`second_instance_refused`]: starting on the held address must fail.
#[test]
#[ignore = "child process of second_instance_refused"]
fn second_instance_child() {
    let addr: SocketAddr = child_arg().parse().expect("address");
    let mut cfg = config(Backend::Epoll);
    cfg.cores = 1;
    cfg.listen = addr;
    let err = driver::start(&cfg, policy(), one_core_sinks())
        .err()
        .expect("the second instance must not start");
    println!("refused: {err}");
    assert!(matches!(err, IngressError::AddrInUse { .. }), "{err}");
}

// Goal: a port held by a foreign SO_REUSEPORT listener (what an older tempmx or another
// server using SO_REUSEPORT leaves) refuses the ingress too, instead of sharing the port.
#[test]
fn reuseport_holder_refuses_ingress() {
    let holder =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    holder.set_reuse_address(true).expect("reuseaddr");
    holder.set_reuse_port(true).expect("reuseport");
    holder
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    holder.listen(8).expect("listen");
    let addr = holder
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    let mut cfg = config(Backend::Epoll);
    cfg.cores = 2;
    cfg.listen = addr;
    let sinks = (0..2)
        .map(|_| Box::new(NullSink) as Box<dyn tempmx_store::MessageSink + Send>)
        .collect();
    let err = driver::start(&cfg, policy(), sinks)
        .err()
        .expect("must not share the port");
    assert!(matches!(err, IngressError::AddrInUse { .. }), "{err}");
}

// Goal: with io_uring_setup denied by seccomp (as Docker's default profile does), `auto`
// serves over epoll and logs that it fell back, and `uring` refuses to start with a clear
// error. Method: a child process installs the seccomp filter on itself, then starts the
// ingress and serves a session; the parent checks its exit and its log.
#[test]
fn uring_denied_falls_back_to_epoll() {
    let out = run_child("instances::uring_denied_child", "seccomp");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    assert!(stdout.contains("backend: Epoll"), "{stdout}");
    assert!(
        stderr.contains("io_uring unavailable, using epoll"),
        "no fallback in the log: {stderr}"
    );
}

/// Child of [`uring_denied_falls_back_to_epoll`].
#[test]
#[ignore = "child process of uring_denied_falls_back_to_epoll"]
fn uring_denied_child() {
    assert_eq!(child_arg(), "seccomp");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();
    seccomp::deny_io_uring_setup();
    let mut cfg = config(Backend::Uring);
    cfg.cores = 1;
    let err = driver::start(&cfg, policy(), one_core_sinks())
        .err()
        .expect("uring must not start without io_uring");
    assert!(matches!(err, IngressError::UringUnavailable(_)), "{err}");

    cfg.backend = Backend::Auto;
    let handle = driver::start(&cfg, policy(), one_core_sinks()).expect("auto starts");
    println!("backend: {:?}", handle.backend());
    let mut raw = Raw::connect(handle.local_addr());
    raw.expect("220");
    raw.cmd("EHLO client.test", "250");
    raw.cmd("QUIT", "221");
    handle.shutdown();
}

/// A seccomp filter that makes io_uring_setup fail with EPERM (nothing else is denied).
mod seccomp {
    /// `offsetof(struct seccomp_data, nr)` and `arch`.
    const NR_OFFSET: u32 = 0;
    const ARCH_OFFSET: u32 = 4;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;

    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump_eq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt,
            jf,
            k,
        }
    }

    /// Installs the filter on every thread of this process (TSYNC).
    pub fn deny_io_uring_setup() {
        let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
        let ret = libc::BPF_RET | libc::BPF_K;
        let mut program = [
            stmt(load, ARCH_OFFSET),
            // Another architecture's syscall numbers mean something else: allow it.
            jump_eq(AUDIT_ARCH, 0, 3),
            stmt(load, NR_OFFSET),
            jump_eq(libc::SYS_io_uring_setup as u32, 0, 1),
            stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
            stmt(ret, libc::SECCOMP_RET_ALLOW),
        ];
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers; seccomp(2) reads `prog`, which
        // points at `program`, alive for the call; the kernel copies the filter.
        let rc = unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                panic!("no_new_privs: {}", std::io::Error::last_os_error());
            }
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            )
        };
        assert_eq!(rc, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}
