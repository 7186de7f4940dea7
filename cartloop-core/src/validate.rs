//! Payload validation: length, character set and placeholders, checked before
//! anything is stored.
//!
//! Positions in errors are 0-based character indexes into the payload as written.
//!
//! The validator runs on every message written, so it is one pass over the bytes: a
//! 256-entry table per [`Charset`] marks the bytes that need a look (placeholder openers,
//! characters outside the set, non-ASCII), ordinary text is passed over sixteen bytes at a
//! time, and character positions are kept by counting the UTF-8 continuation bytes of the
//! non-ASCII characters it looks at. Nothing is allocated until the payload is valid.

use crate::template::{Field, MissingValue, Placeholder, RenderValues, Template};
use std::fmt;

/// The default longest payload, in characters: payloads must be shorter than 300.
pub const DEFAULT_MAX_CHARS: usize = 299;

/// The characters besides ASCII letters and digits that the default charset allows: the
/// original task's set plus `.`, `,` and newline, which its own sample messages use.
pub const DEFAULT_EXTRA_CHARS: &str = " \n{}$%_-\\/~@#^&*()!?.,";

/// The set of characters a payload may contain outside placeholders.
///
/// `<` and `>` are never in it: they are valid only as placeholder delimiters.
#[derive(Clone, PartialEq, Eq)]
pub struct Charset {
    ascii: [bool; 128],
    other: Vec<char>,
    /// By byte: 0 for an allowed ASCII character that cannot open a placeholder (so never
    /// `{` or `<`), which the validator passes over; 1 for a byte it must look at.
    look: [u8; 256],
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
            look: [1; 256],
        };
        for c in ('a'..='z').chain('A'..='Z').chain('0'..='9') {
            set.insert(c);
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
            self.look[c as usize] = u8::from(c == '{');
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

impl fmt::Debug for Charset {
    /// The allowed characters as one string, e.g. `Charset("!#$…xyz")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ascii = (0u8..128)
            .map(char::from)
            .filter(|&c| self.ascii[c as usize]);
        let all: String = ascii.chain(self.other.iter().copied()).collect();
        f.debug_tuple("Charset").field(&all).finish()
    }
}

impl Default for Charset {
    fn default() -> Self {
        Self::alphanumeric_plus(DEFAULT_EXTRA_CHARS)
    }
}

/// What a payload must satisfy. The defaults: 1 to 299 characters of the original API's
/// set, plus `.`, `,` and newline.
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
    /// Holds the payload as written, too.
    template: Template,
}

