//! Spin's key-value store as a [`Kv`]: `wasi:keyvalue` with atomics by default, or
//! `fermyon:spin/key-value` alone with the `no-kv-atomics` feature.

use funnelhooks_store::{Decide, GetMany, Kv, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(not(feature = "no-kv-atomics"))]
mod imp {
    use super::*;
    use funnelhooks_store::Values;
    use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};
    use std::cell::{Cell, RefCell};

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
        /// One `wasi:keyvalue` CAS per session: `current()` reads, `swap` writes only over
        /// what was read. A reported lost race hands back a fresh CAS, which is read again;
        /// an error may hide an applied write, so a new CAS reads again too. Either way
        /// `decide` tells from what it is shown whether its write landed.
        fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError> {
            let mut cas = atomics::Cas::new(&self.0, key).map_err(backend)?;
            loop {
                let current = cas.current().map_err(backend)?;
                let Some(new) = decide(current.as_deref()) else {
                    return Ok(());
                };
                cas = match atomics::swap(cas, &new) {
                    Ok(()) => return Ok(()),
                    Err(atomics::CasError::CasFailed(fresh)) => fresh,
                    Err(atomics::CasError::StoreError(_)) => {
                        atomics::Cas::new(&self.0, key).map_err(backend)?
                    }
                };
            }
        }
        fn atomic(&self) -> bool {
            true
        }
    }

    /// [`SpinKv`] that also reads and writes several keys in one round trip
    /// (`wasi:keyvalue` batch). A type of its own so that only the components that use it
    /// carry the batch import (a few KB each).
    pub struct BatchedSpinKv {
        kv: SpinKv,
        /// Values read ahead ([`BatchedSpinKv::read_ahead`]), each handed to the first
        /// `get` of its key and dropped by any write to it.
        ahead: RefCell<Vec<(String, Option<Vec<u8>>)>>,
        /// Whether the host refused a `get-many` (Spin's Redis store always does): the rest
        /// of the request reads key by key without asking again.
        refused: Cell<bool>,
    }

    /// What [`BatchedSpinKv::read_ahead`] read, kept until this is dropped: values read
    /// ahead serve the work they were read for, never a later one.
    #[must_use]
    pub struct ReadAhead<'a>(&'a BatchedSpinKv);

    impl Drop for ReadAhead<'_> {
        fn drop(&mut self) {
            self.0.ahead.borrow_mut().clear();
        }
    }

    impl BatchedSpinKv {
        /// Opens the store labelled `default`.
        pub fn open_default() -> Result<Self, StoreError> {
            Ok(BatchedSpinKv {
                kv: SpinKv::open_default()?,
                ahead: RefCell::default(),
                refused: Cell::new(false),
            })
        }

        /// Reads `keys` in one `get-many` now, for work that is about to read them one by
        /// one: until the returned guard is dropped, each key's first `get` takes its value
        /// from here instead of a round trip of its own, and a later `get` reads the store
        /// again. Where the host refuses a `get-many` (Spin's Redis store), nothing is read
        /// ahead, and after the first refusal nothing is asked.
        pub fn read_ahead(&self, keys: &[String]) -> ReadAhead<'_> {
            self.ahead.borrow_mut().clear();
            if keys.len() < 2 {
                return ReadAhead(self);
            }
            if let Some(values) = self.batch_get(keys) {
                let mut ahead = self.ahead.borrow_mut();
                ahead.extend(keys.iter().cloned().zip(values));
            }
            ReadAhead(self)
        }

        /// The values at `keys` (two or more), in their order, from one `get-many`; `None`
        /// when the host refuses it, now or earlier in the request.
        fn batch_get(&self, keys: &[String]) -> Option<Values> {
            if self.refused.get() {
                return None;
            }
            let Ok(mut found) = batch::get_many(&self.kv.0, keys) else {
                self.refused.set(true);
                return None;
            };
            Some(
                keys.iter()
                    .map(|k| {
                        let at = found.iter().position(|(f, _)| f == k)?;
                        found.swap_remove(at).1
                    })
                    .collect(),
            )
        }

        /// Whether the host refused a `get-many` in this request (Spin's Redis store does).
        pub fn batch_refused(&self) -> bool {
            self.refused.get()
        }

        /// Forgets what was read ahead for `key`: it is being written.
        fn drop_ahead(&self, key: &str) {
            self.take_read_ahead(key);
        }
    }

    impl GetMany for BatchedSpinKv {
        /// One `get-many`; Spin's SQLite store answers with the keys that exist. When it
        /// fails (Spin's Redis store always does for two keys), key by key.
        fn get_many(&self, keys: &[&str]) -> Result<Values, StoreError> {
            Ok(self.get_many_and(keys, &[])?.0)
        }

        /// The extra keys come only from a `get-many` that worked: where it fails, only
        /// `keys` are read, one by one.
        fn get_many_and(
            &self,
            keys: &[&str],
            extra: &[&str],
        ) -> Result<(Values, Option<Values>), StoreError> {
            let owned: Vec<String> = keys.iter().chain(extra).map(|k| k.to_string()).collect();
            // One key is a plain get: Spin's Redis store traps on a `get-many` of one key
            // that exists (it sends `KEYS k`), where two or more give an error it survives.
            if owned.len() < 2 {
                let values = keys.iter().map(|k| self.get(k)).collect::<Result<_, _>>()?;
                return Ok((values, None));
            }
            owned.iter().for_each(|k| self.drop_ahead(k));
            let Some(mut values) = self.batch_get(&owned) else {
                let values = keys.iter().map(|k| self.get(k)).collect::<Result<_, _>>()?;
                return Ok((values, None));
            };
            let extra = values.split_off(keys.len());
            Ok((values, Some(extra)))
        }
    }

    impl Kv for BatchedSpinKv {
        fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
            pairs.iter().for_each(|(k, _)| self.drop_ahead(k));
            batch::set_many(&self.kv.0, pairs).map_err(backend)
        }
        fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
            keys.iter().for_each(|k| self.drop_ahead(k));
            batch::delete_many(&self.kv.0, keys).map_err(backend)
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            match self.take_read_ahead(key) {
                Some(value) => Ok(value),
                None => self.kv.get(key),
            }
        }
        fn take_read_ahead(&self, key: &str) -> Option<Option<Vec<u8>>> {
            let mut ahead = self.ahead.borrow_mut();
            let at = ahead.iter().position(|(k, _)| k == key)?;
            Some(ahead.swap_remove(at).1)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.drop_ahead(key);
            self.kv.set(key, value)
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.drop_ahead(key);
            self.kv.delete(key)
        }
        fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
            self.drop_ahead(key);
            self.kv.increment(key, delta)
        }
        fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError> {
            self.drop_ahead(key);
            self.kv.compare_and_swap(key, decide)
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
        fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError> {
            funnelhooks_store::compare_and_swap_by_read_and_write(self, key, decide)
        }
        fn atomic(&self) -> bool {
            false
        }
    }

    /// Without atomics there is no batch interface to use either.
    pub type BatchedSpinKv = SpinKv;

    /// Nothing is read ahead without a batch interface.
    pub struct ReadAhead;

    impl SpinKv {
        /// Nothing to read ahead without a batch interface: each read goes to the store.
        pub fn read_ahead(&self, _keys: &[String]) -> ReadAhead {
            ReadAhead
        }

        /// Without a batch interface every read is one by one.
        pub fn batch_refused(&self) -> bool {
            true
        }
    }

    impl GetMany for SpinKv {}
}

pub use imp::{BatchedSpinKv, ReadAhead, SpinKv};
