//! What the API never shows: secrets inside requests, masked as `***` wherever they sit.
//!
//! - values of headers, query parameters, form fields and JSON members (at any depth) whose
//!   name contains `authorization`, `token`, `secret`, `password`, `key`, `cookie`,
//!   `signature` or `sig`;
//! - path segments that are credentials: Telegram's `bot<id>:<token>`, and any long opaque
//!   segment (24 or more letters, digits, `-` and `_`, with both letters and digits), which
//!   is what Slack, Discord, Make and Zapier hook URLs and updateDialog links carry.
//!
//! What is stored keeps the real values (a retry sends them); only views mask.

use serde_json::{Value as Json, json};

/// Names whose values are masked.
const SECRET_WORDS: [&str; 8] = [
    "authorization",
    "token",
    "secret",
    "password",
    "key",
    "cookie",
    "signature",
    "sig",
];

/// The mask.
pub const MASK: &str = "***";

/// Whether a header, parameter or member called `name` holds a secret.
pub fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Whether a path segment is a credential (see the module documentation).
pub fn secret_segment(segment: &str) -> bool {
    if let Some(token) = segment.strip_prefix("bot")
        && let Some((id, rest)) = token.split_once(':')
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && rest.len() >= 20
    {
        return true;
    }
    let opaque = segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    opaque
        && segment.len() >= 24
        && segment.bytes().any(|b| b.is_ascii_digit())
        && segment.bytes().any(|b| b.is_ascii_alphabetic())
}

/// `pairs` (`a=1&b=2`) with the values of secret names masked.
fn mask_pairs(pairs: &str) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret_name(k) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `url` with credential path segments and the values of secret query parameters masked.
pub fn mask_url(url: &str) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // scheme://authority stays; path segments after it are judged one by one.
    let path_start = base
        .find("://")
        .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(base.len());
    let mut out = base[..path_start].to_string();
    for segment in base[path_start..].split('/').skip(1) {
        out.push('/');
        out.push_str(if secret_segment(segment) {
            MASK
        } else {
            segment
        });
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(&mask_pairs(q));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Masks the values of secret-named members of `value`, at any depth.
pub fn mask_json(value: &mut Json) {
    match value {
        Json::Object(m) => {
            for (k, v) in m.iter_mut() {
                if secret_name(k) && !v.is_object() && !v.is_array() {
                    *v = Json::from(MASK);
                } else {
                    mask_json(v);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// A request body as shown: secret form fields and JSON members masked.
pub fn mask_body(headers: &[(String, String)], body: &[u8]) -> String {
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return mask_pairs(&String::from_utf8_lossy(body));
    }
    if content_type.starts_with("application/json")
        && let Ok(mut v) = serde_json::from_slice::<Json>(body)
    {
        let before = v.clone();
        mask_json(&mut v);
        if v != before {
            return v.to_string();
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

/// Headers as shown: `[[name, value], ...]` with secret values masked.
pub fn mask_headers(headers: &[(String, String)]) -> Json {
    Json::Array(
        headers
            .iter()
            .map(|(k, v)| json!([k, if secret_name(k) { MASK } else { v.as_str() }]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_paths_are_masked_and_ids_are_not() {
        assert_eq!(
            mask_url(
                "https://api.telegram.org/bot123456:AAE-abcdefghijklmnopqrstuvwxyz/sendMessage?chat_id=5"
            ),
            "https://api.telegram.org/***/sendMessage?chat_id=5"
        );
        assert_eq!(
            mask_url("https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX1234abcd"),
            "https://hooks.slack.com/services/T0000/B0000/***"
        );
        assert_eq!(
            mask_url("https://discord.com/api/webhooks/1234567890/abcDEF_ghi-JKL123456789mnopqr"),
            "https://discord.com/api/webhooks/1234567890/***"
        );
        assert_eq!(
            mask_url(
                "https://app.example.com/api/bots/webhooks/55833627-242e-4061-9b0a-30da3e9cf7d4/updateDialog"
            ),
            "https://app.example.com/api/bots/webhooks/***/updateDialog"
        );
        assert_eq!(
            mask_url("https://keitaro.example.com/25123a/postback?subid=abc&token=s3cret#top"),
            "https://keitaro.example.com/25123a/postback?subid=abc&token=***#top"
        );
        assert_eq!(
            mask_url("https://x.example/leads/12345"),
            "https://x.example/leads/12345"
        );
    }

    #[test]
    fn nested_json_secrets_are_masked() {
        let mut v = serde_json::json!({"a": {"apiKey": "k", "list": [{"password": "p", "n": 1}]}, "token": "t"});
        mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": {"apiKey": "***", "list": [{"password": "***", "n": 1}]}, "token": "***"})
        );
    }
}
