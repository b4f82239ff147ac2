//! Shared by the tests that run the real `tempmx serve` binary: start it on a config file
//! (every listener on 127.0.0.1 port 0, addresses read from its JSON "tempmx serving"
//! log line), stop it with SIGTERM, and talk to it with real clients (ureq, lettre, dig,
//! the `tempmx domains` CLI). Every wait is bounded by a deadline.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};
use serde_json::Value;

/// The admin token every config here sets.
pub const ADMIN_TOKEN: &str = "binary-test-admin-token";
/// Longest wait for the binary to start or stop.
const START_STOP_MAX: Duration = Duration::from_secs(30);

/// Config text shared by every test: loopback listeners on port 0, a small store, JSON
/// logs, the admin token, mail and mailboxes living at most `ttl_secs` (the drain period
/// must cover it), mail authentication off; `extra` is appended (sections the test needs).
pub fn config_text(data_dir: Option<&Path>, ttl_secs: u64, extra: &str) -> String {
    config_text_auth(
        data_dir,
        ttl_secs,
        "[ingress.auth]\nmode = \"off\"\n",
        extra,
    )
}

/// [`config_text`] with the `[ingress.auth]` section `auth` instead of authentication off.
pub fn config_text_auth(data_dir: Option<&Path>, ttl_secs: u64, auth: &str, extra: &str) -> String {
    let dir = data_dir.map_or(String::new(), |d| {
        format!("data_dir = {:?}\n", d.display().to_string())
    });
    format!(
        "{dir}\
         [ingress]\nlisten = \"127.0.0.1:0\"\ncores = 1\n\
         [ingress.limits]\nmessage_bytes_max = 524288\n\
         {auth}\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [dns]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nmemory_bytes_max = 33554432\nsegment_bytes = 1048576\ndedup_bytes_max = 4194304\n\
         ttl_secs = {ttl_secs}\n\
         [api]\nttl_secs_default = {ttl_secs}\nttl_secs_max = {ttl_secs}\n\
         [log]\nformat = \"json\"\nfilter = \"info\"\n\
         {extra}"
    )
}

/// A running `tempmx serve`.
pub struct Running {
    child: Child,
    /// SMTP listener.
    pub smtp: SocketAddr,
    /// Public API.
    pub http: SocketAddr,
    /// Admin API.
    pub admin: SocketAddr,
    /// DNS (UDP and TCP).
    pub dns: SocketAddr,
    /// Its log lines so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Runs `tempmx serve --config <path>` and waits for its "tempmx serving" line.
pub fn start(config_path: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["serve", "--config"])
        .arg(config_path)
        .env_remove("RUST_LOG")
        .env_remove("TEMPMX_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tempmx runs");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("tempmx serving") {
                let _ = tx.send(line.clone());
            }
            lines.lock().expect("log lock").push(line);
        }
    });
    let Ok(serving) = rx.recv_timeout(START_STOP_MAX) else {
        let _ = child.kill();
        panic!("tempmx did not start: {:?}", log.lock().expect("log lock"));
    };
    let v: Value = serde_json::from_str(&serving).expect("json log line");
    let addr = |k: &str| -> SocketAddr {
        v[k].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{k} address in {serving}"))
    };
    Running {
        smtp: addr("smtp"),
        http: addr("http"),
        admin: addr("admin"),
        dns: addr("dns"),
        log,
        child,
    }
}

/// Runs `tempmx serve --config <path>` expecting it to fail at start-up; returns its
/// stderr. A binary that starts anyway is killed after the start-up bound.
pub fn start_fails(config_path: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["serve", "--config"])
        .arg(config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tempmx runs");
    let deadline = Instant::now() + START_STOP_MAX;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "start-up must fail");
            let mut err = String::new();
            let mut stderr = child.stderr.take().expect("stderr piped");
            std::io::Read::read_to_string(&mut stderr, &mut err).expect("stderr");
            return err;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tempmx started although it should have refused");
}

