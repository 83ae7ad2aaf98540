//! JSON records over a [`Kv`], and the two ways to change one safely under concurrency.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ops::{self, OpId, strip_ops};
use crate::{Kv, StoreError};

/// How many times a writer re-reads and retries after losing a compare-and-swap. 200
/// concurrent writers on one dialog each lose at most 199 times.
const MAX_CAS_ATTEMPTS: u32 = 2_000;
/// How long a writer waits for an elected creator to write a new record before taking over.
const CREATOR_WAIT: Duration = Duration::from_secs(3);

/// JSON records in a key-value store.
pub struct Records<'a> {
    kv: &'a dyn Kv,
}

/// What [`Records::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modified {
    /// The record did not exist; this call created it.
    Created,
    /// The record existed and this call changed it (or found nothing to change).
    Updated,
}

impl<'a> Records<'a> {
    /// Records in `kv`.
    pub fn new(kv: &'a dyn Kv) -> Self {
        Self { kv }
    }

    /// The store underneath.
    pub fn kv(&self) -> &'a dyn Kv {
        self.kv
    }

    /// The record at `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.kv
            .get(key)?
            .map(|bytes| decode(key, strip_ops(&bytes)))
            .transpose()
    }

    /// Writes `value` at `key`, whatever was there.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.kv.set(key, &encode(value))
    }

    /// Removes the record at `key`.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv.delete(key)
    }

    /// Changes the existing record at `key` with `change`, so that no writer's change is lost
    /// and none is applied twice, even on a host whose compare-and-swap reports failure for
    /// a swap it applied: each write carries an operation id the record remembers
    /// ([`crate::ops`]), and a swap not known to have landed is checked by reading the record
    /// again. `Ok(None)` when there is no record. When `change` fails, nothing is written and
    /// its error is returned.
    pub fn modify<T, R, E>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> Result<R, E>,
    ) -> Result<Option<R>, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
    {
        let op = OpId::new();
        let mut attempts = 0u32;
        // The result of this call's last write, while it is not known to have landed.
        let mut written: Option<R> = None;
        let mut outcome: Option<Result<Option<R>, E>> = None;
        self.kv.compare_and_swap(key, &mut |current| {
            let Some(bytes) = current else {
                outcome = Some(Ok(None));
                return None;
            };
            if written.is_some() && ops::remembers(bytes, op) {
                outcome = Some(Ok(written.take()));
                return None;
            }
            if attempts >= MAX_CAS_ATTEMPTS {
                outcome = Some(Err(StoreError::Contended(key.to_string()).into()));
                return None;
            }
            back_off(attempts);
            attempts += 1;
            let record = strip_ops(bytes);
            let mut value: T = match decode(key, record) {
                Ok(v) => v,
                Err(e) => {
                    outcome = Some(Err(e.into()));
                    return None;
                }
            };
            match change(&mut value) {
                Err(e) => {
                    outcome = Some(Err(e));
                    None
                }
                Ok(r) => {
                    let new = encode(&value);
                    if new == record {
                        outcome = Some(Ok(Some(r)));
                        return None;
                    }
                    written = Some(r);
                    Some(ops::with_op(bytes, op, &new))
                }
            }
        })?;
        match outcome {
            Some(done) => done,
            // The last write was reported as applied.
            None => Ok(written),
        }
    }

    /// Changes the record at `key`, creating it with `create` first when it does not exist.
    ///
    /// Creation is the delicate part: on Spin's SQLite store a compare-and-swap on an absent
    /// key is an upsert, so two creators could both "win" and one would erase the other.
    /// Instead creators hold an election with an atomic increment of `born_key`: the first
    /// writes the record with a plain set, the others wait until it exists and then change
    /// it with a real compare-and-swap. `change` is tried on the fresh record before the
    /// election, so a rejected change never creates anything.
    pub fn upsert<T, R, E>(
        &self,
        key: &str,
        born_key: &str,
        create: impl Fn() -> T,
        change: impl FnMut(&mut T) -> Result<R, E>,
    ) -> Result<(R, Modified), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
    {
        self.upsert_born(key, born_key, create, change, |_| Ok(()))
    }

    /// [`Records::upsert`], with `born` called on the new record by the elected creator
    /// just before it is written: what only a creation does (taking a place in a list)
    /// goes into the record's first write instead of a write of its own.
    pub fn upsert_born<T, R, E>(
        &self,
        key: &str,
        born_key: &str,
        create: impl Fn() -> T,
        mut change: impl FnMut(&mut T) -> Result<R, E>,
        mut born: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<(R, Modified), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
    {
        let mut waited = Duration::ZERO;
        let mut took_over = false;
        loop {
            if let Some(result) = self.modify(key, &mut change)? {
                return Ok((result, Modified::Updated));
            }
            let mut fresh = create();
            let result = change(&mut fresh)?;
            // After waiting too long for a creator that never wrote (it crashed between the
            // election and its write), take over with a plain set once.
            let elected = took_over || self.kv.increment(born_key, 1)? == 1;
            if elected {
                if took_over && self.kv.get(key)?.is_some() {
                    continue;
                }
                born(&mut fresh)?;
                self.put(key, &fresh)?;
                return Ok((result, Modified::Created));
            }
            // Someone else is creating it: wait for the record to appear.
            let step = Duration::from_millis(2 + u64::from(jitter()) % 8);
            if waited >= CREATOR_WAIT {
                took_over = true;
            } else {
                std::thread::sleep(step);
                waited += step;
            }
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records are maps, strings and numbers: serialising them cannot fail.
    serde_json::to_vec(value).expect("records serialise to JSON")
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        problem: e.to_string(),
    })
}

/// After a lost compare-and-swap, retry at once a few times, then spread writers out.
fn back_off(attempt: u32) {
    if attempt >= 4 {
        std::thread::sleep(Duration::from_micros(
            200 + u64::from(jitter()) % (500 * u64::from(attempt.min(20))),
        ));
    }
}

/// Cheap per-call randomness for spreading retries; not for secrets.
fn jitter() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u32(t.subsec_nanos());
    }
    h.finish() as u32
}
