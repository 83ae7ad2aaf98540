//! An updateDialog request, validated against the bot, and applied to a dialog.
//!
//! Parameters (Chatterfy's, plus tags):
//! - `chatId` (required): the Telegram chat id, a signed 64-bit integer.
//! - `stepId`: a step of this bot; sets `stepId` and `stepKey`.
//! - `status`: `auto`, `manual` or `blocked`.
//! - `fields.KEY`, `details.KEY` and a bare `KEY`: custom field KEY, typed by the bot's field
//!   definitions; a key the bot does not define is stored as text and reported.
//! - `tracker.KEY`: tracker field KEY, stored as text.
//! - `addTag` / `addTags` and `removeTag` / `removeTags`: tags, comma-separated or (in JSON)
//!   an array. Removal happens after adding.
//!
//! Names of the reserved parameters ignore case and underscores (`chat_id`, `ChatID`).
//! When a parameter comes twice, the last one wins (query first, then body).

use std::collections::BTreeMap;

use funnelhooks_template::datetime::parse_iso;
use serde_json::Value as Json;

use crate::error::DialogError;
use crate::limits::{MAX_FIELDS, MAX_TAGS, MAX_TRACKER_FIELDS, MAX_VALUE_LEN, valid_key};
use crate::model::{Dialog, FieldType, FieldValue, Status, Timestamp};
use crate::params::Param;

/// What the update is checked against: the bot's custom field definitions and steps.
pub struct BotSchema<'a> {
    /// Defined custom fields and their types.
    pub fields: &'a BTreeMap<String, FieldType>,
    /// The key of the step with this id, if the bot has it.
    pub step_key: &'a dyn Fn(&str) -> Result<Option<String>, DialogError>,
}

/// A validated update, ready to apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// The chat.
    pub chat_id: i64,
    /// New step (id, key).
    pub step: Option<(String, String)>,
    /// New status.
    pub status: Option<Status>,
    /// Custom fields to write.
    pub fields: BTreeMap<String, FieldValue>,
    /// Keys written that the bot does not define (stored as text).
    pub undefined_fields: Vec<String>,
    /// Tracker fields to write.
    pub tracker: BTreeMap<String, String>,
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
}

enum Reserved {
    ChatId,
    StepId,
    Status,
    AddTags,
    RemoveTags,
}

fn reserved(name: &str) -> Option<Reserved> {
    // Folded on the stack: this runs twice for every parameter of every postback.
    let mut folded = [0u8; 10];
    let mut n = 0;
    for b in name.bytes().filter(|b| *b != b'_') {
        *folded.get_mut(n)? = b.to_ascii_lowercase();
        n += 1;
    }
    Some(match &folded[..n] {
        b"chatid" => Reserved::ChatId,
        b"stepid" => Reserved::StepId,
        b"status" => Reserved::Status,
        b"addtag" | b"addtags" => Reserved::AddTags,
        b"removetag" | b"removetags" => Reserved::RemoveTags,
        _ => return None,
    })
}

