//! Bots and what belongs to them: postback links, custom field definitions ("Bot Settings")
//! and steps. Records as stored, and the management inputs that create or change them.

use std::collections::BTreeMap;

use funnelhooks_core::json::{Members, required_text};
use funnelhooks_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::limits::{MAX_KEY_LEN, valid_key};
use crate::model::FieldType;

/// Longest bot name.
pub const MAX_BOT_NAME: usize = 200;
/// Longest custom field description.
pub const MAX_DESCRIPTION: usize = 500;
/// Most postback links per bot.
pub const MAX_LINKS: usize = 100;
/// Most steps per bot.
pub const MAX_STEPS: usize = 2_000;

/// A bot: its settings live in this record so that a postback reads one record for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bot {
    /// Random UUID.
    pub id: String,
    /// Shown to people.
    pub name: String,
    /// Custom field definitions by key.
    pub fields: BTreeMap<String, FieldDef>,
    /// Ids of the bot's steps (each step is its own record).
    pub steps: Vec<String>,
    /// Ids of the bot's postback links (each link is its own record).
    pub links: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last change to the bot record.
    pub updated_at: Timestamp,
    /// Its entry in the list of bots.
    #[serde(default)]
    pub slot: u64,
    /// Whether its postback links may create new dialogs now.
    #[serde(default, skip_serializing_if = "Admission::is_open")]
    pub admission: Admission,
    /// Its Auto Actions, once set up ([`crate::auto::AutoActions`] as JSON: read typed only
    /// where conversions are handled, so the other components stay small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_actions: Option<Json>,
    /// Ids of its conversion links (each its own record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversion_links: Vec<String>,
}

/// The admission of new dialogs through a bot's postback links: checked every
/// [`crate::limits::ADMISSION_CHECK_EVERY`] creations against [`crate::limits::DialogLimits`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Admission {
    /// The Unix minute being counted.
    #[serde(default)]
    pub minute: i64,
    /// The dialog list's slot when that minute's count began.
    #[serde(default)]
    pub first_slot: u64,
    /// No new dialogs before this Unix millisecond (the minute's limit was reached).
    #[serde(default)]
    pub closed_until: i64,
    /// No new dialogs at all: the bot has had its limit of dialogs.
    #[serde(default)]
    pub full: bool,
}

impl Admission {
    fn is_open(&self) -> bool {
        *self == Admission::default()
    }

    /// Whether [`Admission::refusal`] could refuse at `now` (whatever the limits).
    pub fn may_refuse(&self, now: Timestamp) -> bool {
        self.full || now.0 < self.closed_until
    }

    /// Why a new dialog may not be created at `now` under `limits`, if it may not.
    pub fn refusal(&self, now: Timestamp, limits: crate::limits::DialogLimits) -> Option<Error> {
        if self.full && limits.total > 0 {
            return Some(Error::new(
                funnelhooks_core::Kind::Conflict,
                "too_many_dialogs",
                format!(
                    "this bot has had {} dialogs, its limit (max_dialogs_per_bot); erase the bot's old dialogs or raise the limit",
                    limits.total
                ),
            ));
        }
        if now.0 < self.closed_until && limits.per_minute > 0 {
            return Some(Error::new(
                funnelhooks_core::Kind::RateLimited,
                "too_many_new_dialogs",
                format!(
                    "this bot's postback links created more than {} new dialogs this minute (max_new_dialogs_per_minute); postbacks to existing dialogs still work, new ones again next minute",
                    limits.per_minute
                ),
            ));
        }
        None
    }
}

impl Bot {
    /// The bot as the API shows it (without internal bookkeeping).
    pub fn view(&self) -> Json {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "fields": self.fields.len(),
            "steps": self.steps.len(),
            "webhooks": self.links.len(),
            "conversionLinks": self.conversion_links.len(),
            "autoActions": self
                .auto_actions
                .as_ref()
                .and_then(|a| a["actions"].as_array())
                .map_or(0, Vec::len),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }

    /// Its Auto Actions, read (`None`: not set up, or unreadable).
    pub fn auto(&self) -> Option<crate::auto::AutoActions> {
        serde_json::from_value(self.auto_actions.clone()?).ok()
    }

    /// The tracker field its click ids are in, when Auto Actions are set up.
    pub fn click_id_field(&self) -> Option<&str> {
        self.auto_actions.as_ref()?["clickIdField"].as_str()
    }

    /// The custom field types, as updateDialog checks them.
    pub fn field_types(&self) -> BTreeMap<String, FieldType> {
        self.fields
            .iter()
            .map(|(k, d)| (k.clone(), d.kind))
            .collect()
    }
}

