//! Integration tests of the authentication module (`tempmx_ingress::auth`) against a
//! loopback DNS server; no query leaves the machine.
// Test set-up failures (key parsing, runtime building) should stop the test loudly.
#![allow(clippy::unwrap_used)]

#[path = "support_dns/mod.rs"]
mod support_dns;

#[path = "auth/common.rs"]
mod common;
#[path = "auth/fuzz.rs"]
mod fuzz;
#[path = "auth/message.rs"]
mod message;
#[path = "auth/outage.rs"]
mod outage;
#[path = "auth/rfc7208.rs"]
mod rfc7208;
#[path = "auth/sender.rs"]
mod sender;
