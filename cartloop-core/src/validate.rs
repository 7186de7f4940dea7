//! Payload validation (SPEC §3): length, character set and placeholders, checked before
//! anything is stored.
//!
//! Positions in errors are 0-based character indexes into the payload as written.

use crate::template::{Field, MissingValue, RenderValues, Segment, Template};
use std::fmt;

/// The default longest payload, in characters: payloads must be shorter than 300.
pub const DEFAULT_MAX_CHARS: usize = 299;

/// The characters besides ASCII letters and digits that the default charset allows: the
/// original task's set plus `.`, `,` and newline, which its own sample messages use.
pub const DEFAULT_EXTRA_CHARS: &str = " \n{}$%_-\\/~@#^&*()!?.,";

/// The set of characters a payload may contain outside placeholders.
///
/// `<` and `>` are never in it: they are valid only as placeholder delimiters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charset {
    ascii: [bool; 128],
    other: Vec<char>,
}

impl Charset {
    /// ASCII letters and digits plus `extra`.
    ///
    /// ```
    /// use cartloop_core::validate::Charset;
    /// let set = Charset::alphanumeric_plus(" .");
    /// assert!(set.contains('a') && set.contains('.') && !set.contains('!'));
    /// ```
    pub fn alphanumeric_plus(extra: &str) -> Self {
        let mut set = Self {
            ascii: [false; 128],
            other: Vec::new(),
        };
        for c in ('a'..='z').chain('A'..='Z').chain('0'..='9') {
            set.ascii[c as usize] = true;
        }
        for c in extra.chars() {
            set.insert(c);
        }
        set
    }

    fn insert(&mut self, c: char) {
        if c == '<' || c == '>' {
            return;
        }
        if c.is_ascii() {
            self.ascii[c as usize] = true;
        } else if !self.other.contains(&c) {
            self.other.push(c);
        }
    }

    /// Whether `c` may stand outside a placeholder.
    pub fn contains(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii[c as usize]
        } else {
            self.other.contains(&c)
        }
    }
}

impl Default for Charset {
    fn default() -> Self {
        Self::alphanumeric_plus(DEFAULT_EXTRA_CHARS)
    }
}

/// What a payload must satisfy. The defaults are SPEC §3's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationPolicy {
    /// Longest payload, and longest rendered text, in characters.
    pub max_chars: usize,
    /// Characters allowed outside placeholders.
    pub charset: Charset,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        Self {
            max_chars: DEFAULT_MAX_CHARS,
            charset: Charset::default(),
        }
    }
}

/// Why a payload was rejected. Each variant has a stable [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The payload has no characters.
    #[error("payload is empty")]
    Empty,
    /// The payload is too long.
    #[error("payload is {length} characters long; it must be shorter than {}", max + 1)]
    TooLong {
        /// Its length in characters.
        length: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("invalid character {} at position {position}", quote(*character))]
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its 0-based character index.
        position: usize,
    },
    /// `<<` or `{{` without its closing delimiter.
    #[error("unclosed placeholder at position {position}")]
    UnclosedPlaceholder {
        /// Where the opening delimiter stands.
        position: usize,
    },
    /// `<< >>` with no name.
    #[error("empty placeholder at position {position}")]
    EmptyPlaceholder {
        /// Where the opening delimiter stands.
        position: usize,
    },
    /// A character that cannot stand inside a placeholder.
    #[error("invalid character {} inside placeholder at position {position}", quote(*character))]
    InvalidPlaceholder {
        /// The character.
        character: char,
        /// Its 0-based character index.
        position: usize,
    },
    /// A placeholder name that is not `username`, `discountCode` or `operator`.
    #[error("unknown placeholder '{name}' at position {position}; known: username, discountCode, operator")]
    UnknownPlaceholder {
        /// The name as written.
        name: String,
        /// Where the opening delimiter stands.
        position: usize,
    },
    /// A placeholder whose value this conversation lacks.
    #[error("placeholder '{name}' at position {position} has no value in this conversation")]
    MissingValue {
        /// The placeholder's name.
        name: String,
        /// Where the opening delimiter stands.
        position: usize,
    },
    /// The text rendered for the client is too long.
    #[error("rendered message is {length} characters long; it must be shorter than {}", max + 1)]
    RenderedTooLong {
        /// The rendered length in characters.
        length: usize,
        /// The longest allowed.
        max: usize,
    },
}

impl From<MissingValue> for ValidationError {
    fn from(e: MissingValue) -> Self {
        Self::MissingValue {
            name: e.field.name().to_owned(),
            position: e.position,
        }
    }
}