/// Placeholders a payload may have before the validator needs a second pass to record them
/// all: a buffer on the stack keeps validation free of allocation.
const INLINE_PLACEHOLDERS: usize = 8;

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
        if raw.is_empty() {
            return Err(ValidationError::Empty);
        }
        // A string has at most as many characters as bytes: count only when it could matter.
        if raw.len() > policy.max_chars {
            let length = raw.chars().count();
            if length > policy.max_chars {
                return Err(ValidationError::TooLong {
                    length,
                    max: policy.max_chars,
                });
            }
        }
        // Stops at the first byte of ordinary text; both are ASCII, so bytes are characters.
        if raw.bytes().all(|b| b == b' ' || b == b'\n') {
            return Err(ValidationError::Empty);
        }
        let charset = &policy.charset;
        let template = template(raw, &charset.look, Some(charset))?;
        Ok(Self { template })
    }

    /// A payload read back from storage: it was validated when it was written, so only its
    /// placeholder syntax is parsed (the character set and length in force today may differ
    /// from those it was written under).
    ///
    /// # Errors
    /// A placeholder error: the stored text was not written through [`Payload::parse`].
    pub fn stored(raw: &str) -> Result<Self, ValidationError> {
        Ok(Self {
            template: template(raw, &STORED_LOOK, None)?,
        })
    }

    /// Text that is never rendered, kept as it is: a client's reply received by email
    ///, which is not held to the payload rules.
    pub fn text(raw: &str) -> Self {
        Self {
            template: Template::literal(raw),
        }
    }

    /// The payload as written.
    pub fn as_str(&self) -> &str {
        self.template.as_str()
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
        // As in `parse`: no more characters than bytes, so count only when it could matter.
        if text.len() > policy.max_chars {
            let length = text.chars().count();
            if length > policy.max_chars {
                return Err(ValidationError::RenderedTooLong {
                    length,
                    max: policy.max_chars,
                });
            }
        }
        Ok(text)
    }

    /// The payload as written, taken out.
    pub fn into_string(self) -> String {
        self.template.into_string()
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// [`Payload::stored`]'s byte table: with no charset every ASCII character is text, except
/// `<` and `{`, which may open a placeholder. Non-ASCII bytes get a second look only so that
/// positions count characters.
static STORED_LOOK: [u8; 256] = {
    let mut look = [1; 256];
    let mut b = 0;
    while b < 128 {
        look[b] = (b == b'<' as usize || b == b'{' as usize) as u8;
        b += 1;
    }
    look
};

/// Checks `raw` and builds its template, allocating only once it is known to be valid.
/// `look` and `charset` are as in [`scan`].
fn template(
    raw: &str,
    look: &[u8; 256],
    charset: Option<&Charset>,
) -> Result<Template, ValidationError> {
    let mut inline = [Placeholder::UNSET; INLINE_PLACEHOLDERS];
    let count = scan(raw, look, charset, &mut inline)?;
    let placeholders = if count <= INLINE_PLACEHOLDERS {
        inline[..count].to_vec()
    } else {
        // Rare (a payload of 299 characters holds at most 24): the text is valid, so a
        // second pass into a buffer of the right size cannot fail.
        let mut all = vec![Placeholder::UNSET; count];
        scan(raw, look, charset, &mut all)?;
        all
    };
    Ok(Template::from_parts(raw.to_owned(), placeholders))
}

/// The one scanner behind [`Payload::parse`] and [`Payload::stored`]: with a charset, every
/// character outside a placeholder must be in it, and `<`/`>` are only delimiters.
///
/// `look` says, by byte, which bytes need a look (see [`Charset`]'s table): each is looked
/// at as the character it starts; the others are text that is passed over. The
/// placeholders found are written to `found` in order, as far as it has room; returns how
/// many there are.
fn scan(
    raw: &str,
    look: &[u8; 256],
    charset: Option<&Charset>,
    found: &mut [Placeholder],
) -> Result<usize, ValidationError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    // UTF-8 continuation bytes before `i`: the character index of byte `i` is `i - extra`.
    let mut extra = 0;
    let mut count = 0;
    loop {
        i = skip_text(bytes, i, look);
        let Some(&b) = bytes.get(i) else {
            return Ok(count);
        };
        let closer = match (b, bytes.get(i + 1)) {
            (b'<', Some(b'<')) => Some(b'>'),
            (b'{', Some(b'{')) => Some(b'}'),
            _ => None,
        };
        if let Some(closer) = closer {
            let (field, end) = placeholder(raw, i, i - extra, closer)?;
            if let Some(slot) = found.get_mut(count) {
                *slot = Placeholder {
                    field,
                    start: i,
                    end,
                    position: i - extra,
                };
            }
            count += 1;
            i = end;
            continue;
        }
        // `i` is on a character boundary: it only ever moves by whole characters.
        let Some(c) = raw.get(i..).and_then(|rest| rest.chars().next()) else {
            return Ok(count);
        };
        if let Some(charset) = charset {
            if c == '<' || c == '>' || !charset.contains(c) {
                return Err(ValidationError::InvalidCharacter {
                    character: c,
                    position: i - extra,
                });
            }
        }
        extra += c.len_utf8() - 1;
        i += c.len_utf8();
    }
}

/// The index of the first byte from `i` on that `look` flags, or `bytes.len()`.
///
/// Sixteen bytes at a time, OR-ing their flags with no branch inside a block, so the common
/// case (runs of ordinary text) is a short loop of independent table loads.
#[inline]
fn skip_text(bytes: &[u8], mut i: usize, look: &[u8; 256]) -> usize {
    const BLOCK: usize = 16;
    while let Some(block) = bytes.get(i..).and_then(|rest| rest.first_chunk::<BLOCK>()) {
        if block.iter().fold(0, |any, &b| any | look[usize::from(b)]) != 0 {
            break;
        }
        i += BLOCK;
    }
    while bytes.get(i).is_some_and(|&b| look[usize::from(b)] == 0) {
        i += 1;
    }
    i
}

