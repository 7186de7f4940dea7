//! Email addresses, checked once where they enter (import, the API) and trusted after.

use std::fmt;
use std::str::FromStr;

/// The longest address SMTP carries (RFC 5321 §4.5.3.1.3: a 256-octet path minus `<>`).
pub const MAX_LEN: usize = 254;

/// A syntactically valid email address: `local@domain`.
///
/// The rules are the ones mail servers enforce in practice, narrower than RFC 5322's
/// grammar: the local part is 1 to 64 characters of letters, digits and
/// ``!#$%&'*+-/=?^_`{|}~.`` with no leading, trailing or doubled dot (no quoted local parts);
/// the domain is dot-separated labels of letters, digits and hyphens, 1 to 63 characters
/// each, not starting or ending with a hyphen, with at least two labels. Only ASCII:
/// internationalised addresses (RFC 6531) need an SMTPUTF8 relay most do not offer, so an
/// address that would be accepted and then never delivered is refused here (an
/// internationalised domain can be written in its ASCII `xn--` form). The address is kept as
/// written, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

/// Why a string is not an [`EmailAddress`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid email address {shown}: {reason}")]
pub struct InvalidEmail {
    shown: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl EmailAddress {
    /// Checks `raw` (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`InvalidEmail`] saying what is wrong.
    ///
    /// ```
    /// use cartloop_core::email_address::EmailAddress;
    /// assert_eq!(EmailAddress::parse(" ann@example.com ").unwrap().as_str(), "ann@example.com");
    /// assert!(EmailAddress::parse("ann@localhost").is_err());
    /// assert!(EmailAddress::parse("ann example@x.com").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let address = raw.trim();
        let fail = |reason| InvalidEmail {
            shown: format!("{:?}", crate::text::cut(address, 80)),
            reason,
        };
        if address.is_empty() {
            return Err(fail("it is empty"));
        }
        if address.chars().count() > MAX_LEN {
            return Err(fail("it is longer than 254 characters"));
        }
        if !address.is_ascii() {
            return Err(fail(
                "only ASCII addresses can be delivered (write an internationalised domain in its xn-- form)",
            ));
        }
        let (local, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| fail("it has no @"))?;
        if local.is_empty() || local.chars().count() > 64 {
            return Err(fail("the part before @ must be 1 to 64 characters"));
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok {
            return Err(fail(
                "the part before @ has a character or dot that is not allowed",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(fail(
                "the domain must have at least two labels, e.g. example.com",
            ));
        }
        let label_ok = |label: &str| {
            let count = label.chars().count();
            (1..=63).contains(&count)
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !labels.iter().all(|l| label_ok(l)) {
            return Err(fail("the domain is not a valid host name"));
        }
        Ok(Self(address.to_owned()))
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The address, taken out.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = InvalidEmail;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_addresses() {
        for ok in [
            "a@b.co",
            "john.carter@example.com",
            "first+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x_y-z@xn--bcher-kva.example",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_servers_refuse() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "ann@",
            "ann@localhost",
            "ann@@example.com",
            "a b@example.com",
            ".ann@example.com",
            "ann.@example.com",
            "an..n@example.com",
            "ann@-example.com",
            "ann@example..com",
            "ann@exa_mple.com",
            "\"quoted\"@example.com",
            "ann@example.com\r\nBcc: x@y.z",
            "jos\u{e9}@example.com",
            "shop@ex\u{e4}mple.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long).is_err());
    }
}
