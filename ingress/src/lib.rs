//! SMTP ingress of tempmx.
//!
//! Layout: a sans-io protocol core (`proto`, `session`, `policy`) that turns bytes into
//! replies and effects without touching a socket or a clock, the connection layer
//! (`connection`) that turns those effects into I/O calls for every driver, and thin drivers
//! (`driver`, `tls`) that run it on one thread per core over io_uring (the io-uring crate, a completion loop per core) or epoll (tokio).
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod connection;
pub mod driver;
pub mod greylist;
pub mod metrics;
pub mod policy;
pub mod proto;
pub mod session;
pub mod tls;

pub use config::{Backend, IngressConfig, SessionLimits, TlsConfig};
