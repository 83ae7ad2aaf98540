//! Index records: an append-only list of ids (a bot's dialogs, all bots) that can be paged
//! without listing keys. Each entry is its own key, `{prefix}:{slot}`, with slot numbers from
//! an atomic counter `{prefix}:n`, so concurrent appends never touch the same key.

use crate::{Kv, StoreError};

/// Most slots one page reads, so a run of removed entries cannot make a page unbounded.
const MAX_SLOTS_PER_PAGE: u64 = 1_000;

/// An index under one key prefix.
pub struct Index<'a> {
    kv: &'a dyn Kv,
    prefix: String,
}

/// One page of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPage {
    /// Entries in the order they were added.
    pub items: Vec<String>,
    /// The slot of each entry.
    pub slots: Vec<u64>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<u64>,
}

impl<'a> Index<'a> {
    /// The index under `prefix` in `kv`.
    pub fn new(kv: &'a dyn Kv, prefix: String) -> Self {
        Self { kv, prefix }
    }

    fn counter_key(&self) -> String {
        format!("{}:n", self.prefix)
    }

    /// The key of the entry in `slot` (what [`Index::reserve`] leaves to the caller to write).
    pub fn slot_key(&self, slot: u64) -> String {
        format!("{}:{slot}", self.prefix)
    }

    /// Appends `id` and returns its slot (keep it to remove the entry later).
    pub fn add(&self, id: &str) -> Result<u64, StoreError> {
        let slot = self.reserve()?;
        self.kv.set(&self.slot_key(slot), id.as_bytes())?;
        Ok(slot)
    }

    /// A new slot, its entry not written yet: the caller writes the id at
    /// [`Index::slot_key`] (with other writes in one round trip). A slot never written is
    /// skipped when paging.
    pub fn reserve(&self) -> Result<u64, StoreError> {
        let slot = self.kv.increment(&self.counter_key(), 1)?;
        u64::try_from(slot)
            .map_err(|_| StoreError::Backend(format!("{} went negative", self.counter_key())))
    }

    /// `n` new slots in a row, their entries not written yet: the first of them (see
    /// [`Index::reserve`]). One round trip however many.
    pub fn reserve_many(&self, n: u64) -> Result<u64, StoreError> {
        let last = self.kv.increment(&self.counter_key(), n as i64)?;
        u64::try_from(last)
            .ok()
            .and_then(|last| (last + 1).checked_sub(n))
            .ok_or_else(|| StoreError::Backend(format!("{} went negative", self.counter_key())))
    }

    /// What its keys start with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Removes the entry in `slot`.
    pub fn remove(&self, slot: u64) -> Result<(), StoreError> {
        self.kv.delete(&self.slot_key(slot))
    }

    /// The highest slot handed out so far.
    pub fn last_slot(&self) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.kv.increment(&self.counter_key(), 0)?).unwrap_or(0))
    }

    /// The highest slot handed out so far, read without writing (for reports: see
    /// [`crate::read_counter`]).
    pub fn peek_last_slot(&self) -> Result<u64, StoreError> {
        let n = crate::read_counter(self.kv.get(&self.counter_key())?.as_deref());
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` entries after slot `after` (0 for the first page).
    pub fn page(&self, after: u64, limit: usize) -> Result<IndexPage, StoreError> {
        let last = self.last_slot()?;
        self.walk(after, limit, |slot| (slot < last).then_some(slot + 1))
    }

    /// Up to `limit` entries before slot `before` (`None`: from the newest), newest first.
    pub fn page_newest_first(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<IndexPage, StoreError> {
        let start = match before {
            Some(b) => b,
            None => self.last_slot()? + 1,
        };
        self.walk(start, limit, |slot| (slot > 1).then_some(slot - 1))
    }

    /// Reads slots from `from` on, each `next` of the one before, until `limit` entries are
    /// found, `next` runs out, or [`MAX_SLOTS_PER_PAGE`] slots were read (emptied slots count:
    /// a page costs bounded reads however much was deleted).
    fn walk(
        &self,
        from: u64,
        limit: usize,
        next: impl Fn(u64) -> Option<u64>,
    ) -> Result<IndexPage, StoreError> {
        let mut items = Vec::with_capacity(limit.min(1_000));
        let mut slots = Vec::with_capacity(limit.min(1_000));
        let mut slot = from;
        let mut read = 0;
        while items.len() < limit && read < MAX_SLOTS_PER_PAGE {
            let Some(following) = next(slot) else { break };
            slot = following;
            read += 1;
            if let Some(bytes) = self.kv.get(&self.slot_key(slot))? {
                items.push(String::from_utf8_lossy(&bytes).into_owned());
                slots.push(slot);
            }
        }
        Ok(IndexPage {
            items,
            slots,
            next: next(slot).map(|_| slot),
        })
    }

    /// The entry in `slot`, if any.
    pub fn get(&self, slot: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .kv
            .get(&self.slot_key(slot))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Every entry, each with its slot (for deleting everything that belongs to a bot).
    pub fn all(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::new();
        for slot in 1..=self.last_slot()? {
            if let Some(bytes) = self.kv.get(&self.slot_key(slot))? {
                out.push((slot, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        Ok(out)
    }

    /// Removes the counter (once every entry is removed: the index is then gone).
    pub fn clear_counter(&self) -> Result<(), StoreError> {
        self.kv.delete(&self.counter_key())
    }

    /// Removes every entry and the counter.
    pub fn clear(&self) -> Result<(), StoreError> {
        for slot in 1..=self.last_slot()? {
            self.kv.delete(&self.slot_key(slot))?;
        }
        self.kv.delete(&self.counter_key())
    }
}

/// The outbox's entries due in Unix minute `minute` (`due:{minute}:n`, `due:{minute}:{slot}`):
/// each a delivery's id, or a step entry a postback handed off (JSON, starting with `{`),
/// which the sweep turns into its delivery.
pub fn due_in_minute(kv: &dyn Kv, minute: i64) -> Index<'_> {
    Index::new(kv, format!("due:{minute}"))
}
