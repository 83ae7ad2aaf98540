//! Reading a management request's JSON body field by field, so every error names its field.

use serde_json::{Map, Value as Json};

use crate::error::DialogError;
use crate::limits::check_body;

/// A JSON object body.
pub struct JsonBody(Map<String, Json>);

impl JsonBody {
    /// Parses `body`; an empty body is an empty object.
    pub fn parse(body: &[u8]) -> Result<Self, DialogError> {
        check_body(body)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Json::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(DialogError::bad_request(
                "bad_json",
                None,
                "the body must be a JSON object",
            )),
            Err(e) => Err(DialogError::bad_request(
                "bad_json",
                None,
                format!("the body is not JSON: {e}"),
            )),
        }
    }

    /// Fails on the first member not in `allowed`, naming it.
    pub fn only(&self, allowed: &[&str]) -> Result<(), DialogError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(DialogError::unprocessable(
                "unknown_field",
                Some(k),
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// A string member of at most `max` bytes, if present and not null.
    pub fn text(&self, name: &str, max: usize) -> Result<Option<String>, DialogError> {
        match self.0.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if s.len() <= max => Ok(Some(s.clone())),
            Some(Json::String(s)) => Err(DialogError::unprocessable(
                "value_too_long",
                Some(name),
                format!("the value is {} bytes; the limit is {max}", s.len()),
            )),
            Some(_) => Err(DialogError::unprocessable(
                "wrong_type",
                Some(name),
                "expected a string",
            )),
        }
    }

    /// A required, non-blank string member of at most `max` bytes.
    pub fn required_text(&self, name: &str, max: usize) -> Result<String, DialogError> {
        match self.text(name, max)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(DialogError::unprocessable(
                "missing_field",
                Some(name),
                "required, and must not be blank",
            )),
        }
    }

    /// An object member, if present and not null.
    pub fn object(&self, name: &str) -> Result<Option<&Map<String, Json>>, DialogError> {
        match self.0.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(map)) => Ok(Some(map)),
            Some(_) => Err(DialogError::unprocessable(
                "wrong_type",
                Some(name),
                "expected an object",
            )),
        }
    }

    /// A member as given.
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.0.get(name)
    }

    /// Whether the member is present (even as null).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}
