//! Helpers for reading loosely typed JSON fields.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

/// A short name of the JSON type of `v`, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text of a scalar (strings as they are, numbers and booleans printed, null
/// empty); arrays and objects as compact JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

/// The text of field `key`, empty if absent.
pub fn field(obj: &Map<String, Value>, key: &str) -> String {
    obj.get(key).map(text).unwrap_or_default()
}

/// A required string field.
pub fn required_str(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("`{key}` is empty")),
        Some(other) => Err(format!("`{key}` must be a string, found {}", kind(other))),
        None => Err(format!("missing `{key}`")),
    }
}

/// Milliseconds since the epoch from seconds (`scale` = 1000) or milliseconds
/// (`scale` = 1) as a number or numeric string, or from an RFC 3339 or
/// `YYYY-MM-DD HH:MM:SS` (UTC) date string; refused outside the accepted event times
/// ([`aer_wire::time`]: 1970 to the year 9999).
pub fn time_ms(v: &Value, scale: i64, key: &str) -> Result<i64, String> {
    let ms = parse_time_ms(v, scale, key)?;
    if aer_wire::time::in_range(ms) {
        Ok(ms)
    } else {
        Err(format!(
            "`{key}` is out of range: {ms} ms is not between 1970-01-01 and 9999-12-31"
        ))
    }
}

fn parse_time_ms(v: &Value, scale: i64, key: &str) -> Result<i64, String> {
    let from_number = |n: f64| -> Result<i64, String> {
        let ms = n * scale as f64;
        if ms.is_finite() && ms.abs() < 1e16 {
            Ok(ms.round() as i64)
        } else {
            Err(format!("`{key}` is out of range"))
        }
    };
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i
                .checked_mul(scale)
                .ok_or_else(|| format!("`{key}` is out of range")),
            None => from_number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => {
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
            kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_every_accepted_shape() {
        assert_eq!(
            time_ms(&json!(1521214343), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert_eq!(
            time_ms(&json!("1521214343"), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert_eq!(
            time_ms(&json!(1521214343.5), 1000, "t"),
            Ok(1_521_214_343_500)
        );
        assert_eq!(
            time_ms(&json!("2018-03-16T15:32:23Z"), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert_eq!(
            time_ms(&json!("2018-03-16 15:32:23"), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert_eq!(
            time_ms(&json!("2018-03-16T17:32:23+02:00"), 1000, "t"),
            Ok(1_521_214_343_000)
        );
        assert!(
            time_ms(&json!("yesterday"), 1000, "t")
                .unwrap_err()
                .contains("not a time")
        );
        assert!(time_ms(&json!(null), 1000, "t").is_err());
        assert!(time_ms(&json!(i64::MAX), 1000, "t").is_err());
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
            let e = time_ms(&v, 1, "time_ms").unwrap_err();
            assert!(e.contains("`time_ms` is out of range"), "{v}: {e}");
        }
        assert_eq!(
            time_ms(&json!(aer_wire::time::MAX_MS), 1, "time_ms"),
            Ok(aer_wire::time::MAX_MS)
        );
        assert_eq!(time_ms(&json!(0), 1000, "t"), Ok(0));
    }
}
