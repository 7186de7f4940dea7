//! Settings as their JSON is written: this module reads the shape, each setting's own parser
//! judges the content and answers with its own typed error.
//!
//! The delivery settings of a store arrive as JSON values (a calendar is a string or an
//! object of days, closures a list of objects, ...). serde's derived errors cannot say which
//! day or which list entry is wrong, and a JSON object read into a map silently keeps the
//! last of two equal keys. So the settings are read in two steps:
//!
//! 1. any JSON value becomes a [`Json`] tree, which keeps object keys in the order written,
//!    duplicates included;
//! 2. the setting's [`FromJson`] implementation turns the tree into the setting or into its
//!    typed error, which names the day, the window, the index or the field.
//!
//! [`Checked<T>`] does both inside serde: deserialising it fails only on malformed JSON, and
//! the setting's verdict is inside. A request body can therefore hold
//! `Option<Checked<Calendar>>` and answer a bad calendar with [`CalendarError`]'s message.
//! Each setting also implements `Deserialize` strictly (the typed error becomes serde's
//! message), for reading back JSON that the server wrote itself.
//!
//! ```
//! use cartloop_core::calendar::{Calendar, CalendarError};
//! use cartloop_core::json::Checked;
//!
//! let Checked(verdict) = serde_json::from_str::<Checked<Calendar>>(r#"{"mon":["09:00-25:00"]}"#).unwrap();
//! assert!(matches!(verdict, Err(CalendarError::Window { index: 0, .. })));
//! ```
//!
//! [`CalendarError`]: crate::calendar::CalendarError

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A JSON value as written: numbers as integers or floats, object keys in the order written
/// with duplicates kept, so that parsers can refuse them.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number without fraction or exponent.
    Integer(i128),
    /// Any other number.
    Float(f64),
    /// A string.
    String(String),
    /// A list.
    Array(Vec<Json>),
    /// An object, its entries in the order written.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// What kind of value this is, for error messages: `"null"`, `"a boolean"`,
    /// `"a number"`, `"a string"`, `"a list"` or `"an object"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Integer(_) | Json::Float(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "a list",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Integer(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Integer(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Json, E> {
        Ok(Json::Integer(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// A setting read from a [`Json`] tree, with a typed error for every malformed value.
pub trait FromJson: Sized {
    /// Why a value is not such a setting; it names what is wrong and where.
    type Error: std::error::Error + Clone + PartialEq + Send + Sync + 'static;

    /// The setting the JSON value describes.
    ///
    /// # Errors
    /// [`Self::Error`] naming the part of the value that is malformed.
    fn from_json(value: &Json) -> Result<Self, Self::Error>;
}

/// A setting deserialised leniently: malformed JSON fails deserialisation as usual, but a
/// well-formed value of the wrong shape or content deserialises into `Checked(Err(..))` with
/// the setting's typed error.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T: FromJson>(pub Result<T, T::Error>);

impl<T: FromJson> Checked<T> {
    /// The verdict: the setting, or why the value is not one.
    ///
    /// # Errors
    /// The setting's own error, as [`FromJson::from_json`] returned it.
    pub fn into_result(self) -> Result<T, T::Error> {
        self.0
    }
}

impl<'de, T: FromJson> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Json::deserialize(deserializer).map(|value| Checked(T::from_json(&value)))
    }
}

/// `Deserialize` for a setting whose content errors become serde's custom errors.
pub(crate) fn deserialize_strict<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromJson,
{
    let value = Json::deserialize(deserializer)?;
    T::from_json(&value).map_err(de::Error::custom)
}

/// Reads JSON text into a setting; a syntax error is returned as its message.
pub(crate) fn parse_text<T: FromJson>(text: &str) -> Result<Result<T, T::Error>, String> {
    serde_json::from_str::<Checked<T>>(text)
        .map(Checked::into_result)
        .map_err(|e| e.to_string())
}

/// The entries of an object, refusing any key twice; `on_duplicate` makes the error.
pub(crate) fn unique_keys<'a, E>(
    entries: &'a [(String, Json)],
    mut on_duplicate: impl FnMut(&'a str) -> E,
) -> Result<&'a [(String, Json)], E> {
    for (i, (key, _)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(seen, _)| seen == key) {
            return Err(on_duplicate(key));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_duplicates() {
        let value: Json =
            serde_json::from_str(r#"{"b":1,"a":[true,null,2.5,"x"],"b":-3}"#).unwrap();
        assert_eq!(
            value,
            Json::Object(vec![
                ("b".into(), Json::Integer(1)),
                (
                    "a".into(),
                    Json::Array(vec![
                        Json::Bool(true),
                        Json::Null,
                        Json::Float(2.5),
                        Json::String("x".into())
                    ])
                ),
                ("b".into(), Json::Integer(-3)),
            ])
        );
        let Json::Object(entries) = &value else {
            unreachable!()
        };
        assert_eq!(unique_keys(entries, str::to_owned), Err("b".to_owned()));
        assert_eq!(
            serde_json::from_str::<Json>("18446744073709551615").unwrap(),
            Json::Integer(u64::MAX.into())
        );
    }

    #[test]
    fn kinds() {
        for (text, kind) in [
            ("null", "null"),
            ("true", "a boolean"),
            ("1", "a number"),
            ("1.5", "a number"),
            ("\"\"", "a string"),
            ("[]", "a list"),
            ("{}", "an object"),
        ] {
            assert_eq!(serde_json::from_str::<Json>(text).unwrap().kind(), kind);
        }
    }
}
