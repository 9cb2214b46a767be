//! A borrowed, loosely typed JSON value: what one input line or entry is read into on
//! its way to an [`Event`](crate::Event). Strings borrow from the input (or, when they
//! held escapes, from an arena), and arrays and objects live in the same arena, so
//! reading a line allocates nothing once the arena has grown to the line's size.
//! Objects keep their fields in source order, and a repeated key's last value wins (as
//! `serde_json::Value` reads them, so the two readings never disagree).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use bumpalo::Bump;
use bumpalo::collections::Vec as BumpVec;
use chrono::{DateTime, NaiveDateTime};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// One JSON value, borrowing its strings from the input where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Loose<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, exactly as `serde_json` reads it.
    Number(Number),
    /// A string, borrowed unless it held escapes.
    Str(Cow<'a, str>),
    /// An array.
    Array(BumpVec<'a, Loose<'a>>),
    /// An object.
    Object(Fields<'a>),
}

/// An object's fields in source order, each key once.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields<'a>(BumpVec<'a, (Cow<'a, str>, Loose<'a>)>);

impl<'a> Fields<'a> {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Loose<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether the object has `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Take `key`'s value out, keeping the others in order.
    pub fn remove(&mut self, key: &str) -> Option<Loose<'a>> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// Take the text of field `key` ([`Loose::text`]) out, empty if absent.
    pub fn take_text(&mut self, key: &str) -> Cow<'a, str> {
        self.remove(key).map(Loose::into_text).unwrap_or_default()
    }

    /// The text of field `key` ([`Loose::text`]), empty if absent.
    pub fn text(&self, key: &str) -> Cow<'a, str> {
        self.get(key).map(Loose::text).unwrap_or_default()
    }

    /// A required, non-empty string field.
    pub fn required_str(&self, key: &str) -> Result<Cow<'a, str>, String> {
        match self.get(key) {
            Some(Loose::Str(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Loose::Str(_)) => Err(format!("`{key}` is empty")),
            Some(other) => Err(format!("`{key}` must be a string, found {}", other.kind())),
            None => Err(format!("missing `{key}`")),
        }
    }

    /// Keep each key's last value only, where the earlier ones were.
    fn dedupe(&mut self) {
        let n = self.0.len();
        let repeated = if n <= 16 {
            (1..n).any(|i| self.0[..i].iter().any(|(k, _)| *k == self.0[i].0))
        } else {
            let mut seen = HashSet::with_capacity(n);
            !self.0.iter().all(|(k, _)| seen.insert(k.as_ref()))
        };
        if !repeated {
            return;
        }
        let keep: Vec<bool> = {
            let mut seen = HashSet::with_capacity(n);
            let mut keep: Vec<bool> = self
                .0
                .iter()
                .rev()
                .map(|(k, _)| seen.insert(k.as_ref()))
                .collect();
            keep.reverse();
            keep
        };
        let mut i = 0;
        self.0.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
}

impl<'a> IntoIterator for Fields<'a> {
    type Item = (Cow<'a, str>, Loose<'a>);
    type IntoIter = bumpalo::collections::vec::IntoIter<'a, Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> Loose<'a> {
    /// A short name of the JSON type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Loose::Null => "null",
            Loose::Bool(_) => "a boolean",
            Loose::Number(_) => "a number",
            Loose::Str(_) => "a string",
            Loose::Array(_) => "an array",
            Loose::Object(_) => "an object",
        }
    }

    /// The text of a scalar (strings as they are, numbers and booleans printed, null
    /// empty); arrays and objects as compact JSON with their keys sorted.
    pub fn text(&self) -> Cow<'a, str> {
        match self {
            Loose::Null => Cow::Borrowed(""),
            Loose::Str(s) => s.clone(),
            Loose::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Loose::Number(n) => Cow::Owned(n.to_string()),
            Loose::Array(_) | Loose::Object(_) => Cow::Owned(self.to_value().to_string()),
        }
    }

    /// [`Loose::text`], moving the string out.
    pub fn into_text(self) -> Cow<'a, str> {
        match self {
            Loose::Str(s) => s,
            other => other.text(),
        }
    }

    /// The value as a `serde_json::Value` (objects sorted by key).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Loose::Null => Value::Null,
            Loose::Bool(b) => Value::Bool(*b),
            Loose::Number(n) => Value::Number(n.clone()),
            Loose::Str(s) => Value::String(s.as_ref().to_owned()),
            Loose::Array(items) => Value::Array(items.iter().map(Loose::to_value).collect()),
            Loose::Object(fields) => Value::Object(
                fields
                    .0
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// Reads one [`Loose`] value into an arena.
#[derive(Clone, Copy)]
pub struct Seed<'a>(pub &'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for Seed<'a> {
    type Value = Loose<'a>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Seed<'a> {
    type Value = Loose<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Loose::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Loose::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // serde_json hands only finite numbers to a visitor.
        Ok(Number::from_f64(n).map_or(Loose::Null, Loose::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(self.0.alloc_str(s))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = BumpVec::new_in(self.0);
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Loose::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = BumpVec::with_capacity_in(8, self.0);
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            fields.push((key, map.next_value_seed(self)?));
        }
        let mut fields = Fields(fields);
        fields.dedupe();
        Ok(Loose::Object(fields))
    }
}

/// An object key, borrowed from the input or the arena.
struct KeySeed<'a>(&'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = Cow<'a, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for KeySeed<'a> {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(self.0.alloc_str(s)))
    }
}

/// Read one JSON document into `arena` from bytes, checking each string's UTF-8 as
/// it goes (a document that fails early costs only what was read).
pub fn from_slice<'a>(arena: &'a Bump, bytes: &'a [u8]) -> Result<Loose<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Seed(arena).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Read one JSON document into `arena`.
pub fn from_str<'a>(arena: &'a Bump, text: &'a str) -> Result<Loose<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Seed(arena).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Milliseconds since the epoch from seconds (`scale` = 1000) or milliseconds
/// (`scale` = 1) as a number or numeric string, or from an RFC 3339 or
/// `YYYY-MM-DD HH:MM:SS` (UTC) date string; refused outside the accepted event times
/// ([`aer_wire::time`]: 1970 to the year 9999).
pub fn time_ms(v: &Loose<'_>, scale: i64, key: &str) -> Result<i64, String> {
    let ms = parse_time_ms(v, scale, key)?;
    if aer_wire::time::in_range(ms) {
        Ok(ms)
    } else {
        Err(format!(
            "`{key}` is out of range: {ms} ms is not between 1970-01-01 and 9999-12-31"
        ))
    }
}

fn parse_time_ms(v: &Loose<'_>, scale: i64, key: &str) -> Result<i64, String> {
    let from_number = |n: f64| -> Result<i64, String> {
        let ms = n * scale as f64;
        if ms.is_finite() && ms.abs() < 1e16 {
            Ok(ms.round() as i64)
        } else {
            Err(format!("`{key}` is out of range"))
        }
    };
    match v {
        Loose::Number(n) => match n.as_i64() {
            Some(i) => i
                .checked_mul(scale)
                .ok_or_else(|| format!("`{key}` is out of range")),
            None => from_number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Loose::Str(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                return i
                    .checked_mul(scale)
                    .ok_or_else(|| format!("`{key}` is out of range"));
            }
            if let Ok(f) = s.parse::<f64>() {
                return from_number(f);
            }
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.timestamp_millis());
            }
            for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                    return Ok(t.and_utc().timestamp_millis());
                }
            }
            Err(format!("`{key}` is not a time: {s:?}"))
        }
        other => Err(format!(
            "`{key}` must be a number or a date string, found {}",
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn time(v: serde_json::Value, scale: i64, key: &str) -> Result<i64, String> {
        let text = v.to_string();
        time_ms(&from_str(&Bump::new(), &text).unwrap(), scale, key)
    }

    #[test]
    fn times_in_every_accepted_shape() {
        assert_eq!(time(json!(1521214343), 1000, "t"), Ok(1_521_214_343_000));
        assert_eq!(time(json!("1521214343"), 1000, "t"), Ok(1_521_214_343_000));
        assert_eq!(time(json!(1521214343.5), 1000, "t"), Ok(1_521_214_343_500));
        assert_eq!(
            time(json!("2018-03-16T15:32:23Z"), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert_eq!(
            time(json!("2018-03-16 15:32:23"), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert_eq!(
            time(json!("2018-03-16T17:32:23+02:00"), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert!(
            time(json!("yesterday"), 1000, "t")
                .unwrap_err()
                .contains("not a time")
        );
        assert!(time(json!(null), 1000, "t").is_err());
        assert!(time(json!(i64::MAX), 1000, "t").is_err());
    }

    // Regression: `time_ms` at the i64 limits was accepted and overflowed the
    // pipeline's time arithmetic downstream.
    #[test]
    fn times_outside_1970_to_9999_are_refused_naming_the_field() {
        for v in [
            json!(i64::MAX),
            json!(i64::MIN),
            json!(-1),
            json!(aer_wire::time::MAX_MS + 1),
            json!("-5"),
            json!("1969-12-31T23:59:59Z"),
        ] {
            let e = time(v.clone(), 1, "time_ms").unwrap_err();
            assert!(e.contains("`time_ms` is out of range"), "{v}: {e}");
        }
        assert_eq!(
            time(json!(aer_wire::time::MAX_MS), 1, "time_ms"),
            Ok(aer_wire::time::MAX_MS)
        );
        assert_eq!(time(json!(0), 1000, "t"), Ok(0));
    }

    #[test]
    fn strings_borrow_from_the_input_or_the_arena() {
        let text = r#"{"plain": "abc", "escaped": "a\nb", "k\u0065y": 1}"#;
        let arena = Bump::new();
        let Loose::Object(fields) = from_str(&arena, text).unwrap() else {
            panic!("not an object")
        };
        let Some(Loose::Str(Cow::Borrowed(plain))) = fields.get("plain") else {
            panic!("not borrowed")
        };
        assert!(text.as_bytes().as_ptr_range().contains(&plain.as_ptr()));
        let Some(Loose::Str(Cow::Borrowed(escaped))) = fields.get("escaped") else {
            panic!("not borrowed")
        };
        assert_eq!(*escaped, "a\nb");
        assert!(!text.as_bytes().as_ptr_range().contains(&escaped.as_ptr()));
        assert!(fields.contains_key("key"), "escaped keys are read");
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_as_serde_json_does() {
        for n in [2, 40] {
            let mut text = String::from("{");
            for i in 0..n {
                text.push_str(&format!(r#""k{i}": {i}, "#));
            }
            text.push_str(r#""k0": "last"}"#);
            let arena = Bump::new();
            let Loose::Object(fields) = from_str(&arena, &text).unwrap() else {
                panic!("not an object")
            };
            assert_eq!(fields.text("k0"), "last", "{n} keys");
            assert_eq!(fields.0.len(), n, "{n} keys: one k0");
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(Loose::Object(fields).to_value(), value);
        }
    }

    #[test]
    fn containers_read_as_serde_json_prints_them() {
        let text = r#"{"b": [1, 2.5, "x", null, true], "a": {"z": {}, "y": []}}"#;
        let arena = Bump::new();
        let loose = from_str(&arena, text).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(loose.text(), value.to_string());
    }
}
