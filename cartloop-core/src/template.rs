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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// A template of these segments; the scanner in [`crate::validate`] builds them.
    pub(crate) fn from_segments(segments: Vec<Segment>) -> Self {
        Self { segments }
    }

    /// A template that is all text: `text` renders to itself, whatever it contains.
    pub fn literal(text: &str) -> Self {
        if text.is_empty() {
            return Self {
                segments: Vec::new(),
            };
        }
        Self {
            segments: vec![Segment::Text(text.to_owned())],
        }
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
    /// [`MissingValue`] when a placeholder's value is absent (a `discountCode` in a
    /// conversation without one).
    pub fn render(&self, values: &RenderValues<'_>) -> Result<String, MissingValue> {
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
                            return Err(MissingValue {
                                field: *field,
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
