//! The bot engine starting (or updating) a dialog, and how pre-assigned data merges in.
//!
//! When a chat starts the bot, the dialog postbacks pre-assigned for it is merged with what
//! the bot engine knows:
//!
//! | attribute | winner |
//! |---|---|
//! | `username`, `name` | the start (they come from Telegram) |
//! | tracker fields | the start, key by key (the campaign click that brought the chat); pre-assigned keys the start lacks are kept |
//! | custom fields, step, status, tags | the pre-assigned values (the start carries none) |
//! | `createdAt` | set at the first start, never changed after |
//! | `started` | `true` from the first start on |

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::DialogError;
use crate::input::JsonBody;
use crate::limits::{MAX_TRACKER_FIELDS, MAX_VALUE_LEN, valid_key};
use crate::model::{Dialog, Timestamp};

/// What the bot engine sends when a chat starts or its profile changes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Start {
    /// Telegram username.
    pub username: Option<String>,
    /// The person's name.
    pub name: Option<String>,
    /// Tracker fields from the campaign (`clickid`, `utm_source`...).
    #[serde(default)]
    pub tracker: BTreeMap<String, String>,
}

impl Start {
    /// Reads `{"username", "name", "tracker": {...}}`; tracker values may be strings, numbers
    /// or booleans (stored as text).
    pub fn from_body(body: &JsonBody) -> Result<Start, DialogError> {
        body.only(&["username", "name", "tracker"])?;
        let mut start = Start {
            username: body.text("username", MAX_VALUE_LEN)?,
            name: body.text("name", MAX_VALUE_LEN)?,
            tracker: BTreeMap::new(),
        };
        for (key, value) in body.object("tracker")?.into_iter().flatten() {
            let text = match value {
                Json::String(s) => s.clone(),
                Json::Number(_) | Json::Bool(_) => value.to_string(),
                _ => {
                    return Err(DialogError::unprocessable(
                        "wrong_type",
                        Some(&format!("tracker.{key}")),
                        "expected a string, a number or a boolean",
                    ));
                }
            };
            start.tracker.insert(key.clone(), text);
        }
        start.validate()?;
        Ok(start)
    }

    /// Checks keys and lengths; the error names the field.
    pub fn validate(&self) -> Result<(), DialogError> {
        for (name, value) in [("username", &self.username), ("name", &self.name)] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_LEN) {
                return Err(DialogError::unprocessable(
                    "value_too_long",
                    Some(name),
                    format!("the limit is {MAX_VALUE_LEN} bytes"),
                ));
            }
        }
        if self.tracker.len() > MAX_TRACKER_FIELDS {
            return Err(DialogError::unprocessable(
                "too_many_tracker_fields",
                Some("tracker"),
                format!("a dialog holds at most {MAX_TRACKER_FIELDS} tracker fields"),
            ));
        }
        for (key, value) in &self.tracker {
            let field = format!("tracker.{key}");
            if !valid_key(key) {
                return Err(DialogError::unprocessable(
                    "bad_key",
                    Some(&field),
                    "a key is 1 to 64 of A-Z a-z 0-9 _ -",
                ));
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(DialogError::unprocessable(
                    "value_too_long",
                    Some(&field),
                    format!("the limit is {MAX_VALUE_LEN} bytes"),
                ));
            }
        }
        Ok(())
    }
}

impl Dialog {
    /// Starts the dialog (or refreshes a started one) with the bot engine's data, merging
    /// pre-assigned data by the rules above.
    pub fn start(&mut self, start: &Start, now: Timestamp) -> Result<(), DialogError> {
        start.validate()?;
        crate::update::check_room(
            &self.tracker,
            &start.tracker,
            MAX_TRACKER_FIELDS,
            "too_many_tracker_fields",
            Some("tracker"),
        )?;
        if start.username.is_some() {
            self.username.clone_from(&start.username);
        }
        if start.name.is_some() {
            self.name.clone_from(&start.name);
        }
        self.tracker
            .extend(start.tracker.iter().map(|(k, v)| (k.clone(), v.clone())));
        if self.created_at.is_none() {
            self.created_at = Some(now);
        }
        self.started = true;
        self.updated_at = now;
        Ok(())
    }
}
