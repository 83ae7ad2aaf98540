//! Comparing secrets (the admin token, the retry sweep key, ingest keys) without leaking them
//! through timing: both sides are hashed, and the digests compared in constant time, so
//! neither the content nor the length of the expected secret shows.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of `secret`, hex: how secrets shown once are stored.
pub fn hash_hex(secret: &[u8]) -> String {
    Sha256::digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `given` is `expected`; an empty `expected` matches nothing.
pub fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty()
        && bool::from(Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())))
}

/// Whether `given` hashes to `expected_hex` (a stored [`hash_hex`]).
pub fn matches_hash(given: &str, expected_hex: &str) -> bool {
    bool::from(
        hash_hex(given.as_bytes())
            .as_bytes()
            .ct_eq(expected_hex.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_themselves_and_empty_matches_nothing() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3cret-and-more", "s3cret"));
        assert!(!same_secret("", ""));
        let h = hash_hex(b"ik_abc");
        assert!(matches_hash("ik_abc", &h));
        assert!(!matches_hash("ik_abd", &h));
    }
}