/// Validates `params` against `schema`. The first bad parameter is the error; nothing is
/// half-applied because nothing is applied here.
pub fn parse_update(
    params: Vec<(String, Param)>,
    schema: &BotSchema<'_>,
) -> Result<Update, DialogError> {
    let mut update = Update::default();
    // Without a chat there is nothing to update: say so before judging anything else.
    if !params
        .iter()
        .any(|(n, _)| matches!(reserved(n), Some(Reserved::ChatId)))
    {
        return Err(DialogError::bad_request(
            "missing_chat_id",
            Some("chatId"),
            "chatId is required: the Telegram chat id of the dialog to update",
        ));
    }
    let mut chat_id = 0;
    for (name, value) in params {
        match reserved(&name) {
            Some(Reserved::ChatId) => chat_id = parse_chat_id(&name, &value)?,
            Some(Reserved::StepId) => {
                let id = text(&name, &value)?;
                let key = (schema.step_key)(id.trim())?.ok_or_else(|| {
                    DialogError::unprocessable(
                        "unknown_step",
                        Some(&name),
                        format!("this bot has no step {:?}", id.trim()),
                    )
                })?;
                update.step = Some((id.trim().to_string(), key));
            }
            Some(Reserved::Status) => {
                let s = text(&name, &value)?;
                update.status = Some(Status::parse(&s).ok_or_else(|| {
                    DialogError::unprocessable(
                        "bad_status",
                        Some(&name),
                        format!("{s:?} is not a status; use auto, manual or blocked"),
                    )
                })?);
            }
            Some(Reserved::AddTags) => update.add_tags.extend(tags(&name, &value)?),
            Some(Reserved::RemoveTags) => update.remove_tags.extend(tags(&name, &value)?),
            None => {
                let (scope, key) = match name.split_once('.') {
                    Some((scope, key)) => (scope, key),
                    None => ("fields", name.as_str()),
                };
                if !valid_key(key) {
                    return Err(DialogError::unprocessable(
                        "bad_key",
                        Some(&name),
                        "a key is 1 to 64 of A-Z a-z 0-9 _ -",
                    ));
                }
                match scope {
                    "fields" | "details" => {
                        let typed = typed_value(&name, &value, schema.fields.get(key).copied())?;
                        if !schema.fields.contains_key(key)
                            && !update.undefined_fields.iter().any(|k| k == key)
                        {
                            update.undefined_fields.push(key.to_string());
                        }
                        update.fields.insert(key.to_string(), typed);
                    }
                    "tracker" => {
                        let v = text(&name, &value)?;
                        check_len(&name, &v)?;
                        update.tracker.insert(key.to_string(), v);
                    }
                    _ => {
                        return Err(DialogError::unprocessable(
                            "bad_key",
                            Some(&name),
                            "use fields.KEY, details.KEY, tracker.KEY or a bare KEY",
                        ));
                    }
                }
            }
        }
    }
    update.chat_id = chat_id;
    Ok(update)
}

fn parse_chat_id(name: &str, value: &Param) -> Result<i64, DialogError> {
    let bad = || {
        DialogError::unprocessable(
            "bad_chat_id",
            Some(name),
            "chatId must be a Telegram chat id: a whole number between -9223372036854775808 and 9223372036854775807",
        )
    };
    match value {
        Param::Json(Json::Number(n)) => n.as_i64().ok_or_else(bad),
        Param::Json(Json::String(s)) | Param::Text(s) => s.trim().parse().map_err(|_| bad()),
        Param::Json(_) => Err(bad()),
    }
}

fn text(name: &str, value: &Param) -> Result<String, DialogError> {
    match value {
        Param::Text(s) | Param::Json(Json::String(s)) => Ok(s.clone()),
        Param::Json(j @ (Json::Number(_) | Json::Bool(_))) => Ok(j.to_string()),
        Param::Json(_) => Err(DialogError::unprocessable(
            "bad_value",
            Some(name),
            "expected text, a number or a boolean",
        )),
    }
}

