//! What one blocklist answer means: DNSBL return codes mapped to listed / clean / error.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The outcome of one check of one domain on one list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Not listed.
    Clean,
    /// The check failed (timeout, SERVFAIL, a DNSBL error code); never counts as a listing.
    Error {
        /// What went wrong.
        detail: String,
    },
    /// Listed.
    Listed {
        /// What the list says.
        reason: String,
    },
}

/// Built-in Spamhaus DBL return codes (127.0.1.x).
const DBL_CODES: [(u8, &str); 10] = [
    (2, "spam domain"),
    (4, "phish domain"),
    (5, "malware domain"),
    (6, "botnet C&C domain"),
    (102, "abused legit spam"),
    (103, "abused spammed redirector domain"),
    (104, "abused legit phish"),
    (105, "abused legit malware"),
    (106, "abused legit botnet C&C"),
    (255, "IP queries prohibited"),
];

/// Maps the A records of a `<domain>.<zone>` answer to an outcome. `overrides` (code →
/// reason) take precedence over the built-in table. 127.255.255.x are the DNSBL's own
/// error codes (bad query, public resolver, rate limit), and anything outside 127/8 is a
/// hijacked or broken answer: both are errors, so a misconfigured resolver never retires
/// the whole pool.
pub fn classify(addrs: &[Ipv4Addr], overrides: &BTreeMap<String, String>) -> Outcome {
    let Some(first) = addrs.first() else {
        return Outcome::Clean;
    };
    if let Some(bad) = addrs.iter().find(|a| a.octets()[0] != 127) {
        return Outcome::Error {
            detail: format!("answer {bad} is outside 127.0.0.0/8"),
        };
    }
    if let Some(err) = addrs.iter().find(|a| is_dnsbl_error(**a)) {
        return Outcome::Error {
            detail: format!("blocklist error code {err}"),
        };
    }
    let reason = addrs
        .iter()
        .find_map(|a| overrides.get(&a.to_string()).cloned());
    let reason = reason.unwrap_or_else(|| builtin_reason(*first));
    Outcome::Listed { reason }
}

fn is_dnsbl_error(a: Ipv4Addr) -> bool {
    let [_, b, c, _] = a.octets();
    // 127.0.1.255 is DBL's "IP queries prohibited": a query error, not a listing.
    (b == 255 && c == 255) || a == Ipv4Addr::new(127, 0, 1, 255)
}

fn builtin_reason(a: Ipv4Addr) -> String {
    let [_, b, c, d] = a.octets();
    match (b, c) {
        (0, 1) => DBL_CODES
            .iter()
            .find(|(code, _)| *code == d)
            .map(|(_, r)| (*r).to_owned())
            .unwrap_or_else(|| format!("listed (code {a})")),
        // Spamhaus ZRD: 127.0.2.2..24 = first seen that many hours ago.
        (0, 2) => format!("zero-reputation domain, first seen {d} h ago"),
        _ => format!("listed (code {a})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: return codes map as documented, table-driven.
    #[test]
    fn return_codes() {
        let none = BTreeMap::new();
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("test setup");
        let listed = |r: &str| Outcome::Listed {
            reason: r.to_owned(),
        };
        assert_eq!(classify(&[], &none), Outcome::Clean);
        assert_eq!(classify(&[ip("127.0.1.2")], &none), listed("spam domain"));
        assert_eq!(
            classify(&[ip("127.0.1.106")], &none),
            listed("abused legit botnet C&C")
        );
        assert_eq!(
            classify(&[ip("127.0.1.77")], &none),
            listed("listed (code 127.0.1.77)")
        );
        assert_eq!(
            classify(&[ip("127.0.2.5")], &none),
            listed("zero-reputation domain, first seen 5 h ago")
        );
        for err in [
            "127.255.255.252",
            "127.255.255.254",
            "127.255.255.255",
            "127.0.1.255",
            "10.0.0.1",
        ] {
            assert!(
                matches!(classify(&[ip(err)], &none), Outcome::Error { .. }),
                "{err}"
            );
        }
        assert!(matches!(
            classify(&[ip("127.0.1.2"), ip("127.255.255.254")], &none),
            Outcome::Error { .. }
        ));
        let custom = [("127.0.1.2".to_owned(), "our reason".to_owned())].into();
        assert_eq!(classify(&[ip("127.0.1.2")], &custom), listed("our reason"));
    }
}
