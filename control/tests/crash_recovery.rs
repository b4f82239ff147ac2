//! Goal: with `disk` persistence and `batch` group commit, every message that got a 250
//! survives a SIGKILL in the middle of a flood, and recovery reports what it skipped.
//! Method: run the real binary, flood it from several real SMTP clients, kill -9 it while
//! they send, then open the store files and restart the binary on them. Every fourth
//! message carries one of two large attachments, so part dedup (the parts files and their
//! group commit with the records) is under the same test.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Message, SmtpTransport, Transport};
use tempmx::Config;

const CLIENTS: usize = 4;
/// Bound on the flood: each client stops after this many messages or at the kill.
const MESSAGES_PER_CLIENT_MAX: usize = 2_000;
/// Messages acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 200;

fn config_text(data_dir: &Path) -> String {
    format!(
        "data_dir = {dir:?}\n\
         [ingress]\nlisten = \"127.0.0.1:0\"\ncores = 2\n\
         [ingress.limits]\nmessage_bytes_max = 524288\n\
         [ingress.auth]\nmode = \"off\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [dns]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nmemory_bytes_max = 33554432\nsegment_bytes = 1048576\ndedup_bytes_max = 4194304\n\
         [log]\nformat = \"json\"\n",
        dir = data_dir.display().to_string()
    )
}

/// Starts the binary and waits until its log says it serves; returns the child, the SMTP port
/// it bound (the config asks for any free one) and its log.
fn start(config_path: &Path) -> (Child, u16, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args(["serve", "--config"])
        .arg(config_path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("tempmx serving") {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let Ok(serving) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("tempmx did not start: {:?}", lines.lock().unwrap());
    };
    let smtp = serde_json::from_str::<serde_json::Value>(&serving)
        .ok()
        .and_then(|v| v["smtp"].as_str()?.parse::<SocketAddr>().ok());
    let Some(smtp) = smtp else {
        let _ = child.kill();
        panic!("no SMTP address in the serving line: {serving}");
    };
    (child, smtp.port(), lines)
}

/// One of two shared attachments: 8 KiB of printable lines (sent 7bit, so byte-stable),
/// over the 4 KiB part threshold.
fn attachment(n: usize) -> String {
    (0..108)
        .map(|l| format!("{n}{l:03}{}\r\n", "ATTACHMENT-LINE-".repeat(4)))
        .collect()
}

/// Whether message `i` carries an attachment, and which.
fn attachment_of(i: usize) -> Option<usize> {
    i.is_multiple_of(4).then_some(i / 4 % 2)
}

fn message(client: usize, i: usize) -> (String, Message) {
    let rcpt = format!("c{client}-m{i}@tempmx.test");
    let builder = Message::builder()
        .from("sender@example.test".parse::<Mailbox>().unwrap())
        .to(rcpt.parse::<Mailbox>().unwrap())
        .subject(format!("crash test {client}/{i}"));
    let text = format!("token c{client}-m{i}\r\n{}\r\n", "x".repeat(2000));
    let msg = match attachment_of(i) {
        Some(n) => builder
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(text))
                    .singlepart(Attachment::new("terms.pdf".to_string()).body(
                        attachment(n),
                        ContentType::parse("application/pdf").unwrap(),
                    )),
            )
            .unwrap(),
        None => builder.body(text).unwrap(),
    };
    (rcpt, msg)
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tempmx.toml");
    let text = config_text(&dir.path().join("data"));
    std::fs::write(&config_path, &text).unwrap();
    let (mut child, smtp, _) = start(&config_path);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let acked = acked.clone();
            let killed = killed.clone();
            std::thread::spawn(move || {
                let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
                    .port(smtp)
                    .timeout(Some(Duration::from_secs(5)))
                    .build();
                for i in 0..MESSAGES_PER_CLIENT_MAX {
                    if killed.load(Ordering::Relaxed) {
                        break;
                    }
                    let (rcpt, msg) = message(c, i);
                    match mailer.send(&msg) {
                        Ok(r) if r.is_positive() => acked.lock().unwrap().push(rcpt),
                        _ => break,
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL while the clients are still sending: no chance to flush or shut down.
    child.kill().unwrap();
    killed.store(true, Ordering::Relaxed);
    child.wait().unwrap();
    for t in clients {
        t.join().unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= ACKED_BEFORE_KILL,
        "flood too slow: {} acked",
        acked.len()
    );

    // Open the files the killed process left, with the same configuration.
    let config = {
        let mut c = Config::from_toml(&text).unwrap();
        c.apply(tempmx::Overrides::default());
        c
    };
    let (store, _writers, report) = tempmx_store::Store::open(&config.store, 2).unwrap();
    let mut missing = Vec::new();
    for rcpt in &acked {
        let list = store.list(
            &tempmx_store::Mailbox::parse(rcpt).expect("address"),
            None,
            10,
        );
        let local = rcpt.split('@').next().unwrap();
        let i: usize = local.rsplit('m').next().unwrap().parse().unwrap();
        let found = list.iter().any(|s| {
            store.get(s.id).is_some_and(|v| {
                let token = format!("token {local}");
                let has = |needle: &[u8]| v.raw.windows(needle.len()).any(|w| w == needle);
                has(token.as_bytes())
                    && attachment_of(i).is_none_or(|n| has(attachment(n).as_bytes()))
            })
        });
        if !found {
            missing.push(rcpt.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(report.records_recovered as usize >= acked.len(), "{report}");
    // At least 50 acknowledged messages carried an attachment, stored in the parts files.
    assert!(report.parts_recovered >= 1, "{report}");
    drop(store);

    // The binary itself recovers on the same files and says what it found and skipped.
    let (mut child, _, log) = start(&config_path);
    child.kill().unwrap();
    child.wait().unwrap();
    let log = log.lock().unwrap();
    let line = log
        .iter()
        .find(|l| l.contains("store ready"))
        .expect("a recovery log line");
    assert!(line.contains("skipped="), "{line}");
    let distinct: HashSet<&String> = acked.iter().collect();
    assert_eq!(distinct.len(), acked.len());
}
