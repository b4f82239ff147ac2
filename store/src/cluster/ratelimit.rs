//! Fleet-wide rate limits of the public API: one GCRA bucket per (request class, client)
//! in the cluster, so a client's quota holds across every node behind the load balancer.
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `tmx:rl:<class>:<client>` | string | the bucket's theoretical arrival time, ms | when the bucket is full again |
//!
//! `<client>` is the caller's client key (an IPv4 address or an IPv6 /64 in text), so keys
//! spread over the slots by client. One check is one `FCALL tempmx_rate` (in `share.lua`),
//! timed by the slot primary's clock, so nodes' clocks do not matter.

use super::functions::{Function, fcall};
use super::{Cluster, ClusterError};

/// Longest class name and client key, in characters (the key stays small whatever the caller).
pub const RATE_KEY_PART_CHARS_MAX: usize = 64;

/// One bucket's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateQuota {
    /// Tokens refilled per second (above 0).
    pub per_sec: f64,
    /// Bucket size (at least 1).
    pub burst: u32,
}

impl Cluster {
    /// Takes one token of `class` for `client`: `Ok(None)` when taken, `Ok(Some(secs))`
    /// with the seconds to wait (at least 1) when refused.
    pub async fn rate_take(
        &self,
        class: &str,
        client: &str,
        quota: RateQuota,
    ) -> Result<Option<u64>, ClusterError> {
        let key = rate_key(class, client);
        // Floored so a misconfigured zero rate cannot divide by zero in the function.
        let interval_ms = 1000.0 / quota.per_sec.max(1e-6);
        let burst = quota.burst.max(1);
        self.run(move |mut c| async move {
            let (taken, wait_ms): (i64, i64) = fcall(Function::Rate)
                .arg(1)
                .arg(&key)
                .arg(format!("{interval_ms:.3}"))
                .arg(burst)
                .query_async(&mut c)
                .await?;
            if taken == 1 {
                return Ok(None);
            }
            let secs = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1);
            Ok(Some(secs))
        })
        .await
    }
}

/// The bucket's key; over-long parts are cut (they come from our own code, but the key
/// must stay bounded whatever they are).
fn rate_key(class: &str, client: &str) -> String {
    let cut = |s: &str| -> String { s.chars().take(RATE_KEY_PART_CHARS_MAX).collect() };
    format!("tmx:rl:{}:{}", cut(class), cut(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_distinct_per_class() {
        // Goal: a class and a client make one key; an over-long part is cut at the limit.
        // Method: build keys directly.
        assert_eq!(rate_key("create", "192.0.2.1"), "tmx:rl:create:192.0.2.1");
        assert_ne!(rate_key("create", "x"), rate_key("read", "x"));
        let long = "a".repeat(1000);
        assert_eq!(
            rate_key("read", &long).len(),
            "tmx:rl:read:".len() + RATE_KEY_PART_CHARS_MAX
        );
    }
}
