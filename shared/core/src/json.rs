//! JSON request bodies, read member by member so that every error names the member path
//! (`webhook.headers.X-Token`, `parameters[2].param`). One small reader for every body and
//! config form: serde derives for each input type were measured at +24 KB (bots-api) and
//! +67 KB (send-webhook) of Wasm, more than the size budgets allow; stored records are read
//! with serde derives.

use serde_json::{Map, Value as Json};

use crate::error::{Error, Kind};

/// Reads a JSON object body of at most `limit` bytes; a body of white space reads as `{}`.
pub fn body(bytes: &[u8], limit: usize) -> Result<Json, Error> {
    if bytes.len() > limit {
        return Err(Error::too_large(
            "body_too_large",
            format!("the body is {} bytes; the limit is {limit}", bytes.len()),
        )
        .at("body"));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Object(Map::new()));
    }
    match serde_json::from_slice(bytes) {
        Ok(v @ Json::Object(_)) => Ok(v),
        Ok(_) => Err(Error::malformed(
            "bad_json",
            "body",
            "the body must be a JSON object",
        )),
        Err(e) => Err(Error::malformed(
            "bad_json",
            "body",
            format!("the body is not JSON: {e}"),
        )),
    }
}

/// A whole number, however JSON wrote it: `315` or `315.0` (JSON Schema's `integer` is
/// both); `None` for fractions, negatives, text.
pub fn whole(value: &Json) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// A required text, trimmed: not blank, at most `max` bytes; errors name `field`.
pub fn required_text(value: Option<String>, field: &str, max: usize) -> Result<String, Error> {
    let text = value.map(|v| v.trim().to_string()).unwrap_or_default();
    if text.is_empty() {
        return Err(Error::invalid(
            "missing_field",
            field,
            "required, and must not be blank",
        ));
    }
    if text.len() > max {
        return Err(Error::invalid(
            "value_too_long",
            field,
            format!("the value is {} bytes; the limit is {max}", text.len()),
        ));
    }
    Ok(text)
}

/// Stores a config type as the JSON form it is read from: `Serialize` writes
/// `$to(&self)`, `Deserialize` reads the JSON and checks it with `$from(&Json)` (so a stored
/// config is parsed once, when its record is read).
#[macro_export]
macro_rules! stored_as_json_form {
    ($ty:ty, $to:ident, $from:path) => {
        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.$to().serialize(s)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let form = ::serde_json::Value::deserialize(d)?;
                $from(&form).map_err(|e| ::serde::de::Error::custom(e.to_string()))
            }
        }
    };
}

/// An object's members, read one at a time; every error names the member.
#[derive(Debug, Clone, Copy)]
pub struct Members<'a> {
    map: &'a Map<String, Json>,
}

impl<'a> Members<'a> {
    /// The object `value`, whose members must all be among `allowed` (the first other one is
    /// an `unknown_field` error naming it).
    pub fn of(value: &'a Json, allowed: &[&str]) -> Result<Self, Error> {
        let map = value
            .as_object()
            .ok_or_else(|| Error::new(Kind::Invalid, "wrong_type", "expected an object"))?;
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::invalid(
                "unknown_field",
                k,
                format!("unknown member; expected one of: {}", allowed.join(", ")),
            ));
        }
        Ok(Self { map })
    }

    /// A member as given; `null` reads as absent.
    pub fn get(&self, name: &str) -> Option<&'a Json> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn wrong(name: &str, what: &str) -> Error {
        Error::invalid("wrong_type", name, format!("expected {what}"))
    }

    /// A text member.
    pub fn text(&self, name: &str) -> Result<Option<&'a str>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(Self::wrong(name, "a string")),
        }
    }

    /// A text member, owned.
    pub fn string(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.text(name)?.map(str::to_string))
    }

    /// A required text member, trimmed: not blank, at most `max` bytes.
    pub fn required(&self, name: &str, max: usize) -> Result<String, Error> {
        required_text(self.string(name)?, name, max)
    }

    /// A `true`/`false` member.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::wrong(name, "true or false")),
        }
    }

    /// An object member.
    pub fn object(&self, name: &str) -> Result<Option<&'a Map<String, Json>>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Object(m)) => Ok(Some(m)),
            Some(_) => Err(Self::wrong(name, "an object")),
        }
    }

    /// A list member.
    pub fn array(&self, name: &str) -> Result<Option<&'a [Json]>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Array(a)) => Ok(Some(a)),
            Some(_) => Err(Self::wrong(name, "a list")),
        }
    }

    /// An object member whose values are all text (`headers`, `tracker`).
    pub fn text_map(&self, name: &str) -> Result<Vec<(&'a str, &'a str)>, Error> {
        let mut out = Vec::new();
        for (k, v) in self.object(name)?.into_iter().flatten() {
            match v {
                Json::String(s) => out.push((k.as_str(), s.as_str())),
                _ => return Err(Self::wrong(&format!("{name}.{k}"), "a string")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_are_read_by_name_and_errors_name_them() {
        let v = json!({"name": "x", "on": true, "n": null, "h": {"X": "1", "Y": 2}});
        let m = Members::of(&v, &["name", "on", "n", "h"]).unwrap();
        assert_eq!(m.text("name").unwrap(), Some("x"));
        assert_eq!(m.bool("on").unwrap(), Some(true));
        assert_eq!(m.text("n").unwrap(), None);
        let e = m.text("on").unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("wrong_type", Some("on")));
        let e = m.text_map("h").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("h.Y"));
        let e = Members::of(&v, &["name"]).unwrap_err();
        assert_eq!(e.code, "unknown_field");
    }

    #[test]
    fn bodies_are_json_objects_within_a_limit() {
        assert_eq!(body(b" ", 10).unwrap(), json!({}));
        assert_eq!(body(b"[1]", 10).unwrap_err().kind, Kind::Malformed);
        assert_eq!(body(b"{", 10).unwrap_err().code, "bad_json");
        assert_eq!(body(&[b' '; 20], 10).unwrap_err().kind, Kind::TooLarge);
    }
}
