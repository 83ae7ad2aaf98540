//! What the API never shows: secrets inside requests and responses, masked as `***`
//! wherever they sit.
//!
//! - values of headers, query parameters, form fields and JSON members (at any depth) whose
//!   name holds a secret word ([`secret_name`]): one of [`SECRET_PARTS`] anywhere in it
//!   (`X-Auth`, `Api-Auth`, `X-Session-Id`, `passwd`), or one of [`SECRET_WORDS`] as a word of
//!   its own (`apiKey`, `X-Api-Key`, `user_pin`, `pwd`, but not `monkey` or `shipping`);
//!   query parameters also when named `code` (an OAuth authorization code);
//! - path segments that are credentials: Telegram's `bot<id>:<token>`, and any long opaque
//!   segment (24 or more letters, digits, `-` and `_`, with both letters and digits), which
//!   is what Slack, Discord, Make and Zapier hook URLs and updateDialog links carry;
//! - in response bodies of any type, the credential after `Bearer ` or `Basic ` and after
//!   `"password":`-style pairs in text that is not valid JSON.
//!
//! What is stored keeps the real values (a retry sends them); only views mask.

use serde_json::{Value as Json, json};

/// Name parts that mark a secret wherever they appear in a name.
pub const SECRET_PARTS: [&str; 11] = [
    "auth",
    "token",
    "secret",
    "passw",
    "passcode",
    "cookie",
    "signature",
    "session",
    "credential",
    "apikey",
    "jwt",
];

/// Words that mark a secret when they are a word of the name of their own (split at
/// anything but letters and digits, and where a lower-case letter meets an upper-case one).
pub const SECRET_WORDS: [&str; 8] = ["key", "sig", "pass", "pwd", "pin", "otp", "sid", "private"];

/// The mask.
pub const MASK: &str = "***";

/// The words of `name`: runs of letters and digits, split where camelCase turns.
fn words(name: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out.into_iter()
}

/// Whether a header, parameter or member called `name` holds a secret.
pub fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|p| lower.contains(p))
        || words(name).any(|w| SECRET_WORDS.contains(&w.as_str()))
}

/// Whether a URL's query parameter called `name` holds a secret: [`secret_name`], or `code`
/// (an OAuth authorization code).
pub fn secret_query_name(name: &str) -> bool {
    secret_name(name) || words(name).any(|w| w == "code")
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

/// `pairs` (`a=1&b=2`) with the values of names `secret` says are secret masked.
fn mask_pairs(pairs: &str, secret: fn(&str) -> bool) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret(k) => format!("{k}={MASK}"),
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
        out.push_str(&mask_pairs(q, secret_query_name));
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

/// A request or response body as shown: secret form fields and JSON members masked (by the
/// content type, or by the look of the body when there is none), and in any other text the
/// credentials that follow `Bearer `, `Basic ` or a secret name with `:` or `=`.
pub fn mask_body(headers: &[(String, String)], body: &[u8]) -> String {
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(body);
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return mask_pairs(&text, secret_name);
    }
    let looks_json = matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if (content_type.contains("json") || looks_json)
        && let Ok(mut v) = serde_json::from_str::<Json>(&text)
    {
        let before = v.clone();
        mask_json(&mut v);
        return if v != before {
            v.to_string()
        } else {
            text.into_owned()
        };
    }
    mask_text(&text)
}

/// Free text with the credentials after `Bearer ` / `Basic ` and after a secret name
/// followed by `:` or `=` (`"password": "x"`, `token=abc`) masked.
pub fn mask_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, skip)) = next_secret(rest) {
        out.push_str(&rest[..at + skip]);
        rest = &rest[at + skip..];
        // `Authorization: Bearer x`: the scheme stays, the credential after it goes.
        for scheme in ["bearer ", "basic "] {
            if rest.len() >= scheme.len() && rest[..scheme.len()].eq_ignore_ascii_case(scheme) {
                out.push_str(&rest[..scheme.len()]);
                rest = &rest[scheme.len()..];
            }
        }
        // The credential: a quoted string, or a run up to a space or a separator.
        let (end, mask) = match rest.strip_prefix('"') {
            Some(quoted) => (quoted.find('"').map_or(rest.len(), |e| e + 2), "\"***\""),
            None => (
                rest.find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | ';' | '}' | ']'))
                    .unwrap_or(rest.len()),
                MASK,
            ),
        };
        if end > 0 {
            out.push_str(mask);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Where the next credential in `text` starts: the offset of what announces it and its
/// length (`Bearer `, or `password": ` including the quote, colon and spaces).
fn next_secret(text: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let scheme = ["bearer ", "basic "]
        .iter()
        .filter_map(|s| lower.find(s).map(|i| (i, s.len())))
        .min();
    // A name (letters, digits, `_` `-`), maybe quoted, then `:` or `=`.
    let mut pair = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !(bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-'))
        {
            i += 1;
        }
        let name = &text[start..i];
        let mut j = i;
        if j < bytes.len() && bytes[j] == b'"' {
            j += 1;
        }
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j < bytes.len() && matches!(bytes[j], b':' | b'=') && secret_name(name) {
            j += 1;
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            pair = Some((start, j - start));
            break;
        }
    }
    match (scheme, pair) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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

    #[test]
    fn secret_names_are_found_as_parts_or_as_words() {
        for name in [
            "X-Auth",
            "Api-Auth",
            "X-Jwt",
            "X-Session-Id",
            "Authorization",
            "x-api-key",
            "apiKey",
            "api_key",
            "private_key",
            "user_pin",
            "PIN",
            "pwd",
            "pass",
            "passwd",
            "X-Access-Token",
            "Cookie",
            "set-cookie",
            "sig",
            "X-Signature",
            "client_secret",
        ] {
            assert!(secret_name(name), "{name} must be secret");
        }
        for name in [
            "monkey",
            "keyword",
            "shipping",
            "compass",
            "subid",
            "status",
            "code",
            "zip",
            "clickid",
            "payout",
            "content-type",
        ] {
            assert!(!secret_name(name), "{name} is not secret");
        }
        assert!(secret_query_name("code") && secret_query_name("auth_code"));
        assert!(!secret_query_name("subid"));
    }

    #[test]
    fn query_parameters_named_like_credentials_are_masked() {
        assert_eq!(
            mask_url("https://t.example/p?subid=1&pass=a&pwd=b&auth=c&jwt=d&code=e&status=sale"),
            "https://t.example/p?subid=1&pass=***&pwd=***&auth=***&jwt=***&code=***&status=sale"
        );
    }

    #[test]
    fn response_bodies_are_masked_whatever_their_type() {
        let json = [("content-type".to_string(), "application/json".to_string())];
        assert_eq!(
            mask_body(
                &json,
                br#"{"user":"a","password":"p1","pin":"1234","pass":"x","code":200}"#
            ),
            r#"{"code":200,"pass":"***","password":"***","pin":"***","user":"a"}"#
        );
        // JSON without saying so.
        assert_eq!(mask_body(&[], br#"{"token":"t1"}"#), r#"{"token":"***"}"#);
        let text = "Authorization: Bearer eyJabc.def ok; password=hunter2&x=1 \"token\": \"s3\" basic dXNlcjpw";
        let masked = mask_body(&[], text.as_bytes());
        for secret in ["eyJabc", "hunter2", "s3", "dXNlcjpw"] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        assert!(
            masked.contains("Bearer ***") && masked.contains("x=1"),
            "{masked}"
        );
        assert_eq!(mask_body(&[], b"all good"), "all good");
    }
}
