//! Telegram chat ids: signed 64-bit integers (`-1001227280` for groups), read the same way
//! from a path segment, a query parameter, a form field or a JSON member.

use serde_json::Value as Json;

use crate::error::Error;

fn bad(field: &str) -> Error {
    Error::invalid(
        "bad_chat_id",
        field,
        "chatId must be a Telegram chat id: a whole number between -9223372036854775808 and 9223372036854775807",
    )
}

/// A chat id written as text; the error names `field` as the caller wrote it.
pub fn parse(text: &str, field: &str) -> Result<i64, Error> {
    text.trim().parse().map_err(|_| bad(field))
}

/// A chat id from JSON: a whole number, or text holding one.
pub fn from_json(value: &Json, field: &str) -> Result<i64, Error> {
    match value {
        // 1227280.0 is a whole number too; beyond 2^53 only integers are exact.
        Json::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| bad(field)),
        Json::String(s) => parse(s, field),
        _ => Err(bad(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_are_signed_64_bit_wherever_they_come_from() {
        assert_eq!(parse(" -1001227280 ", "chatId").unwrap(), -1001227280);
        assert_eq!(parse("-9223372036854775808", "chatId").unwrap(), i64::MIN);
        assert_eq!(
            parse("9223372036854775808", "chat_id")
                .unwrap_err()
                .field
                .as_deref(),
            Some("chat_id")
        );
        assert_eq!(from_json(&serde_json::json!(5), "chatId").unwrap(), 5);
        assert_eq!(from_json(&serde_json::json!("-80"), "chatId").unwrap(), -80);
        assert!(from_json(&serde_json::json!(1.5), "chatId").is_err());
    }
}
