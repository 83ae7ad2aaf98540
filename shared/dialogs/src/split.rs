//! Dialog storage for hosts without key-value atomics (Akamai Functions, Fermyon Cloud),
//! where a read-modify-write of one dialog record would let concurrent postbacks erase each
//! other's changes.
//!
//! Instead every part of a dialog has its own key, and a postback writes only the parts it
//! changed: each custom field (`dlg:{bot}:{chat}:f:{key}`), each tracker field (`…:t:{key}`)
//! and each other attribute (`…:a:{name}`: step, status, tags, profile). Postbacks that change
//! different parts never touch the same key, so 200 concurrent postbacks each setting a
//! different field keep all 200. `dlg:{bot}:{chat}` marks that the dialog exists and
//! `…:keys` lists the field keys written so far.
//!
//! Reads take the bot's defined fields plus the keys listed in `…:keys`. The residual risk,
//! documented in the README: the `…:keys` list itself is read-then-written, so when two
//! postbacks write two *undefined* keys for the first time at the same moment one key can be
//! left out of the list (its value stays stored and reappears when the key is written again).
//! Defined fields are never lost. Two postbacks changing the same attribute (the same field,
//! the step, the tags) at the same moment: the last write wins, as it would one at a time.
//! The history (`…:a:history`, the dialog's timeline) is such an attribute that every change
//! writes: here it costs a postback one write more, and of two postbacks at the same moment
//! one's entry can be lost (their changes themselves are kept).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use funnelhooks_store::{Kv, Listed, Records, StoreError};

use funnelhooks_core::{Error, Timestamp};

use crate::bots::Bot;
use crate::keys::dialog_key;
use crate::model::Dialog;

/// The field keys a dialog has been written with.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Keys {
    fields: BTreeSet<String>,
    tracker: BTreeSet<String>,
}

/// The dialog's attributes other than its fields, each stored under its own key.
const ATTRIBUTES: [&str; 12] = [
    "username",
    "name",
    "stepId",
    "stepKey",
    "status",
    "tags",
    "started",
    "createdAt",
    "updatedAt",
    "stepDeliveries",
    "conversions",
    "history",
];

fn part(base: &str, kind: &str, name: &str) -> String {
    format!("{base}:{kind}:{name}")
}

/// The dialog as stored, or `None` when it does not exist.
pub(crate) fn load(kv: &dyn Kv, bot: &Bot, chat: i64) -> Result<Option<Dialog>, Error> {
    let base = dialog_key(&bot.id, chat);
    if kv.get(&base)?.is_none() {
        return Ok(None);
    }
    load_parts(kv, bot, chat).map(Some)
}

fn load_parts(kv: &dyn Kv, bot: &Bot, chat: i64) -> Result<Dialog, Error> {
    let records = Records::new(kv);
    let base = dialog_key(&bot.id, chat);
    let mut map = Map::new();
    map.insert("botId".into(), Json::from(bot.id.clone()));
    map.insert("chatId".into(), Json::from(chat));
    for name in ATTRIBUTES {
        if let Some(v) = records.get::<Json>(&part(&base, "a", name))? {
            map.insert(name.into(), v);
        }
    }
    let keys: Keys = records.get(&format!("{base}:keys"))?.unwrap_or_default();
    let mut fields = Map::new();
    for key in keys.fields.iter().chain(bot.fields.keys()) {
        if let Some(v) = records.get::<Json>(&part(&base, "f", key))? {
            fields.insert(key.clone(), v);
        }
    }
    let mut tracker = Map::new();
    for key in &keys.tracker {
        if let Some(v) = records.get::<Json>(&part(&base, "t", key))? {
            tracker.insert(key.clone(), v);
        }
    }
    map.insert("fields".into(), Json::Object(fields));
    map.insert("tracker".into(), Json::Object(tracker));
    // A dialog still being created by another postback has no attributes yet.
    let pending = serde_json::to_value(Dialog::pending(&bot.id, chat, Timestamp(0)))
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    if let Json::Object(defaults) = pending {
        for (k, v) in defaults {
            map.entry(k).or_insert(v);
        }
    }
    serde_json::from_value(Json::Object(map)).map_err(|e| {
        StoreError::Corrupt {
            key: base,
            problem: e.to_string(),
        }
        .into()
    })
}

