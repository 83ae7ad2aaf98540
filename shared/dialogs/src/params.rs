//! Reading updateDialog parameters from wherever a caller put them: the query string, a
//! form body or a JSON body (flat keys, or nested `fields`, `details` and `tracker` objects).
//!
//! Trackers and PHP scripts build GET URLs by string concatenation, so decoding is liberal
//! where the meaning is still clear: `+` is a space, `%XX` is a byte, and a `%` not followed
//! by two hex digits is a literal `%`. What cannot be read unambiguously (bytes that are not
//! UTF-8, a JSON body that is not an object) is a 400 naming the parameter.

use funnelhooks_core::Error;
use funnelhooks_core::form;
use funnelhooks_core::media::{self, BodyKind};
use serde_json::Value as Json;

use crate::limits::MAX_BODY_BYTES;

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
) -> Result<Vec<(String, Param)>, Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::too_large(
            "body_too_large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                body.len()
            ),
        )
        .at("body"));
    }
    let mut params = from_urlencoded(query.as_bytes())?;
    match media::classify(content_type, body)? {
        BodyKind::Empty => {}
        BodyKind::Form => params.extend(from_urlencoded(body)?),
        BodyKind::Json => params.extend(from_json(body)?),
    }
    Ok(params)
}

/// `a=1&b=2` with liberal decoding ([`funnelhooks_core::form`]).
pub fn from_urlencoded(input: &[u8]) -> Result<Vec<(String, Param)>, Error> {
    Ok(form::pairs(input)?
        .into_iter()
        .map(|(k, v)| (k, Param::Text(v)))
        .collect())
}

/// A JSON object: flat keys (`"fields.refId": "1"`), or nested `fields`, `details` and
/// `tracker` objects, which become `fields.KEY`, `details.KEY` and `tracker.KEY`.
pub fn from_json(body: &[u8]) -> Result<Vec<(String, Param)>, Error> {
    let value: Json = serde_json::from_slice(body).map_err(|e| {
        Error::malformed(
            "bad_json",
            "body",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Json::Object(object) = value else {
        return Err(Error::malformed(
            "bad_json",
            "body",
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
            _ if matches!(key.as_str(), "fields" | "details" | "tracker") => {
                return Err(Error::invalid(
                    "bad_value",
                    &key,
                    "expected an object of KEY: value",
                ));
            }
            other => {
                let param = scalar(&key, other)?;
                out.push((key, param));
            }
        }
    }
    Ok(out)
}

fn scalar(name: &str, value: Json) -> Result<Param, Error> {
    match value {
        Json::Null => Err(Error::invalid(
            "bad_value",
            name,
            "null is not a value; leave the parameter out instead",
        )),
        Json::Object(_) => Err(Error::invalid(
            "bad_value",
            name,
            "nested objects are accepted only under fields, details and tracker",
        )),
        other => Ok(Param::Json(other)),
    }
}

#[cfg(test)]
mod tests {
    use funnelhooks_core::Kind;

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
    fn bytes_that_are_not_utf8_are_refused_naming_the_parameter() {
        let err = from_urlencoded(b"name=%FF%FE").unwrap_err();
        assert_eq!((err.kind, err.code), (Kind::Malformed, "bad_encoding"));
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
        assert_eq!(err.code, "unsupported_media_type");
        let json_as_text = from_request("", Some("text/plain"), br#"{"chatId": 8}"#).unwrap();
        assert_eq!(text(&json_as_text, "chatId").unwrap(), "8");
    }

    #[test]
    fn bad_json_and_oversized_bodies_are_refused() {
        assert_eq!(from_json(b"[1]").unwrap_err().code, "bad_json");
        assert_eq!(from_json(b"{").unwrap_err().code, "bad_json");
        let err = from_json(br#"{"x": null}"#).unwrap_err();
        assert_eq!((err.kind, err.field.as_deref()), (Kind::Invalid, Some("x")));
        let big = vec![b'a'; crate::limits::MAX_BODY_BYTES + 1];
        assert_eq!(
            from_request("", None, &big).unwrap_err().kind,
            Kind::TooLarge
        );
    }
}
