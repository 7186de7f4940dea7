//! Discount codes, the value of a conversation's `discountCode` placeholder, checked once
//! where they enter (the API, stored rows, the demo data) and trusted after.

use std::fmt;
use std::ops::Deref;

/// Longest discount code, in characters.
pub const MAX_DISCOUNT_CODE_CHARS: usize = 64;

/// A discount code: trimmed, 1 to [`MAX_DISCOUNT_CODE_CHARS`] ASCII letters, digits, `-`
/// and `_`. It is rendered into the client's email, so it keeps to a set that needs no
/// escaping anywhere and cannot be mistaken for a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscountCode(String);

/// Why a string is not a [`DiscountCode`]. Whichever part was broken, the message states
/// the whole rule, completing a sentence that starts with the field's name
/// (`discountCode: must be 1 to 64 ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {MAX_DISCOUNT_CODE_CHARS} ASCII letters, digits, '-' or '_'")]
pub enum DiscountCodeError {
    /// Nothing but whitespace.
    Empty,
    /// More than [`MAX_DISCOUNT_CODE_CHARS`] characters once trimmed.
    TooLong,
    /// A character outside the set (the first one found).
    Character {
        /// The character.
        character: char,
    },
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl DiscountCode {
    /// Checks `raw`; surrounding whitespace is dropped.
    ///
    /// # Errors
    /// [`DiscountCodeError`] saying which part of the rule `raw` breaks.
    ///
    /// ```
    /// use cartloop_core::discount_code::{DiscountCode, DiscountCodeError};
    /// assert_eq!(DiscountCode::parse(" PROMO-50_x ").unwrap().as_str(), "PROMO-50_x");
    /// assert_eq!(
    ///     DiscountCode::parse("50% OFF"),
    ///     Err(DiscountCodeError::Character { character: '%' })
    /// );
    /// ```
    pub fn parse(raw: &str) -> Result<Self, DiscountCodeError> {
        let code = raw.trim();
        if code.is_empty() {
            return Err(DiscountCodeError::Empty);
        }
        if let Some(character) = code.chars().find(|&c| !allowed(c)) {
            return Err(DiscountCodeError::Character { character });
        }
        // All ASCII from here, so bytes are characters.
        if code.len() > MAX_DISCOUNT_CODE_CHARS {
            return Err(DiscountCodeError::TooLong);
        }
        Ok(Self(code.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code, taken out.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for DiscountCode {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DiscountCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DiscountCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for DiscountCode {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DiscountCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule, written independently of [`DiscountCode::parse`].
    fn follows_the_rule(raw: &str) -> bool {
        let trimmed = raw.trim();
        (1..=MAX_DISCOUNT_CODE_CHARS).contains(&trimmed.chars().count())
            && trimmed
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_'))
    }

    #[test]
    fn discount_codes_keep_to_a_safe_set() {
        assert_eq!(DiscountCode::parse(" PROMO-50_x ").unwrap(), "PROMO-50_x");
        let longest = "A".repeat(MAX_DISCOUNT_CODE_CHARS);
        assert_eq!(DiscountCode::parse(&longest).unwrap(), longest.as_str());
        assert_eq!(
            DiscountCode::parse(&format!("{longest}A")),
            Err(DiscountCodeError::TooLong)
        );
        assert_eq!(DiscountCode::parse(" "), Err(DiscountCodeError::Empty));
        for (bad, character) in [
            ("PROMO 50", ' '),
            ("PROMO<<50", '<'),
            ("caf\u{e9}", '\u{e9}'),
            ("{{x}}", '{'),
        ] {
            assert_eq!(
                DiscountCode::parse(bad),
                Err(DiscountCodeError::Character { character }),
                "{bad:?}"
            );
        }
        assert_eq!(
            DiscountCode::parse("").unwrap_err().to_string(),
            "must be 1 to 64 ASCII letters, digits, '-' or '_'"
        );
    }

    #[test]
    fn a_code_reads_as_its_text() {
        let code = DiscountCode::parse("NEW10").unwrap();
        assert_eq!((code.len(), code.to_string()), (5, "NEW10".to_owned()));
        assert_eq!(AsRef::<str>::as_ref(&code), "NEW10");
        assert!(code == *"NEW10");
        assert_eq!(code.into_string(), "NEW10");
    }

    proptest! {
        #[test]
        fn parses_exactly_what_follows_the_rule(
            raw in prop_oneof![
                "\\PC{0,8}",
                "[ \tA-Za-z0-9_\\-.%<{\u{e9}\u{ff21}]{0,10}",
                "[A-Z]{60,68}",
            ]
        ) {
            prop_assert_eq!(DiscountCode::parse(&raw).is_ok(), follows_the_rule(&raw), "{:?}", raw);
        }

        #[test]
        fn a_parsed_code_parses_to_itself(raw in "\\s{0,2}[A-Za-z0-9_\\-]{1,64}\\s{0,2}") {
            let code = DiscountCode::parse(&raw).unwrap();
            prop_assert_eq!(DiscountCode::parse(code.as_str()), Ok(code.clone()));
            prop_assert_eq!(code.as_str(), raw.trim());
        }
    }
}
