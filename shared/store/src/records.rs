//! JSON records over a [`Kv`], and the two ways to change one safely under concurrency.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ops::{self, Landed, OpId, strip_ops};
use crate::{Kv, StoreError};

/// How many times a writer re-reads and retries after losing a compare-and-swap. 200
/// concurrent writers on one dialog each lose at most 199 times.
const MAX_CAS_ATTEMPTS: u32 = 2_000;
/// How long a writer waits for an elected creator to write a new record before taking over.
const CREATOR_WAIT: Duration = Duration::from_secs(3);

/// JSON records in a key-value store.
pub struct Records<'a> {
    kv: &'a dyn Kv,
    /// Whether a change may be applied again when its first write cannot be confirmed.
    repeatable: bool,
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
        Self {
            kv,
            repeatable: false,
        }
    }

    /// Records in `kv` whose changes give the same record when applied twice (setting values,
    /// adding to a set: a dialog's update). When a write's landing cannot be confirmed (see
    /// [`Records::modify`]), the change is applied again to what is there now, as if that
    /// write had been lost, instead of failing with [`StoreError::Unsure`].
    pub fn repeatable(kv: &'a dyn Kv) -> Self {
        Self {
            kv,
            repeatable: true,
        }
    }

    /// The store underneath.
    pub fn kv(&self) -> &'a dyn Kv {
        self.kv
    }

    /// The record at `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        Self::parse(key, self.kv.get(key)?)
    }

    /// The record stored at `key` as `bytes` (read with [`Kv::get_many`]).
    pub fn parse<T: DeserializeOwned>(
        key: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<T>, StoreError> {
        bytes.map(|b| decode(key, strip_ops(&b))).transpose()
    }

    /// `value` as a record is stored (for writing it with others in one round trip).
    pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        encode(value)
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
    /// a swap it applied: each write makes the record's next version and carries an operation
    /// id the record remembers for that version ([`crate::ops`]), and a swap not known to
    /// have landed is checked by reading the record again. `Ok(None)` when there is no
    /// record. When `change` fails, nothing is written and its error is returned.
    ///
    /// A writer paused while more than [`crate::MAX_REMEMBERED`] others wrote the record
    /// cannot learn whether its write landed: it fails with [`StoreError::Unsure`] (the
    /// change may or may not be there). With [`Records::repeatable`] the record remembers
    /// fewer writes ([`crate::MAX_REMEMBERED_REPEATABLE`]) and such a writer applies its
    /// change again.
    pub fn modify<T, R, E>(
        &self,
        key: &str,
        change: impl FnMut(&mut T) -> Result<R, E>,
    ) -> Result<Option<R>, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
    {
        self.modify_seen(key, Seen::Unknown, change)
    }

    /// [`Records::modify`], starting from what a read just before saw at `key` (read with
    /// others in one round trip, [`GetMany::get_many_and`]): a record seen absent is not
    /// read again, and a change to a record seen is prepared before the compare-and-swap
    /// reads it, so that the swap follows its read at once when the record has not changed
    /// in between.
    pub fn modify_seen<T, R, E>(
        &self,
        key: &str,
        seen: Seen<'_>,
        mut change: impl FnMut(&mut T) -> Result<R, E>,
    ) -> Result<Option<R>, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
    {
        // The latest `change`'s result: the one whose write (if any) is the last.
        let mut result: Option<Result<R, E>> = None;
        let found = self.modify_bytes(key, seen, &mut |record| {
            let mut value: T = match decode(key, record) {
                Ok(v) => v,
                Err(e) => {
                    result = Some(Err(e.into()));
                    return None;
                }
            };
            let r = change(&mut value);
            let new = r.is_ok().then(|| encode(&value));
            result = Some(r);
            new
        })?;
        match result {
            Some(r) if found => r.map(Some),
            _ => Ok(None),
        }
    }

    /// The work of [`Records::modify`] on the stored JSON, shared by all its types. `change`
    /// gets the record and returns its new JSON, or `None` to stop without writing. Returns
    /// whether there was a record (then its last change is stored, stopped, or needed no
    /// write).
    fn modify_bytes(
        &self,
        key: &str,
        seen: Seen<'_>,
        change: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let op = OpId::new();
        let mut write = Write {
            op,
            attempts: 0,
            written: None,
            outcome: None,
            repeatable: self.repeatable,
        };
        // A write prepared from bytes read earlier, swapped only if the session reads those
        // same bytes: then no other writer can come between the read the change was made
        // from and the swap, however long the change took.
        let mut prepared: Option<Prepared> = match seen {
            Seen::Unknown => None,
            Seen::Absent => return Ok(false),
            Seen::Bytes(bytes) => Some(write.prepare(key, bytes, change)),
        };
        // What the last session left to do.
        let mut next = Next::Done;
        loop {
            let rested = std::mem::replace(&mut next, Next::Done) == Next::Rest;
            self.kv.compare_and_swap(key, &mut |current| {
                let Some(bytes) = current else {
                    write.outcome = Some(Ok(false));
                    return None;
                };
                match prepared.take() {
                    Some(p) if same_bytes(&p.seen, bytes) => {
                        write = p.write;
                        return p.new;
                    }
                    // Nothing lost yet: change what is there and swap at once.
                    _ if write.attempts == 0 => return write.attempt(key, bytes, change),
                    _ => {}
                }
                // A swap lost, or the write prepared after one gone stale: the record is busy.
                // Change what is here and read again before swapping, in a new session (on
                // Redis a session's WATCH stays from its first read). A writer that changed
                // the record after its read, or waited there, would lose again every time
                // newcomers swap straight after their read.
                if write.attempts >= BACK_OFF_AFTER && !rested {
                    next = Next::Rest;
                    return None;
                }
                let p = write.prepare(key, bytes, change);
                if p.write.outcome.is_some() {
                    write = p.write;
                } else {
                    prepared = Some(p);
                    next = Next::Validate;
                }
                None
            })?;
            match next {
                Next::Done => break,
                Next::Rest => back_off(write.attempts),
                Next::Validate => {}
            }
        }
        // Without an outcome, the last write was reported as applied.
        write.outcome.unwrap_or(Ok(true))
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
        self.upsert_born(key, born_key, Seen::Unknown, create, change, |_| {
            Ok(Vec::new())
        })
    }

    /// [`Records::upsert`], with `born` called on the new record by the elected creator
    /// just before it is written: what only a creation does (taking a place in a list)
    /// goes into the record's first write, and the entries `born` returns (the list's entry)
    /// are written in the same round trip ([`Kv::set_many`]; one transaction on Spin's
    /// SQLite store), before the record where the host writes one at a time. `seen` is what
    /// a read just before found at `key` (see [`Records::modify_seen`]).
    pub fn upsert_born<T, R, E>(
        &self,
        key: &str,
        born_key: &str,
        mut seen: Seen<'_>,
        create: impl Fn() -> T,
        mut change: impl FnMut(&mut T) -> Result<R, E>,
        mut born: impl FnMut(&mut T) -> Result<Vec<(String, Vec<u8>)>, E>,
    ) -> Result<(R, Modified), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
    {
        let mut waited = Duration::ZERO;
        let mut took_over = false;
        loop {
            // Only the first look may go by what was seen before.
            let seen = std::mem::replace(&mut seen, Seen::Unknown);
            if let Some(result) = self.modify_seen(key, seen, &mut change)? {
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
                let mut entries = born(&mut fresh)?;
                entries.push((key.to_string(), encode(&fresh)));
                self.kv.set_many(&entries)?;
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

/// What a read made just before a change found at the record's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'b> {
    /// Not read: the change reads it.
    Unknown,
    /// There was no record.
    Absent,
    /// The record as stored.
    Bytes(&'b [u8]),
}

/// What a compare-and-swap session of [`Records::modify`] left to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Nothing: the write is known to have landed, or the call's outcome is set.
    Done,
    /// Wait, then read the record and prepare the change from it.
    Rest,
    /// Read the record and swap the prepared write if it is still what it was made from.
    Validate,
}

/// A write made from `seen` and not yet tried: `write` is the call's state once it is.
struct Prepared {
    seen: Vec<u8>,
    new: Option<Vec<u8>>,
    write: Write,
}

/// One [`Records::modify`] call's writing: its operation id and how its attempts went.
struct Write {
    op: OpId,
    attempts: u32,
    /// The version this call's last write made, while it is not known to have landed.
    written: Option<u64>,
    /// How the call ends, once that is known.
    outcome: Option<Result<bool, StoreError>>,
    /// Whether the change may be applied again ([`Records::repeatable`]).
    repeatable: bool,
}

impl Write {
    /// How many writes the record remembers (see [`crate::ops`]).
    fn remembered(&self) -> usize {
        if self.repeatable {
            ops::MAX_REMEMBERED_REPEATABLE
        } else {
            ops::MAX_REMEMBERED
        }
    }

    /// [`Write::attempt`] on `seen`, leaving this state as it is until the write is tried.
    fn prepare(
        &self,
        key: &str,
        seen: &[u8],
        change: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Prepared {
        let mut write = Write {
            outcome: None,
            ..*self
        };
        let new = write.attempt(key, seen, change);
        Prepared {
            seen: seen.to_vec(),
            new,
            write,
        }
    }

    /// One attempt on the stored `bytes`: what to swap in, or `None` to end the session
    /// (with `outcome` set: the earlier write landed, nothing to change, or a failure).
    fn attempt(
        &mut self,
        key: &str,
        bytes: &[u8],
        change: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if let Some(version) = self.written {
            match ops::landed(bytes, self.op, version) {
                Landed::Yes => {
                    self.outcome = Some(Ok(true));
                    return None;
                }
                Landed::No => {}
                Landed::Unknown if self.repeatable => {}
                Landed::Unknown => {
                    self.outcome = Some(Err(StoreError::Unsure(key.to_string())));
                    return None;
                }
            }
        }
        if self.attempts >= MAX_CAS_ATTEMPTS {
            self.outcome = Some(Err(StoreError::Contended(key.to_string())));
            return None;
        }
        self.attempts += 1;
        let record = strip_ops(bytes);
        let new = change(record).filter(|new| !same_bytes(new, record));
        let Some(new) = new else {
            self.outcome = Some(Ok(true));
            return None;
        };
        let (bytes, version) = ops::with_op(bytes, self.op, &new, self.remembered());
        self.written = Some(version);
        Some(bytes)
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

/// `a == b`, eight bytes at a time: on wasm32 the slice comparison is a C `memcmp` that
/// goes byte by byte, and records are compared whole on every postback.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    a.len() == b.len()
        && a8.remainder() == b8.remainder()
        && a8.zip(b8).all(|(x, y)| word(x) == word(y))
}

fn word(eight: &[u8]) -> u64 {
    u64::from_ne_bytes(eight.try_into().expect("chunks of eight"))
}

/// After this many attempts on a busy record, a writer waits before each read it prepares from.
const BACK_OFF_AFTER: u32 = 4;

/// Spreads writers of a busy record out, longer the more often they lost.
fn back_off(attempt: u32) {
    std::thread::sleep(Duration::from_micros(
        200 + u64::from(jitter()) % (500 * u64::from(attempt.min(20))),
    ));
}

/// Cheap per-call randomness for spreading retries; not for secrets.
fn jitter() -> u32 {
    ops::random_bits() as u32
}
