//! The `[ingress.greylist]` section: delays, bypasses and table bounds.

use serde::{Deserialize, Serialize};

use super::GreylistError;

/// Greylisting settings (`[ingress.greylist]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistConfig {
    /// Greylist every pool domain.
    pub enabled: bool,
    /// Pool domains greylisted even when `enabled` is false.
    pub domains: Vec<String>,
    /// Minimum delay before a retry passes.
    pub delay_secs: u64,
    /// A retry later than this after the first attempt starts over.
    pub retry_window_secs: u64,
    /// How long a passed triplet or allowlisted client is remembered after its last use.
    pub pass_lifetime_secs: u64,
    /// Client networks with this many passed triplets skip greylisting (0 = no auto-allowlist).
    pub auto_allow_after: u32,
    /// Senders the auth stage calls trusted skip greylisting.
    pub bypass_authenticated: bool,
    /// CIDR networks (or single addresses) never greylisted.
    pub allow_networks: Vec<String>,
    /// Triplets kept (LRU; the bound is split over the stripes).
    pub entries_max: usize,
    /// Client networks kept for the auto-allowlist (LRU; split over the stripes).
    pub clients_max: usize,
    /// Lock stripes of each table (at least 1).
    pub stripes: usize,
    /// A stripe lock not taken within this time fails open.
    pub lock_wait_ms: u64,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            domains: Vec::new(),
            delay_secs: 60,
            retry_window_secs: 14_400,
            pass_lifetime_secs: 3_110_400,
            auto_allow_after: 3,
            bypass_authenticated: true,
            allow_networks: Vec::new(),
            entries_max: 1_000_000,
            clients_max: 262_144,
            stripes: 64,
            lock_wait_ms: 5,
        }
    }
}

impl GreylistConfig {
    /// Checks the numeric settings and how they relate; networks are checked when parsed.
    pub fn validate(&self) -> Result<(), GreylistError> {
        if self.stripes == 0 {
            return Err(GreylistError::ZeroStripes);
        }
        if self.delay_secs == 0 {
            return Err(GreylistError::ZeroDelay);
        }
        if self.delay_secs >= self.retry_window_secs {
            return Err(GreylistError::DelayNotBelowWindow {
                delay_secs: self.delay_secs,
                retry_window_secs: self.retry_window_secs,
            });
        }
        // Each stripe holds its share of the bound, so every stripe needs room for one entry.
        if self.entries_max < self.stripes {
            return Err(GreylistError::EntriesBelowStripes {
                key: "ingress.greylist.entries_max",
                value: self.entries_max,
                stripes: self.stripes,
            });
        }
        if self.auto_allow_after > 0 && self.clients_max < self.stripes {
            return Err(GreylistError::EntriesBelowStripes {
                key: "ingress.greylist.clients_max",
                value: self.clients_max,
                stripes: self.stripes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_parse_from_an_empty_table() {
        assert!(GreylistConfig::default().validate().is_ok());
        let parsed: GreylistConfig = toml::from_str("").expect("empty table is valid");
        assert_eq!(parsed, GreylistConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed = toml::from_str::<GreylistConfig>("delay = 5");
        assert!(parsed.is_err());
    }

    #[test]
    fn zero_stripes_is_refused() {
        let cfg = GreylistConfig {
            stripes: 0,
            ..GreylistConfig::default()
        };
        let err = cfg.validate().expect_err("zero stripes");
        assert!(err.to_string().contains("ingress.greylist.stripes"));
    }

    #[test]
    fn delay_not_below_window_is_refused() {
        for (delay, window) in [(60, 60), (61, 60)] {
            let cfg = GreylistConfig {
                delay_secs: delay,
                retry_window_secs: window,
                ..GreylistConfig::default()
            };
            let err = cfg.validate().expect_err("delay >= window");
            assert!(err.to_string().contains("ingress.greylist.delay_secs"));
        }
    }

    #[test]
    fn zero_delay_is_refused() {
        let cfg = GreylistConfig {
            delay_secs: 0,
            ..GreylistConfig::default()
        };
        let err = cfg.validate().expect_err("zero delay");
        assert!(err.to_string().contains("ingress.greylist.delay_secs"));
    }

    #[test]
    fn bounds_below_stripes_are_refused() {
        let cfg = GreylistConfig {
            entries_max: 0,
            ..GreylistConfig::default()
        };
        let err = cfg.validate().expect_err("zero entries");
        assert!(err.to_string().contains("ingress.greylist.entries_max"));
        let cfg = GreylistConfig {
            clients_max: 3,
            stripes: 4,
            ..GreylistConfig::default()
        };
        let err = cfg.validate().expect_err("clients below stripes");
        assert!(err.to_string().contains("ingress.greylist.clients_max"));
        let cfg = GreylistConfig {
            clients_max: 0,
            auto_allow_after: 0,
            ..GreylistConfig::default()
        };
        assert!(
            cfg.validate().is_ok(),
            "no client table without auto-allowlist"
        );
    }
}
