//! Storage for funnelhooks as plain Rust: the key-value store is the [`Kv`] trait (what Spin's
//! key-value API and `wasi:keyvalue` atomics offer), [`MemoryKv`] is an in-memory store with
//! the semantics of each of Spin's stores for tests, and [`Records`] adds JSON records,
//! compare-and-swap updates that stay correct when the host's swap result cannot be trusted,
//! and append-only index records on top. Nothing here scans keys.

mod cleanup;
mod index;
mod memory;
mod ops;
mod records;

pub use cleanup::{Cleanup, CleanupRun, Jobs, Listed};
pub use index::{Index, IndexPage, due_in_minute};
pub use memory::{Interleaved, MemoryKv, Semantics, next_random};
pub use ops::{MAX_REMEMBERED, MAX_REMEMBERED_REPEATABLE, OpId, strip_ops};
pub use records::{Modified, Records, Seen};

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
    /// A write to this record may or may not have landed: the host did not confirm it, and
    /// so many others wrote the record since that it no longer tells (see `ops`).
    Unsure(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Backend(e) => write!(f, "key-value store: {e}"),
            StoreError::Corrupt { key, problem } => write!(f, "record {key}: {problem}"),
            StoreError::Contended(key) => write!(f, "record {key} is changing too fast; retry"),
            StoreError::Unsure(key) => write!(f, "record {key}: write unconfirmed"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What a compare-and-swap session's `decide` callback wants done with the value it was shown.
pub type Decide<'d> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'd;

/// A key-value store with Spin's semantics.
///
/// `increment` and `compare_and_swap` use `wasi:keyvalue` atomics where the host has them. A
/// store without atomics (Akamai Functions, Fermyon Cloud) reports `atomic() == false`; its
/// `increment` and `compare_and_swap` are then read-then-write and callers must not rely on
/// them to keep concurrent writers apart.
pub trait Kv {
    /// The value at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes each pair, in one round trip where the host can (one SQLite transaction on
    /// Spin's SQLite store, `MSET` on Redis). By default one after the other, in order.
    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        pairs.iter().try_for_each(|(k, v)| self.set(k, v))
    }
    /// Writes `value` at `key`, whatever was there.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key` (no error when it is absent).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Removes each key, in one round trip where the host can (one `DELETE` on Spin's SQLite
    /// store, `DEL` on Redis, both checked on Spin 4.1 and 3.6). By default one after the
    /// other, in order.
    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        keys.iter().try_for_each(|k| self.delete(k))
    }
    /// Adds `delta` to the 64-bit counter at `key` (absent counts as 0) and returns the result.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// A compare-and-swap session on `key`: reads the value, shows it to `decide`, and writes
    /// what `decide` returns only if the value is still the one shown. Whenever a write is not
    /// known to have landed (the host reported a lost race, or an error), the value is read
    /// again and shown to `decide` again, which must tell from it whether its write landed
    /// (hosts can report failure for a swap that was applied: Spin's Redis store always does).
    /// The session ends when `decide` returns `None` or a write is reported as applied.
    ///
    /// `decide` is only ever asked to write over a value it was shown; shown "absent", it must
    /// not write (on Spin's SQLite store that write would be an upsert, not a comparison).
    fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError>;
    /// Whether `increment` and `compare_and_swap` are atomic on this host.
    fn atomic(&self) -> bool;

    /// The value read ahead for `key` by a store that reads several keys at once for work
    /// about to read them, taken (`None`: none was, so the caller reads as it would have).
    fn take_read_ahead(&self, _key: &str) -> Option<Option<Vec<u8>>> {
        None
    }
}

/// Values read for a list of keys, in its order (`None`: absent).
pub type Values = Vec<Option<Vec<u8>>>;

/// A store that reads several keys in one round trip where the host can. Apart from [`Kv`]
/// so that components that never read this way do not carry it.
pub trait GetMany: Kv {
    /// The values at `keys`, in their order, in one round trip where the host can
    /// (`wasi:keyvalue` batch). By default, and wherever the host refuses it (Spin's Redis
    /// store sends `KEYS k1 k2`, an error), one key after the other.
    fn get_many(&self, keys: &[&str]) -> Result<Values, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// The values at `keys` as [`GetMany::get_many`] reads them, and those at `extra` when
    /// they come in the same round trip (else `None`: a read of its own would cost more than
    /// it saves). By default the extras are not read.
    fn get_many_and(
        &self,
        keys: &[&str],
        _extra: &[&str],
    ) -> Result<(Values, Option<Values>), StoreError> {
        Ok((self.get_many(keys)?, None))
    }
}

/// In memory every read is free: the extras are always read.
impl GetMany for MemoryKv {
    fn get_many_and(
        &self,
        keys: &[&str],
        extra: &[&str],
    ) -> Result<(Values, Option<Values>), StoreError> {
        let extra = extra
            .iter()
            .map(|k| self.get(k))
            .collect::<Result<_, _>>()?;
        Ok((self.get_many(keys)?, Some(extra)))
    }
}

/// Reads a counter as Spin's SQLite store keeps it: 8 little-endian bytes, absent meaning 0.
pub fn decode_counter(bytes: Option<&[u8]>) -> Result<i64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(b) => <[u8; 8]>::try_from(b)
            .map(i64::from_le_bytes)
            .map_err(|_| StoreError::Backend("the value is not a counter".into())),
    }
}

/// Reads a counter as any of Spin's stores keeps it, without writing: 8 little-endian bytes
/// (SQLite, and hosts without atomics) or decimal text (Redis' `INCRBY`). For reports only:
/// a reader that must not miss a concurrent increment uses `increment(key, 0)`.
pub fn read_counter(bytes: Option<&[u8]>) -> i64 {
    let Some(b) = bytes else { return 0 };
    match std::str::from_utf8(b)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
    {
        Some(n) => n,
        None => decode_counter(Some(b)).unwrap_or(0),
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

/// `compare_and_swap` for a store without atomics: one read, one write (not atomic; see
/// [`Kv`]).
pub fn compare_and_swap_by_read_and_write<K: Kv + ?Sized>(
    kv: &K,
    key: &str,
    decide: &mut Decide<'_>,
) -> Result<(), StoreError> {
    let current = kv.get(key)?;
    if let Some(new) = decide(current.as_deref()) {
        kv.set(key, &new)?;
    }
    Ok(())
}
