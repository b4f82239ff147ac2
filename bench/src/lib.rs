//! tempmx-bench: load generator for SMTP servers, tempmx's HTTP API and authoritative DNS.
//!
//! Layout:
//! - [`client`]: its own SMTP client (sans-io reply parser + thin async session), shared
//!   with nothing in tempmx-ingress so the two cannot share a bug; [`tls`] drives rustls
//!   for STARTTLS and accepts any certificate (test servers only).
//! - [`workload`]: message sizes, recipients, spread over mailboxes and domains.
//! - [`pacing`]: open loop (latency from the intended send time) or closed loop.
//! - [`runner`]: thread per core, each thread a current-thread tokio runtime; progress
//!   bar and Ctrl-C on the main thread.
//! - [`report`]: HDR histogram, counters by reply code, table and JSON.
//! - [`smtp`], [`dns`], [`e2e`]: the three loads; [`http`] is the minimal HTTP/1.1 + SSE
//!   client the end-to-end load uses.
#![warn(missing_docs)]

pub mod client;
pub mod dns;
pub mod e2e;
pub mod http;
pub mod pacing;
pub mod report;
pub mod runner;
pub mod smtp;
pub mod tls;
pub mod workload;
