//! Errors of the DNS crate.

use std::io;

/// Errors from configuring or starting the DNS server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// Binding the UDP or TCP listener failed.
    #[error("cannot bind DNS listener on {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A configuration value is out of range or a name does not parse.
    #[error("invalid DNS configuration: {0}")]
    Config(String),
    /// Encoding a prepared answer failed (a record does not fit a message).
    #[error("cannot encode DNS answer for {name}: {reason}")]
    Encode {
        /// Owner name of the answer.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// Starting a worker thread or the TCP runtime failed.
    #[error("cannot start DNS threads: {0}")]
    Spawn(io::Error),
}
