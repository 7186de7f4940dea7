//! Templates: a payload parsed once into text and placeholder segments, rendered per conversation.
//!
//! Placeholders are written `<< name >>` or, for compatibility with the original API,
//! `{{ name }}`; any number of spaces may stand inside the delimiters. The names are
//! `username` (the client's name), `discountCode` (the conversation's code) and `operator`
//! (the operator's name; `operator.Name` is the same).

use crate::validate::{Charset, ValidationError};
use std::fmt;

/// A value a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `username`: the client's name.
    Username,
    /// `discountCode`: the conversation's discount code.
    DiscountCode,
    /// `operator` or `operator.Name`: the operator's name.
    Operator,
}

impl Field {
    /// The field a placeholder name refers to, if it is a known name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "username" => Some(Self::Username),
            "discountCode" => Some(Self::DiscountCode),
            "operator" | "operator.Name" => Some(Self::Operator),
            _ => None,
        }
    }

    /// The canonical placeholder name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::DiscountCode => "discountCode",
            Self::Operator => "operator",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Literal text, copied as is.
    Text(String),
    /// A placeholder, with the character position of its opening delimiter.
    Field {
        /// What it stands for.
        field: Field,
        /// 0-based character index of the opening `<<` or `{{`.
        position: usize,
    },
}

/// The values placeholders take for one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderValues<'a> {
    /// The client's name.
    pub username: &'a str,
    /// The conversation's discount code, if it has one.
    pub discount_code: Option<&'a str>,
    /// The operator's name.
    pub operator: &'a str,
}

/// A parsed template. Once it exists its placeholder syntax is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses placeholder syntax only, accepting any other character.
    ///
    /// This is how a stored payload, validated when it was written, is read back for
    /// rendering. New payloads go through [`crate::validate::Payload::parse`].
    ///
    /// # Errors
    /// An unclosed, empty, malformed or unknown placeholder.
    ///
    /// ```
    /// use cartloop_core::template::{RenderValues, Template};
    /// let t = Template::parse("Hi {{username}}").unwrap();
    /// let values = RenderValues { username: "Ann", discount_code: None, operator: "Bo" };
    /// assert_eq!(t.render(&values).unwrap(), "Hi Ann");
    /// ```
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        scan(raw, None)
    }

    pub(crate) fn parse_with(raw: &str, charset: &Charset) -> Result<Self, ValidationError> {
        scan(raw, Some(charset))
    }

    /// The template's segments in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The fields the template uses, in order of appearance (with repeats).
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Field { field, .. } => Some(*field),
            Segment::Text(_) => None,
        })
    }

    /// Renders the template with `values`.
    ///
    /// # Errors
    /// [`ValidationError::MissingValue`] when a placeholder's value is absent (a
    /// `discountCode` in a conversation without one).
    pub fn render(&self, values: &RenderValues<'_>) -> Result<String, ValidationError> {
        let mut out = String::with_capacity(self.segments.iter().map(segment_len).sum());
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Field { field, position } => {
                    let value = match field {
                        Field::Username => Some(values.username),
                        Field::Operator => Some(values.operator),
                        Field::DiscountCode => values.discount_code.filter(|c| !c.is_empty()),
                    };
                    match value {
                        Some(value) => out.push_str(value),
                        None => {
                            return Err(ValidationError::MissingValue {
                                name: field.name().to_owned(),
                                position: *position,
                            })
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn segment_len(segment: &Segment) -> usize {
    match segment {
        Segment::Text(text) => text.len(),
        Segment::Field { .. } => 16,
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// The one scanner behind [`Template::parse`] and payload validation: with a charset, every
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
    Ok(Template { segments })
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

    const VALUES: RenderValues<'static> = RenderValues {
        username: "Ann",
        discount_code: Some("PROMO50"),
        operator: "Bob",
    };

    #[test]
    fn renders_both_delimiter_styles_and_spacing() {
        for raw in [
            "Sure {{ username }}, code {{ discountCode }} from {{operator}}",
            "Sure <<username>>, code <<  discountCode  >> from << operator.Name >>",
        ] {
            let t = Template::parse(raw).unwrap();
            assert_eq!(
                t.render(&VALUES).unwrap(),
                "Sure Ann, code PROMO50 from Bob"
            );
        }
    }

    #[test]
    fn missing_discount_code_is_an_error_naming_it() {
        let t = Template::parse("code: <<discountCode>>").unwrap();
        let values = RenderValues {
            discount_code: None,
            ..VALUES
        };
        let err = t.render(&values).unwrap_err();
        assert_eq!(
            err,
            ValidationError::MissingValue {
                name: "discountCode".into(),
                position: 6
            }
        );
        let empty = RenderValues {
            discount_code: Some(""),
            ..VALUES
        };
        assert_eq!(err, t.render(&empty).unwrap_err());
    }

    #[test]
    fn syntax_errors_carry_positions() {
        assert_eq!(
            Template::parse("hi << username").unwrap_err(),
            ValidationError::UnclosedPlaceholder { position: 3 }
        );
        assert_eq!(
            Template::parse("hi {{ username >>").unwrap_err(),
            ValidationError::UnclosedPlaceholder { position: 3 }
        );
        assert_eq!(
            Template::parse("<< user name >>").unwrap_err(),
            ValidationError::InvalidPlaceholder {
                character: 'n',
                position: 8
            }
        );
        assert_eq!(
            Template::parse("x <<  >>").unwrap_err(),
            ValidationError::EmptyPlaceholder { position: 2 }
        );
        assert_eq!(
            Template::parse("x {{ coupon }}").unwrap_err(),
            ValidationError::UnknownPlaceholder {
                name: "coupon".into(),
                position: 2
            }
        );
    }

    #[test]
    fn segments_keep_text_between_fields() {
        let t = Template::parse("a{{username}}b<<operator>>").unwrap();
        assert_eq!(
            t.segments(),
            &[
                Segment::Text("a".into()),
                Segment::Field {
                    field: Field::Username,
                    position: 1
                },
                Segment::Text("b".into()),
                Segment::Field {
                    field: Field::Operator,
                    position: 14
                },
            ]
        );
        assert_eq!(
            t.fields().collect::<Vec<_>>(),
            vec![Field::Username, Field::Operator]
        );
    }

    proptest! {
        #[test]
        fn text_without_placeholders_renders_to_itself(s in "[^<{]*") {
            let t = Template::parse(&s).unwrap();
            prop_assert_eq!(t.render(&VALUES).unwrap(), s);
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Template::parse(&s);
        }

        #[test]
        fn rendering_substitutes_every_field(name in "[A-Za-z ]{0,20}", pre in "[a-z ]{0,10}", post in "[a-z ]{0,10}") {
            let values = RenderValues { username: &name, ..VALUES };
            let t = Template::parse(&format!("{pre}<<username>>{post}")).unwrap();
            prop_assert_eq!(t.render(&values).unwrap(), format!("{pre}{name}{post}"));
        }
    }
}
