//! Spin's key-value store as a [`Kv`]: `wasi:keyvalue` with atomics by default, or
//! `fermyon:spin/key-value` alone with the `no-kv-atomics` feature.

use funnelhooks_store::{Kv, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(not(feature = "no-kv-atomics"))]
mod imp {
    use super::*;
    use spin_sdk::wit::wasi::keyvalue::{atomics, store};

    /// The default store, through `wasi:keyvalue` (store and atomics).
    pub struct SpinKv(store::Bucket);

    impl SpinKv {
        /// Opens the store labelled `default`.
        pub fn open_default() -> Result<Self, StoreError> {
            store::open("default").map(SpinKv).map_err(backend)
        }
    }

    impl Kv for SpinKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(key).map_err(backend)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.0.set(key, value).map_err(backend)
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.delete(key).map_err(backend)
        }
        fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
            atomics::increment(&self.0, key, delta).map_err(backend)
        }
        fn swap_if(&self, key: &str, expected: &[u8], new: &[u8]) -> Result<bool, StoreError> {
            let cas = atomics::Cas::new(&self.0, key).map_err(backend)?;
            // The host compares against what `current()` read, so check it is what the
            // caller based its change on before swapping.
            if cas.current().map_err(backend)?.as_deref() != Some(expected) {
                return Ok(false);
            }
            match atomics::swap(cas, new) {
                Ok(()) => Ok(true),
                Err(atomics::CasError::CasFailed(_)) => Ok(false),
                Err(atomics::CasError::StoreError(e)) => Err(backend(e)),
            }
        }
        fn atomic(&self) -> bool {
            true
        }
    }
}

#[cfg(feature = "no-kv-atomics")]
mod imp {
    use super::*;
    use spin_sdk::key_value::Store;

    /// The default store, through `fermyon:spin/key-value` only.
    pub struct SpinKv(Store);

    impl SpinKv {
        /// Opens the store labelled `default`.
        pub fn open_default() -> Result<Self, StoreError> {
            Store::open_default().map(SpinKv).map_err(backend)
        }
    }

    impl Kv for SpinKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(key).map_err(backend)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.0.set(key, value).map_err(backend)
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.delete(key).map_err(backend)
        }
        // Read-then-write: callers know (`atomic() == false`) and never rely on it alone.
        fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
            funnelhooks_store::increment_by_read_and_write(self, key, delta)
        }
        fn swap_if(&self, key: &str, expected: &[u8], new: &[u8]) -> Result<bool, StoreError> {
            funnelhooks_store::swap_by_read_and_write(self, key, expected, new)
        }
        fn atomic(&self) -> bool {
            false
        }
    }
}

pub use imp::SpinKv;
