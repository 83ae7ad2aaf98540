//! A request ready to send: what a step's webhook or a call hook renders, what the log keeps
//! and what a retry sends again, and the bounds every such request stays within (a request
//! past one is never sent, and never cut into a different request: its delivery is logged as
//! skipped or failed with the reason).

use serde::{Deserialize, Serialize};

use crate::target::{TargetPolicy, check_target};

/// Longest URL a delivery sends (what most servers take in a request line).
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Longest value of one header.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// Every header name and value of a request together.
pub const MAX_HEADERS_BYTES: usize = 16 * 1024;
/// Longest body (a BotHelp profile of a large dialog fits; a template repeating a value
/// thousands of times does not).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Headers the host's outbound HTTP refuses or sets itself (wasi-http's forbidden names,
/// hop-by-hop headers, framing): a request carrying one could never be sent.
pub const FORBIDDEN_HEADERS: [&str; 13] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "te",
    "trailer",
    "expect",
    "content-length",
];

/// Why a header name cannot be sent, if it cannot: not an HTTP token, or forbidden.
pub fn unsendable_header_name(name: &str) -> Option<&'static str> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Some("a header name is letters, digits and !#$%&'*+-.^_`|~");
    }
    FORBIDDEN_HEADERS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
        .then_some("this header is set by the transport; the host refuses it from a webhook")
}

/// Whether a header value holds a byte no HTTP message may carry in one: a control
/// character other than tab (CR, LF, NUL among them).
pub fn unsendable_header_value(value: &str) -> bool {
    value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

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

/// Bodies are stored as text when they are UTF-8 (they nearly always are) and JSON escaping
/// does not make them more than twice as long (control characters take six bytes each),
/// else base64: a stored body is never more than twice its length.
mod body_text {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// The length of `text` written as a JSON string's content.
    fn escaped_len(text: &str) -> usize {
        text.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' => 2,
                0..0x20 => 6,
                _ => 1,
            })
            .sum()
    }

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) if !text.starts_with("base64:") && escaped_len(text) <= 2 * text.len() => {
                s.serialize_str(text)
            }
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

impl OutboundRequest {
    /// Why this request can never be sent as it is, if it cannot: past a bound, a header the
    /// host refuses, or a target the rules refuse under `policy` (checked at every attempt,
    /// with the same rules as when its step or hook was saved).
    pub fn unsendable(&self, policy: TargetPolicy) -> Option<String> {
        if self.url.len() > MAX_URL_BYTES {
            return Some(format!(
                "not sent: the URL is {} bytes, over the {MAX_URL_BYTES}-byte bound",
                self.url.len()
            ));
        }
        if let Err(e) = check_target(&self.url, policy) {
            return Some(format!("not sent: {}", e.message));
        }
        let mut total = 0;
        for (name, value) in &self.headers {
            if let Some(why) = unsendable_header_name(name) {
                return Some(format!("not sent: header {name:?}: {why}"));
            }
            if unsendable_header_value(value) {
                return Some(format!(
                    "not sent: header {name:?} holds a control character (a line break?)"
                ));
            }
            if value.len() > MAX_HEADER_VALUE_BYTES {
                return Some(format!(
                    "not sent: header {name:?} is {} bytes, over the {MAX_HEADER_VALUE_BYTES}-byte bound",
                    value.len()
                ));
            }
            total += name.len() + value.len();
        }
        if total > MAX_HEADERS_BYTES {
            return Some(format!(
                "not sent: the headers are {total} bytes, over the {MAX_HEADERS_BYTES}-byte bound"
            ));
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Some(format!(
                "not sent: the body is {} bytes, over the {MAX_BODY_BYTES}-byte bound",
                self.body.len()
            ));
        }
        None
    }
}
