//! Triplet keys: client network, normalised sender and recipient, folded into a keyed
//! 128-bit fingerprint.
//!
//! Why a fingerprint and not the strings: an entry then costs 16 bytes of key instead of two
//! heap strings, and lookups compare one integer. Collisions don't matter: the hash is
//! SipHash-1-3 with a random per-process key, so a sender cannot aim two triplets at one value,
//! and by the birthday bound the chance that any two of 10^6 live triplets share a value is
//! about 10^12 / 2^129 ≈ 10^-27. Even then the only effect is that one triplet passes early,
//! which is the fail-open direction greylisting already takes.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip128::{Hasher128, SipHasher13};

/// Domain tags keep a client-network fingerprint apart from a triplet fingerprint.
const TAG_TRIPLET: u8 = 1;
const TAG_CLIENT: u8 = 2;

/// Keyed fingerprints of triplets and client networks.
#[derive(Debug, Clone)]
pub struct Keyer {
    k0: u64,
    k1: u64,
}

impl Keyer {
    /// A keyer with a fresh random key.
    pub fn random() -> Self {
        let [k0, k1]: [u64; 2] = rand::random();
        Self { k0, k1 }
    }

    /// A keyer with a given key (the nodes of a fleet share one, so they hash alike).
    pub fn with_key(key: [u8; 16]) -> Self {
        let k = u128::from_le_bytes(key);
        Self {
            k0: k as u64,
            k1: (k >> 64) as u64,
        }
    }

    fn hasher(&self, tag: u8) -> SipHasher13 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write_u8(tag);
        h
    }

    /// Fingerprint of the client network alone (the auto-allowlist key).
    pub fn client(&self, net: ClientNet) -> u128 {
        let mut h = self.hasher(TAG_CLIENT);
        h.write_u128(net.0);
        h.finish128().as_u128()
    }

    /// Fingerprint of a triplet; `sender` must already be normalised.
    pub fn triplet(&self, net: ClientNet, sender: &str, recipient: &str) -> u128 {
        let mut h = self.hasher(TAG_TRIPLET);
        h.write_u128(net.0);
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        h.write_usize(sender.len());
        h.write(sender.as_bytes());
        h.write_usize(recipient.len());
        h.write(recipient.as_bytes());
        h.finish128().as_u128()
    }
}

/// A client's network: IPv4 /24 or IPv6 /64, as one tagged integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNet(u128);

impl ClientNet {
    /// The network `ip` belongs to for greylisting purposes.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            // Bit 127 marks IPv4 so 10.0.0.0/24 and the IPv6 prefix 0:a00::/64 differ.
            IpAddr::V4(v4) => Self((1 << 127) | u128::from(u32::from(v4) & 0xffff_ff00)),
            IpAddr::V6(v6) => Self(u128::from(v6) & !u128::from(u64::MAX)),
        }
    }
}

/// Folds per-message variants of one sender onto one string.
///
/// Lowercases; decodes SRS0/SRS1 to the original address; strips BATV (`prvs=TAG=`,
/// `msprvs1=TAG=`) tags and `+detail`; turns each run of digits in the local part into `#`
/// (VERP counters, ticket numbers). The null sender stays "".
pub fn normalise_sender(sender: &str) -> String {
    if sender.is_empty() {
        return String::new();
    }
    let lower = sender.to_lowercase();
    let (local, domain) = split_address(&lower);
    let (local, domain) = match srs_original(local) {
        Some((orig_local, orig_domain)) => (orig_local, orig_domain),
        None => (local, domain),
    };
    let local = strip_batv(local);
    let local = local.split_once('+').map_or(local, |(before, _)| before);
    let mut out = String::with_capacity(lower.len());
    collapse_digits(local, &mut out);
    if let Some(domain) = domain {
        out.push('@');
        out.push_str(domain);
    }
    out
}

/// Splits at the last `@`; an address without one is all local part.
fn split_address(addr: &str) -> (&str, Option<&str>) {
    match addr.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (addr, None),
    }
}

