//! An updateDialog request, validated against the bot, and applied to a dialog.
//!
//! Parameters (Chatterfy's, plus tags):
//! - `chatId` (required): the Telegram chat id, a signed 64-bit integer.
//! - `stepId`: a step of this bot; sets `stepId` and `stepKey`.
//! - `status`: `auto`, `manual` or `blocked`.
//! - `fields.KEY`, `details.KEY` and a bare `KEY`: custom field KEY (or the one defined field
//!   that differs from KEY only in letter case), typed by the bot's field
//!   definitions; a key the bot does not define is stored as text and reported.
//! - `tracker.KEY`: tracker field KEY, stored as text.
//! - `fields[KEY]`, `details[KEY]`, `tracker[KEY]`: the same, as forms and OpenAPI's
//!   `deepObject` write them.
//! - `addTag` / `addTags` and `removeTag` / `removeTags`: tags, comma-separated or (in JSON)
//!   an array. Removal happens after adding.
//! - `startPayload`: the `/start` payload of the ad's deep link, read into tracker fields by
//!   the bot's rule ([`crate::auto::StartRule`]); `tracker.KEY` given too wins over it.
//!
//! Names of the reserved parameters ignore case and underscores (`chat_id`, `ChatID`).
//! When a parameter comes twice, the last one wins (query first, then body).

use std::collections::BTreeMap;

use funnelhooks_core::{Error, Timestamp, chat};
use funnelhooks_template::match_key;
use serde_json::Value as Json;

use crate::limits::{MAX_DIALOG_BYTES, MAX_FIELDS, MAX_TAGS, MAX_TRACKER_FIELDS, valid_key};
use crate::model::{Dialog, FieldType, FieldValue, Status};
use crate::params::Param;
use crate::typed::{check_len, text, typed_value};

/// What updateDialog needs to know of a step of the bot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepRef {
    /// The step's id.
    pub id: String,
    /// Its key (`stepKey`).
    pub key: String,
    /// Whether entering it sends its webhook.
    pub sends_webhook: bool,
}

/// What the update is checked against: the bot's custom field definitions and steps.
pub struct BotSchema<'a> {
    /// Defined custom fields and their types.
    pub fields: &'a BTreeMap<String, FieldType>,
    /// The step with this id, if the bot has it.
    pub step: &'a dyn Fn(&str) -> Result<Option<StepRef>, Error>,
    /// The bot's Auto Actions as stored (how a `/start` payload is read), if set up.
    pub auto: Option<&'a serde_json::Value>,
}

/// A validated update, ready to apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// The chat.
    pub chat_id: i64,
    /// New step.
    pub step: Option<StepRef>,
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
    /// The `/start` payload, as read into tracker fields.
    pub start_payload: Option<crate::auto::PayloadRead>,
}

impl Update {
    /// Whether applying it would change nothing (only `chatId` was given): such a postback
    /// writes nothing and creates no dialog.
    pub fn is_empty(&self) -> bool {
        self.step.is_none()
            && self.status.is_none()
            && self.fields.is_empty()
            && self.tracker.is_empty()
            && self.add_tags.is_empty()
            && self.remove_tags.is_empty()
    }
}

enum Reserved {
    ChatId,
    StepId,
    Status,
    AddTags,
    RemoveTags,
    StartPayload,
}

fn reserved(name: &str) -> Option<Reserved> {
    // Folded on the stack: this runs twice for every parameter of every postback.
    let mut folded = [0u8; 12];
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
        b"startpayload" => Reserved::StartPayload,
        _ => return None,
    })
}

/// The chat `params` name, as [`parse_update`] reads it (the last `chatId` counts), or `None`
/// when they name none or not a valid one (then `parse_update` says what is wrong).
pub fn chat_id_of(params: &[(String, Param)]) -> Option<i64> {
    let (name, value) = params
        .iter()
        .rev()
        .find(|(n, _)| matches!(reserved(n), Some(Reserved::ChatId)))?;
    parse_chat_id(name, value).ok()
}

/// The step `params` move the dialog to, as [`parse_update`] reads it (the last `stepId`
/// counts), or `None` when they name none or not as text.
pub fn step_id_of(params: &[(String, Param)]) -> Option<String> {
    let (name, value) = params
        .iter()
        .rev()
        .find(|(n, _)| matches!(reserved(n), Some(Reserved::StepId)))?;
    crate::typed::text(name, value)
        .ok()
        .map(|id| id.trim().to_string())
}

