//! Display names — of stores, operators, clients and operator groups — checked once where
//! they enter (the API, stored rows, the demo data) and trusted after.

use std::fmt;
use std::ops::Deref;

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control or invisible
/// format characters ([`crate::text::is_invisible`]): names end up in email headers and in
/// the operators' console, where such characters would hide or reorder text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a string is not a [`Name`]. The messages complete a sentence that starts with the
/// field's name (`name: must not be empty`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but whitespace.
    #[error("must not be empty")]
    Empty,
    /// More than `max` characters once trimmed.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit, [`MAX_NAME_CHARS`].
        max: usize,
    },
    /// A control or invisible format character (the first one found).
    #[error("must not contain the control or invisible character {}", .character.escape_unicode())]
    InvisibleCharacter {
        /// The character.
        character: char,
    },
}

impl Name {
    /// Checks `raw`; surrounding whitespace is dropped.
    ///
    /// # Errors
    /// [`NameError`] saying which part of the rule `raw` breaks.
    ///
    /// ```
    /// use cartloop_core::name::{Name, NameError};
    /// assert_eq!(Name::parse("  Ann Lee \n").unwrap().as_str(), "Ann Lee");
    /// assert_eq!(Name::parse(" "), Err(NameError::Empty));
    /// assert_eq!(
    ///     Name::parse("Ann\u{202e}Lee").unwrap_err().to_string(),
    ///     "must not contain the control or invisible character \\u{202e}"
    /// );
    /// ```
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong {
                max: MAX_NAME_CHARS,
            });
        }
        if let Some(character) = name.chars().find(|&c| crate::text::is_invisible(c)) {
            return Err(NameError::InvisibleCharacter { character });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, taken out.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule, written independently of [`Name::parse`].
    fn follows_the_rule(raw: &str) -> bool {
        let trimmed = raw.trim();
        let count = trimmed.chars().count();
        (1..=MAX_NAME_CHARS).contains(&count)
            && trimmed.chars().all(|c| !c.is_control() && !is_format(c))
    }

    /// The invisible format characters `text::is_invisible` lists, by their code points.
    fn is_format(c: char) -> bool {
        let n = u32::from(c);
        (0x200b..=0x200f).contains(&n)
            || (0x2028..=0x202e).contains(&n)
            || (0x2060..=0x206f).contains(&n)
            || n == 0xfeff
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(Name::parse("  Ann Lee \n").unwrap(), "Ann Lee");
        assert_eq!(Name::parse("Mia M\u{fc}ller").unwrap(), "Mia M\u{fc}ller");
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse(" \t\n "), Err(NameError::Empty));
        for (bad, character) in [
            ("Ann\u{7}Lee", '\u{7}'),
            ("Ann\tLee", '\t'),
            ("a\u{0}b", '\u{0}'),
            ("\u{1b}[31m", '\u{1b}'),
            ("Ann\u{200b}", '\u{200b}'),
            ("x\u{feff}y", '\u{feff}'),
        ] {
            assert_eq!(
                Name::parse(bad),
                Err(NameError::InvisibleCharacter { character }),
                "{bad:?}"
            );
        }
        let longest = "\u{e9}".repeat(MAX_NAME_CHARS);
        assert_eq!(Name::parse(&longest).unwrap().chars().count(), 200);
        assert_eq!(
            Name::parse(&format!("{longest}y")),
            Err(NameError::TooLong { max: 200 })
        );
    }

    #[test]
    fn messages_finish_the_field_sentence() {
        let message = |raw: &str| Name::parse(raw).unwrap_err().to_string();
        assert_eq!(message(" "), "must not be empty");
        assert_eq!(message(&"x".repeat(201)), "must be at most 200 characters");
        assert_eq!(
            message("a\u{0}b"),
            "must not contain the control or invisible character \\u{0}"
        );
    }

    #[test]
    fn a_name_reads_as_its_text() {
        let name = Name::parse(" Dana ").unwrap();
        assert_eq!(name.len(), 4);
        assert_eq!(name.to_string(), "Dana");
        assert_eq!(AsRef::<str>::as_ref(&name), "Dana");
        assert!(name == *"Dana");
        assert_eq!(name.into_string(), "Dana");
    }

    proptest! {
        #[test]
        fn parses_exactly_what_follows_the_rule(
            raw in prop_oneof![
                "\\PC{0,8}",
                "[ a-z\u{e9}\t\n\u{0}\u{7f}\u{85}\u{200b}\u{202e}\u{2060}\u{feff}]{0,12}",
                "[a-z]{195,205}",
            ]
        ) {
            prop_assert_eq!(Name::parse(&raw).is_ok(), follows_the_rule(&raw), "{:?}", raw);
        }

        #[test]
        fn a_parsed_name_parses_to_itself(
            raw in "\\s{0,2}\\PC{1,30}\\s{0,2}".prop_filter("a name", |s| follows_the_rule(s))
        ) {
            let name = Name::parse(&raw).unwrap();
            prop_assert_eq!(Name::parse(name.as_str()), Ok(name.clone()));
            prop_assert_eq!(name.as_str(), raw.trim());
        }
    }
}
