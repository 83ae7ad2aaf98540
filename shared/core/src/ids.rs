//! Ids: random UUIDs for everything funnelhooks creates.

/// A new random UUID (version 4): 122 random bits from the host's CSPRNG.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A UUID derived from `parts` (SHA-256 of them, as a version 8 UUID): the same parts give
/// the same id, so work that may be done twice (a call event retried by its tracker) creates
/// its records once.
pub fn derived_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Whether `s` is a hyphenated UUID (any version), as bot, step, link and service ids are.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}