/// A custom field definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    /// string, number, boolean or date.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// What the field is for.
    #[serde(default)]
    pub description: String,
}

/// What a step does when a dialog reaches it. Kinds other than these two are the bot
/// engine's business and kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Sends a message (the bot engine's).
    Message,
    /// Sends its webhook: the one kind funnelhooks acts on.
    SendWebhook,
    /// Any other kind the bot engine has (`lower-case`, digits and `-`).
    Other(String),
}

impl StepKind {
    /// Reads a kind: lower-case letters, digits and `-`, such as `message` or `send-webhook`.
    pub fn parse(text: &str) -> Result<StepKind, Error> {
        let kind = text.trim().to_ascii_lowercase();
        let well_formed = !kind.is_empty()
            && kind.len() <= 32
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            return Err(Error::invalid(
                "bad_step_kind",
                "kind",
                "a kind is lower-case letters, digits and -, such as message or send-webhook",
            ));
        }
        Ok(match kind.as_str() {
            "message" => StepKind::Message,
            "send-webhook" => StepKind::SendWebhook,
            _ => StepKind::Other(kind),
        })
    }

    /// The kind as written.
    pub fn as_str(&self) -> &str {
        match self {
            StepKind::Message => "message",
            StepKind::SendWebhook => "send-webhook",
            StepKind::Other(k) => k,
        }
    }
}

impl Serialize for StepKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StepKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        StepKind::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// A step of a bot's script, with its webhook config typed as `W` (the send-webhook crate's
/// config; readers that do not need it use [`serde::de::IgnoredAny`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step<W> {
    /// UUID, chosen by the bot engine.
    pub id: String,
    /// The `stepKey` templates see.
    pub key: String,
    /// What the step does.
    pub kind: StepKind,
    /// A send-webhook step's webhook config.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub webhook: Option<W>,
    /// The receiver answered 410 Gone: nothing more is sent until the step is saved again.
    #[serde(default)]
    pub webhook_gone: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

fn none<W>() -> Option<W> {
    None
}

/// A postback link: the secret id in `/api/bots/webhooks/{id}/updateDialog`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostbackLink {
    /// The secret: the bot's id and 122 random bits, as 64 hex digits ([`new_link_id`]; a
    /// random UUID before 2026-12), or an id imported from Chatterfy so its trackers keep
    /// working ([`valid_link_id`]).
    pub id: String,
    /// The bot it updates.
    pub bot_id: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A new link id for bot `bot_id`: its 32 hex digits, then those of a random UUID (the
/// secret). A postback names its bot in the URL this way, so the link and the bot are read
/// together in one round trip ([`bot_of_link_id`]).
pub fn new_link_id(bot_id: &str) -> String {
    let mut id: String = bot_id.chars().filter(|c| *c != '-').collect();
    id.extend(funnelhooks_core::new_id().chars().filter(|c| *c != '-'));
    id
}

/// The bot a link id made by [`new_link_id`] names (hyphenated), if it is one. Only a guess:
/// an imported id can look the same, so the link record has the last word.
pub fn bot_of_link_id(id: &str) -> Option<String> {
    let hex = id.get(..32).filter(|_| id.len() == 64)?;
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Whether `id` can be a postback link id: 16 to 64 of `A-Z a-z 0-9 - _`. Chatterfy's ids
/// are UUID-shaped but not always hexadecimal (its own docs show `8f1el0ed-a1d2-…`).
pub fn valid_link_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a postback id someone wants to import is too easy to guess to be a link's secret, if
/// it is: it carries the bot's own id (which is not secret), or it has less than 64 bits of
/// randomness by its letters' spread (an all-zero or patterned id). A Chatterfy id (a random
/// UUID, about 115 bits) passes.
pub fn guessable_link_id(id: &str, bot_id: &str) -> Option<&'static str> {
    let symbols: Vec<u8> = id
        .bytes()
        .filter(|b| !matches!(b, b'-' | b'_'))
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let bot: Vec<u8> = bot_id
        .bytes()
        .filter(|b| *b != b'-')
        .map(|b| b.to_ascii_lowercase())
        .collect();
    if !bot.is_empty() && symbols.windows(bot.len()).any(|w| w == bot.as_slice()) {
        return Some("it contains the bot's own id, which is not a secret");
    }
    let mut counts = [0u32; 256];
    for b in &symbols {
        counts[usize::from(*b)] += 1;
    }
    let n = symbols.len() as f64;
    let per_symbol: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    // Runs a random id almost never has (one in millions): seven of a kind, eight in a row.
    let run = symbols.windows(7).any(|w| w.iter().all(|b| *b == w[0]))
        || symbols
            .windows(8)
            .any(|w| w.windows(2).all(|p| p[1] == p[0].wrapping_add(1)));
    if per_symbol * n < 64.0 || per_symbol < 2.5 || run {
        return Some(
            "it is not random enough to keep secret (too few different characters, or a run); create a new link instead",
        );
    }
    None
}

impl PostbackLink {
    /// The full URL to paste into a tracker, under `base` (scheme and host, no trailing `/`).
    pub fn url(&self, base: &str) -> String {
        format!(
            "{}/api/bots/webhooks/{}/updateDialog",
            base.trim_end_matches('/'),
            self.id
        )
    }

    /// The link as the API shows it.
    pub fn view(&self, base: &str) -> Json {
        self.view_at(self.url(base))
    }

    /// The URL of the link when it is a conversion link, under `base`.
    pub fn conversion_url(&self, base: &str) -> String {
        format!(
            "{}/api/bots/conversions/{}",
            base.trim_end_matches('/'),
            self.id
        )
    }

    /// The link as the API shows it, at `url` (a postback or a conversion link's).
    pub fn view_at(&self, url: String) -> Json {
        serde_json::json!({
            "id": self.id,
            "botId": self.bot_id,
            "url": url,
            "createdAt": self.created_at,
        })
    }
}

/// `{"name"}`: creating or renaming a bot; the name trimmed, required, not blank, at most
/// [`MAX_BOT_NAME`] bytes.
pub fn bot_name(body: &Json) -> Result<String, Error> {
    Members::of(body, &["name"])?.required("name", MAX_BOT_NAME)
}

/// `{"type", "description"}`: a custom field definition.
pub fn field_def(body: &Json) -> Result<FieldDef, Error> {
    let m = Members::of(body, &["type", "description"])?;
    let kind = m.required("type", 16)?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "string" | "text" => FieldType::String,
        "number" => FieldType::Number,
        "boolean" | "bool" => FieldType::Boolean,
        "date" => FieldType::Date,
        _ => {
            return Err(Error::invalid(
                "bad_field_type",
                "type",
                format!("{kind:?} is not a field type; use string, number, boolean or date"),
            ));
        }
    };
    let description = m.string("description")?.unwrap_or_default();
    if description.len() > MAX_DESCRIPTION {
        return Err(Error::invalid(
            "value_too_long",
            "description",
            format!("at most {MAX_DESCRIPTION} bytes"),
        ));
    }
    Ok(FieldDef { kind, description })
}