fn check_len(name: &str, value: &str) -> Result<(), DialogError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(DialogError::unprocessable(
            "value_too_long",
            Some(name),
            format!(
                "the value is {} bytes; the limit is {MAX_VALUE_LEN}",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn tags(name: &str, value: &Param) -> Result<Vec<String>, DialogError> {
    let raw: Vec<String> = match value {
        Param::Json(Json::Array(items)) => items
            .iter()
            .map(|i| text(name, &Param::Json(i.clone())))
            .collect::<Result<_, _>>()?,
        other => text(name, other)?.split(',').map(str::to_string).collect(),
    };
    let mut out = Vec::new();
    for tag in raw {
        let tag = tag.trim();
        if tag.is_empty() {
            continue;
        }
        if !valid_key(tag) {
            return Err(DialogError::unprocessable(
                "bad_tag",
                Some(name),
                format!("{tag:?} is not a tag: 1 to 64 of A-Z a-z 0-9 _ -"),
            ));
        }
        out.push(tag.to_string());
    }
    Ok(out)
}

fn typed_value(
    name: &str,
    value: &Param,
    kind: Option<FieldType>,
) -> Result<FieldValue, DialogError> {
    let wrong = |what: &str| {
        DialogError::unprocessable(
            "wrong_type",
            Some(name),
            format!("the field is a {what}; this value is not one"),
        )
    };
    let as_text = text(name, value)?;
    check_len(name, &as_text)?;
    Ok(match kind {
        None | Some(FieldType::String) => FieldValue::Text(as_text),
        Some(FieldType::Number) => match value {
            Param::Json(Json::Number(n)) => FieldValue::Number(n.clone()),
            _ => number(as_text.trim()).ok_or_else(|| wrong("number"))?,
        },
        Some(FieldType::Boolean) => match value {
            Param::Json(Json::Bool(b)) => FieldValue::Bool(*b),
            _ => FieldValue::Bool(match as_text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(wrong("boolean (true/false, 1/0, yes/no)")),
            }),
        },
        Some(FieldType::Date) => {
            let t = as_text.trim();
            let ms = match t.parse::<i64>() {
                // Unix seconds, or milliseconds when it is too large to be seconds.
                Ok(n) if n.abs() < 100_000_000_000 => n.checked_mul(1000),
                Ok(n) => Some(n),
                Err(_) => parse_iso(t),
            };
            FieldValue::Text(
                Timestamp(ms.ok_or_else(|| wrong("date (ISO 8601 or Unix time)"))?).iso(),
            )
        }
    })
}

fn number(s: &str) -> Option<FieldValue> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(FieldValue::Number(i.into()));
    }
    let f: f64 = s.parse().ok()?;
    serde_json::Number::from_f64(f).map(FieldValue::Number)
}

/// Fails when writing `incoming` into `existing` would hold more than `max` keys.
pub(crate) fn check_room<V, W>(
    existing: &BTreeMap<String, V>,
    incoming: &BTreeMap<String, W>,
    max: usize,
    code: &'static str,
    field: Option<&str>,
) -> Result<(), DialogError> {
    let added = incoming
        .keys()
        .filter(|k| !existing.contains_key(*k))
        .count();
    if existing.len() + added > max {
        return Err(DialogError::unprocessable(
            code,
            field,
            format!(
                "a dialog holds at most {max} of these; this would make {}",
                existing.len() + added
            ),
        ));
    }
    Ok(())
}

impl Dialog {
    /// Applies a validated update. Limits are checked first, so an update that would pass one
    /// changes nothing.
    pub fn apply(&mut self, update: &Update, now: Timestamp) -> Result<(), DialogError> {
        check_room(
            &self.fields,
            &update.fields,
            MAX_FIELDS,
            "too_many_fields",
            None,
        )?;
        check_room(
            &self.tracker,
            &update.tracker,
            MAX_TRACKER_FIELDS,
            "too_many_tracker_fields",
            None,
        )?;
        let mut tags = self.tags.clone();
        for tag in &update.add_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        tags.retain(|t| !update.remove_tags.contains(t));
        if tags.len() > MAX_TAGS {
            return Err(DialogError::unprocessable(
                "too_many_tags",
                None,
                format!("a dialog holds at most {MAX_TAGS} tags"),
            ));
        }
        self.tags = tags;
        self.fields
            .extend(update.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.tracker
            .extend(update.tracker.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some((id, key)) = &update.step {
            self.step_id = Some(id.clone());
            self.step_key = Some(key.clone());
        }
        if let Some(status) = update.status {
            self.status = status;
        }
        self.updated_at = now;
        Ok(())
    }
}
