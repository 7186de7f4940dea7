//! Discount codes: 1 to [`MAX_DISCOUNT_CODE_CHARS`] ASCII letters, digits, `-` and `_`. A
//! code is rendered into the client's email, so it keeps to the payload character set.

use std::fmt;

/// Longest discount code, in characters.
pub const MAX_DISCOUNT_CODE_CHARS: usize = 64;

/// A checked discount code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiscountCode(String);

/// A text that is not a discount code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {MAX_DISCOUNT_CODE_CHARS} ASCII letters, digits, '-' or '_'")]
pub struct DiscountCodeError;

impl DiscountCode {
    /// `raw` without its surrounding spaces, if that is a code.
    ///
    /// # Errors
    /// [`DiscountCodeError`].
    ///
    /// ```
    /// use cartloop_core::discount_code::DiscountCode;
    /// assert_eq!(DiscountCode::parse(" PROMO-50_x ").unwrap().as_str(), "PROMO-50_x");
    /// assert!(DiscountCode::parse("PROMO 50").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, DiscountCodeError> {
        let code = raw.trim();
        let ok = !code.is_empty()
            && code.chars().count() <= MAX_DISCOUNT_CODE_CHARS
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(code.to_owned()))
        } else {
            Err(DiscountCodeError)
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DiscountCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_keep_to_a_safe_set() {
        let longest = "A".repeat(MAX_DISCOUNT_CODE_CHARS);
        assert!(DiscountCode::parse(&longest).is_ok());
        for bad in [
            "",
            " ",
            "PROMO 50",
            "PROMO<<50",
            "caf\u{e9}",
            &format!("{longest}A"),
        ] {
            assert_eq!(DiscountCode::parse(bad), Err(DiscountCodeError), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_codes(raw in "[ a-zA-Z0-9_<é-]{0,70}") {
            let trimmed = raw.trim();
            let expected = (1..=MAX_DISCOUNT_CODE_CHARS).contains(&trimmed.chars().count())
                && trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            let parsed = DiscountCode::parse(&raw);
            prop_assert_eq!(parsed.is_ok(), expected);
            if let Ok(code) = parsed {
                prop_assert_eq!(DiscountCode::parse(code.as_str()), Ok(code.clone()));
            }
        }
    }
}
