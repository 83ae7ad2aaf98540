//! Template names and how they resolve.
//!
//! - Built-ins: `chatId`, `username`, `name`, `stepKey`, `stepId`, `status`, `createdAt`.
//!   Case does not matter and the snake forms work too (`chatid`, `chat_id`, `CreatedAt`).
//! - `fields.KEY` and `details.KEY` are the same custom field. If the dialog has no such field
//!   and KEY is a built-in's name, the built-in is used: Chatterfy's own docs write
//!   `{fields.chatId}` for the chat id.
//! - A bare `KEY` that is not a built-in is a custom field (Chatterfy's `{KEYCUSTOMFIELD}`).
//! - `tracker.KEY` is a tracker field; if there is none under KEY exactly, the all-lower-case
//!   KEY is tried (trackers send `clickid`, people write `{tracker.clickId}`).
//! - A custom field key matches exactly first; failing that, a key that differs only in
//!   letter case, when exactly one does ([`match_key`]): Chatterfy's own docs write
//!   `refID=12345` and then `{{fields.refId}}`.

pub use crate::builtin::Builtin;
use crate::value::{Context, Value};

/// A parsed name: what to look up, decided once at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A built-in.
    Builtin(Builtin),
    /// A custom field, with the built-in to fall back to when the key names one.
    Field {
        /// The field key.
        key: String,
        /// Used when the dialog has no such field.
        or_builtin: Option<Builtin>,
        /// Written bare (`{refID}`) rather than `fields.refID`.
        bare: bool,
    },
    /// A tracker field, with its lower-case spelling to fall back to.
    Tracker {
        /// The tracker key.
        key: String,
        /// `key` in lower case, when that differs.
        folded: Option<String>,
    },
}

impl Name {
    /// Parses the text of a name (`tracker.clickid`, `fields.refId`, `chatId`, `userBalance`).
    pub fn parse(text: &str) -> Option<Name> {
        if text.is_empty() || !text.bytes().all(is_name_byte) {
            return None;
        }
        if let Some((scope, key)) = text.split_once('.') {
            if key.is_empty() || key.contains('.') {
                return None;
            }
            return match scope.to_ascii_lowercase().as_str() {
                "fields" | "details" | "field" => Some(Name::Field {
                    key: key.to_string(),
                    or_builtin: Builtin::from_name(key),
                    bare: false,
                }),
                "tracker" => {
                    let lower = key.to_ascii_lowercase();
                    Some(Name::Tracker {
                        key: key.to_string(),
                        folded: (lower != key).then_some(lower),
                    })
                }
                _ => None,
            };
        }
        Some(match Builtin::from_name(text) {
            Some(b) => Name::Builtin(b),
            None => Name::Field {
                key: text.to_string(),
                or_builtin: None,
                bare: true,
            },
        })
    }

    /// The value this name has in `ctx`, if any.
    pub fn resolve<'c, C: Context + ?Sized>(&self, ctx: &'c C) -> Option<Value<'c>> {
        match self {
            Name::Builtin(b) => ctx.builtin(*b),
            Name::Field {
                key, or_builtin, ..
            } => ctx
                .field(key)
                .or_else(|| or_builtin.and_then(|b| ctx.builtin(b))),
            Name::Tracker { key, folded } => ctx
                .tracker(key)
                .or_else(|| folded.as_deref().and_then(|f| ctx.tracker(f))),
        }
    }
}

/// How a written key matches a set of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch<'a> {
    /// The very key.
    Exact(&'a str),
    /// One key that differs only in letter case.
    CaseOnly(&'a str),
    /// Several keys that differ only in letter case: none is chosen.
    Ambiguous,
    /// No key.
    None,
}

impl<'a> KeyMatch<'a> {
    /// The key matched, exactly or by case alone.
    pub fn key(self) -> Option<&'a str> {
        match self {
            KeyMatch::Exact(k) | KeyMatch::CaseOnly(k) => Some(k),
            KeyMatch::Ambiguous | KeyMatch::None => None,
        }
    }
}

/// Matches `written` against `keys`: exactly first, else by letter case when unique.
pub fn match_key<'a>(written: &str, keys: impl IntoIterator<Item = &'a str>) -> KeyMatch<'a> {
    let mut found = KeyMatch::None;
    for key in keys {
        if key == written {
            return KeyMatch::Exact(key);
        }
        if key.eq_ignore_ascii_case(written) {
            found = match found {
                KeyMatch::None => KeyMatch::CaseOnly(key),
                _ => KeyMatch::Ambiguous,
            };
        }
    }
    found
}

/// Bytes a name may contain: ASCII letters, digits, `_`, `-` and `.`.
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}
