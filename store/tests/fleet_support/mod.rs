//! What the cluster test crates share: the test message and mailbox names.

use std::net::{IpAddr, Ipv4Addr};

use tempmx_store::{Mailbox, NewMessage};

/// The trace headers every test message carries.
pub const TRACE: &[u8] = b"Received: from client.test\r\n";

/// A parsed mailbox; the tests name only valid ones.
pub fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("valid mailbox")
}

/// A message from `s@y.test`, over loopback, to `to`.
pub fn message<'a>(to: &'a [Mailbox], body: &'a [u8]) -> NewMessage<'a> {
    NewMessage {
        received_at_ms: 1,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        helo: "client.test",
        mail_from: "s@y.test",
        recipients: to,
        tls: None,
        trace_headers: TRACE,
        auth: &[],
        body,
    }
}
