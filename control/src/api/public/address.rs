//! Mailbox addresses: random local parts, validation of requested ones, and the mailbox
//! a request path names (folded by the store's one rule, [`Mailbox`]).

use rand::Rng;
use tempmx_store::Mailbox;
use tempmx_store::address::{ADDRESS_BYTES_MAX, LOCAL_PART_BYTES_MAX};

use super::error::ApiError;

/// Letters and digits that cannot be confused when read aloud or written down
/// (no `0`/`o`, `1`/`l`/`i`): 31 symbols, about 4.95 bits each.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Symbols in a random local part: 14 x 4.95 = 69 bits of entropy (at least 64 required).
const RANDOM_LEN: usize = 14;
/// Longest path address looked at: a mailbox is at most `ADDRESS_BYTES_MAX` once folded,
/// and no spelling of one (decomposed Unicode, quotes) is four times longer.
pub const PATH_ADDRESS_BYTES_MAX: usize = 4 * ADDRESS_BYTES_MAX;

/// Local parts nobody may claim: role accounts (RFC 2142) and names that look official.
const RESERVED: &[&str] = &[
    "abuse",
    "admin",
    "administrator",
    "billing",
    "hostmaster",
    "info",
    "mailer-daemon",
    "marketing",
    "no-reply",
    "noc",
    "noreply",
    "postmaster",
    "root",
    "sales",
    "security",
    "ssl-admin",
    "support",
    "sysadmin",
    "usenet",
    "uucp",
    "webmaster",
    "www",
];

/// A fresh unguessable local part from the OS-seeded CSPRNG.
pub fn random_local_part() -> String {
    let mut rng = rand::rng();
    (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Checks a requested local part and returns it lowercased: dot-atom of letters, digits
/// and `. _ - +`, 1 to 64 octets, no leading, trailing or double dot, not reserved.
pub fn validate_local_part(raw: &str) -> Result<String, ApiError> {
    let local = raw.to_ascii_lowercase();
    if local.is_empty() || local.len() > LOCAL_PART_BYTES_MAX {
        return Err(ApiError::InvalidAddress(format!(
            "local part must be 1 to {LOCAL_PART_BYTES_MAX} characters"
        )));
    }
    if !local
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    {
        return Err(ApiError::InvalidAddress(
            "local part may only hold letters, digits and . _ - +".into(),
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(ApiError::InvalidAddress(
            "local part has a misplaced dot".into(),
        ));
    }
    let base = local.split('+').next().unwrap_or(&local);
    if RESERVED.contains(&local.as_str()) || RESERVED.contains(&base) {
        return Err(ApiError::InvalidAddress(format!("`{local}` is reserved")));
    }
    Ok(local)
}

/// The mailbox a request path names, in any spelling of it. Anything that is no mailbox
/// is a 404, the same answer an unknown mailbox gets.
pub fn path_mailbox(raw: &str) -> Result<Mailbox, ApiError> {
    if raw.len() > PATH_ADDRESS_BYTES_MAX {
        return Err(ApiError::NotFound);
    }
    Mailbox::parse(raw).map_err(|_| ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: random local parts use the readable alphabet, have the length that gives
    // more than 64 bits, and do not repeat. Method: draw many.
    #[test]
    fn random_parts_are_readable_and_distinct() {
        let bits = RANDOM_LEN as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits >= 64.0, "{bits}");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let p = random_local_part();
            assert_eq!(p.len(), RANDOM_LEN);
            assert!(p.bytes().all(|b| ALPHABET.contains(&b)));
            assert!(seen.insert(p));
        }
    }

    // Goal: the limits and the reserved list hold, at and past the edges. Method: a table.
    #[test]
    fn local_part_validation_table() {
        let ok = ["a", "john.doe", "x_y-z", "me+tag", &"a".repeat(64), "Mixed"];
        for l in ok {
            assert!(validate_local_part(l).is_ok(), "{l}");
        }
        let bad = [
            "",
            &"a".repeat(65),
            ".a",
            "a.",
            "a..b",
            "a b",
            "a@b",
            "é",
            "postmaster",
            "Admin",
            "abuse+x",
            "<x>",
        ];
        for l in bad {
            assert!(
                matches!(validate_local_part(l), Err(ApiError::InvalidAddress(_))),
                "{l}"
            );
        }
        assert_eq!(validate_local_part("Mixed").expect("ok"), "mixed");
    }

    // Goal: path addresses fold like ingress does, so every spelling is one mailbox;
    // malformed ones (an IP as domain included) are 404, not 400, also past the length
    // limit. Method: a table through `path_mailbox`.
    #[test]
    fn path_addresses_fold() {
        for spelling in ["Bob@Pool.TEST", "BOB@pool.test", "\"bob\"@pool.test"] {
            assert_eq!(
                path_mailbox(spelling).expect("ok").as_str(),
                "bob@pool.test",
                "{spelling}"
            );
        }
        let long_domain = format!("{}.test", "a".repeat(63));
        let at_limit = format!("{}@{long_domain}", "A".repeat(64));
        assert!(at_limit.len() < PATH_ADDRESS_BYTES_MAX);
        assert!(path_mailbox(&at_limit).is_ok());
        let over = format!("{}@pool.test", "a".repeat(PATH_ADDRESS_BYTES_MAX));
        for bad in [
            "nodomain",
            "@pool.test",
            "a@",
            "a b@pool.test",
            "u@127.0.0.1",
            "u@[127.0.0.1]",
            &format!("{}@p.test", "a".repeat(65)),
            &over,
        ] {
            assert!(
                matches!(path_mailbox(bad), Err(ApiError::NotFound)),
                "{bad}"
            );
        }
    }
}
