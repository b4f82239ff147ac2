//! `[api.webhooks]`: limits of webhook registration and delivery.

use serde::{Deserialize, Serialize};

use super::network::Cidr;

/// The `[api.webhooks]` section. Every default works on a laptop.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Webhooks one mailbox may register (default 3); one more answers 409.
    pub webhooks_per_mailbox_max: usize,
    /// Bytes of a webhook URL (default 2048); longer answers 422.
    pub url_bytes_max: usize,
    /// Deliveries waiting on this node (default 10 000); when full, new ones are dropped
    /// and counted, so ingest never waits for a receiver.
    pub queue_max: usize,
    /// Deliveries in flight at once (default 16).
    pub deliveries_concurrent_max: usize,
    /// Longest one POST may take, connect to response (default 5000 ms).
    pub attempt_timeout_ms: u64,
    /// Attempts per delivery, the first included (default 5).
    pub attempts_max: u32,
    /// Wait before the second attempt; doubled before each next one (default 1000 ms).
    pub backoff_ms_min: u64,
    /// Networks (CIDR) a webhook may reach although they are private, loopback or
    /// link-local (default none).
    pub allow_networks: Vec<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            webhooks_per_mailbox_max: 3,
            url_bytes_max: 2048,
            queue_max: 10_000,
            deliveries_concurrent_max: 16,
            attempt_timeout_ms: 5000,
            attempts_max: 5,
            backoff_ms_min: 1000,
            allow_networks: Vec::new(),
        }
    }
}

impl WebhookConfig {
    /// Checks values; returns every problem with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        let positive = [
            (
                "api.webhooks.webhooks_per_mailbox_max",
                self.webhooks_per_mailbox_max,
            ),
            ("api.webhooks.url_bytes_max", self.url_bytes_max),
            ("api.webhooks.queue_max", self.queue_max),
            (
                "api.webhooks.deliveries_concurrent_max",
                self.deliveries_concurrent_max,
            ),
            (
                "api.webhooks.attempt_timeout_ms",
                self.attempt_timeout_ms as usize,
            ),
            ("api.webhooks.attempts_max", self.attempts_max as usize),
        ];
        for (key, v) in positive {
            if v == 0 {
                e.push(format!("{key}: must be at least 1"));
            }
        }
        for n in &self.allow_networks {
            if let Err(err) = n.parse::<Cidr>() {
                e.push(format!("api.webhooks.allow_networks: `{n}`: {err}"));
            }
        }
        e
    }

    /// The parsed `allow_networks` (entries that do not parse were refused at start).
    pub fn allowed(&self) -> Vec<Cidr> {
        self.allow_networks
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}
