//! The subscriber profile a `"body": "profile"` step sends: BotHelp's webhook body (seed 003),
//! member for member and type for type, filled from our dialog:
//!
//! | member | type | from the dialog |
//! |---|---|---|
//! | `created_at` | number | `createdAt` in Unix seconds; `0` before the chat starts (no profile yet) |
//! | `name` | string | `name` (empty when unknown) |
//! | `first_name`, `last_name` | string | `name` split at its first space |
//! | `profile_link` | string | `https://t.me/{username}` (empty without a username) |
//! | `email`, `phone` | string | the custom fields `email` and `phone` (empty when absent) |
//! | `conversations_count` | number | 1 once the chat started, else 0 |
//! | `first_contact_at` | number | as `created_at` |
//! | `last_contact_at` | number | `updatedAt` in Unix seconds |
//! | `user_id` | string | `chatId` |
//! | `bothelp_user_id` | string | always empty: there is no BotHelp profile behind a dialog |
//! | `created_at_show` | string | `createdAt` as `14/07/2017 07:56:32 UTC` (empty before the start) |
//! | `cuid` | string | always empty: GetCourse/Bizon365 ids are BotHelp's own |
//! | `utm_*` | string | each tracker field whose key starts with `utm_` |
//! | every custom field | string | its key and its value as text (`"21"`, `"true"`), as BotHelp sends them |
//!
//! A custom field whose key is one of the standard members above does not replace it.

use funnelhooks_dialogs::{Dialog, FieldValue};
use funnelhooks_template::datetime::{Buf, DateForm, format};
use serde_json::{Map, Value as Json};

/// The profile of `dialog`: its custom fields and `utm_*` tracker fields, then the standard
/// members over them.
pub fn profile(dialog: &Dialog) -> Json {
    let mut out = Map::new();
    // BotHelp sends every custom field as text.
    for (key, value) in &dialog.fields {
        let v = match value {
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::Number(n) => n.to_string(),
            FieldValue::Text(t) => t.clone(),
        };
        out.insert(key.clone(), Json::from(v));
    }
    for (key, value) in &dialog.tracker {
        if key.starts_with("utm_") {
            out.insert(key.clone(), Json::from(value.as_str()));
        }
    }
    for (key, value) in standard(dialog) {
        out.insert(key.to_string(), value);
    }
    Json::Object(out)
}

/// BotHelp's standard members, from the dialog.
fn standard(dialog: &Dialog) -> [(&'static str, Json); 14] {
    let text = |key: &str| match dialog.fields.get(key) {
        Some(FieldValue::Text(t)) => t.clone(),
        Some(FieldValue::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let name = dialog.name.clone().unwrap_or_default();
    let (first, last) = match name.trim().split_once(' ') {
        Some((f, l)) => (f.to_string(), l.trim().to_string()),
        None => (name.trim().to_string(), String::new()),
    };
    let created = dialog.created_at.map_or(0, |t| t.0.div_euclid(1000));
    let show = dialog
        .created_at
        .map(|t| {
            let mut buf = Buf::new();
            format(t.0, DateForm::Show, false, &mut buf);
            buf.as_str().to_string()
        })
        .unwrap_or_default();
    let username = dialog.username.clone().unwrap_or_default();
    let link = match username.as_str() {
        "" => String::new(),
        u => format!("https://t.me/{u}"),
    };
    [
        ("created_at", Json::from(created)),
        ("name", Json::from(name)),
        ("first_name", Json::from(first)),
        ("last_name", Json::from(last)),
        ("profile_link", Json::from(link)),
        ("email", Json::from(text("email"))),
        ("phone", Json::from(text("phone"))),
        ("conversations_count", Json::from(u8::from(dialog.started))),
        ("first_contact_at", Json::from(created)),
        (
            "last_contact_at",
            Json::from(dialog.updated_at.0.div_euclid(1000)),
        ),
        ("user_id", Json::from(dialog.chat_id.to_string())),
        ("bothelp_user_id", Json::from("")),
        ("created_at_show", Json::from(show)),
        ("cuid", Json::from("")),
    ]
}
