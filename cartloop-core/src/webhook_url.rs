//! Where a webhook may deliver (SPEC §10): an `http(s)` URL whose addresses are public.
//!
//! [`WebhookUrl::parse`] checks the form once; [`AddressPolicy::check`] is asked for every
//! address the host resolves to, when the webhook is made and again at every delivery
//! (after DNS, so a name that later points inside the network is refused then). Refused
//! unless the deployment allows private addresses: loopback, the private ranges
//! (10/8, 172.16/12, 192.168/16), shared CGNAT space (100.64/10), link-local (169.254/16,
//! fe80::/10), unique-local (fc00::/7), unspecified, broadcast and multicast — and IPv4
//! addresses of those written as IPv6 (`::ffff:a.b.c.d`, `::a.b.c.d`).
//!
//! # Example
//! ```
//! use cartloop_core::webhook_url::{AddressPolicy, WebhookUrl};
//!
//! let url = WebhookUrl::parse("https://hooks.example.com/cartloop")?;
//! assert_eq!((url.host(), url.port()), ("hooks.example.com", 443));
//! assert!(WebhookUrl::parse("ftp://example.com/").is_err());
//!
//! let strict = AddressPolicy { allow_private: false };
//! assert!(strict.check("93.184.216.34".parse().unwrap()).is_ok());
//! assert!(strict.check("127.0.0.1".parse().unwrap()).is_err());
//! assert!(strict.check("::ffff:10.0.0.1".parse().unwrap()).is_err());
//! # Ok::<(), cartloop_core::webhook_url::UrlError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest URL accepted.
pub const MAX_LEN: usize = 2048;

/// A webhook's URL: `http` or `https`, with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("url is not a valid URL: {0}")]
    Invalid(String),
    /// Longer than [`MAX_LEN`].
    #[error("url is longer than {MAX_LEN} characters")]
    TooLong,
    /// Another scheme than `http` or `https`.
    #[error("url must be http or https, not {0:?}")]
    Scheme(String),
    /// No host, or user info in it.
    #[error("url must name a host, without user or password")]
    Host,
}

impl WebhookUrl {
    /// The URL `text` names.
    ///
    /// # Errors
    /// [`UrlError`] when it is no URL, too long, not http(s), or has no host (or has
    /// credentials in it, which would be sent to the receiver and shown in lists).
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        if text.len() > MAX_LEN {
            return Err(UrlError::TooLong);
        }
        let url = url::Url::parse(text.trim()).map_err(|e| UrlError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Host);
        }
        Ok(Self { url })
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host as written (an IPv6 literal without its brackets).
    pub fn host(&self) -> &str {
        let host = self.url.host_str().unwrap_or_default();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The host's address when the URL names one literally (no DNS involved).
    pub fn literal_ip(&self) -> Option<IpAddr> {
        match self.url.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }

    /// The port, the scheme's default when none is given.
    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(80)
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which addresses deliveries may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Allow every address (`WEBHOOK_ALLOW_PRIVATE=true`: tests, a receiver on the same
    /// network).
    pub allow_private: bool,
}

/// An address the policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address {0} is not public (loopback, private, link-local or unique-local)")]
pub struct Refused(pub IpAddr);

impl AddressPolicy {
    /// Whether a delivery may go to `ip`.
    ///
    /// # Errors
    /// [`Refused`] for an address that is not public, unless private ones are allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(Refused(ip))
        }
    }
}

/// Whether `ip` is a public address: none of the ranges this module refuses.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
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
        || a == 0
        || (a == 100 && (64..128).contains(&b)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xffc0) == 0xfe80
        || (first & 0xfe00) == 0xfc00)
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible
/// (`::a.b.c.d`) IPv6 address; `::` and `::1` stay IPv6.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    (s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1)).then(|| {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        AddressPolicy::default().check(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn refuses_every_inside_range() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:192.168.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn allows_public_addresses() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "fec0::1",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
        let open = AddressPolicy {
            allow_private: true,
        };
        assert!(open.check("127.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn urls() {
        let url = WebhookUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!(url.host(), "::1");
        assert_eq!(url.port(), 8080);
        assert_eq!(url.literal_ip(), Some("::1".parse().unwrap()));
        assert_eq!(
            WebhookUrl::parse("https://example.com")
                .unwrap()
                .literal_ip(),
            None
        );
        assert!(matches!(
            WebhookUrl::parse("javascript:alert(1)"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            WebhookUrl::parse("not a url"),
            Err(UrlError::Invalid(_))
        ));
        assert_eq!(
            WebhookUrl::parse("https://user:pw@example.com/"),
            Err(UrlError::Host)
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_LEN));
        assert_eq!(WebhookUrl::parse(&long), Err(UrlError::TooLong));
    }
}
