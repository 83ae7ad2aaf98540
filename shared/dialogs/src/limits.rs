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

/// Whether `key` is a valid field or tag key: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
