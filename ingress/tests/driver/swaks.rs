//! One delivery by swaks (Debian package `swaks`), a third, independent SMTP client: it
//! pipelines and does STARTTLS with OpenSSL rather than rustls.

use std::process::Command;

use tempmx_ingress::Backend;

use crate::on_both_backends;
use crate::support::Server;

on_both_backends!(swaks_pipelined_starttls);

// Goal: swaks with --pipeline and --tls delivers; the sink records TLS and the header.
fn swaks_pipelined_starttls(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let output = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &server.addr.port().to_string(),
        ])
        .args(["--from", "swaks@example.test", "--to", "carol@tempmx.test"])
        .args([
            "--helo",
            "swaks.test",
            "--pipeline",
            "--tls",
            "--timeout",
            "5",
        ])
        .args(["--header", "Subject: from swaks"])
        .output()
        .expect("swaks runs (apt-get install -y swaks)");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "swaks failed:\n{transcript}");
    assert!(
        transcript.contains("TLS started"),
        "no STARTTLS:\n{transcript}"
    );
    assert!(
        transcript.contains("<~  250"),
        "no 250 over TLS:\n{transcript}"
    );
    let stored = server.shelf.wait_for(1);
    assert_eq!(stored[0].helo, "swaks.test");
    assert_eq!(stored[0].recipients, vec!["carol@tempmx.test".to_owned()]);
    assert!(stored[0].tls.is_some(), "message not marked as TLS");
    assert!(String::from_utf8_lossy(&stored[0].body).contains("Subject: from swaks"));
}
