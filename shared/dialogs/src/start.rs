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

use funnelhooks_core::json::Members;
use funnelhooks_core::{Error, Timestamp};
use serde_json::Value as Json;

use crate::limits::{MAX_TRACKER_FIELDS, MAX_VALUE_LEN, valid_key};
use crate::model::Dialog;

/// What the bot engine sends when a chat starts or its profile changes, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Start {
    /// Telegram username.
    pub username: Option<String>,
    /// The person's name.
    pub name: Option<String>,
    /// Tracker fields from the campaign (`clickid`, `utm_source`...).
    pub tracker: BTreeMap<String, String>,
    /// The `/start` payload of the deep link the chat came by, read into tracker fields by
    /// the bot's rule when the dialog starts (its `tracker` wins over it).
    pub start_payload: Option<String>,
}

impl Start {
    /// Reads `{"username", "name", "tracker": {...}}`; tracker values may be strings, numbers
    /// or booleans (stored as text). Errors name the field.
    pub fn from_json(body: &Json) -> Result<Start, Error> {
        let m = Members::of(body, &["username", "name", "tracker", "startPayload"])?;
        let mut start = Start {
            username: m.string("username")?,
            name: m.string("name")?,
            tracker: BTreeMap::new(),
            start_payload: m.string("startPayload")?,
        };
        for (key, value) in m.object("tracker")?.into_iter().flatten() {
            let text = match value {
                Json::String(s) => s.clone(),
                Json::Number(_) | Json::Bool(_) => value.to_string(),
                _ => {
                    return Err(Error::invalid(
                        "wrong_type",
                        &format!("tracker.{key}"),
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
    pub fn validate(&self) -> Result<(), Error> {
        for (name, value) in [("username", &self.username), ("name", &self.name)] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_LEN) {
                return Err(Error::invalid(
                    "value_too_long",
                    name,
                    format!("the limit is {MAX_VALUE_LEN} bytes"),
                ));
            }
        }
        if self.tracker.len() > MAX_TRACKER_FIELDS {
            return Err(Error::invalid(
                "too_many_tracker_fields",
                "tracker",
                format!("a dialog holds at most {MAX_TRACKER_FIELDS} tracker fields"),
            ));
        }
        for (key, value) in &self.tracker {
            let field = format!("tracker.{key}");
            if !valid_key(key) {
                return Err(Error::invalid(
                    "bad_key",
                    &field,
                    "a key is 1 to 64 of A-Z a-z 0-9 _ -",
                ));
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(Error::invalid(
                    "value_too_long",
                    &field,
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
    pub fn start(&mut self, start: &Start, now: Timestamp) -> Result<(), Error> {
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
        self.check_size()
    }
}