impl Running {
    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM sent");
        let deadline = Instant::now() + START_STOP_MAX;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "clean exit: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("tempmx did not stop within {START_STOP_MAX:?}");
    }

    /// A request to the admin API with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        http(
            method,
            &format!("http://{}{path}", self.admin),
            Some(ADMIN_TOKEN),
            body,
        )
    }

    /// The value of the sample `series` in this node's `/metrics` (see [`sample`]).
    pub fn sample(&self, series: &str) -> Option<f64> {
        sample(&self.metrics(), series)
    }

    /// The `/metrics` text, scraped with the admin token.
    pub fn metrics(&self) -> String {
        let mut resp = ureq::get(format!("http://{}/metrics", self.admin))
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
            .call()
            .expect("metrics scrape");
        resp.body_mut().read_to_string().expect("metrics text")
    }

    /// A request to the public API.
    pub fn public(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        http(method, &format!("http://{}{path}", self.http), token, body)
    }

    /// Sends one message to `rcpt` over SMTP with lettre.
    pub fn send(&self, rcpt: &str) -> Result<(), lettre::transport::smtp::Error> {
        self.send_with_subject(rcpt, "binary test")
    }

    /// Sends one message to `rcpt` with `subject`, over its own SMTP connection.
    pub fn send_with_subject(
        &self,
        rcpt: &str,
        subject: &str,
    ) -> Result<(), lettre::transport::smtp::Error> {
        let msg = Message::builder()
            .from("sender@example.test".parse::<Mailbox>().expect("from"))
            .to(rcpt.parse::<Mailbox>().expect("rcpt"))
            .subject(subject)
            .body("hello\r\n".to_owned())
            .expect("message");
        self.send_message(&msg)
    }

    /// Sends `msg` over its own SMTP connection.
    pub fn send_message(&self, msg: &Message) -> Result<(), lettre::transport::smtp::Error> {
        SmtpTransport::builder_dangerous(self.smtp.ip().to_string())
            .port(self.smtp.port())
            .timeout(Some(Duration::from_secs(10)))
            .build()
            .send(msg)
            .map(|_| ())
    }

    /// `dig +short` against the appliance's DNS listener.
    pub fn dig(&self, name: &str, rtype: &str) -> String {
        let out = Command::new("dig")
            .arg(format!("@{}", self.dns.ip()))
            .args([
                "-p",
                &self.dns.port().to_string(),
                "+short",
                "+time=2",
                "+tries=1",
            ])
            .args([name, rtype])
            .output()
            .expect("dig runs");
        assert!(out.status.success(), "dig: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `tempmx domains <args>` against the admin API; returns (success, stdout, stderr).
    pub fn domains_cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tempmx"))
            .args(["domains", "--admin", &format!("http://{}", self.admin)])
            .args(args)
            .env("TEMPMX_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("tempmx domains runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave the server behind; after `stop` this is a no-op.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One blocking HTTP exchange; the body is parsed as JSON when there is one.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("Content-Type", "application/json");
    }
    let req = req
        .body(body.unwrap_or_default().to_owned())
        .expect("request");
    let mut resp = agent.run(req).expect("http exchange");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json)
}

/// Polls `f` every 100 ms until it returns `Some` or `within` passes.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the sample `series` (name with its labels, as rendered) in a scrape,
/// matched without the `node` label fleet mode adds to every series.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (without_node(name) == series).then(|| value.parse().ok())?
    })
}

/// A series name with its `node` label (always the last one) taken out.
fn without_node(name: &str) -> String {
    let cut = [",node=\"", "{node=\""]
        .iter()
        .find_map(|p| name.find(p).map(|at| (at, p.starts_with('{'))));
    match cut {
        Some((at, true)) => name[..at].to_owned(),
        Some((at, false)) => format!("{}}}", &name[..at]),
        None => name.to_owned(),
    }
}
