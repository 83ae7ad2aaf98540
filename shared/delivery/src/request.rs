//! A request ready to send: what a step's webhook or a call hook renders, what the log keeps
//! and what a retry sends again.

use serde::{Deserialize, Serialize};

/// A request ready to send (and to log, and to send again on a retry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The URL, normalised (checked against the target rules when it was built).
    pub url: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
}

/// Bodies are stored as text when they are UTF-8 (they nearly always are), else base64.
mod body_text {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) if !text.starts_with("base64:") => s.serialize_str(text),
            _ => s.serialize_str(&format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(body)
            )),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        match text.strip_prefix("base64:") {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(serde::de::Error::custom),
            None => Ok(text.into_bytes()),
        }
    }
}
