//! Reading updateDialog parameters from wherever a caller put them: the query string, a
//! form body or a JSON body (flat keys, or nested `fields`, `details` and `tracker` objects).
//!
//! Trackers and PHP scripts build GET URLs by string concatenation, so decoding is liberal
//! where the meaning is still clear: `+` is a space, `%XX` is a byte, and a `%` not followed
//! by two hex digits is a literal `%`. What cannot be read unambiguously (bytes that are not
//! UTF-8, a JSON body that is not an object) is a 400 naming the parameter.

use serde_json::Value as Json;

use crate::error::DialogError;
use crate::limits::check_body;

/// One parameter's value: text from a URL or form, or a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// From a query string or form body.
    Text(String),
    /// From a JSON body (a string, number, boolean or array).
    Json(Json),
}

/// Every parameter of a request, in order: the query string's first, then the body's, so a
/// body value wins over a query value with the same name.
pub fn from_request(
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, Param)>, DialogError> {
    check_body(body)?;
    let mut params = from_urlencoded(query.as_bytes())?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let kind = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let from_body = match kind.as_str() {
        "application/json" => from_json(body)?,
        "application/x-www-form-urlencoded" | "" => from_urlencoded(body)?,
        // A JSON body sent as text/plain is still unambiguous.
        _ if body.trim_ascii_start().starts_with(b"{") => from_json(body)?,
        other => {
            return Err(DialogError::bad_request(
                "unsupported_content_type",
                None,
                format!(
                    "content type {other:?} is not supported; send application/json or application/x-www-form-urlencoded"
                ),
            ));
        }
    };
    params.extend(from_body);
    Ok(params)
}

/// `a=1&b=2` with liberal decoding.
pub fn from_urlencoded(input: &[u8]) -> Result<Vec<(String, Param)>, DialogError> {
    let mut out = Vec::new();
    for piece in input.split(|b| *b == b'&') {
        if piece.is_empty() {
            continue;
        }
        let (key, value) = match piece.iter().position(|b| *b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &b""[..]),
        };
        let key = decode(key).map_err(|_| {
            DialogError::bad_request(
                "bad_encoding",
                Some(&String::from_utf8_lossy(key)),
                "the parameter name is not UTF-8 once decoded",
            )
        })?;
        let value = decode(value).map_err(|_| {
            DialogError::bad_request(
                "bad_encoding",
                Some(&key),
                "the value is not UTF-8 once decoded",
            )
        })?;
        if key.is_empty() {
            continue;
        }
        out.push((key, Param::Text(value)));
    }
    Ok(out)
}

fn decode(input: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
}

/// A JSON object: flat keys (`"fields.refId": "1"`), or nested `fields`, `details` and
/// `tracker` objects, which become `fields.KEY`, `details.KEY` and `tracker.KEY`.
pub fn from_json(body: &[u8]) -> Result<Vec<(String, Param)>, DialogError> {
    let value: Json = serde_json::from_slice(body).map_err(|e| {
        DialogError::bad_request("bad_json", None, format!("the body is not valid JSON: {e}"))
    })?;
    let Json::Object(object) = value else {
        return Err(DialogError::bad_request(
            "bad_json",
            None,
            "the body must be a JSON object",
        ));
    };
    let mut out = Vec::new();
    for (key, value) in object {
        match value {
            Json::Object(inner) if matches!(key.as_str(), "fields" | "details" | "tracker") => {
                for (k, v) in inner {
                    let name = format!("{key}.{k}");
                    out.push((name.clone(), scalar(&name, v)?));
                }
            }
            other => {
                let param = scalar(&key, other)?;
                out.push((key, param));
            }
        }
    }
    Ok(out)
}

fn scalar(name: &str, value: Json) -> Result<Param, DialogError> {
    match value {
        Json::Null => Err(DialogError::unprocessable(
            "bad_value",
            Some(name),
            "null is not a value; leave the parameter out instead",
        )),
        Json::Object(_) => Err(DialogError::unprocessable(
            "bad_value",
            Some(name),
            "nested objects are accepted only under fields, details and tracker",
        )),
        other => Ok(Param::Json(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(params: &[(String, Param)], key: &str) -> Option<String> {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| match v {
                Param::Text(t) => t.clone(),
                Param::Json(j) => j.to_string(),
            })
    }

    #[test]
    fn php_style_unescaped_get_parses() {
        let p = from_request(
            "chatId=1227280&fields.reg_status=1&fields.user_id=42&stepId=046050f6-38f6-4b18-b9fa-e6582f5352d0",
            None,
            b"",
        )
        .unwrap();
        assert_eq!(text(&p, "chatId").unwrap(), "1227280");
        assert_eq!(text(&p, "fields.reg_status").unwrap(), "1");
        assert_eq!(text(&p, "fields.user_id").unwrap(), "42");
    }

    #[test]
    fn liberal_decoding_keeps_a_stray_percent_and_reads_plus_as_space() {
        let p = from_urlencoded(b"a=100%&b=John+Doe&c=%D0%9F%D1%80%D0%B8&d=50%25&e").unwrap();
        assert_eq!(text(&p, "a").unwrap(), "100%");
        assert_eq!(text(&p, "b").unwrap(), "John Doe");
        assert_eq!(text(&p, "c").unwrap(), "При");
        assert_eq!(text(&p, "d").unwrap(), "50%");
        assert_eq!(text(&p, "e").unwrap(), "");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_a_400_naming_the_parameter() {
        let err = from_urlencoded(b"name=%FF%FE").unwrap_err();
        assert_eq!((err.status, err.code), (400, "bad_encoding"));
        assert_eq!(err.field.as_deref(), Some("name"));
    }

    #[test]
    fn json_nested_objects_flatten_and_body_wins_over_query() {
        let body = br#"{"chatId": 5, "fields": {"refId": "x"}, "tracker": {"clickid": "c1"}, "details.a": 1}"#;
        let p = from_request("chatId=4", Some("application/json; charset=utf-8"), body).unwrap();
        assert_eq!(text(&p, "chatId").unwrap(), "5");
        assert_eq!(text(&p, "fields.refId").unwrap(), "\"x\"");
        assert_eq!(text(&p, "tracker.clickid").unwrap(), "\"c1\"");
        assert_eq!(text(&p, "details.a").unwrap(), "1");
    }

    #[test]
    fn form_body_and_unknown_content_types() {
        let p = from_request(
            "",
            Some("application/x-www-form-urlencoded"),
            b"chatId=7&x=1",
        )
        .unwrap();
        assert_eq!(text(&p, "chatId").unwrap(), "7");
        let err = from_request("", Some("application/xml"), b"<a/>").unwrap_err();
        assert_eq!(err.code, "unsupported_content_type");
        let json_as_text = from_request("", Some("text/plain"), br#"{"chatId": 8}"#).unwrap();
        assert_eq!(text(&json_as_text, "chatId").unwrap(), "8");
    }

    #[test]
    fn bad_json_and_oversized_bodies_are_refused() {
        assert_eq!(from_json(b"[1]").unwrap_err().code, "bad_json");
        assert_eq!(from_json(b"{").unwrap_err().code, "bad_json");
        let err = from_json(br#"{"x": null}"#).unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (422, Some("x")));
        let big = vec![b'a'; crate::limits::MAX_BODY_BYTES + 1];
        assert_eq!(from_request("", None, &big).unwrap_err().status, 413);
    }
}