/// Applies `change` and writes only the parts it changed; returns the dialog, whether it was
/// created, and what `change` said.
pub(crate) fn change(
    kv: &dyn Kv,
    bot: &Bot,
    chat: i64,
    refusal: Option<Error>,
    change: &dyn Fn(&mut Dialog) -> Result<bool, Error>,
) -> Result<(Dialog, bool, bool), Error> {
    let base = dialog_key(&bot.id, chat);
    let created = kv.get(&base)?.is_none();
    if let (true, Some(e)) = (created, refusal) {
        return Err(e);
    }
    let before = load_parts(kv, bot, chat)?;
    let mut after = before.clone();
    let entered = change(&mut after)?;
    let records = Records::new(kv);
    for (key, value) in &after.fields {
        if before.fields.get(key) != Some(value) {
            records.put(&part(&base, "f", key), value)?;
        }
    }
    for (key, value) in &after.tracker {
        if before.tracker.get(key) != Some(value) {
            records.put(&part(&base, "t", key), value)?;
        }
    }
    let (old, new) = (attributes(&before)?, attributes(&after)?);
    for name in ATTRIBUTES {
        // Only what changed: a creator racing another must not reset its attributes.
        if old.get(name) != new.get(name) {
            records.put(
                &part(&base, "a", name),
                &new.get(name).unwrap_or(&Json::Null),
            )?;
        }
    }
    let new_fields = after.fields.keys().any(|k| !before.fields.contains_key(k));
    let new_tracker = after
        .tracker
        .keys()
        .any(|k| !before.tracker.contains_key(k));
    if new_fields || new_tracker {
        let keys_key = format!("{base}:keys");
        let mut keys: Keys = records.get(&keys_key)?.unwrap_or_default();
        keys.fields.extend(after.fields.keys().cloned());
        keys.tracker.extend(after.tracker.keys().cloned());
        records.put(&keys_key, &keys)?;
    }
    if created {
        kv.set(&base, format!("{{\"chatId\":{chat}}}").as_bytes())?;
    }
    Ok((after, created, entered))
}

fn attributes(d: &Dialog) -> Result<Map<String, Json>, Error> {
    match serde_json::to_value(d) {
        Ok(Json::Object(map)) => Ok(map),
        _ => Err(StoreError::Backend("a dialog did not serialise to an object".into()).into()),
    }
}

/// The keys of a dialog's parts under `base` that can be known without reading the dialog
/// (its defined fields and attributes; undefined fields are listed only in its `…:keys`).
pub(crate) fn part_templates(base: &str, bot: &Bot) -> Vec<String> {
    let mut keys: Vec<String> = bot.fields.keys().map(|k| part(base, "f", k)).collect();
    keys.extend(ATTRIBUTES.iter().map(|name| part(base, "a", name)));
    keys.push(format!("{base}:keys"));
    keys
}

/// The parts a dialog under `base` lists in its `…:keys` (the undefined fields it was
/// written with, and its tracker fields), for a cleanup job.
pub(crate) fn listed_parts(base: &str) -> Vec<Listed> {
    ["fields", "tracker"]
        .into_iter()
        .zip(["f", "t"])
        .map(|(member, kind)| Listed {
            list: format!("{base}:keys"),
            member: member.into(),
            key: part(base, kind, "{name}"),
        })
        .collect()
}

/// Deletes every part of the dialog (the marker key is the caller's).
pub(crate) fn erase(kv: &dyn Kv, bot: &Bot, chat: i64) -> Result<(), Error> {
    let base = dialog_key(&bot.id, chat);
    let keys: Keys = Records::new(kv)
        .get(&format!("{base}:keys"))?
        .unwrap_or_default();
    for key in keys.fields.iter().chain(bot.fields.keys()) {
        kv.delete(&part(&base, "f", key))?;
    }
    for key in &keys.tracker {
        kv.delete(&part(&base, "t", key))?;
    }
    for name in ATTRIBUTES {
        kv.delete(&part(&base, "a", name))?;
    }
    kv.delete(&format!("{base}:keys"))?;
    Ok(())
}
