//! An in-memory [`Kv`] with the semantics of each of Spin's stores, for tests and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    Decide, Kv, StoreError, compare_and_swap_by_read_and_write, decode_counter,
    increment_by_read_and_write,
};

/// Whose compare-and-swap and counters a [`MemoryKv`] imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// Spin's default SQLite store: a swap reports what happened (a swap over a value that
    /// was absent is an upsert); counters are 8 little-endian bytes.
    Sqlite,
    /// Spin's Redis store (3.x to 4.1): a swap that applied reports failure all the same (the
    /// `UNWATCH key` it sends afterwards is refused by Redis), a lost race reports failure;
    /// counters are `INCRBY`, kept as decimal text.
    Redis,
    /// A remote store under stress: a swap that wins its comparison at random applies and
    /// says so, applies and reports failure, applies and then errors (a timeout after the
    /// commit), or errors without applying. Seeded, so a failing run can be repeated.
    Faulty(u64),
    /// A host without atomics: increment and compare-and-swap are read-then-write.
    NoAtomics,
}

/// A store in a `HashMap`.
#[derive(Debug)]
pub struct MemoryKv {
    data: Mutex<HashMap<String, Vec<u8>>>,
    semantics: Semantics,
    rng: AtomicU64,
    swaps: AtomicU64,
    pause: Mutex<Option<Pause>>,
}

/// What happens between the next swap on keys under `prefix` and its answer
/// ([`MemoryKv::pause_after_next_swap`]).
struct Pause {
    prefix: String,
    meanwhile: Box<dyn FnOnce(&MemoryKv) + Send>,
}

impl std::fmt::Debug for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pause({:?})", self.prefix)
    }
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::with(Semantics::Sqlite)
    }
}

impl MemoryKv {
    /// An empty store with the semantics of Spin's SQLite store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given semantics.
    pub fn with(semantics: Semantics) -> Self {
        let seed = match semantics {
            Semantics::Faulty(seed) => seed | 1,
            _ => 1,
        };
        Self {
            data: Mutex::default(),
            semantics,
            rng: AtomicU64::new(seed),
            swaps: AtomicU64::new(0),
            pause: Mutex::default(),
        }
    }

    /// Pauses the writer of the next swap on a key under `prefix` right after the swap (as
    /// a busy host does): `meanwhile` runs (other writers), then the swap is reported as
    /// failed, as Spin's Redis store reports every swap, and the writer reads again.
    pub fn pause_after_next_swap(
        &self,
        prefix: &str,
        meanwhile: impl FnOnce(&MemoryKv) + Send + 'static,
    ) {
        *self.pause.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pause {
            prefix: prefix.to_string(),
            meanwhile: Box::new(meanwhile),
        });
    }

    /// Runs the pause set for `key`, if any; whether there was one.
    fn paused(&self, key: &str) -> bool {
        let mut pause = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = pause.take_if(|p| key.starts_with(p.prefix.as_str())) else {
            return false;
        };
        drop(pause);
        (p.meanwhile)(self);
        true
    }

    /// An empty store whose `increment` and `compare_and_swap` are read-then-write.
    pub fn without_atomics() -> Self {
        Self::with(Semantics::NoAtomics)
    }

    /// The semantics this store imitates.
    pub fn semantics(&self) -> Semantics {
        self.semantics
    }

    /// Every key, sorted (tests only: the product never lists keys).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// How many swaps were attempted (each write of a compare-and-swap session).
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic in another test thread must not hide this store's data.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The next number of a seeded xorshift64 generator kept in `state` (the faulty store's
/// coin; not for secrets).
pub fn next_random(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    loop {
        let mut n = x;
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        match state.compare_exchange_weak(x, n, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return n,
            Err(now) => x = now,
        }
    }
}

/// What one swap did, as the host reports it.
enum Swap {
    /// Applied, and said so.
    Applied,
    /// Reported a failure (applied or not): the session reads again.
    ReportedFailure,
}

impl MemoryKv {
    /// One swap of `new` over `seen` under the store's semantics.
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: Vec<u8>) -> Swap {
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let roll = match self.semantics {
            Semantics::Faulty(_) => next_random(&self.rng) % 4,
            _ => 0,
        };
        let mut data = self.lock();
        let unchanged = data.get(key).map(Vec::as_slice) == seen;
        match self.semantics {
            // SQLite: UPDATE ... WHERE value = :seen, or an upsert when nothing was seen.
            Semantics::Sqlite | Semantics::NoAtomics => {
                if unchanged || seen.is_none() {
                    data.insert(key.to_string(), new);
                    Swap::Applied
                } else {
                    Swap::ReportedFailure
                }
            }
            // Redis: WATCH / MULTI / SET / EXEC, then a refused UNWATCH: never a success.
            Semantics::Redis => {
                if unchanged {
                    data.insert(key.to_string(), new);
                }
                Swap::ReportedFailure
            }
            // 0: applied and said so; 1: applied, reported a lost race; 2: applied, then an
            // error; 3: an error, not applied.
            Semantics::Faulty(_) => {
                if unchanged && roll < 3 {
                    data.insert(key.to_string(), new);
                }
                if unchanged && roll == 0 {
                    Swap::Applied
                } else {
                    Swap::ReportedFailure
                }
            }
        }
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
        let mut data = self.lock();
        match self.semantics {
            Semantics::NoAtomics => {
                drop(data);
                increment_by_read_and_write(self, key, delta)
            }
            Semantics::Redis => {
                let current = match data.get(key) {
                    None => 0,
                    Some(v) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                        .ok_or_else(|| {
                            StoreError::Backend(
                                "ERR value is not an integer or out of range".into(),
                            )
                        })?,
                };
                let next = current + delta;
                data.insert(key.to_string(), next.to_string().into_bytes());
                Ok(next)
            }
            Semantics::Sqlite | Semantics::Faulty(_) => {
                let next = decode_counter(data.get(key).map(Vec::as_slice))? + delta;
                data.insert(key.to_string(), next.to_le_bytes().to_vec());
                Ok(next)
            }
        }
    }

    fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError> {
        if self.semantics == Semantics::NoAtomics {
            return compare_and_swap_by_read_and_write(self, key, decide);
        }
        loop {
            let seen = self.get(key)?;
            let Some(new) = decide(seen.as_deref()) else {
                return Ok(());
            };
            let swap = self.swap(key, seen.as_deref(), new);
            if !self.paused(key) && matches!(swap, Swap::Applied) {
                return Ok(());
            }
        }
    }

    fn atomic(&self) -> bool {
        self.semantics != Semantics::NoAtomics
    }
}

/// A [`MemoryKv`] whose compare-and-swap sessions go through `around`, which is given each
/// value read and the session's `decide` and returns what to swap in: for tests, to let
/// another writer come between a read and its swap.
pub struct Interleaved<'a, F>
where
    F: Fn(&MemoryKv, &str, Option<&[u8]>, &mut Decide<'_>) -> Option<Vec<u8>>,
{
    /// The store written to.
    pub inner: &'a MemoryKv,
    /// Called in place of `decide` with the store, the key and the value read.
    pub around: F,
}

impl<F> Kv for Interleaved<'_, F>
where
    F: Fn(&MemoryKv, &str, Option<&[u8]>, &mut Decide<'_>) -> Option<Vec<u8>>,
{
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, delta)
    }
    fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError> {
        self.inner.compare_and_swap(key, &mut |current| {
            (self.around)(self.inner, key, current, decide)
        })
    }
    fn atomic(&self) -> bool {
        self.inner.atomic()
    }
}
