//! Cleanup jobs: deleting what a deleted bot or service leaves behind (every dialog, every
//! remembered call event) in the background, a bounded stretch per call, so that a delete
//! request does bounded work however big the bot was, and a cleanup that fails or runs out
//! of time resumes where it stopped.
//!
//! Keys: `jobs:n` / `jobs:{slot}` (an [`Index`] of [`Cleanup`] JSON) and `jobs:cursor` (every
//! job up to that slot is finished).

use serde_json::{Value as Json, json};

use crate::{Index, Kv, Records, StoreError};

/// How often a running job writes down how far it got.
const SAVE_EVERY: u64 = 200;

const CURSOR: &str = "jobs:cursor";

/// Deletes the keys `extra`, then for every entry of the index `index` the keys `keys` name
/// (`{}` stands for the entry), then the index itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// What is cleaned up, for the operator (`bot 3f2a…`).
    pub what: String,
    /// Keys deleted first.
    pub extra: Vec<String>,
    /// The index whose entries are walked.
    pub index: String,
    /// Key templates deleted for each entry.
    pub keys: Vec<String>,
    /// Keys an entry lists in one of its records, deleted before the keys above.
    pub listed: Vec<Listed>,
    /// Every slot of `index` up to this one is done.
    pub done: u64,
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

// Written out by hand rather than derived: the components that run jobs stay smaller.
impl Cleanup {
    fn to_json(&self) -> String {
        let listed: Vec<Json> = self
            .listed
            .iter()
            .map(|l| json!({"list": l.list, "member": l.member, "key": l.key}))
            .collect();
        json!({
            "what": self.what, "extra": self.extra, "index": self.index,
            "keys": self.keys, "listed": listed, "done": self.done,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Option<Cleanup> {
        let v: Json = serde_json::from_str(text).ok()?;
        let text = |name: &str| v.get(name).and_then(Json::as_str).map(str::to_string);
        let listed = v
            .get("listed")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| {
                Some(Listed {
                    list: l.get("list")?.as_str()?.to_string(),
                    member: l.get("member")?.as_str()?.to_string(),
                    key: l.get("key")?.as_str()?.to_string(),
                })
            })
            .collect();
        Some(Cleanup {
            what: text("what").unwrap_or_default(),
            extra: strings(&v["extra"]),
            index: text("index")?,
            keys: strings(&v["keys"]),
            listed,
            done: v.get("done").and_then(Json::as_u64).unwrap_or(0),
        })
    }
}

/// Keys an entry lists: the record at `list` (a key template) is a JSON object whose member
/// `member` is an array of names; each name gives a key to delete through `key`, a template
/// with `{}` for the entry and `{name}` for the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Where the names are listed.
    pub list: String,
    /// The member holding them.
    pub member: String,
    /// The key each name gives.
    pub key: String,
}

/// What a run of the cleanup jobs did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupRun {
    /// Index entries cleaned up.
    pub cleaned: u64,
    /// Jobs finished.
    pub finished: usize,
    /// Jobs left (unfinished) when the run stopped.
    pub left: usize,
}

/// The cleanup jobs in a store.
pub struct Jobs<'a> {
    kv: &'a dyn Kv,
}

impl<'a> Jobs<'a> {
    /// The jobs in `kv`.
    pub fn new(kv: &'a dyn Kv) -> Self {
        Self { kv }
    }

    fn index(&self) -> Index<'a> {
        Index::new(self.kv, "jobs".into())
    }

    /// Queues a job.
    pub fn add(&self, job: &Cleanup) -> Result<(), StoreError> {
        self.index().add(&job.to_json())?;
        Ok(())
    }

    /// Works through the jobs, oldest first, while `has_time()` says so.
    pub fn run(&self, has_time: &mut dyn FnMut() -> bool) -> Result<CleanupRun, StoreError> {
        let jobs = self.index();
        let last = jobs.last_slot()?;
        let records = Records::new(self.kv);
        let start: u64 = records.get(CURSOR)?.unwrap_or(0);
        let mut run = CleanupRun::default();
        let mut finished_to = start;
        for slot in start + 1..=last {
            let Some(text) = jobs.get(slot)? else {
                if finished_to == slot - 1 {
                    finished_to = slot;
                }
                continue;
            };
            let Some(mut job) = Cleanup::from_json(&text) else {
                // Unreadable: nothing can run it; keep the others moving.
                jobs.remove(slot)?;
                continue;
            };
            if !has_time() || !self.work(&mut job, slot, has_time, &mut run)? {
                run.left += 1;
                continue;
            }
            jobs.remove(slot)?;
            run.finished += 1;
            if finished_to == slot - 1 {
                finished_to = slot;
            }
        }
        if finished_to > start {
            records.put(CURSOR, &finished_to)?;
        }
        Ok(run)
    }

    /// Runs `job` (in `slot` of the jobs) until done (`true`) or out of time (`false`, its
    /// progress saved).
    fn work(
        &self,
        job: &mut Cleanup,
        slot: u64,
        has_time: &mut dyn FnMut() -> bool,
        run: &mut CleanupRun,
    ) -> Result<bool, StoreError> {
        for key in &job.extra {
            self.kv.delete(key)?;
        }
        let index = Index::new(self.kv, job.index.clone());
        let last = index.last_slot()?;
        while job.done < last {
            if !has_time() {
                self.save(job, slot)?;
                return Ok(false);
            }
            let entry_slot = job.done + 1;
            if let Some(entry) = index.get(entry_slot)? {
                self.delete_listed(&job.listed, &entry)?;
                for template in &job.keys {
                    self.kv.delete(&template.replace("{}", &entry))?;
                }
                index.remove(entry_slot)?;
                run.cleaned += 1;
            }
            job.done = entry_slot;
            if job.done.is_multiple_of(SAVE_EVERY) {
                self.save(job, slot)?;
            }
        }
        index.clear_counter()?;
        Ok(true)
    }

    fn delete_listed(&self, listed: &[Listed], entry: &str) -> Result<(), StoreError> {
        for l in listed {
            let list: Option<Json> = Records::new(self.kv).get(&l.list.replace("{}", entry))?;
            let names = list
                .as_ref()
                .and_then(|v| v.get(&l.member))
                .and_then(|v| v.as_array());
            for name in names.into_iter().flatten().filter_map(|n| n.as_str()) {
                let key = l.key.replace("{}", entry).replace("{name}", name);
                self.kv.delete(&key)?;
            }
        }
        Ok(())
    }

    fn save(&self, job: &Cleanup, slot: u64) -> Result<(), StoreError> {
        self.kv
            .set(&format!("jobs:{slot}"), job.to_json().as_bytes())
    }
}
