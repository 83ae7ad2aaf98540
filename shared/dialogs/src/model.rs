//! A dialog as stored and as the API shows it (camelCase, as Chatterfy writes it).

use std::collections::BTreeMap;

use funnelhooks_core::Timestamp;
use funnelhooks_template::{Builtin, Context, Value, match_key};
use serde::{Deserialize, Serialize};

/// Who drives the dialog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The bot answers.
    #[default]
    Auto,
    /// A person answers.
    Manual,
    /// Nobody answers.
    Blocked,
}

impl Status {
    /// The status written in member or parameter `field`, or a 422 `bad_status` naming it.
    pub fn parse_field(s: &str, field: &str) -> Result<Status, funnelhooks_core::Error> {
        Status::parse(s).ok_or_else(|| {
            funnelhooks_core::Error::invalid(
                "bad_status",
                field,
                format!("{s:?} is not a status; use auto, manual or blocked"),
            )
        })
    }

    /// Parses `auto`, `manual` or `blocked` (any case).
    pub fn parse(s: &str) -> Option<Status> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Status::Auto),
            "manual" => Some(Status::Manual),
            "blocked" => Some(Status::Blocked),
            _ => None,
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Auto => "auto",
            Status::Manual => "manual",
            Status::Blocked => "blocked",
        }
    }
}

/// The type of a custom field, as defined in the bot's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    String,
    /// A number (integer or decimal).
    Number,
    /// `true` / `false`.
    Boolean,
    /// A moment, stored as ISO 8601 UTC.
    Date,
}

/// A custom field's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// Text (and dates, as ISO 8601 text).
    Text(String),
}

// Read by the value's own JSON type rather than `untagged`, which buffers each value and tries
// the variants in turn, building (and formatting) an error for each miss: for text fields
// that was two errors per field each time a dialog was read.
impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = FieldValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean, a number or text")
            }
            fn visit_bool<E>(self, b: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<FieldValue, E> {
                Ok(FieldValue::Number(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<FieldValue, E> {
                serde_json::Number::from_f64(n)
                    .map(FieldValue::Number)
                    .ok_or_else(|| E::custom("a number must be finite"))
            }
            fn visit_str<E>(self, t: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(t.to_owned()))
            }
            fn visit_string<E>(self, t: String) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(t))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// One chat's dialog with one bot. A dialog whose chat has not started the bot yet is
/// `started: false` and holds what postbacks assigned in advance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dialog {
    /// The bot.
    pub bot_id: String,
    /// Telegram chat id.
    pub chat_id: i64,
    /// Telegram username.
    pub username: Option<String>,
    /// The person's name.
    pub name: Option<String>,
    /// Current step's id.
    pub step_id: Option<String>,
    /// Current step's key.
    pub step_key: Option<String>,
    /// Who drives the dialog.
    pub status: Status,
    /// Custom fields.
    pub fields: BTreeMap<String, FieldValue>,
    /// Tracker fields (`clickid`, `utm_*`...).
    pub tracker: BTreeMap<String, String>,
    /// Tags, in the order they were added.
    pub tags: Vec<String>,
    /// Whether the chat has started the bot.
    pub started: bool,
    /// When the chat started the bot.
    pub created_at: Option<Timestamp>,
    /// Last change.
    pub updated_at: Timestamp,
    /// The delivery ids of the latest send-webhook steps the dialog entered, newest last (up
    /// to [`MAX_STEP_DELIVERIES`]): the way from a dialog to its webhooks in the log, and
    /// how the retry sweep tells a step entry that happened from one that never landed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_deliveries: Vec<String>,
    /// The dialog's place in its bot's list, taken by its creation and stored with it (one
    /// write fewer than a key of its own); not part of the API's view. `None` in records
    /// written before it existed (their place is under `{key}:slot`).
    #[serde(default, rename = "listSlot", skip_serializing_if = "Option::is_none")]
    pub list_slot: Option<u64>,
    /// The conversions applied to it by click id, oldest first (the latest
    /// [`crate::conversion::MAX_REMEMBERED_CONVERSIONS`]): what each changed, and how a
    /// repeat is recognised.
    /// Each a [`crate::conversion::ConversionMark`] as JSON: read typed only where
    /// conversions are handled, so the other components stay small.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversions: Vec<serde_json::Value>,
    /// What postbacks and the management API changed, oldest first (the latest
    /// [`crate::update::MAX_HISTORY`]): when, through what, and which members; the
    /// dialog's timeline. Kept in the record the change writes anyway, so it costs no write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
}

/// How many step deliveries a dialog remembers.
pub const MAX_STEP_DELIVERIES: usize = 8;

impl Dialog {
    /// Remembers that the dialog entered a send-webhook step whose delivery is `id`.
    pub fn entered_webhook_step(&mut self, id: &str) {
        if self.step_deliveries.iter().any(|d| d == id) {
            return;
        }
        self.step_deliveries.push(id.to_string());
        let extra = self
            .step_deliveries
            .len()
            .saturating_sub(MAX_STEP_DELIVERIES);
        self.step_deliveries.drain(..extra);
    }

    /// A dialog for a chat that has not started the bot: postbacks fill it in advance.
    pub fn pending(bot_id: &str, chat_id: i64, now: Timestamp) -> Self {
        Self {
            bot_id: bot_id.to_string(),
            chat_id,
            username: None,
            name: None,
            step_id: None,
            step_key: None,
            status: Status::Auto,
            fields: BTreeMap::new(),
            tracker: BTreeMap::new(),
            tags: Vec::new(),
            started: false,
            created_at: None,
            updated_at: now,
            step_deliveries: Vec::new(),
            list_slot: None,
            conversions: Vec::new(),
            history: Vec::new(),
        }
    }

    /// Whether the dialog is what a marketer searching for `query` looks for: its chat id,
    /// its username (with or without `@`, any letter case), a part of the person's name, or
    /// the exact value of a tracker field (a click id, a subid) or a text custom field.
    pub fn matches(&self, query: &str) -> bool {
        let q = query.trim();
        if q.is_empty() {
            return false;
        }
        let lower = q.to_lowercase();
        let handle = lower.strip_prefix('@').unwrap_or(&lower);
        self.chat_id.to_string() == q
            || self
                .username
                .as_deref()
                .is_some_and(|u| u.to_lowercase() == handle)
            || self
                .name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains(&lower))
            || self.tracker.values().any(|v| v == q)
            || self
                .fields
                .values()
                .any(|v| matches!(v, FieldValue::Text(t) if t == q))
    }

    /// The dialog as the API shows it: without what only storage needs.
    pub fn view(&self) -> Dialog {
        self.clone().into_view()
    }

    /// [`Dialog::view`] of a dialog no longer needed as stored, without copying it.
    pub fn into_view(self) -> Dialog {
        Dialog {
            list_slot: None,
            ..self
        }
    }
}

