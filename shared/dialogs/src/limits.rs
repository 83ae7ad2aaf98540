//! The limits a postback and a dialog live within. Past them a request gets a 413 (body) or
//! 422 (everything else) naming the limit, and nothing of it is stored.

/// Largest request body accepted by updateDialog.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest custom field, tracker field or tag key.
pub const MAX_KEY_LEN: usize = 64;
/// Longest value of a custom or tracker field.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most custom fields one dialog holds.
pub const MAX_FIELDS: usize = 256;
/// Most tracker fields one dialog holds.
pub const MAX_TRACKER_FIELDS: usize = 64;
/// Most tags one dialog holds.
pub const MAX_TAGS: usize = 64;
/// Largest a dialog may grow, as stored (JSON): a postback that would make it larger is
/// refused. Within the other limits a dialog could reach about a megabyte; real ones are a
/// few kilobytes.
pub const MAX_DIALOG_BYTES: usize = 64 * 1024;
/// New dialogs a bot's postback links may create per minute, unless the operator sets
/// `max_new_dialogs_per_minute`: far above a tracker's burst, far below a flood.
pub const DEFAULT_NEW_DIALOGS_PER_MINUTE: u64 = 6_000;
/// Dialogs a bot may have had in all, unless the operator sets `max_dialogs_per_bot`.
pub const DEFAULT_DIALOGS_PER_BOT: u64 = 10_000_000;
/// How often (in dialogs created) the admission of new dialogs is checked: each check costs
/// a write of the bot record, so it runs once in this many creations, not on every one.
pub const ADMISSION_CHECK_EVERY: u64 = 64;

/// How many new dialogs a bot's postback links may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogLimits {
    /// Per minute (0: no limit).
    pub per_minute: u64,
    /// In all (0: no limit).
    pub total: u64,
}

impl Default for DialogLimits {
    fn default() -> Self {
        Self {
            per_minute: DEFAULT_NEW_DIALOGS_PER_MINUTE,
            total: DEFAULT_DIALOGS_PER_BOT,
        }
    }
}

/// Whether `key` is a valid field or tag key: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