/// `c` as an error message shows it: in single quotes (`'é'`), a `'` in double quotes, and
/// characters that would not show (controls, spacing other than a plain space, invisible
/// format characters) escaped: `'\t'`, `'\u{a0}'`.
fn quote(c: char) -> String {
    let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}');
    if c == '\'' {
        "\"'\"".to_owned()
    } else if c.is_ascii_control() {
        format!("'{}'", c.escape_debug())
    } else if c.is_control() || (c.is_whitespace() && c != ' ') || invisible {
        format!("'{}'", c.escape_unicode())
    } else {
        format!("'{c}'")
    }
}

impl ValidationError {
    /// A stable, machine-readable code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_payload",
            Self::TooLong { .. } => "payload_too_long",
            Self::InvalidCharacter { .. } => "invalid_character",
            Self::UnclosedPlaceholder { .. } => "unclosed_placeholder",
            Self::EmptyPlaceholder { .. } => "empty_placeholder",
            Self::InvalidPlaceholder { .. } => "invalid_placeholder",
            Self::UnknownPlaceholder { .. } => "unknown_placeholder",
            Self::MissingValue { .. } => "missing_value",
            Self::RenderedTooLong { .. } => "rendered_too_long",
        }
    }

    /// The 0-based character index the error points at, if it points at one.
    pub const fn position(&self) -> Option<usize> {
        match self {
            Self::Empty | Self::TooLong { .. } | Self::RenderedTooLong { .. } => None,
            Self::InvalidCharacter { position, .. }
            | Self::UnclosedPlaceholder { position }
            | Self::EmptyPlaceholder { position }
            | Self::InvalidPlaceholder { position, .. }
            | Self::UnknownPlaceholder { position, .. }
            | Self::MissingValue { position, .. } => Some(*position),
        }
    }
}

/// A payload that passed validation: its length and characters are valid and its template
/// is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    raw: String,
    template: Template,
}

impl Payload {
    /// Validates `raw` against `policy`.
    ///
    /// # Errors
    /// The first problem found, length first, then characters and placeholders from left to
    /// right.
    ///
    /// ```
    /// use cartloop_core::validate::{Payload, ValidationPolicy};
    /// let policy = ValidationPolicy::default();
    /// assert!(Payload::parse("Sure << username >>, here is your code << discountCode >>", &policy).is_ok());
    /// let err = Payload::parse("Merci, c'est ça", &policy).unwrap_err();
    /// assert_eq!(err.code(), "invalid_character");
    /// assert_eq!(err.to_string(), "invalid character \"'\" at position 8");
    /// ```
    pub fn parse(raw: &str, policy: &ValidationPolicy) -> Result<Self, ValidationError> {
        let length = raw.chars().count();
        if length == 0 {
            return Err(ValidationError::Empty);
        }
        if length > policy.max_chars {
            return Err(ValidationError::TooLong {
                length,
                max: policy.max_chars,
            });
        }
        if raw.chars().all(|c| c == ' ' || c == '\n') {
            return Err(ValidationError::Empty);
        }
        let template = scan(raw, Some(&policy.charset))?;
        Ok(Self {
            raw: raw.to_owned(),
            template,
        })
    }

    /// A payload read back from storage: it was validated when it was written, so only its
    /// placeholder syntax is parsed (the character set and length in force today may differ
    /// from those it was written under).
    ///
    /// # Errors
    /// A placeholder error: the stored text was not written through [`Payload::parse`].
    pub fn stored(raw: &str) -> Result<Self, ValidationError> {
        Ok(Self {
            raw: raw.to_owned(),
            template: scan(raw, None)?,
        })
    }

    /// Text that is never rendered, kept as it is: a client's reply received by email
    /// (SPEC §8), which is not held to the payload rules.
    pub fn text(raw: &str) -> Self {
        Self {
            raw: raw.to_owned(),
            template: Template::literal(raw),
        }
    }

    /// The payload as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Renders the payload for a conversation.
    ///
    /// # Errors
    /// [`ValidationError::MissingValue`].
    pub fn render(&self, values: &RenderValues<'_>) -> Result<String, ValidationError> {
        Ok(self.template.render(values)?)
    }

    /// Renders the payload for a conversation and checks the rendered length.
    ///
    /// # Errors
    /// [`ValidationError::MissingValue`] or [`ValidationError::RenderedTooLong`].
    pub fn render_checked(
        &self,
        values: &RenderValues<'_>,
        policy: &ValidationPolicy,
    ) -> Result<String, ValidationError> {
        let text = self.render(values)?;
        let length = text.chars().count();
        if length > policy.max_chars {
            return Err(ValidationError::RenderedTooLong {
                length,
                max: policy.max_chars,
            });
        }
        Ok(text)
    }

