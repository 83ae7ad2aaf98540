//! Ids: random UUIDs for everything funnelhooks creates.

/// A new random UUID (version 4): 122 random bits from the host's CSPRNG.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `s` is a hyphenated UUID (any version), as bot, step, link and service ids are.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}
