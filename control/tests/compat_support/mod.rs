//! Shared by the compatible APIs' tests: a `tempmx serve` with extra `[api]` settings,
//! a published client's driver script run to its `RESULT`, delivering mail over SMTP
//! when it prints `READY <address>`, and a plain HTTP exchange.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::{Value, json};

use crate::binary_support::{Running, config_text, start};

/// The Python of the venv `ops/ci/test.sh` installs the 1secmail client into
/// (`TEMPMX_COMPAT_PY_VENV`, else `~/.cache/tempmx/compat-py`).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("TEMPMX_COMPAT_PY_VENV").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/tempmx/compat-py")
        },
        PathBuf::from,
    );
    venv.join("bin/python")
}

/// Longest a client script may take.
pub const CLIENT_MAX: Duration = Duration::from_secs(60);

/// The binary with mail living 600 s and `api_extra` lines added to `[api]`.
pub fn server(api_extra: &str) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tempmx.toml");
    let text = config_text(None, 600, "").replacen("[api]\n", &format!("[api]\n{api_extra}"), 1);
    std::fs::write(&path, text).expect("config");
    let srv = start(&path);
    (dir, srv)
}

/// Runs `program args` in `dir` with `TEMPMX_BASE` set to the server's base URL; calls
/// `on_ready(address)` for each `READY` line and answers the `RESULT` JSON. Kills the
/// client (its own child, by handle) when it gives no result within [`CLIENT_MAX`].
pub fn run_client(
    srv: &Running,
    dir: &Path,
    program: &str,
    args: &[&str],
    on_ready: impl FnMut(&str),
) -> Value {
    run_client_env(srv, dir, program, args, &[], on_ready)
}

/// [`run_client`] with the variables `env` set for the client too.
pub fn run_client_env(
    srv: &Running,
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    mut on_ready: impl FnMut(&str),
) -> Value {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("TEMPMX_BASE", format!("http://{}", srv.http))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + CLIENT_MAX;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("client exits");
                panic!("client script ended ({status}) without a result");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("client script gave no result within {CLIENT_MAX:?}");
            }
        };
        if let Some(address) = line.strip_prefix("READY ") {
            on_ready(address);
        } else if let Some(r) = line.strip_prefix("RESULT ") {
            break serde_json::from_str::<Value>(r).expect("result json");
        }
    };
    let status = child.wait().expect("client exits");
    assert!(status.success(), "{result}");
    result
}

/// Delivers a mail with a text and an HTML body, and optionally a text attachment
/// `(name, content)`, to `rcpt` over SMTP.
pub fn send_mail(
    srv: &Running,
    rcpt: &str,
    subject: &str,
    text: &str,
    html: &str,
    attachment: Option<(&str, &str)>,
) {
    let bodies = MultiPart::alternative_plain_html(text.to_owned(), html.to_owned());
    let builder = Message::builder()
        .from(
            "Shop <orders@shop.example>"
                .parse::<Mailbox>()
                .expect("from"),
        )
        .to(rcpt.parse::<Mailbox>().expect("rcpt"))
        .subject(subject);
    let msg = match attachment {
        None => builder.multipart(bodies),
        Some((name, content)) => {
            let file: SinglePart = Attachment::new(name.to_owned()).body(
                content.as_bytes().to_vec(),
                ContentType::parse("text/plain").expect("type"),
            );
            builder.multipart(MultiPart::mixed().multipart(bodies).singlepart(file))
        }
    }
    .expect("message");
    deliver(srv, &msg);
}

/// Delivers `msg` to the server over its own SMTP connection; panics if it is refused.
pub fn deliver(srv: &Running, msg: &Message) {
    SmtpTransport::builder_dangerous(srv.smtp.ip().to_string())
        .port(srv.smtp.port())
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .send(msg)
        .expect("smtp delivery");
}

/// One exchange with explicit headers; answers status, content type and JSON body
/// (`Null` when the body is no JSON).
pub fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Value) {
    let (status, ct, text) = call_text(method, url, headers, body);
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// [`call`] with the body as text.
pub fn call_text(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.unwrap_or_default().to_owned())
        .expect("request");
    let mut resp = agent.run(req).expect("http exchange");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.body_mut().read_to_string().expect("body");
    (status, ct, text)
}

/// The end of mail.tm's `drive.mjs` run (`r`, message `id`), the same on one node and
/// across a fleet: the message marked seen with its event, its source, its deletion with
/// its event, the empty list after, the account deleted and its old token refused.
pub fn assert_mailtm_ending(r: &Value, id: &str) {
    assert_eq!(r["setSeen"]["seen"], true, "{r}");
    assert_eq!(r["seenEvent"], json!({"id": id, "seen": true}), "{r}");
    assert_eq!(r["source"]["hasSubject"], true, "{r}");
    assert_eq!(r["deleteMessage"]["statusCode"], 204, "{r}");
    assert_eq!(
        r["deleteEvent"],
        json!({"id": id, "isDeleted": true}),
        "{r}"
    );
    assert_eq!(r["afterDelete"]["count"], 0, "{r}");
    assert_eq!(r["deleteMe"]["statusCode"], 204, "{r}");
    assert_eq!(r["oldToken"]["statusCode"], 401, "{r}");
}
