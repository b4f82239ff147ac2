//! Which addresses a webhook may reach: public unicast only, unless allowed by config.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or("expected ADDRESS/PREFIX")?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IP address"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or(format!("prefix must be 0 to {bits}"))?;
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    const fn v4(a: [u8; 4], prefix: u8) -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            prefix,
        }
    }

    const fn v6(first: u16, prefix: u8) -> Self {
        Self {
            addr: IpAddr::V6(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0)),
            prefix,
        }
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Networks no webhook reaches unless `allow_networks` names them: loopback, RFC 1918,
/// CGNAT, link-local (cloud metadata at 169.254.169.254), unique-local, unspecified,
/// multicast, broadcast and the other special-purpose ranges.
const REFUSED: [Cidr; 15] = [
    Cidr::v4([0, 0, 0, 0], 8),
    Cidr::v4([10, 0, 0, 0], 8),
    Cidr::v4([100, 64, 0, 0], 10),
    Cidr::v4([127, 0, 0, 0], 8),
    Cidr::v4([169, 254, 0, 0], 16),
    Cidr::v4([172, 16, 0, 0], 12),
    Cidr::v4([192, 0, 0, 0], 24),
    Cidr::v4([192, 168, 0, 0], 16),
    Cidr::v4([198, 18, 0, 0], 15),
    Cidr::v4([224, 0, 0, 0], 4),
    // 240/4 reserved, 255.255.255.255 broadcast included.
    Cidr::v4([240, 0, 0, 0], 4),
    Cidr::v6(0, 127),
    Cidr::v6(0xfc00, 7),
    Cidr::v6(0xfe80, 10),
    Cidr::v6(0xff00, 8),
];

/// Whether a webhook may connect to `ip`: allowed explicitly, or public unicast.
pub fn permitted(ip: IpAddr, allow: &[Cidr]) -> bool {
    // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) reaches the IPv4 host.
    let ip = ip.to_canonical();
    if allow.iter().any(|n| n.contains(ip)) {
        return true;
    }
    !REFUSED.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    // Goal: the special ranges are refused, public addresses pass, allow_networks wins.
    // Method: addresses at the edges of each range, with and without an allow list.
    #[test]
    fn refuses_special_ranges() {
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!permitted(ip(bad), &[]), "{bad} must be refused");
        }
        for good in ["93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1"] {
            assert!(permitted(ip(good), &[]), "{good} must pass");
        }
        let allow = ["127.0.0.0/8".parse().expect("cidr")];
        assert!(permitted(ip("127.0.0.1"), &allow));
        assert!(!permitted(ip("10.0.0.1"), &allow));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
