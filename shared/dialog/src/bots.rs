//! Bots and what belongs to them: postback links, custom field definitions ("Bot Settings")
//! and steps. Records as stored, and the management inputs that create or change them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::DialogError;
use crate::input::JsonBody;
use crate::limits::{MAX_KEY_LEN, valid_key};
use crate::model::{FieldType, Timestamp};

/// Longest bot name.
pub const MAX_BOT_NAME: usize = 200;
/// Longest custom field description.
pub const MAX_DESCRIPTION: usize = 500;
/// Most postback links per bot.
pub const MAX_LINKS: usize = 100;
/// Most steps per bot.
pub const MAX_STEPS: usize = 2_000;
/// Largest send-webhook config of a step, as JSON.
pub const MAX_WEBHOOK_BYTES: usize = 16 * 1024;

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
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
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

/// A step of a bot's script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// UUID, chosen by the bot engine.
    pub id: String,
    /// The `stepKey` templates see.
    pub key: String,
    /// `message`, `send-webhook`, ...
    pub kind: String,
    /// A send-webhook step's webhook config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Json>,
    /// The receiver answered 410 Gone: nothing more is sent until the step is saved again.
    #[serde(default)]
    pub webhook_gone: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A postback link: the secret id in `/api/bots/webhooks/{id}/updateDialog`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostbackLink {
    /// Random UUID (122 random bits): the secret.
    pub id: String,
    /// The bot it updates.
    pub bot_id: String,
    /// When it was created.
    pub created_at: Timestamp,
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
}

/// A new random UUID (version 4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `s` is a UUID (any version, hyphenated), as step and bot ids are.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// `{"name": ...}` for creating or renaming a bot.
pub fn bot_name(body: &JsonBody) -> Result<String, DialogError> {
    body.only(&["name"])?;
    Ok(body.required_text("name", MAX_BOT_NAME)?.trim().to_string())
}

/// `{"type": ..., "description": ...}` for a custom field.
pub fn field_def(body: &JsonBody) -> Result<FieldDef, DialogError> {
    body.only(&["type", "description"])?;
    let kind = body.required_text("type", 16)?;
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "string" | "text" => FieldType::String,
        "number" => FieldType::Number,
        "boolean" | "bool" => FieldType::Boolean,
        "date" => FieldType::Date,
        _ => {
            return Err(DialogError::unprocessable(
                "bad_field_type",
                Some("type"),
                format!("{kind:?} is not a field type; use string, number, boolean or date"),
            ));
        }
    };
    Ok(FieldDef {
        kind,
        description: body
            .text("description", MAX_DESCRIPTION)?
            .unwrap_or_default(),
    })
}

/// Checks a custom field key from a URL.
pub fn check_field_key(key: &str) -> Result<(), DialogError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(DialogError::unprocessable(
            "bad_key",
            Some("key"),
            format!("{key:?} is not a key: 1 to {MAX_KEY_LEN} of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// What a step's PUT carries: `key`, `kind` and, for a send-webhook step, `webhook`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInput {
    /// The step key.
    pub key: String,
    /// The step kind.
    pub kind: String,
    /// The webhook config (send-webhook steps only).
    pub webhook: Option<Json>,
}

/// Reads a step's PUT body.
pub fn step_input(body: &JsonBody) -> Result<StepInput, DialogError> {
    body.only(&["key", "kind", "webhook"])?;
    let key = body.required_text("key", MAX_KEY_LEN)?.trim().to_string();
    if !valid_key(&key) {
        return Err(DialogError::unprocessable(
            "bad_key",
            Some("key"),
            format!("{key:?} is not a step key: 1 to {MAX_KEY_LEN} of A-Z a-z 0-9 _ -"),
        ));
    }
    let kind = body.required_text("kind", 32)?.trim().to_ascii_lowercase();
    if !kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(DialogError::unprocessable(
            "bad_step_kind",
            Some("kind"),
            "a kind is lower-case letters, digits and -, such as message or send-webhook",
        ));
    }
    let webhook = body.object("webhook")?.map(|m| Json::Object(m.clone()));
    if webhook.is_some() && kind != "send-webhook" {
        return Err(DialogError::unprocessable(
            "unexpected_webhook",
            Some("webhook"),
            "only a send-webhook step has a webhook config",
        ));
    }
    if let Some(w) = &webhook {
        let size = w.to_string().len();
        if size > MAX_WEBHOOK_BYTES {
            return Err(DialogError::too_large(
                "webhook_too_large",
                Some("webhook"),
                format!("the webhook config is {size} bytes; the limit is {MAX_WEBHOOK_BYTES}"),
            ));
        }
    }
    Ok(StepInput { key, kind, webhook })
}
