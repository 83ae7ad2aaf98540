//! The sample dialog test sends and previews render against when no real dialog is named: a
//! started chat with a name, a username, a click id and a creation time, with what the caller
//! gives (`username`, `name`, `chatId`, `fields`, `tracker`) over those defaults.

use funnelhooks_core::{Error, Timestamp};
use funnelhooks_dialogs::{Dialog, FieldValue};
use serde_json::{Map, Value as Json};

/// The sample chat id.
pub const SAMPLE_CHAT: i64 = 123_456_789;

/// A sample dialog of bot `bot_id` at `now`, with `overrides` over the defaults; a bad
/// override is an error naming `sample.<member>`.
pub fn sample(
    bot_id: &str,
    now: Timestamp,
    overrides: Option<&Map<String, Json>>,
) -> Result<Dialog, Error> {
    let mut d = Dialog::pending(bot_id, SAMPLE_CHAT, now);
    d.username = Some("sample_user".into());
    d.name = Some("Sample User".into());
    d.started = true;
    d.created_at = Some(Timestamp(now.0 - 3_600_000));
    d.tracker.insert("clickid".into(), "sample-click-id".into());
    let bad = |member: &str, what: &str| {
        Error::invalid(
            "bad_sample",
            &format!("sample.{member}"),
            format!("expected {what}"),
        )
    };
    for (key, value) in overrides.into_iter().flatten() {
        match (key.as_str(), value) {
            ("username", Json::String(s)) => d.username = Some(s.clone()),
            ("name", Json::String(s)) => d.name = Some(s.clone()),
            ("chatId", v) => {
                d.chat_id = funnelhooks_core::chat::from_json(v, "sample.chatId")
                    .map_err(|_| bad("chatId", "a Telegram chat id (a signed 64-bit number)"))?
            }
            ("fields", Json::Object(m)) => {
                for (k, v) in m {
                    let v = match v {
                        Json::Bool(b) => FieldValue::Bool(*b),
                        Json::Number(n) => FieldValue::Number(n.clone()),
                        Json::String(s) => FieldValue::Text(s.clone()),
                        _ => return Err(bad("fields", "text, numbers and booleans")),
                    };
                    d.fields.insert(k.clone(), v);
                }
            }
            ("tracker", Json::Object(m)) => {
                for (k, v) in m {
                    let v = v.as_str().ok_or_else(|| bad("tracker", "text values"))?;
                    d.tracker.insert(k.clone(), v.to_string());
                }
            }
            (other, _) => return Err(bad(other, "username, name, chatId, fields or tracker")),
        }
    }
    Ok(d)
}
