//! `[api]`: settings of the public mailbox API and web inbox.

use serde::{Deserialize, Serialize};

use crate::webhooks::WebhookConfig;

/// Who may read a mailbox.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Every mailbox needs the bearer token handed out when it was created.
    #[default]
    Token,
    /// Mailinator style: any address on a pool domain is readable without a token.
    Public,
}

/// The `[api]` section. Every default works on a laptop.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublicConfig {
    /// `token` (default) or `public`.
    pub access: AccessMode,
    /// Mailbox lifetime when the request names none (default 3600 s).
    pub ttl_secs_default: u64,
    /// Longest mailbox lifetime a request may ask for (default 86 400 s).
    pub ttl_secs_max: u64,
    /// Live mailboxes the registry holds (default 100 000); creation answers 503 beyond.
    /// The one registry: tokens, registered-only SMTP and the admin mailbox counts.
    pub mailboxes_max: usize,
    /// Messages one listing page returns at most (default 50).
    pub page_limit_max: usize,
    /// Request body bytes (default 4096); larger bodies get 413.
    pub body_bytes_max: usize,
    /// Total request header bytes (default 16 384); more get 431.
    pub headers_bytes_max: usize,
    /// Mailbox creations and extensions per client IP per minute (default 20).
    pub create_per_minute: u32,
    /// Burst of mailbox creations and extensions allowed at once (default 5).
    pub create_burst: u32,
    /// Reads (every other API request) per client IP per second (default 20).
    pub reads_per_second: u32,
    /// Burst of reads allowed at once (default 60).
    pub reads_burst: u32,
    /// Client IPs tracked by the rate limiter (default 100 000); when full and nothing is
    /// idle, new IPs get 429.
    pub rate_ips_max: usize,
    /// Live-push subscribers (SSE and WebSocket) per mailbox (default 4); more get 429.
    pub subscribers_per_mailbox_max: usize,
    /// Live-push subscribers per client IP (default 16); more get 429.
    pub subscribers_per_ip_max: usize,
    /// Longest life of one live-push connection (default 1800 s); clients reconnect and
    /// resume with `Last-Event-ID`.
    pub push_duration_secs_max: u64,
    /// Keep-alive interval of live-push connections (default 15 s).
    pub keepalive_secs: u64,
    /// MIME parts rendered per message (default 256); above, only raw download works.
    pub mime_parts_max: usize,
    /// Multipart nesting depth rendered (default 16).
    pub mime_depth_max: usize,
    /// Decoded bytes of all parts rendered per message (default 32 MiB).
    pub mime_decoded_bytes_max: usize,
    /// Load remote images in HTML mail (default false: blocked and counted).
    pub remote_images: bool,
    /// Origins allowed by CORS; empty (default) sends no CORS headers, `*` allows any.
    pub cors_origins: Vec<String>,
    /// Header that carries the client IP when behind a reverse proxy (e.g.
    /// `x-forwarded-for`, last hop used); unset (default) uses the peer address.
    pub client_ip_header: Option<String>,
    /// `[api.webhooks]`: webhook limits and delivery.
    pub webhooks: WebhookConfig,
}

impl Default for PublicConfig {
    fn default() -> Self {
        Self {
            access: AccessMode::Token,
            ttl_secs_default: 3600,
            ttl_secs_max: 86_400,
            mailboxes_max: 100_000,
            page_limit_max: 50,
            body_bytes_max: 4096,
            headers_bytes_max: 16 << 10,
            create_per_minute: 20,
            create_burst: 5,
            reads_per_second: 20,
            reads_burst: 60,
            rate_ips_max: 100_000,
            subscribers_per_mailbox_max: 4,
            subscribers_per_ip_max: 16,
            push_duration_secs_max: 1800,
            keepalive_secs: 15,
            mime_parts_max: 256,
            mime_depth_max: 16,
            mime_decoded_bytes_max: 32 << 20,
            remote_images: false,
            cors_origins: Vec::new(),
            client_ip_header: None,
            webhooks: WebhookConfig::default(),
        }
    }
}

impl PublicConfig {
    /// Checks values and relations; returns every problem with its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut e = Vec::new();
        let positive = [
            ("api.ttl_secs_default", self.ttl_secs_default as usize),
            ("api.ttl_secs_max", self.ttl_secs_max as usize),
            ("api.mailboxes_max", self.mailboxes_max),
            ("api.page_limit_max", self.page_limit_max),
            ("api.body_bytes_max", self.body_bytes_max),
            ("api.create_per_minute", self.create_per_minute as usize),
            ("api.create_burst", self.create_burst as usize),
            ("api.reads_per_second", self.reads_per_second as usize),
            ("api.reads_burst", self.reads_burst as usize),
            ("api.rate_ips_max", self.rate_ips_max),
            (
                "api.subscribers_per_mailbox_max",
                self.subscribers_per_mailbox_max,
            ),
            ("api.subscribers_per_ip_max", self.subscribers_per_ip_max),
            (
                "api.push_duration_secs_max",
                self.push_duration_secs_max as usize,
            ),
            ("api.keepalive_secs", self.keepalive_secs as usize),
            ("api.mime_parts_max", self.mime_parts_max),
            ("api.mime_depth_max", self.mime_depth_max),
        ];
        for (key, v) in positive {
            if v == 0 {
                e.push(format!("{key}: must be at least 1"));
            }
        }
        if self.ttl_secs_default > self.ttl_secs_max {
            e.push("api.ttl_secs_default: must not exceed api.ttl_secs_max".into());
        }
        if self.headers_bytes_max < 1024 {
            e.push("api.headers_bytes_max: must be at least 1024".into());
        }
        e.extend(self.webhooks.validate());
        if e.is_empty() { Ok(()) } else { Err(e) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the defaults are valid and every zero limit is reported at once.
    #[test]
    fn defaults_valid_and_zeroes_reported() {
        PublicConfig::default().validate().expect("defaults");
        let c = PublicConfig {
            page_limit_max: 0,
            reads_burst: 0,
            ttl_secs_default: 10,
            ttl_secs_max: 5,
            ..Default::default()
        };
        assert_eq!(c.validate().expect_err("must fail").len(), 3);
    }
}
