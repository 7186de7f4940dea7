//! Templates: a payload parsed once into text and placeholder segments, rendered per conversation.
//!
//! Placeholders are written `<< name >>` or, for compatibility with the original API,
//! `{{ name }}`; any number of spaces may stand inside the delimiters. The names are
//! `username` (the client's name), `discountCode` (the conversation's code) and `operator`
//! (the operator's name; `operator.Name` is the same).

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

/// One piece of a parsed template, borrowed from it (see [`Template::segments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Literal text, copied as is; never empty.
    Text(&'a str),
    /// A placeholder, with the character position of its opening delimiter.
    Field {
        /// What it stands for.
        field: Field,
        /// 0-based character index of the opening `<<` or `{{`.
        position: usize,
    },
}

/// Where one placeholder stands in a template's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placeholder {
    /// What it stands for.
    pub(crate) field: Field,
    /// Byte range of the whole placeholder, delimiters included, in the template's text.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// 0-based character index of the opening delimiter: what errors report.
    pub(crate) position: usize,
}

impl Placeholder {
    /// A filler for buffers that are written before they are read.
    pub(crate) const UNSET: Self = Self {
        field: Field::Username,
        start: 0,
        end: 0,
        position: 0,
    };
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

/// A placeholder whose value the conversation lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("placeholder '{field}' at position {position} has no value in this conversation")]
pub struct MissingValue {
    /// The placeholder.
    pub field: Field,
    /// Where its opening delimiter stands (0-based character index).
    pub position: usize,
}

/// A parsed template. Once it exists its placeholder syntax is valid. Templates are built by
/// [`crate::validate::Payload`] (which checks a new payload) or as a [`literal`](Self::literal).
///
/// It owns its text and knows where each placeholder stands in it, so the text between
/// placeholders is never copied until it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    /// In order of appearance, not overlapping, each on character boundaries of `text`.
    placeholders: Vec<Placeholder>,
}

impl Template {
    /// A template of `text` with these placeholders; the scanner in [`crate::validate`]
    /// finds them.
    pub(crate) fn from_parts(text: String, placeholders: Vec<Placeholder>) -> Self {
        Self { text, placeholders }
    }

    /// A template that is all text: `text` renders to itself, whatever it contains.
    pub fn literal(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            placeholders: Vec::new(),
        }
    }

    /// The template as written, placeholders included.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The template taken apart: its text as written.
    pub(crate) fn into_string(self) -> String {
        self.text
    }

    /// The template's segments in order: text runs (never empty) and placeholders.
    ///
    /// ```
    /// use cartloop_core::template::{Field, Segment};
    /// use cartloop_core::validate::Payload;
    /// let payload = Payload::stored("Hi << username >>!").unwrap();
    /// let segments: Vec<_> = payload.template().segments().collect();
    /// assert_eq!(
    ///     segments,
    ///     [Segment::Text("Hi "), Segment::Field { field: Field::Username, position: 3 }, Segment::Text("!")]
    /// );
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> + '_ {
        let mut last = 0;
        let placeholders = self.placeholders.iter().flat_map(move |p| {
            let before = &self.text[last..p.start];
            last = p.end;
            let field = Segment::Field {
                field: p.field,
                position: p.position,
            };
            [
                (!before.is_empty()).then_some(Segment::Text(before)),
                Some(field),
            ]
        });
        let tail_start = self.placeholders.last().map_or(0, |p| p.end);
        let tail = &self.text[tail_start..];
        placeholders
            .chain([(!tail.is_empty()).then_some(Segment::Text(tail))])
            .flatten()
    }

    /// The fields the template uses, in order of appearance (with repeats).
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.placeholders.iter().map(|p| p.field)
    }

    /// Renders the template with `values`.
    ///
    /// # Errors
    /// [`MissingValue`] when a placeholder's value is absent (a `discountCode` in a
    /// conversation without one).
    pub fn render(&self, values: &RenderValues<'_>) -> Result<String, MissingValue> {
        // Values are looked up twice (to size the output exactly, then to write it) rather
        // than collected: a lookup is a match, a collection would be an allocation.
        let mut len = self.text.len();
        for p in &self.placeholders {
            len = len - (p.end - p.start) + value(p, values)?.len();
        }
        let mut out = String::with_capacity(len);
        let mut last = 0;
        for p in &self.placeholders {
            out.push_str(&self.text[last..p.start]);
            out.push_str(value(p, values)?);
            last = p.end;
        }
        out.push_str(&self.text[last..]);
        Ok(out)
    }
}

/// The value `p` takes, or why it has none.
fn value<'a>(p: &Placeholder, values: &RenderValues<'a>) -> Result<&'a str, MissingValue> {
    let value = match p.field {
        Field::Username => Some(values.username),
        Field::Operator => Some(values.operator),
        Field::DiscountCode => values.discount_code.filter(|c| !c.is_empty()),
    };
    value.ok_or(MissingValue {
        field: p.field,
        position: p.position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Payload, ValidationError};

    fn parse(raw: &str) -> Result<Template, ValidationError> {
        Payload::stored(raw).map(|p| p.template().clone())
    }
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
            let t = parse(raw).unwrap();
            assert_eq!(
                t.render(&VALUES).unwrap(),
                "Sure Ann, code PROMO50 from Bob"
            );
        }
    }

    #[test]
    fn missing_discount_code_is_an_error_naming_it() {
        let t = parse("code: <<discountCode>>").unwrap();
        let values = RenderValues {
            discount_code: None,
            ..VALUES
        };
        let err = t.render(&values).unwrap_err();
        assert_eq!(
            err,
            MissingValue {
                field: Field::DiscountCode,
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
            parse("hi << username").unwrap_err(),
            ValidationError::UnclosedPlaceholder { position: 3 }
        );
        assert_eq!(
            parse("hi {{ username >>").unwrap_err(),
            ValidationError::UnclosedPlaceholder { position: 3 }
        );
        assert_eq!(
            parse("<< user name >>").unwrap_err(),
            ValidationError::InvalidPlaceholder {
                character: 'n',
                position: 8
            }
        );
        assert_eq!(
            parse("x <<  >>").unwrap_err(),
            ValidationError::EmptyPlaceholder { position: 2 }
        );
        assert_eq!(
            parse("x {{ coupon }}").unwrap_err(),
            ValidationError::UnknownPlaceholder {
                name: "coupon".into(),
                position: 2
            }
        );
    }

    #[test]
    fn segments_keep_text_between_fields() {
        let t = parse("a{{username}}b<<operator>>").unwrap();
        assert_eq!(
            t.segments().collect::<Vec<_>>(),
            [
                Segment::Text("a"),
                Segment::Field {
                    field: Field::Username,
                    position: 1
                },
                Segment::Text("b"),
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
            let t = parse(&s).unwrap();
            prop_assert_eq!(t.render(&VALUES).unwrap(), s);
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn rendering_substitutes_every_field(name in "[A-Za-z ]{0,20}", pre in "[a-z ]{0,10}", post in "[a-z ]{0,10}") {
            let values = RenderValues { username: &name, ..VALUES };
            let t = parse(&format!("{pre}<<username>>{post}")).unwrap();
            prop_assert_eq!(t.render(&values).unwrap(), format!("{pre}{name}{post}"));
        }
    }
}