/// Checks a custom field key from a URL.
pub fn check_field_key(key: &str) -> Result<(), Error> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(Error::invalid(
            "bad_key",
            "key",
            format!("{key:?} is not a key: 1 to {MAX_KEY_LEN} of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// What a step's PUT carries, checked: `key`, `kind` and, for a send-webhook step, its
/// webhook config (already checked by its own crate).
#[derive(Debug, Clone, PartialEq)]
pub struct StepInput<W> {
    /// The step key.
    pub key: String,
    /// The step kind.
    pub kind: StepKind,
    /// The webhook config (send-webhook steps only).
    pub webhook: Option<W>,
}

impl<W> StepInput<W> {
    /// Checks a step: a key, a kind, and a webhook config exactly when it sends a webhook.
    pub fn new(
        key: Option<String>,
        kind: Option<String>,
        webhook: Option<W>,
    ) -> Result<Self, Error> {
        let (key, kind) = key_and_kind(key, kind, webhook.is_some())?;
        Ok(StepInput { key, kind, webhook })
    }
}

/// A step's key and kind, checked, and whether it has a webhook config exactly when it sends
/// a webhook.
pub fn key_and_kind(
    key: Option<String>,
    kind: Option<String>,
    has_webhook: bool,
) -> Result<(String, StepKind), Error> {
    let key = required_text(key, "key", MAX_KEY_LEN)?;
    if !valid_key(&key) {
        return Err(Error::invalid(
            "bad_key",
            "key",
            format!("{key:?} is not a step key: 1 to {MAX_KEY_LEN} of A-Z a-z 0-9 _ -"),
        ));
    }
    let kind = StepKind::parse(&required_text(kind, "kind", 32)?)?;
    match (&kind, has_webhook) {
        (StepKind::SendWebhook, false) => Err(Error::invalid(
            "missing_field",
            "webhook",
            "a send-webhook step needs its webhook config",
        )),
        (StepKind::Message | StepKind::Other(_), true) => Err(Error::invalid(
            "unexpected_webhook",
            "webhook",
            "only a send-webhook step has a webhook config",
        )),
        _ => Ok((key, kind)),
    }
}