/// The original (local, domain) inside an SRS0 or SRS1 local part, when it parses.
///
/// SRS0: `SRS0=HHH=TT=domain=local`; SRS1: `SRS1=HHH=forwarder=<sep>HHH=TT=domain=local`,
/// where each `<sep>` after the scheme name is one of `=`, `+`, `-` (libsrs2 accepts all three).
fn srs_original(local: &str) -> Option<(&str, Option<&str>)> {
    let rest = if let Some(rest) = local.strip_prefix("srs0") {
        strip_separator(rest)?
    } else {
        let rest = strip_separator(local.strip_prefix("srs1")?)?;
        let mut fields = rest.splitn(3, '=');
        let (_hash, _forwarder) = (fields.next()?, fields.next()?);
        strip_separator(fields.next()?)?
    };
    let mut fields = rest.splitn(4, '=');
    let (_hash, _stamp) = (fields.next()?, fields.next()?);
    let (domain, orig_local) = (fields.next()?, fields.next()?);
    if domain.is_empty() || orig_local.is_empty() {
        return None;
    }
    Some((orig_local, Some(domain)))
}

fn strip_separator(s: &str) -> Option<&str> {
    s.strip_prefix(['=', '+', '-'])
}

/// `prvs=TAG=user` (and Microsoft's `msprvs1=TAG=user`) → `user`.
fn strip_batv(local: &str) -> &str {
    let Some(rest) = local
        .strip_prefix("prvs=")
        .or_else(|| local.strip_prefix("msprvs1="))
    else {
        return local;
    };
    match rest.split_once('=') {
        Some((_tag, user)) if !user.is_empty() => user,
        _ => local,
    }
}

fn collapse_digits(local: &str, out: &mut String) {
    let mut in_digits = false;
    for c in local.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_cases() {
        let cases = [
            ("", ""),
            ("Alice@Example.COM", "alice@example.com"),
            ("alice+news@example.com", "alice@example.com"),
            ("alice+a+b@example.com", "alice@example.com"),
            ("prvs=1234abcdef=alice@example.com", "alice@example.com"),
            ("PRVS=0123ABCDEF=Alice@example.com", "alice@example.com"),
            ("msprvs1=17abc=bounces@example.com", "bounces@example.com"),
            (
                "bounce-12345-678@lists.example.com",
                "bounce-#-#@lists.example.com",
            ),
            ("noreply2024x99@example.com", "noreply#x#@example.com"),
            (
                "SRS0=HHH=TT=example.org=alice@forwarder.net",
                "alice@example.org",
            ),
            (
                "srs0+hhh=tt=example.org=alice@forwarder.net",
                "alice@example.org",
            ),
            (
                "SRS1=HHH=first.net==HHH=TT=example.org=alice@second.net",
                "alice@example.org",
            ),
            (
                "SRS0=HHH=TT=example.org=prvs=12ab=bob+x@fwd.net",
                "bob@example.org",
            ),
            // Unparseable SRS stays an ordinary address.
            ("srs0=broken@fwd.net", "srs#=broken@fwd.net"),
            ("srs1=x@fwd.net", "srs#=x@fwd.net"),
            ("prvs=@example.com", "prvs=@example.com"),
            ("postmaster", "postmaster"),
            ("user@mail2.example.com", "user@mail2.example.com"),
        ];
        for (input, want) in cases {
            assert_eq!(normalise_sender(input), want, "input {input:?}");
        }
    }

    #[test]
    fn per_message_bounce_addresses_share_a_key() {
        let k = Keyer::random();
        let net = ClientNet::of(IpAddr::from([127, 0, 0, 1]));
        let a = k.triplet(net, &normalise_sender("b+9001@x.test"), "u@pool.test");
        let b = k.triplet(net, &normalise_sender("B+9002@X.test"), "u@pool.test");
        assert_eq!(a, b);
        let c = k.triplet(net, &normalise_sender("b@x.test"), "v@pool.test");
        assert_ne!(a, c);
    }

    #[test]
    fn length_prefix_separates_fields() {
        let k = Keyer::random();
        let net = ClientNet::of(IpAddr::from([127, 0, 0, 1]));
        assert_ne!(k.triplet(net, "ab", "c"), k.triplet(net, "a", "bc"));
    }

    #[test]
    fn client_networks_group_v4_by_24_and_v6_by_64() {
        let v4 = |o: [u8; 4]| ClientNet::of(IpAddr::from(o));
        assert_eq!(v4([127, 0, 0, 1]), v4([127, 0, 0, 254]));
        assert_ne!(v4([127, 0, 0, 1]), v4([127, 0, 1, 1]));
        let v6 = |s: &str| ClientNet::of(s.parse::<IpAddr>().expect("literal"));
        assert_eq!(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff::9"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        // An IPv4 network never equals the IPv6 prefix with the same bits.
        assert_ne!(v4([10, 0, 0, 1]), v6("::a00:1"));
    }
}