/// By byte: whether it may stand in a placeholder name (ASCII letters, digits, `_`, `.`).
static NAME_BYTES: [bool; 256] = {
    let mut name = [false; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        name[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
        b += 1;
    }
    name
};

fn is_name_byte(b: u8) -> bool {
    NAME_BYTES[usize::from(b)]
}

/// Parses the placeholder whose opening delimiter is at byte `start` (character index
/// `position`); returns its field and the byte index after it.
///
/// Delimiters, spaces and name characters are all ASCII, so from `start` up to where the
/// parse stops, byte and character offsets are the same.
fn placeholder(
    raw: &str,
    start: usize,
    position: usize,
    closer: u8,
) -> Result<(Field, usize), ValidationError> {
    let bytes = raw.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut i = start + 2;
    while at(i) == Some(b' ') {
        i += 1;
    }
    let name_start = i;
    while at(i).is_some_and(is_name_byte) {
        i += 1;
    }
    let name_end = i;
    while at(i) == Some(b' ') {
        i += 1;
    }
    let closed = at(i) == Some(closer) && at(i + 1) == Some(closer);
    if !closed {
        // A UTF-8 multi-byte character has no ASCII byte, so a byte pair is a character pair.
        let closes_later = bytes[i..].windows(2).any(|w| w == [closer, closer]);
        let character = raw.get(i..).and_then(|rest| rest.chars().next());
        return Err(match character {
            Some(character) if closes_later => ValidationError::InvalidPlaceholder {
                character,
                position: position + (i - start),
            },
            _ => ValidationError::UnclosedPlaceholder { position },
        });
    }
    if name_start == name_end {
        return Err(ValidationError::EmptyPlaceholder { position });
    }
    // The name is ASCII, so the slice is on character boundaries.
    let name = &raw[name_start..name_end];
    match Field::from_name(name) {
        Some(field) => Ok((field, i + 2)),
        None => Err(ValidationError::UnknownPlaceholder {
            name: name.to_owned(),
            position,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Segment;
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

    /// What a template is, owned, so the scanner and the reference can be compared.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Piece {
        Text(String),
        Field(Field, usize),
    }

    fn pieces(template: &Template) -> Vec<Piece> {
        template
            .segments()
            .map(|s| match s {
                Segment::Text(text) => Piece::Text(text.to_owned()),
                Segment::Field { field, position } => Piece::Field(field, position),
            })
            .collect()
    }

    /// The validator as first written, one `char` at a time, kept as the specification the
    /// byte scanner must agree with.
    mod reference {
        use super::super::{Charset, ValidationError, ValidationPolicy};
        use super::Piece;
        use crate::template::Field;

        pub fn parse(raw: &str, policy: &ValidationPolicy) -> Result<Vec<Piece>, ValidationError> {
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
            scan(raw, Some(&policy.charset))
        }

        pub fn scan(raw: &str, charset: Option<&Charset>) -> Result<Vec<Piece>, ValidationError> {
            let chars: Vec<char> = raw.chars().collect();
            let mut pieces = Vec::new();
            let mut text = String::new();
            let mut i = 0;
            while i < chars.len() {
                let c = chars[i];
                let closer = match (c, chars.get(i + 1).copied()) {
                    ('<', Some('<')) => Some('>'),
                    ('{', Some('{')) => Some('}'),
                    _ => None,
                };
                if let Some(closer) = closer {
                    let (field, end) = placeholder(&chars, i, closer)?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(field, i));
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
                pieces.push(Piece::Text(text));
            }
            Ok(pieces)
        }

        fn placeholder(
            chars: &[char],
            start: usize,
            closer: char,
        ) -> Result<(Field, usize), ValidationError> {
            let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
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
            if !(at(i) == Some(closer) && at(i + 1) == Some(closer)) {
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

        /// What the template renders to, by the same rule as `Template::render`.
        pub fn render(
            pieces: &[Piece],
            discount_code: Option<&str>,
        ) -> Result<String, (Field, usize)> {
            let mut out = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Field(Field::Username, _) => out.push_str("Ann"),
                    Piece::Field(Field::Operator, _) => out.push_str("Bob"),
                    Piece::Field(Field::DiscountCode, at) => match discount_code {
                        Some(code) if !code.is_empty() => out.push_str(code),
                        _ => return Err((Field::DiscountCode, *at)),
                    },
                }
            }
            Ok(out)
        }
    }

    /// Payloads built from the pieces that matter to the scanner: both delimiter styles,
    /// halves of them, names known and unknown, spaces, characters outside the default set
    /// (ASCII and not, one to four UTF-8 bytes) and plain text.
    fn tricky_payload() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("<<".to_owned()),
            Just(">>".to_owned()),
            Just("{{".to_owned()),
            Just("}}".to_owned()),
            Just("<".to_owned()),
            Just(">".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("username".to_owned()),
            Just("discountCode".to_owned()),
            Just("operator".to_owned()),
            Just("operator.Name".to_owned()),
            Just("coupon".to_owned()),
            Just("\u{e9}".to_owned()),
            Just("\u{20ac}".to_owned()),
            Just("\u{1F600}".to_owned()),
            Just("'".to_owned()),
            Just("\t".to_owned()),
            "[a-zA-Z0-9_.,!-]{1,20}",
            "\\PC{1,3}",
        ];
        prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
    }

    /// The default policy, one that allows some non-ASCII characters (so text after them
    /// is accepted and placeholder positions must count characters), one that does not
    /// allow `{` and a short one.
    fn policies() -> Vec<ValidationPolicy> {
        vec![
            ValidationPolicy::default(),
            ValidationPolicy {
                max_chars: 299,
                charset: Charset::alphanumeric_plus(" \n{}'\t\u{e9}\u{20ac}\u{1F600}"),
            },
            ValidationPolicy {
                max_chars: 299,
                charset: Charset::alphanumeric_plus(" \n}"),
            },
            ValidationPolicy {
                max_chars: 12,
                ..Default::default()
            },
        ]
    }

    /// The payload's text and pieces, or the error, for comparison with the reference.
    fn taken_apart(
        payload: Result<Payload, ValidationError>,
    ) -> Result<(String, Vec<Piece>), ValidationError> {
        payload.map(|p| (p.as_str().to_owned(), pieces(p.template())))
    }

    fn agrees_with_reference(s: &str) -> Result<(), TestCaseError> {
        for policy in policies() {
            let expected = reference::parse(s, &policy).map(|pieces| (s.to_owned(), pieces));
            prop_assert_eq!(
                taken_apart(Payload::parse(s, &policy)),
                expected,
                "{:?} under {:?}",
                s,
                policy
            );
        }
        let stored = Payload::stored(s);
        let expected = reference::scan(s, None);
        prop_assert_eq!(
            taken_apart(stored.clone()),
            expected.clone().map(|pieces| (s.to_owned(), pieces))
        );
        if let (Ok(payload), Ok(expected)) = (stored, expected) {
            for code in [None, Some(""), Some("PROMO50")] {
                let values = RenderValues {
                    username: "Ann",
                    discount_code: code,
                    operator: "Bob",
                };
                let got = payload
                    .template()
                    .render(&values)
                    .map_err(|e| (e.field, e.position));
                prop_assert_eq!(got, reference::render(&expected, code));
            }
        }
        Ok(())
    }

    #[test]
    fn scanner_agrees_with_reference_on_edge_cases() {
        for s in [
            "",
            " ",
            "\n \n",
            "<",
            "<<",
            "<<<",
            "<<<<>>>>",
            "<<username>>>",
            "{{{username}}}",
            "{{ username >> }}",
            "<< username }} >>",
            "\u{e9}<<username>>",
            "\u{e9}<<usern\u{e9}ame>>",
            "\u{e9}\u{1F600} {{ coupon }}",
            "\u{e9} <<  >>",
            "\u{1F600}<<username",
            "a { b } c",
            "{{username}}{{discountCode}}<<operator>><<operator.Name>>",
            &"<<username>>".repeat(30),
            &"\u{e9}{{operator}}".repeat(9),
            &format!("{}\u{e9}", "a".repeat(298)),
            &"abcdefghijklmnopqrstuvwxyz".repeat(12),
        ] {
            agrees_with_reference(s).unwrap();
        }
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
            // Only spaces and newlines is `empty_payload` (asserted above), not text.
            prop_assume!(!s.bytes().all(|b| b == b' ' || b == b'\n'));
            let payload = parse(&s).unwrap();
            let values = RenderValues { username: "u", discount_code: None, operator: "o" };
            prop_assert_eq!(payload.template().render(&values).unwrap(), s);
        }

        #[test]
        fn scanner_agrees_with_reference_on_any_string(s in any::<String>()) {
            agrees_with_reference(&s)?;
        }

        #[test]
        fn scanner_agrees_with_reference_near_delimiters(s in tricky_payload()) {
            agrees_with_reference(&s)?;
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
