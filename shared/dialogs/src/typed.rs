//! A parameter's value as text, and as the type of the custom field it is written to: how
//! updateDialog, a conversion's action and the settings that name fields all type a value.

use funnelhooks_core::{Error, Timestamp};
use serde_json::Value as Json;

use crate::limits::MAX_VALUE_LEN;
use crate::model::{FieldType, FieldValue};
use crate::params::Param;

/// The text of parameter `name`: text, a number or a boolean as written.
pub(crate) fn text(name: &str, value: &Param) -> Result<String, Error> {
    match value {
        Param::Text(s) | Param::Json(Json::String(s)) => Ok(s.clone()),
        Param::Json(j @ (Json::Number(_) | Json::Bool(_))) => Ok(j.to_string()),
        Param::Json(_) => Err(Error::invalid(
            "bad_value",
            name,
            "expected text, a number or a boolean",
        )),
    }
}

/// Refuses a value longer than [`MAX_VALUE_LEN`], naming parameter `name`.
pub(crate) fn check_len(name: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::invalid(
            "value_too_long",
            name,
            format!(
                "the value is {} bytes; the limit is {MAX_VALUE_LEN}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// `text` typed as a field of `kind` is, as a postback's text parameter `name` would be.
pub(crate) fn typed_text(
    name: &str,
    text: &str,
    kind: Option<FieldType>,
) -> Result<FieldValue, Error> {
    typed_value(name, &Param::Text(text.to_string()), kind)
}

/// `value` typed as a field of `kind` (`None`: undefined, stored as text); the error names
/// parameter `name`.
pub(crate) fn typed_value(
    name: &str,
    value: &Param,
    kind: Option<FieldType>,
) -> Result<FieldValue, Error> {
    let wrong = |what: &str| {
        Error::invalid(
            "wrong_type",
            name,
            format!("the field is a {what}; this value is not one"),
        )
    };
    let as_text = text(name, value)?;
    check_len(name, &as_text)?;
    Ok(match kind {
        None | Some(FieldType::String) => FieldValue::Text(as_text),
        Some(FieldType::Number) => match value {
            Param::Json(Json::Number(n)) => FieldValue::Number(n.clone()),
            _ => number(as_text.trim()).ok_or_else(|| wrong("number"))?,
        },
        Some(FieldType::Boolean) => match value {
            Param::Json(Json::Bool(b)) => FieldValue::Bool(*b),
            _ => FieldValue::Bool(match as_text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(wrong("boolean (true/false, 1/0, yes/no)")),
            }),
        },
        Some(FieldType::Date) => {
            let t = as_text.trim();
            let ms = match t.parse::<i64>() {
                // Unix seconds, or milliseconds when it is too large to be seconds.
                Ok(n) if n.unsigned_abs() < 100_000_000_000 => n.checked_mul(1000),
                Ok(n) => Some(n),
                Err(_) => Timestamp::parse_iso(t).map(|t| t.0),
            };
            FieldValue::Text(
                Timestamp(ms.ok_or_else(|| wrong("date (ISO 8601 or Unix time)"))?).iso(),
            )
        }
    })
}

/// `s` as a JSON number, whole when it is one. Fractions are read by serde_json's number
/// reader, which every component has already (Rust's `str::parse::<f64>` is 13 KB of Wasm
/// more, and update-dialog has no room). What Rust's reader also takes and JSON's does not is
/// first written as JSON writes it: a `+` sign, leading zeros (`05.50`), a bare point (`.5`,
/// `5.`, `5.e3`).
fn number(s: &str) -> Option<FieldValue> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(FieldValue::Number(i.into()));
    }
    let (sign, rest) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exponent) = rest.split_at(rest.find(['e', 'E']).unwrap_or(rest.len()));
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (mantissa, ""),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || whole.len() + fraction.len() == 0 {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let json = format!(
        "{sign}{}.{}{exponent}",
        if whole.is_empty() { "0" } else { whole },
        if fraction.is_empty() { "0" } else { fraction }
    );
    let f: f64 = serde_json::from_str(&json).ok()?;
    serde_json::Number::from_f64(f).map(FieldValue::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_rusts_reader_reads_them() {
        for text in [
            "5",
            "-5",
            "0.5",
            ".5",
            "-.5",
            "+1.5",
            "5.",
            "1e3",
            "1E-3",
            "-0.0",
            "123456.789",
            "9223372036854775808",
            "1e308",
        ] {
            let want = text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64);
            let got = number(text).map(|v| match v {
                FieldValue::Number(n) => n.as_f64().unwrap(),
                _ => panic!("{text}"),
            });
            assert_eq!(got, want.and_then(|n| n.as_f64()), "{text}");
        }
        for text in [
            ".", "-", "+", "", "e5", "five", "1e400", "inf", "NaN", "1.5.2", "0x10",
        ] {
            assert!(number(text).is_none(), "{text}");
        }
    }
}