    /// The payload as written, taken out.
    pub fn into_string(self) -> String {
        self.raw
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// The one scanner behind [`Payload::parse`] and [`Payload::stored`]: with a charset, every
/// character outside a placeholder must be in it, and `<`/`>` are only delimiters.
fn scan(raw: &str, charset: Option<&Charset>) -> Result<Template, ValidationError> {
    let chars: Vec<char> = raw.chars().collect();
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let closer = match (c, next) {
            ('<', Some('<')) => Some('>'),
            ('{', Some('{')) => Some('}'),
            _ => None,
        };
        if let Some(closer) = closer {
            let (field, end) = placeholder(&chars, i, closer)?;
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text)));
            }
            segments.push(Segment::Field { field, position: i });
            i = end;
            continue;
        }
        if let Some(charset) = charset {
            if c == '<' || c == '>' || !charset.contains(c) {
                return Err(ValidationError::InvalidCharacter {
                    character: c,
                    position: i,
                });
            }
        }
        text.push(c);
        i += 1;
    }
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    Ok(Template::from_segments(segments))
}

/// Parses the placeholder opening at `start`; returns its field and the index after it.
fn placeholder(
    chars: &[char],
    start: usize,
    closer: char,
) -> Result<(Field, usize), ValidationError> {
    let at = |i: usize| chars.get(i).copied();
    let mut i = start + 2;
    while at(i) == Some(' ') {
        i += 1;
    }
    let name_start = i;
    while at(i).is_some_and(is_name_char) {
        i += 1;
    }
    let name_end = i;
    while at(i) == Some(' ') {
        i += 1;
    }
    let closed = at(i) == Some(closer) && at(i + 1) == Some(closer);
    if !closed {
        let closes_later = chars[i..].windows(2).any(|w| w == [closer, closer]);
        return Err(match at(i) {
            Some(character) if closes_later => ValidationError::InvalidPlaceholder {
                character,
                position: i,
            },
            _ => ValidationError::UnclosedPlaceholder { position: start },
        });
    }
    if name_start == name_end {
        return Err(ValidationError::EmptyPlaceholder { position: start });
    }
    let name: String = chars[name_start..name_end].iter().collect();
    match Field::from_name(&name) {
        Some(field) => Ok((field, i + 2)),
        None => Err(ValidationError::UnknownPlaceholder {
            name,
            position: start,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(raw: &str) -> Result<Payload, ValidationError> {
        Payload::parse(raw, &ValidationPolicy::default())
    }

    fn code(raw: &str) -> &'static str {
        parse(raw).unwrap_err().code()
    }

    #[test]
    fn length_limit_is_shorter_than_300_characters() {
        assert!(parse(&"a".repeat(299)).is_ok());
        assert_eq!(
            parse(&"a".repeat(300)).unwrap_err(),
            ValidationError::TooLong {
                length: 300,
                max: 299
            }
        );
        assert_eq!(code(""), "empty_payload");
        assert_eq!(code(" "), "empty_payload");
        assert_eq!(code("  \n \n"), "empty_payload");
        assert!(parse("a").is_ok());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let policy = ValidationPolicy {
            max_chars: 299,
            charset: Charset::alphanumeric_plus("é"),
        };
        assert!(Payload::parse(&"é".repeat(299), &policy).is_ok());
        assert_eq!(
            Payload::parse(&"é".repeat(300), &policy)
                .unwrap_err()
                .code(),
            "payload_too_long"
        );
    }

    #[test]
    fn configured_limit_applies() {
        let policy = ValidationPolicy {
            max_chars: 10,
            ..Default::default()
        };
        assert!(Payload::parse("0123456789", &policy).is_ok());
        assert_eq!(
            Payload::parse("0123456789a", &policy).unwrap_err().code(),
            "payload_too_long"
        );
    }

    #[test]
    fn every_allowed_character_passes() {
        let all: String = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(DEFAULT_EXTRA_CHARS.chars())
            .collect();
        assert!(parse(&all).is_ok(), "{:?}", parse(&all));
        assert!(parse("Hello, how are you?\nFine.").is_ok());
    }

    #[test]
    fn forbidden_character_classes_are_rejected_with_position() {
        for (raw, character, position) in [
            ("tab\there", '\t', 3),
            ("it's", '\'', 2),
            ("caf\u{e9}", '\u{e9}', 3),
            ("hi \u{1F600}", '\u{1F600}', 3),
            ("nul\u{0}", '\u{0}', 3),
            ("cr\r\n", '\r', 2),
            ("quote \"x\"", '"', 6),
            ("a+b", '+', 1),
            ("a=b", '=', 1),
            ("semi;", ';', 4),
            ("colon:", ':', 5),
            ("back`tick", '`', 4),
            ("pipe|", '|', 4),
            ("[x]", '[', 0),
            ("a < b", '<', 2),
            ("a > b", '>', 2),
            ("a >> b", '>', 2),
        ] {
            assert_eq!(
                parse(raw).unwrap_err(),
                ValidationError::InvalidCharacter {
                    character,
                    position
                },
                "{raw:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_and_where() {
        assert_eq!(
            parse("Thanks, caf\u{e9}").unwrap_err().to_string(),
            "invalid character '\u{e9}' at position 11"
        );
        assert_eq!(
            parse("a\tb").unwrap_err().to_string(),
            "invalid character '\\t' at position 1"
        );
        for (raw, shown) in [
            ("it's", "\"'\""),
            ("say \"hi\"", "'\"'"),
            ("a\u{0}", "'\\0'"),
            ("a\u{7f}", "'\\u{7f}'"),
            ("a\u{a0}b", "'\\u{a0}'"),
            ("a\u{200b}b", "'\\u{200b}'"),
            ("\u{1F600}", "'\u{1F600}'"),
        ] {
            let message = parse(raw).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("invalid character {shown} at position")),
                "{raw:?}: {message}"
            );
        }
        assert_eq!(
            parse("Hi {{ coupon }}").unwrap_err().to_string(),
            "unknown placeholder 'coupon' at position 3; known: username, discountCode, operator"
        );
    }

    #[test]
    fn placeholder_errors() {
        assert_eq!(code("Hi << username"), "unclosed_placeholder");
        assert_eq!(code("Hi {{ username"), "unclosed_placeholder");
        assert_eq!(code("Hi {{ username >>"), "unclosed_placeholder");
        assert_eq!(code("Hi << username }}"), "unclosed_placeholder");
        assert_eq!(code("Hi << name >>"), "unknown_placeholder");
        assert_eq!(code("Hi {{ Username }}"), "unknown_placeholder");
        assert_eq!(code("Hi <<>>"), "empty_placeholder");
        assert_eq!(code("Hi << user-name >>"), "invalid_placeholder");
        assert_eq!(parse("Hi {{ discountCode").unwrap_err().position(), Some(3));
    }

    #[test]
    fn placeholders_in_both_forms_with_any_spacing() {
        for raw in [
            "Sure << username >>, here is your code << discountCode >>",
            "Sure {{ username }}. Here is your code {{ discountCode }}",
            "{{username}}{{discountCode}}<<operator>><<operator.Name>>",
            "<<  username  >> {{   operator.Name }}",
        ] {
            assert!(parse(raw).is_ok(), "{raw}");
        }
        assert!(parse("single { and } braces").is_ok());
    }

    #[test]
    fn rendered_length_is_checked() {
        let policy = ValidationPolicy::default();
        let payload = parse(&format!("{}<<username>>", "a".repeat(280))).unwrap();
        let long_name = "b".repeat(20);
        let values = RenderValues {
            username: &long_name,
            discount_code: None,
            operator: "op",
        };
        assert_eq!(
            payload.render_checked(&values, &policy).unwrap_err(),
            ValidationError::RenderedTooLong {
                length: 300,
                max: 299
            }
        );
        let shorter = "b".repeat(19);
        let values = RenderValues {
            username: &shorter,
            ..values
        };
        assert_eq!(payload.render_checked(&values, &policy).unwrap().len(), 299);
    }

    proptest! {
        #[test]
        fn validation_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn validation_never_panics_near_delimiters(s in "[<>{} a-z.]{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn allowed_text_is_accepted_and_renders_to_itself(s in "[a-zA-Z0-9 \n}$%_\\-\\\\/~@#^&*()!?.,]{1,299}") {
            let payload = parse(&s).unwrap();
            let values = RenderValues { username: "u", discount_code: None, operator: "o" };
            prop_assert_eq!(payload.template().render(&values).unwrap(), s);
        }

        #[test]
        fn error_positions_point_inside_the_payload(s in "\\PC{0,60}") {
            if let Err(e) = parse(&s) {
                if let Some(p) = e.position() {
                    prop_assert!(p < s.chars().count());
                }
            }
        }
    }
}