impl Context for Dialog {
    fn builtin(&self, builtin: Builtin) -> Option<Value<'_>> {
        match builtin {
            Builtin::ChatId => Some(Value::Int(self.chat_id)),
            Builtin::Username => self.username.as_deref().map(Value::Str),
            Builtin::Name => self.name.as_deref().map(Value::Str),
            Builtin::StepKey => self.step_key.as_deref().map(Value::Str),
            Builtin::StepId => self.step_id.as_deref().map(Value::Str),
            Builtin::Status => Some(Value::Str(self.status.as_str())),
            Builtin::CreatedAt => self.created_at.map(|t| Value::Time(t.0)),
        }
    }

    fn field(&self, key: &str) -> Option<Value<'_>> {
        // Exactly, else by letter case when one field alone matches (`refId` for `refID`).
        let value = match self.fields.get(key) {
            Some(v) => v,
            None => self
                .fields
                .get(match_key(key, self.fields.keys().map(String::as_str)).key()?)?,
        };
        Some(match value {
            FieldValue::Bool(b) => Value::Bool(*b),
            FieldValue::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Num(n.as_f64()?),
            },
            // A date field's value as stored (`2024-03-10T17:49:32.806Z`) is a moment, so
            // `{regDate|unix}` converts it as `{createdAt|unix}` does; shown plainly it is
            // the same text.
            FieldValue::Text(t) => match as_moment(t) {
                Some(ms) => Value::Time(ms),
                None => Value::Str(t),
            },
        })
    }

    fn tracker(&self, key: &str) -> Option<Value<'_>> {
        self.tracker.get(key).map(|v| Value::Str(v))
    }
}

/// The moment `text` is, when it is written exactly as a date field is stored.
fn as_moment(text: &str) -> Option<i64> {
    if text.len() != 24 || !text.ends_with('Z') || text.as_bytes()[10] != b'T' {
        return None;
    }
    let t = Timestamp::parse_iso(text)?;
    (t.iso() == text).then_some(t.0)
}
