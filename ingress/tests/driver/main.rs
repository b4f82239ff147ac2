//! Integration tests of the SMTP driver: real listeners on 127.0.0.1:0, on both backends,
//! driven by lettre, a rustls client and raw sockets.

mod support;
#[path = "../support_dns/mod.rs"]
mod support_dns;

mod authentication;

mod clients;
mod config_errors;
mod fresh_session;
mod hand_off_deadline;
mod hostile_input;
mod instances;
mod lifecycle;
mod many_connections;
mod slow_drip;
mod swaks;
