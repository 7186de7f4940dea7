//! Where a webhook may deliver (SPEC §10): `http` or `https` only, and never to an address
//! in a loopback, private, link-local, unique-local (or otherwise non-public) range, unless
//! the deployment allows private networks. The address rule is checked after DNS, at every
//! delivery: a name that resolves elsewhere tomorrow is refused tomorrow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public address a webhook may reach without `WEBHOOK_ALLOW_PRIVATE`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15; reserved, 240.0.0.0/4.
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Why a URL may not be a webhook's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Not `http://` or `https://`.
    #[error("a webhook URL is http:// or https://")]
    Scheme,
    /// An address in a refused range.
    #[error("{0} is not a public address (loopback, private, link-local or unique-local ranges are refused)")]
    Address(IpAddr),
}

/// Whether a webhook may deliver to `ip`.
///
/// # Errors
/// [`UrlRefused::Address`] when it is not public and private networks are not allowed.
pub fn check_address(ip: IpAddr, allow_private: bool) -> Result<(), UrlRefused> {
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(UrlRefused::Address(ip))
    }
}

/// Whether `scheme` (lowercase, as a URL parser gives it) is a webhook's.
///
/// # Errors
/// [`UrlRefused::Scheme`] for anything but `http` and `https`.
pub fn check_scheme(scheme: &str) -> Result<(), UrlRefused> {
    match scheme {
        "http" | "https" => Ok(()),
        _ => Err(UrlRefused::Scheme),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn private_ranges_are_refused_and_public_ones_allowed() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!public(refused), "{refused} is refused");
        }
        for allowed in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2a00:1450::1",
            "::ffff:1.1.1.1",
        ] {
            assert!(public(allowed), "{allowed} is allowed");
        }
    }

    #[test]
    fn allowing_private_networks_allows_every_address() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(check_address(ip, false), Err(UrlRefused::Address(ip)));
        assert_eq!(check_address(ip, true), Ok(()));
        assert_eq!(check_scheme("ftp"), Err(UrlRefused::Scheme));
        assert_eq!(check_scheme("https"), Ok(()));
    }
}
