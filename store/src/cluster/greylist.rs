//! Fleet-wide greylisting state: triplets, passes and auto-allowlist counts in the cluster,
//! so a sender deferred by one MX passes when its retry lands on another.
//!
//! The ingress computes keyed 128-bit fingerprints (of the client network, and of the
//! network, sender and recipient); this module only stores them. The fingerprint key is
//! the fleet's, kept in the cluster ([`Cluster::greylist_key`]), so every node computes
//! the same keys. One step is one `FCALL tempmx_grey` (in `share.lua`): one round trip.
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `tmx:gl:{N}:t:<T>` | string | first attempt ms (waiting) or `p` (passed) | the retry window, then the pass lifetime from the last use |
//! | `tmx:gl:{N}:c` | string | retried passes of network `N`, at most `auto_allow_after` | the pass lifetime from the last pass or allowlisted use |
//! | `tmx:{fleet}:gl:key` | string | the fingerprint key, 32 hex digits | none |
//!
//! `N` and `T` are the fingerprints in 32 hex digits. The network's fingerprint is the
//! hash tag, so a triplet and its network's count share a slot and one function updates
//! both atomically; keys spread over the slots by client network. Values are at most 20
//! bytes. What bounds the number of keys is time: a triplet lives a retry window unless
//! it passes (Redis reclaims it by expiry, no sweeper).

use super::functions::{Function, fcall};
use super::{Cluster, ClusterError};
use crate::greylist::{GreyStep, GreyTiming};

/// Where the fleet's fingerprint key lives.
const KEY_KEY: &str = "tmx:{fleet}:gl:key";

impl Cluster {
    /// The fleet's greylisting fingerprint key: `candidate` if no node set one yet, else
    /// the one the first node set (set-if-absent, then read).
    pub async fn greylist_key(&self, candidate: [u8; 16]) -> Result<[u8; 16], ClusterError> {
        let hex = hex::encode(candidate);
        self.run(move |mut c| async move {
            let (stored,): (String,) = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(KEY_KEY)
                .arg(&hex)
                .arg("NX")
                .ignore()
                .cmd("GET")
                .arg(KEY_KEY)
                .query_async(&mut c)
                .await?;
            from_hex(&stored).ok_or(ClusterError::Corrupt {
                key: KEY_KEY.to_owned(),
            })
        })
        .await
    }

    /// One greylisting step for triplet `triplet` of client network `network` (both
    /// fingerprints) at `now_ms`, atomically in the network's slot.
    pub async fn greylist_step(
        &self,
        network: u128,
        triplet: u128,
        now_ms: u64,
        timing: GreyTiming,
    ) -> Result<GreyStep, ClusterError> {
        let base = format!("tmx:gl:{{{network:032x}}}");
        let triplet_key = format!("{base}:t:{triplet:032x}");
        let client_key = format!("{base}:c");
        self.run(move |mut c| async move {
            let (verdict, ms): (i64, i64) = fcall(Function::Grey)
                .arg(2)
                .arg(&triplet_key)
                .arg(&client_key)
                .arg(now_ms)
                .arg(timing.delay_ms.max(1))
                .arg(timing.window_ms.max(1))
                .arg(timing.lifetime_ms.max(1))
                .arg(timing.auto_allow_after)
                .query_async(&mut c)
                .await?;
            let ms = u64::try_from(ms).unwrap_or(0);
            match verdict {
                0 => Ok(GreyStep::Defer {
                    retry_in_ms: ms.max(1),
                }),
                1 => Ok(GreyStep::Retried { waited_ms: ms }),
                2 => Ok(GreyStep::Known),
                3 => Ok(GreyStep::AutoAllowlisted),
                _ => Err(ClusterError::Corrupt { key: triplet_key }),
            }
        })
        .await
    }
}

/// 32 hex digits back to 16 bytes; `None` for anything else.
fn from_hex(s: &str) -> Option<[u8; 16]> {
    hex::FromHex::from_hex(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_round_trips_through_hex() {
        // Goal: the stored key reads back as written; anything else is refused.
        // Method: round trip, then malformed texts.
        let k = [0xab; 16];
        assert_eq!(from_hex(&hex::encode(k)), Some(k));
        // "+f" is what `u8::from_str_radix` took for 0x0f.
        for bad in ["", "ab", &"g".repeat(32), &"é".repeat(16), &"+f".repeat(16)] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
    }
}
