//! Ingress configuration: listener, backend, TLS and every session limit in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::greylist::GreylistConfig;

/// The `[ingress]` section of the config file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// SMTP listener address (port 25 in production).
    pub listen: SocketAddr,
    /// Our host name, used in the greeting, EHLO reply and `Received:` header.
    pub hostname: String,
    /// Number of ingress cores (threads); 0 means one per available CPU.
    pub cores: usize,
    /// Which I/O backend the cores use.
    pub backend: Backend,
    /// Pin each ingress thread to a CPU.
    pub pin_threads: bool,
    /// Open connections one core accepts before it answers 421 4.7.0.
    pub connections_per_core_max: usize,
    /// Open connections from one client IP (per core) before it answers 421 4.7.0.
    pub connections_per_ip_max: usize,
    /// Size of each connection's read buffer, taken from the per-core pool.
    pub read_buffer_bytes: usize,
    /// Read buffers each core allocates at start-up (more are allocated on demand, then dropped).
    pub read_buffers_per_core: usize,
    /// Pause before the greeting; a client that talks during it is refused with 554 5.5.0.
    pub greet_pause_ms: u64,
    /// How long open sessions get to finish when the appliance shuts down.
    pub shutdown_grace_ms: u64,
    /// STARTTLS settings.
    pub tls: TlsConfig,
    /// Per-session limits.
    pub limits: SessionLimits,
    /// SPF, DKIM, DMARC and ARC verification.
    pub auth: AuthConfig,
    /// Greylisting (off unless enabled or listed per domain).
    pub greylist: GreylistConfig,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            hostname: "mx.tempmx.test".to_owned(),
            cores: 0,
            backend: Backend::Auto,
            pin_threads: false,
            connections_per_core_max: 10_000,
            connections_per_ip_max: 20,
            read_buffer_bytes: 16 * 1024,
            read_buffers_per_core: 256,
            greet_pause_ms: 0,
            shutdown_grace_ms: 5_000,
            tls: TlsConfig::default(),
            limits: SessionLimits::default(),
            auth: AuthConfig::default(),
            greylist: GreylistConfig::default(),
        }
    }
}

/// I/O backend of the ingress cores.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring (a completion loop per core); start-up fails if the ring cannot be set up.
    Uring,
    /// epoll (plain tokio), works everywhere.
    Epoll,
}

/// STARTTLS settings; with no files configured a self-signed certificate is generated at start.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Turn STARTTLS off entirely.
    pub disabled: bool,
    /// PEM certificate chain.
    pub cert_path: Option<PathBuf>,
    /// PEM private key.
    pub key_path: Option<PathBuf>,
}

/// Limits of one SMTP session; every one is enforced and answered with a defined reply.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionLimits {
    /// Longest command line including CRLF (RFC 5321 §4.5.3.1.4: 512).
    pub command_line_bytes_max: usize,
    /// Longest text line of a message including CRLF (RFC 5321 §4.5.3.1.6: 1000).
    pub text_line_bytes_max: usize,
    /// Largest message, as advertised in SIZE.
    pub message_bytes_max: usize,
    /// Recipients per message; the next gets 452 4.5.3.
    pub recipients_max: usize,
    /// Protocol errors per session before 421 4.7.0 and close.
    pub errors_max: usize,
    /// Messages per connection before 421 4.7.0 and close.
    pub messages_per_connection_max: usize,
    /// Time without input before 421 4.4.2 and close; also the longest a client waits for
    /// the reply to a check or store commit (keep it above `auth.check_duration_max_ms`).
    pub idle_timeout_ms: u64,
    /// Total session time before 421 4.4.2 and close.
    pub session_duration_max_ms: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            command_line_bytes_max: 512,
            text_line_bytes_max: 1000,
            message_bytes_max: 10 * 1024 * 1024,
            recipients_max: 100,
            errors_max: 10,
            messages_per_connection_max: 1000,
            idle_timeout_ms: 300_000,
            session_duration_max_ms: 1_800_000,
        }
    }
}
