//! Mailbox addresses: random local parts, validation of requested ones, normalisation
//! of addresses taken from request paths.

use rand::Rng;
use tempmx_ingress::policy::normalise_domain;

use super::error::ApiError;

/// Letters and digits that cannot be confused when read aloud or written down
/// (no `0`/`o`, `1`/`l`/`i`): 31 symbols, about 4.95 bits each.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Symbols in a random local part: 14 x 4.95 = 69 bits of entropy (at least 64 required).
const RANDOM_LEN: usize = 14;
/// RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
pub const LOCAL_PART_BYTES_MAX: usize = 64;
/// RFC 5321 4.5.3.1.3 path limit minus the angle brackets.
pub const ADDRESS_BYTES_MAX: usize = 254;

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

/// Normalises an address from a request path the way ingress stores mailboxes
/// (`local@domain`, domain IDNA-mapped and lowercased). Anything malformed is a 404, the
/// same answer an unknown mailbox gets.
pub fn normalise_address(raw: &str) -> Result<String, ApiError> {
    if raw.len() > ADDRESS_BYTES_MAX {
        return Err(ApiError::NotFound);
    }
    let (local, domain) = raw.rsplit_once('@').ok_or(ApiError::NotFound)?;
    if local.is_empty()
        || local.len() > LOCAL_PART_BYTES_MAX
        || local.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(ApiError::NotFound);
    }
    let domain = normalise_domain(domain).ok_or(ApiError::NotFound)?;
    Ok(format!("{local}@{domain}"))
}

/// The domain of a normalised address.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
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

    // Goal: path addresses normalise like ingress; malformed ones are 404, not 400.
    #[test]
    fn path_addresses_normalise() {
        assert_eq!(
            normalise_address("Bob@Pool.TEST").expect("ok"),
            "Bob@pool.test"
        );
        for bad in [
            "nodomain",
            "@pool.test",
            "a@",
            "a b@pool.test",
            &format!("{}@p.test", "a".repeat(65)),
        ] {
            assert!(
                matches!(normalise_address(bad), Err(ApiError::NotFound)),
                "{bad}"
            );
        }
        assert_eq!(domain_of("a@b.test"), "b.test");
    }
}