/// Validates `params` against `schema`. The first bad parameter is the error; nothing is
/// half-applied because nothing is applied here.
pub fn parse_update(params: Vec<(String, Param)>, schema: &BotSchema<'_>) -> Result<Update, Error> {
    let mut update = Update::default();
    // Without a chat there is nothing to update: say so before judging anything else.
    if !params
        .iter()
        .any(|(n, _)| matches!(reserved(n), Some(Reserved::ChatId)))
    {
        return Err(Error::malformed(
            "missing_chat_id",
            "chatId",
            "chatId is required: the Telegram chat id of the dialog to update",
        ));
    }
    for (name, value) in params {
        // `&=` or a stray `&` in a tracker's URL: nothing to apply (but a list or an object
        // under no name is a broken body, not a stray character).
        if name.is_empty() {
            if matches!(value, Param::Json(Json::Array(_) | Json::Object(_))) {
                return Err(Error::invalid(
                    "bad_value",
                    "",
                    "a value without a name is ignored only when it is text, a number or a boolean",
                ));
            }
            continue;
        }
        match reserved(&name) {
            Some(Reserved::ChatId) => update.chat_id = parse_chat_id(&name, &value)?,
            Some(Reserved::StepId) => update.step = Some(step(&name, &value, schema)?),
            Some(Reserved::Status) => update.status = Some(status(&name, &value)?),
            Some(Reserved::AddTags) => update.add_tags.extend(tags(&name, &value)?),
            Some(Reserved::RemoveTags) => update.remove_tags.extend(tags(&name, &value)?),
            Some(Reserved::StartPayload) => {
                let payload = match &value {
                    Param::Text(s) | Param::Json(Json::String(s)) => s.clone(),
                    _ => {
                        return Err(Error::invalid(
                            "bad_start_payload",
                            &name,
                            "a /start payload is text",
                        ));
                    }
                };
                update.start_payload = Some(crate::auto::read_start_payload(
                    &payload,
                    schema.auto,
                    &name,
                )?);
            }
            None => update.custom(&name, &value, schema)?,
        }
    }
    if let Some(read) = &update.start_payload {
        for (k, v) in &read.tracker {
            update.tracker.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(update)
}

fn step(name: &str, value: &Param, schema: &BotSchema<'_>) -> Result<StepRef, Error> {
    let id = text(name, value)?;
    // Not found, as a step named anywhere else (send now, a path) is.
    (schema.step)(id.trim())?.ok_or_else(|| {
        Error::not_found(
            "unknown_step",
            format!("this bot has no step {:?}", id.trim()),
        )
        .at(name)
    })
}

fn status(name: &str, value: &Param) -> Result<Status, Error> {
    Status::parse_field(&text(name, value)?, name)
}

impl Update {
    /// `fields.KEY`, `details.KEY`, a bare `KEY` or `tracker.KEY`.
    fn custom(&mut self, name: &str, value: &Param, schema: &BotSchema<'_>) -> Result<(), Error> {
        // `tracker.KEY`, or the bracket form forms and OpenAPI's deepObject write:
        // `tracker[KEY]`.
        let bracketed = name
            .strip_suffix(']')
            .and_then(|n| n.split_once('['))
            .filter(|(_, key)| !key.contains(['[', ']']));
        let (scope, key) = bracketed
            .or_else(|| name.split_once('.'))
            .unwrap_or(("fields", name));
        if !valid_key(key) {
            return Err(Error::invalid(
                "bad_key",
                name,
                "a key is 1 to 64 of A-Z a-z 0-9 _ -",
            ));
        }
        match scope {
            "fields" | "details" => {
                // A defined field exactly, else by letter case when only one matches.
                let keys = schema.fields.keys().map(String::as_str);
                let key = match_key(key, keys).key().unwrap_or(key);
                let typed = typed_value(name, value, schema.fields.get(key).copied())?;
                if !schema.fields.contains_key(key)
                    && !self.undefined_fields.iter().any(|k| k == key)
                {
                    self.undefined_fields.push(key.to_string());
                }
                self.fields.insert(key.to_string(), typed);
            }
            "tracker" => {
                let v = text(name, value)?;
                check_len(name, &v)?;
                self.tracker.insert(key.to_string(), v);
            }
            _ => {
                return Err(Error::invalid(
                    "bad_key",
                    name,
                    "use fields.KEY, details.KEY, tracker.KEY or a bare KEY",
                ));
            }
        }
        Ok(())
    }
}

fn parse_chat_id(name: &str, value: &Param) -> Result<i64, Error> {
    match value {
        Param::Text(s) => chat::parse(s, name),
        Param::Json(j) => chat::from_json(j, name),
    }
}

fn tags(name: &str, value: &Param) -> Result<Vec<String>, Error> {
    let raw: Vec<String> = match value {
        // In JSON, tags are strings: `true` or `5` is a mistake, not a tag.
        Param::Json(Json::Array(items)) => items
            .iter()
            .map(|i| match i {
                Json::String(t) => Ok(t.clone()),
                _ => Err(Error::invalid("bad_tag", name, "tags are strings")),
            })
            .collect::<Result<_, _>>()?,
        Param::Json(j) if !j.is_string() => {
            return Err(Error::invalid(
                "bad_tag",
                name,
                "tags are text, comma-separated, or an array of strings",
            ));
        }
        other => text(name, other)?.split(',').map(str::to_string).collect(),
    };
    let mut out = Vec::new();
    for tag in raw {
        let tag = tag.trim();
        if tag.is_empty() {
            continue;
        }
        if !valid_key(tag) {
            return Err(Error::invalid(
                "bad_tag",
                name,
                format!("{tag:?} is not a tag: 1 to 64 of A-Z a-z 0-9 _ -"),
            ));
        }
        out.push(tag.to_string());
    }
    Ok(out)
}

/// How many changes a dialog's history keeps ([`Dialog::history`]).
pub const MAX_HISTORY: usize = 12;

/// How many changed members a history entry names.
const HISTORY_NAMES: usize = 8;

/// Who changed a dialog, as its history says.
#[derive(Debug, Clone, Copy)]
pub enum ChangedBy<'a> {
    /// A postback through the link whose id starts so (its first 8 characters: the whole id
    /// changes dialogs, and the history is shown to viewers).
    Postback(&'a str),
    /// The management API (the console's "Move to step").
    Api,
}

impl Dialog {
    /// The history entry for applying `update` to the dialog as it is now: when, through
    /// what, and what it changes (a member given the value it has already is not named);
    /// `None` when it changes nothing (a tracker sending the same postback again).
    pub fn change_entry(&self, update: &Update, by: ChangedBy<'_>, now: Timestamp) -> Option<Json> {
        let mut entry = serde_json::Map::new();
        if let Some(step) = update
            .step
            .as_ref()
            .filter(|s| self.step_id.as_deref() != Some(&s.id))
        {
            entry.insert("stepId".into(), step.id.as_str().into());
            entry.insert("stepKey".into(), step.key.as_str().into());
        }
        if let Some(status) = update.status.filter(|s| *s != self.status) {
            entry.insert("status".into(), status.as_str().into());
        }
        // Named as a postback names them (`fields.payout`, `tracker.clickid`, `+vip`, `-vip`),
        // at most [`HISTORY_NAMES`] and how many more: an entry stays small whatever came.
        let mut changed: Vec<Json> = Vec::new();
        let mut more = 0usize;
        let mut note = |kind: &str, name: &str| {
            if changed.len() < HISTORY_NAMES {
                changed.push((kind.to_string() + name).into());
            } else {
                more += 1;
            }
        };
        for (k, v) in &update.fields {
            if self.fields.get(k) != Some(v) {
                note("fields.", k);
            }
        }
        for (k, v) in &update.tracker {
            if self.tracker.get(k) != Some(v) {
                note("tracker.", k);
            }
        }
        for t in update.add_tags.iter().filter(|t| !self.tags.contains(t)) {
            note("+", t);
        }
        for t in update.remove_tags.iter().filter(|t| self.tags.contains(t)) {
            note("-", t);
        }
        if entry.is_empty() && changed.is_empty() {
            return None;
        }
        if !changed.is_empty() {
            entry.insert("changed".into(), changed.into());
        }
        if more > 0 {
            entry.insert("more".into(), more.into());
        }
        entry.insert("at".into(), now.iso().into());
        let (by, link) = match by {
            ChangedBy::Postback(link) => ("postback", Some(funnelhooks_core::text::start_of(link))),
            ChangedBy::Api => ("api", None),
        };
        entry.insert("by".into(), by.into());
        if let Some(link) = link {
            entry.insert("link".into(), link.into());
        }
        Some(Json::Object(entry))
    }

    /// Keeps `entry` ([`Dialog::change_entry`]) in the history, once: a change applied again
    /// (a write whose landing could not be confirmed) finds its entry there already.
    pub fn remember(&mut self, entry: Option<Json>) {
        let Some(entry) = entry.filter(|e| !self.history.contains(e)) else {
            return;
        };
        self.history.push(entry);
        let extra = self.history.len().saturating_sub(MAX_HISTORY);
        self.history.drain(..extra);
    }
}

/// Fails when writing `incoming` into `existing` would hold more than `max` keys.
pub(crate) fn check_room<V, W>(
    existing: &BTreeMap<String, V>,
    incoming: &BTreeMap<String, W>,
    max: usize,
    code: &'static str,
    field: Option<&str>,
) -> Result<(), Error> {
    let added = incoming
        .keys()
        .filter(|k| !existing.contains_key(*k))
        .count();
    if existing.len() + added > max {
        let e = Error::new(
            funnelhooks_core::Kind::Invalid,
            code,
            format!(
                "a dialog holds at most {max} of these; this would make {}",
                existing.len() + added
            ),
        );
        return Err(match field {
            Some(f) => e.at(f),
            None => e,
        });
    }
    Ok(())
}

impl Dialog {
    /// Applies a validated update. Limits are checked first, so an update that would pass one
    /// changes nothing.
    pub fn apply(&mut self, update: &Update, now: Timestamp) -> Result<(), Error> {
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
            return Err(Error::new(
                funnelhooks_core::Kind::Invalid,
                "too_many_tags",
                format!("a dialog holds at most {MAX_TAGS} tags"),
            ));
        }
        self.tags = tags;
        self.fields
            .extend(update.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.tracker
            .extend(update.tracker.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(step) = &update.step {
            self.step_id = Some(step.id.clone());
            self.step_key = Some(step.key.clone());
        }
        if let Some(status) = update.status {
            self.status = status;
        }
        self.updated_at = now;
        self.check_size()
    }

    /// Refuses a dialog larger than [`MAX_DIALOG_BYTES`] as stored (JSON, escapes counted).
    pub(crate) fn check_size(&self) -> Result<(), Error> {
        let size = self.stored_size();
        if size > MAX_DIALOG_BYTES {
            return Err(Error::new(
                funnelhooks_core::Kind::Invalid,
                "dialog_too_large",
                format!(
                    "the dialog would take {size} bytes; a dialog holds at most {MAX_DIALOG_BYTES} (erase fields it no longer needs)"
                ),
            ));
        }
        Ok(())
    }

    /// About the size of the dialog's JSON, counted without writing it: every key and value
    /// with the bytes JSON escaping adds, and room for the fixed members.
    fn stored_size(&self) -> usize {
        let text = |s: &str| {
            2 + s.len()
                + s.bytes()
                    .map(|b| match b {
                        b'"' | b'\\' => 1,
                        0..=0x1f => 5,
                        _ => 0,
                    })
                    .sum::<usize>()
        };
        let fields: usize = self
            .fields
            .iter()
            .map(|(k, v)| {
                text(k)
                    + 2
                    + match v {
                        FieldValue::Text(t) => text(t),
                        FieldValue::Number(_) | FieldValue::Bool(_) => 24,
                    }
            })
            .sum();
        let tracker: usize = self
            .tracker
            .iter()
            .map(|(k, v)| text(k) + text(v) + 2)
            .sum();
        let tags: usize = self.tags.iter().map(|t| text(t) + 1).sum();
        let profile = [&self.username, &self.name, &self.step_id, &self.step_key]
            .iter()
            .map(|v| v.as_deref().map_or(4, text))
            .sum::<usize>();
        // What a conversion link's holder can grow: counted as written.
        let conversions: usize = self
            .conversions
            .iter()
            .map(|c| c.to_string().len() + 1)
            .sum();
        let deliveries = self.step_deliveries.len() * 40;
        // The history is not counted: bounded on its own (see `Dialog::remember`), it must
        // never be why a postback is refused.
        512 + fields + tracker + tags + profile + conversions + deliveries
    }
}
