//! Display names (of stores, operators, clients, operator groups): trimmed, 1 to
//! [`MAX_NAME_CHARS`] characters, and no control or invisible format character, since a
//! name ends up in email headers and on the console.

use std::fmt;

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A checked display name. Once one exists it is valid: nothing downstream checks again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

/// Why a text is not a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but spaces.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("must be at most {MAX_NAME_CHARS} characters")]
    TooLong,
    /// A control or invisible format character.
    #[error("must not contain the control or invisible character {}", .0.escape_unicode())]
    Invisible(char),
}

impl Name {
    /// `raw` without its surrounding spaces, if that is a name.
    ///
    /// # Errors
    /// [`NameError`] says what is wrong.
    ///
    /// ```
    /// use cartloop_core::name::{Name, NameError};
    /// assert_eq!(Name::parse("  Ann Lee \n").unwrap().as_str(), "Ann Lee");
    /// assert_eq!(Name::parse("   "), Err(NameError::Empty));
    /// assert_eq!(Name::parse("Ann\tLee"), Err(NameError::Invisible('\t')));
    /// ```
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if let Some(c) = name.chars().find(|&c| crate::text::is_invisible(c)) {
            return Err(NameError::Invisible(c));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            Name::parse("Mia M\u{fc}ller").unwrap().as_str(),
            "Mia M\u{fc}ller"
        );
        for bad in ["", "   ", "Ann\u{7}Lee", "Ann\tLee"] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        let longest = "x".repeat(MAX_NAME_CHARS);
        assert!(Name::parse(&longest).is_ok());
        let err = Name::parse(&format!("{longest}y")).unwrap_err();
        assert!(err.to_string().contains("at most 200"), "{err}");
        let err = Name::parse("a\u{0}b").unwrap_err();
        assert!(err.to_string().contains("\\u{0}"), "{err}");
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_names(raw in "\\PC{0,8}[ a-zA-Z\\t\\u{7}\\u{200b}]{0,4}") {
            let trimmed = raw.trim();
            let expected = !trimmed.is_empty()
                && trimmed.chars().count() <= MAX_NAME_CHARS
                && !trimmed.chars().any(crate::text::is_invisible);
            let parsed = Name::parse(&raw);
            prop_assert_eq!(parsed.is_ok(), expected);
            if let Ok(name) = parsed {
                prop_assert_eq!(Name::parse(name.as_str()), Ok(name.clone()));
            }
        }
    }
}
