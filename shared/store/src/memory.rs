//! An in-memory [`Kv`] with the semantics of Spin's stores, for tests and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{Kv, StoreError, decode_counter, increment_by_read_and_write, swap_by_read_and_write};

/// A store in a `HashMap`. With atomics (the default) `increment` and `swap_if` hold the lock
/// across read and write, as Spin's SQLite and Redis stores do; [`MemoryKv::without_atomics`]
/// releases it in between, like a host that only has get and set.
#[derive(Debug, Default)]
pub struct MemoryKv {
    data: Mutex<HashMap<String, Vec<u8>>>,
    no_atomics: bool,
}

impl MemoryKv {
    /// An empty store with atomics.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose `increment` and `swap_if` are read-then-write.
    pub fn without_atomics() -> Self {
        Self {
            no_atomics: true,
            ..Self::default()
        }
    }

    /// Every key, sorted (tests only: the product never lists keys).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic in another test thread must not hide this store's data.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.lock().insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        if self.no_atomics {
            return increment_by_read_and_write(self, key, delta);
        }
        let mut data = self.lock();
        let next = decode_counter(data.get(key).map(Vec::as_slice))? + delta;
        data.insert(key.to_string(), next.to_le_bytes().to_vec());
        Ok(next)
    }

    fn swap_if(&self, key: &str, expected: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        if self.no_atomics {
            return swap_by_read_and_write(self, key, expected, new);
        }
        let mut data = self.lock();
        if data.get(key).map(Vec::as_slice) != Some(expected) {
            return Ok(false);
        }
        data.insert(key.to_string(), new.to_vec());
        Ok(true)
    }

    fn atomic(&self) -> bool {
        !self.no_atomics
    }
}
