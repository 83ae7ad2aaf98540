//! Storage for funnelhooks as plain Rust: the key-value store is the [`Kv`] trait (what Spin's
//! key-value API and `wasi:keyvalue` atomics offer), [`MemoryKv`] is an in-memory store with
//! the same semantics for tests, and [`Records`] adds JSON records, compare-and-swap updates
//! and append-only index records on top. Nothing here scans keys.

mod index;
mod memory;
mod records;

pub use index::{Index, IndexPage};
pub use memory::MemoryKv;
pub use records::{Modified, Records};

use std::fmt;

/// A failure of the store itself (not of the data in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend failed or refused (`no such store`, a network error).
    Backend(String),
    /// A stored record could not be read as what it should be.
    Corrupt {
        /// The record's key.
        key: String,
        /// What was wrong.
        problem: String,
    },
    /// Too many concurrent writers kept winning; the caller may try again later.
    Contended(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Backend(e) => write!(f, "key-value store: {e}"),
            StoreError::Corrupt { key, problem } => write!(f, "record {key}: {problem}"),
            StoreError::Contended(key) => write!(f, "record {key} is changing too fast; retry"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A key-value store with Spin's semantics.
///
/// `increment` and `swap_if` are `wasi:keyvalue` atomics where the host has them. A store
/// without atomics (Akamai Functions, Fermyon Cloud) reports `atomic() == false`; its
/// `increment` and `swap_if` are then read-then-write and callers must not rely on them to
/// keep concurrent writers apart.
pub trait Kv {
    /// The value at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes `value` at `key`, whatever was there.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key` (no error when it is absent).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Adds `delta` to the 64-bit counter at `key` (absent counts as 0) and returns the result.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// Replaces the value at `key` with `new` only if it is still `expected`; `Ok(false)` when
    /// another writer changed it first. Only ever called for keys that exist: on Spin's SQLite
    /// store a swap on a key that was absent is an upsert, not a comparison.
    fn swap_if(&self, key: &str, expected: &[u8], new: &[u8]) -> Result<bool, StoreError>;
    /// Whether `increment` and `swap_if` are atomic on this host.
    fn atomic(&self) -> bool;
}

/// Reads a counter as Spin stores it: 8 little-endian bytes, absent meaning 0.
pub fn decode_counter(bytes: Option<&[u8]>) -> Result<i64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(b) => <[u8; 8]>::try_from(b)
            .map(i64::from_le_bytes)
            .map_err(|_| StoreError::Backend("the value is not a counter".into())),
    }
}

/// `increment` for a store without atomics: read, add, write (not atomic; see [`Kv`]).
pub fn increment_by_read_and_write<K: Kv + ?Sized>(
    kv: &K,
    key: &str,
    delta: i64,
) -> Result<i64, StoreError> {
    let next = decode_counter(kv.get(key)?.as_deref())? + delta;
    kv.set(key, &next.to_le_bytes())?;
    Ok(next)
}

/// `swap_if` for a store without atomics: read, compare, write (not atomic; see [`Kv`]).
pub fn swap_by_read_and_write<K: Kv + ?Sized>(
    kv: &K,
    key: &str,
    expected: &[u8],
    new: &[u8],
) -> Result<bool, StoreError> {
    if kv.get(key)?.as_deref() != Some(expected) {
        return Ok(false);
    }
    kv.set(key, new)?;
    Ok(true)
}
