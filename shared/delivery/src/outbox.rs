//! The outbox: which deliveries have an attempt due when, and the sweep that sends them.
//!
//! Each Unix minute is an [`Index`] of delivery ids, `due:{minute}:n` / `due:{minute}:{slot}`:
//! scheduling is an append (one counter increment, one write) whatever the rate, so no record
//! grows with traffic and no writer waits on another. `due:cursor` says how far the sweep got:
//! every minute before `minute` is done, and in `minute` every slot up to `slot`. The last
//! two minutes stay open (a writer whose clock is a little behind may still append to them),
//! so an entry is never appended to a minute the sweep has closed.
//!
//! Two safety nets: a sweep leases each delivery it sends (a second sweep, or a sweep that
//! died, cannot double-send or strand it), and every sweep that caught up walks a stretch of
//! the log for deliveries that are pending or retrying but overdue (a store failure between
//! two writes, or a host without atomics where two appends can collide) and puts them back.

use std::time::Duration;

use funnelhooks_core::Timestamp;
use funnelhooks_store::{Index, Kv, Records, StoreError};
use serde::{Deserialize, Serialize};

use crate::engine::{Attempts, Clock, Engine, LEASE, MAX_SWEEP_WAIT, Sender, key};
use crate::log::{Delivery, Status};

/// How far back a sweep looks when no sweep ever ran.
pub const FIRST_SWEEP_LOOKBACK_MINUTES: i64 = 60;
/// Minutes that stay open for late appends: the current one and the one before.
const OPEN_MINUTES: i64 = 2;
/// A sweep stops starting work this close to the end of its budget.
const MIN_LEFT: Duration = Duration::from_millis(500);
/// Log entries one sweep checks for overdue deliveries.
const RESCUE_PER_SWEEP: u64 = 100;
/// An attempt this late, with the outbox caught up, was lost from it.
const OVERDUE: Duration = Duration::from_secs(120);
/// Legacy per-minute buckets (one JSON list a minute) may hold retries up to this far ahead
/// of the last legacy sweep.
const LEGACY_HORIZON_MINUTES: i64 = 2 * 24 * 60;

/// Turns a step entry found in the outbox into its delivery's id
/// ([`Engine::retry_due_resolving`]).
pub type Resolve<'r> = dyn FnMut(&str) -> Result<Option<String>, StoreError> + 'r;

/// How far apart two instances' clocks may be, as "Retry now" allows for.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(15);

/// What "Retry now" ([`Engine::retry_now`]) did.
#[derive(Debug)]
pub enum RetryNow {
    /// Made the attempt; the delivery after it.
    Attempted(Box<Delivery>),
    /// Could not make it now (its step or hook is paused, or it waits for a rate limit or the
    /// receiver's `Retry-After`): it goes when its turn comes.
    NotNow(Box<Delivery>),
    /// No such delivery.
    NotFound,
    /// It is not waiting for a retry (delivered, failed, skipped, or not tried yet).
    NotRetrying,
    /// Its next attempt is due within a lease: the sweep's.
    DueSoon,
}

const CURSOR: &str = "due:cursor";
const RESCUE_CURSOR: &str = "dlvs:rescue";
/// The installation's last sweep ([`LastSweep`]), whichever instance ran it.
const LAST_SWEEP: &str = "sweep:last";
/// Most minutes of the outbox a report reads; past that it says "at least".
pub const MAX_BACKLOG_MINUTES: i64 = 180;

/// The last sweep of the installation, as every sweep leaves it (on any instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastSweep {
    /// When it started.
    pub at: Timestamp,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Attempts it made.
    pub attempted: usize,
    /// Whether it left work for the next call.
    pub more: bool,
    /// What started it: `scheduler` (a call of the sweep route) or `traffic` (the sweep the
    /// app chains from requests when one is overdue).
    pub by: String,
}

/// The deliveries waiting in the outbox that are due, for health and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    /// Deliveries whose next attempt is due now or was due before, not yet made.
    pub due: u64,
    /// Of those, due more than two minutes ago: a sweep should have made them.
    pub overdue: u64,
    /// When the oldest overdue one was due, if any.
    pub oldest_overdue: Option<Timestamp>,
    /// The outbox held more than [`MAX_BACKLOG_CHECKED`] entries, or the sweep is more than
    /// [`MAX_BACKLOG_MINUTES`] behind: the counts are what was read, and more may be due.
    pub at_least: bool,
}

/// The delivery id a step entry in the outbox carries (its first member, `id`; read
/// without a JSON parser, which health would carry only for this).
fn entry_id(entry: &str) -> String {
    entry
        .strip_prefix(r#"{"id":""#)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// Most outbox entries one report reads (each is a delivery to look at).
pub const MAX_BACKLOG_CHECKED: usize = 200;

/// The installation's last sweep, if one ever ran.
pub fn last_sweep(kv: &dyn Kv) -> Result<Option<LastSweep>, StoreError> {
    Records::new(kv).get(LAST_SWEEP)
}

/// Which deliveries in the outbox are due and overdue at `now`, read without writing
/// anything: the entries of the minutes the sweep has not closed (the oldest
/// [`MAX_BACKLOG_MINUTES`] of them), each delivery looked at once (an entry whose delivery
/// was sent or ended since is not work), at most [`MAX_BACKLOG_CHECKED`] entries.
pub fn backlog(kv: &dyn Kv, now: Timestamp) -> Result<Backlog, StoreError> {
    let now_minute = minute(now);
    let cursor = read_cursor(kv, now_minute)?;
    let late = Timestamp(now.0 - OVERDUE.as_millis() as i64);
    let last = (cursor.minute + MAX_BACKLOG_MINUTES).min(now_minute);
    let mut out = Backlog {
        at_least: last < now_minute,
        ..Backlog::default()
    };
    let (mut seen, mut checked) = (std::collections::BTreeSet::new(), 0);
    let records = Records::new(kv);
    'minutes: for m in cursor.minute..=last {
        let due = bucket(kv, m);
        let from = if m == cursor.minute { cursor.slot } else { 0 };
        for slot in from + 1..=due.peek_last_slot()? {
            if checked == MAX_BACKLOG_CHECKED {
                out.at_least = true;
                break 'minutes;
            }
            checked += 1;
            let Some(entry) = due.get(slot)? else {
                continue;
            };
            // A postback's step entry stands for its delivery, due when its minute comes.
            let step_entry = entry.starts_with('{');
            let id = match step_entry {
                true => entry_id(&entry),
                false => entry,
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            let d = records.get::<Delivery>(&key(&id))?;
            let at = match (&d, step_entry) {
                (Some(d), _) => d
                    .next_attempt_at
                    .unwrap_or(Timestamp(d.created_at.0 + LEASE.as_millis() as i64)),
                (None, true) => Timestamp(m * 60_000),
                (None, false) => continue,
            };
            if d.as_ref().is_some_and(|d| d.is_final()) || at > now {
                continue;
            }
            out.due += 1;
            if at < late {
                out.overdue += 1;
                out.oldest_overdue = Some(out.oldest_overdue.map_or(at, |o| o.min(at)));
            }
        }
    }
    Ok(out)
}

fn read_cursor(kv: &dyn Kv, now_minute: i64) -> Result<Cursor, StoreError> {
    let start = now_minute - FIRST_SWEEP_LOOKBACK_MINUTES;
    Ok(match Records::new(kv).get::<serde_json::Value>(CURSOR)? {
        None => Cursor {
            minute: start,
            ..Cursor::default()
        },
        // Before the outbox was an index: the last minute finished.
        Some(serde_json::Value::Number(n)) => {
            let done = n.as_i64().unwrap_or(start);
            Cursor {
                minute: done + 1,
                slot: 0,
                legacy_until: now_minute + LEGACY_HORIZON_MINUTES,
            }
        }
        Some(v) => Cursor {
            minute: v["minute"].as_i64().unwrap_or(start),
            slot: v["slot"].as_u64().unwrap_or(0),
            legacy_until: v["legacyUntil"].as_i64().unwrap_or(0),
        },
    })
}

/// What a sweep of due attempts did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Attempts made.
    pub attempted: usize,
    /// Of those, delivered.
    pub delivered: usize,
    /// Of those, given up.
    pub failed: usize,
    /// Of those, scheduled again.
    pub rescheduled: usize,
    /// Overdue deliveries found missing from the outbox and put back.
    pub rescued: usize,
    /// The time budget ran out with work left: call again.
    pub more: bool,
    /// Whole minutes of the outbox not yet swept (0 when caught up).
    pub minutes_behind: i64,
}

/// How far the sweep got, stored as `{"minute", "slot", "legacyUntil"}`.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// Every minute before this one is done.
    minute: i64,
    /// In `minute`, every slot up to this one is done.
    slot: u64,
    /// Legacy buckets may exist up to this minute.
    legacy_until: i64,
}

/// What a sweep got when it tried to take a delivery.
enum Claim {
    /// Leased to this sweep.
    Taken(Box<Delivery>),
    /// Not (or no longer) due: sent or given up.
    NotDue,
    /// Waiting for an attempt in a later minute (a retry, or taken by another sweep), which
    /// has its own entry, unless it was made for a postback's step entry.
    Later(Timestamp),
    /// Due later in the minute being swept: its entry stays for a later sweep.
    NotYet,
    /// Due, but its attempt could outlast what is left of the sweep's budget.
    NoTime,
    /// No such delivery.
    Absent,
}

/// How one outbox entry went.
enum Entry {
    /// Handled (sent, or not due): the entry is gone.
    Done,
    /// Due later in its minute: the entry stays.
    Kept,
    /// The budget cannot fit its attempt: it stays for the next sweep.
    OutOfTime,
    /// No such delivery: gone, or (a postback's step entry) never made by its chain.
    Absent,
}

pub(crate) fn minute(t: Timestamp) -> i64 {
    t.0.div_euclid(60_000)
}

pub(crate) fn bucket<'a>(kv: &'a dyn Kv, minute: i64) -> Index<'a> {
    funnelhooks_store::due_in_minute(kv, minute)
}

impl<K: Kv, S: Sender, C: Clock> Engine<'_, K, S, C> {
    /// Puts `id` in the outbox, due at `at` (or now, if `at` has passed: never into a minute
    /// the sweep may have closed).
    pub(crate) fn schedule(&self, at: Timestamp, id: &str) -> Result<(), StoreError> {
        let (key, value) = self.schedule_entry(at, id)?;
        self.kv.set(&key, &value)
    }

    /// The outbox minute an attempt due at `at` goes to.
    pub(crate) fn due_index(&self, at: Timestamp) -> Index<'_> {
        bucket(self.kv, minute(at).max(minute(self.clock.now())))
    }

    /// [`Self::schedule`]'s slot, taken; its entry (key and value) is left to the caller to
    /// write, with other writes in one round trip.
    pub(crate) fn schedule_entry(
        &self,
        at: Timestamp,
        id: &str,
    ) -> Result<(String, Vec<u8>), StoreError> {
        let due = self.due_index(at);
        let slot = due.reserve()?;
        Ok((due.slot_key(slot), id.as_bytes().to_vec()))
    }

    fn left(&self, started: Timestamp, budget: Duration) -> Duration {
        let spent = Duration::from_millis((self.clock.now().0 - started.0).max(0) as u64);
        budget.saturating_sub(spent)
    }

    fn cursor(&self, now_minute: i64) -> Result<Cursor, StoreError> {
        read_cursor(self.kv, now_minute)
    }

    /// Sends every attempt that is due and can end within `budget` (an attempt starts only
    /// when its timeout still fits), then, if caught up, looks for overdue deliveries; what
    /// is left waits for the next sweep. Two sweeps at once never send the same attempt
    /// twice: each delivery is leased.
    pub fn retry_due(&self, budget: Duration) -> Result<Sweep, StoreError> {
        self.retry_due_by(budget, "scheduler")
    }

    /// [`Engine::retry_due`], recording in the installation's [`LastSweep`] what started it
    /// (`scheduler` or `traffic`). A postback's step entry in the outbox goes to its
    /// delivery if there is one: see [`Engine::retry_due_resolving`] for a sweep that makes
    /// the ones the chain never made.
    pub fn retry_due_by(&self, budget: Duration, by: &str) -> Result<Sweep, StoreError> {
        self.retry_due_resolving(budget, by, &mut |_| Ok(None))
    }

    /// [`Engine::retry_due_by`], with `resolve` called on a step entry found in the outbox (a
    /// postback's handoff, JSON) whose delivery does not exist: it makes the delivery the
    /// chain never made and returns its id (sent if due, else given an entry at its due
    /// time), or `None` when there is nothing to deliver (the move never landed).
    pub fn retry_due_resolving(
        &self,
        budget: Duration,
        by: &str,
        resolve: &mut Resolve<'_>,
    ) -> Result<Sweep, StoreError> {
        let started = self.clock.now();
        let now_minute = minute(started);
        let mut sweep = Sweep::default();
        let mut cursor = self.cursor(now_minute)?;
        let mut m = cursor.minute;
        'minutes: while m <= now_minute {
            if self.left(started, budget) < MIN_LEFT {
                sweep.more = true;
                break;
            }
            let at_cursor = m == cursor.minute;
            let from = if at_cursor { cursor.slot } else { 0 };
            if from == 0 && m <= cursor.legacy_until {
                self.sweep_legacy(m, &mut sweep, started, budget)?;
            }
            let due = bucket(self.kv, m);
            let last = due.last_slot()?;
            // The cursor moves past handled entries only up to the first one kept.
            let mut advancing = at_cursor;
            for slot in from + 1..=last {
                let at = (m, slot);
                match self.sweep_entry(&due, at, &mut sweep, (started, budget), resolve)? {
                    Entry::Done | Entry::Absent if advancing => cursor.slot = slot,
                    Entry::Done | Entry::Absent => {}
                    Entry::Kept => advancing = false,
                    Entry::OutOfTime => {
                        sweep.more = true;
                        break 'minutes;
                    }
                }
            }
            if m > now_minute - OPEN_MINUTES {
                m += 1;
                continue;
            }
            due.clear_counter()?;
            cursor.minute = m + 1;
            cursor.slot = 0;
            m += 1;
        }
        let saved = serde_json::json!({
            "minute": cursor.minute, "slot": cursor.slot, "legacyUntil": cursor.legacy_until,
        });
        self.records().put(CURSOR, &saved)?;
        sweep.minutes_behind = (now_minute - OPEN_MINUTES + 1 - cursor.minute).max(0);
        if !sweep.more {
            self.rescue_overdue(&mut sweep, started, budget)?;
        }
        let last = LastSweep {
            at: started,
            ended_at: self.clock.now(),
            attempted: sweep.attempted,
            more: sweep.more,
            by: by.to_string(),
        };
        self.records().put(LAST_SWEEP, &last)?;
        if let Some(line) = funnelhooks_core::log::line(funnelhooks_core::log::Level::Info, "sweep")
        {
            line.str("by", by)
                .num("attempted", sweep.attempted as i64)
                .num("delivered", sweep.delivered as i64)
                .num("failed", sweep.failed as i64)
                .num("rescheduled", sweep.rescheduled as i64)
                .num("rescued", sweep.rescued as i64)
                .num("minutesBehind", sweep.minutes_behind)
                .str("more", if sweep.more { "true" } else { "false" })
                .emit();
        }
        Ok(sweep)
    }

    /// One outbox entry: takes its delivery if due and makes the attempt.
    fn sweep_entry(
        &self,
        due: &Index<'_>,
        (m, slot): (i64, u64),
        sweep: &mut Sweep,
        (started, budget): (Timestamp, Duration),
        resolve: &mut Resolve<'_>,
    ) -> Result<Entry, StoreError> {
        let Some(entry) = due.get(slot)? else {
            due.remove(slot)?;
            return Ok(Entry::Done);
        };
        // A postback's step entry names its delivery; the resolver is asked only when the
        // chain never made it (one read of the delivery either way: the claim's).
        let step_entry = entry.starts_with('{');
        let id = if step_entry {
            entry_id(&entry)
        } else {
            entry.clone()
        };
        let budget = (started, budget);
        let mut outcome = self.sweep_one((&id, step_entry), m, sweep, budget)?;
        if step_entry && matches!(outcome, Entry::Absent) {
            if self.left(budget.0, budget.1) < MIN_LEFT {
                return Ok(Entry::OutOfTime);
            }
            if let Some(made) = resolve(&entry)? {
                outcome = self.sweep_one((&made, true), m, sweep, budget)?;
            }
        }
        match outcome {
            Entry::Done | Entry::Absent => {}
            other => return Ok(other),
        }
        due.remove(slot)?;
        Ok(Entry::Done)
    }

    /// Sends delivery `id` if it is due, for an entry in minute `m` (`step_entry`: a
    /// postback's, which may be the delivery's only one).
    fn sweep_one(
        &self,
        (id, step_entry): (&str, bool),
        m: i64,
        sweep: &mut Sweep,
        (started, budget): (Timestamp, Duration),
    ) -> Result<Entry, StoreError> {
        let left = self.left(started, budget);
        let delivery = match self.claim(id, m, left)? {
            Claim::Taken(d) => *d,
            Claim::NotDue => return Ok(Entry::Done),
            // A delivery its chain made late, due after this minute: given its own entry.
            Claim::Later(at) if step_entry => {
                self.schedule(at, id)?;
                return Ok(Entry::Done);
            }
            Claim::Later(_) => return Ok(Entry::Done),
            Claim::NotYet => return Ok(Entry::Kept),
            // Its attempt could outlast the request: the next sweep starts with it.
            Claim::NoTime => return Ok(Entry::OutOfTime),
            Claim::Absent => return Ok(Entry::Absent),
        };
        // Waiting a little for a turn under a rate limit keeps a limited target's backlog
        // flowing at its rate within one sweep, where a turn put off to the outbox would
        // wait for the next sweep.
        // At most half the budget goes to waiting, so one limited target's backlog cannot
        // hold every other target's due attempts for the whole sweep.
        let reserve = Duration::from_millis(delivery.timeout_ms) + MIN_LEFT;
        let max_wait = MAX_SWEEP_WAIT
            .min(self.left(started, budget).saturating_sub(reserve))
            .min((budget / 2).saturating_sub(self.waited.get()));
        let made = delivery.attempts.len();
        let done = self.run_waiting(delivery, Attempts::FirstOnly, max_wait)?;
        if done.attempts.len() == made {
            // Held or postponed: no attempt. Given up without one (a refused target): failed.
            if done.status == Status::Failed {
                sweep.attempted += 1;
                sweep.failed += 1;
            }
            return Ok(Entry::Done);
        }
        sweep.attempted += 1;
        match done.status {
            Status::Delivered => sweep.delivered += 1,
            Status::Retrying => sweep.rescheduled += 1,
            _ => sweep.failed += 1,
        }
        Ok(Entry::Done)
    }

    /// A minute's bucket as it was kept before: one JSON list of ids, removed once handled.
    fn sweep_legacy(
        &self,
        m: i64,
        sweep: &mut Sweep,
        started: Timestamp,
        budget: Duration,
    ) -> Result<(), StoreError> {
        let legacy = format!("due:{m}");
        let Some(ids) = self.records().get::<Vec<String>>(&legacy)? else {
            return Ok(());
        };
        for id in &ids {
            // Not sent now: it goes to the new outbox (due now, or at its time).
            match self.sweep_one((id, false), m, sweep, (started, budget))? {
                Entry::Done | Entry::Absent => {}
                Entry::Kept | Entry::OutOfTime => self.schedule(self.clock.now(), id)?,
            }
        }
        self.kv.delete(&legacy)?;
        self.kv.delete(&format!("{legacy}:born"))
    }

    /// "Retry now": takes a retrying delivery whose next attempt is more than a [`LEASE`]
    /// (and [`CLOCK_MARGIN`]) away as a sweep takes a due one (its next attempt moved past
    /// a lease, which is scheduled), and makes that attempt now. A next attempt within a
    /// lease may be a sweep's lease on an attempt being made, on an instance whose clock is
    /// a little ahead: that one is left alone, so no attempt is ever made twice. The old
    /// entry in the outbox finds it not due.
    pub fn retry_now(&self, id: &str) -> Result<RetryNow, StoreError> {
        let now = self.clock.now();
        let lease_end = Timestamp(now.0 + LEASE.as_millis() as i64);
        let margin = Timestamp(lease_end.0 + CLOCK_MARGIN.as_millis() as i64);
        let taken = self.records().modify(&key(id), |d: &mut Delivery| {
            Ok::<_, StoreError>(match d.next_attempt_at {
                _ if d.status != Status::Retrying => Err(RetryNow::NotRetrying),
                Some(next) if next > margin => {
                    d.next_attempt_at = Some(lease_end);
                    Ok(d.clone())
                }
                _ => Err(RetryNow::DueSoon),
            })
        })?;
        let delivery = match taken {
            None => return Ok(RetryNow::NotFound),
            Some(Err(refused)) => return Ok(refused),
            Some(Ok(d)) => d,
        };
        // In case this request dies before its attempt is logged.
        self.schedule(lease_end, id)?;
        let made = delivery.attempts.len();
        let after = self.run(delivery, Attempts::FirstOnly)?;
        Ok(if after.attempts.len() > made {
            RetryNow::Attempted(Box::new(after))
        } else {
            RetryNow::NotNow(Box::new(after))
        })
    }

    /// Takes a due delivery for this sweep (its entry in minute `m`), if its attempt fits in
    /// `left`: moves its next
    /// attempt past the lease (and schedules that, in case this sweep dies) so no other sweep
    /// sends it.
    fn claim(&self, id: &str, m: i64, left: Duration) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let lease_end = Timestamp(now.0 + LEASE.as_millis() as i64);
        let claimed = self.records().modify(&key(id), |d: &mut Delivery| {
            // Pending without a due time: logged before every delivery had one.
            let due = !d.is_final() && d.next_attempt_at.is_none_or(|t| t <= now);
            let later_in_minute =
                !d.is_final() && d.next_attempt_at.is_some_and(|t| t > now && minute(t) <= m);
            Ok::<_, StoreError>(if later_in_minute {
                Claim::NotYet
            } else if !due {
                match d.next_attempt_at {
                    Some(at) if !d.is_final() => Claim::Later(at),
                    _ => Claim::NotDue,
                }
            } else if Duration::from_millis(d.timeout_ms) > left {
                Claim::NoTime
            } else {
                d.next_attempt_at = Some(lease_end);
                Claim::Taken(Box::new(d.clone()))
            })
        })?;
        let claim = claimed.unwrap_or(Claim::Absent);
        if matches!(claim, Claim::Taken(_)) {
            self.schedule(lease_end, id)?;
        }
        Ok(claim)
    }

    /// Walks the next stretch of the log (round and round, [`RESCUE_PER_SWEEP`] entries a
    /// sweep) for deliveries that should have been sent more than [`OVERDUE`] ago, and puts
    /// them back in the outbox, due now.
    fn rescue_overdue(
        &self,
        sweep: &mut Sweep,
        started: Timestamp,
        budget: Duration,
    ) -> Result<(), StoreError> {
        let all = self.all();
        let last = all.last_slot()?;
        let mut slot: u64 = self.records().get(RESCUE_CURSOR)?.unwrap_or(0);
        let late = Timestamp(self.clock.now().0 - OVERDUE.as_millis() as i64);
        for _ in 0..RESCUE_PER_SWEEP.min(last) {
            if self.left(started, budget) < MIN_LEFT {
                sweep.more = true;
                break;
            }
            slot = if slot >= last { 1 } else { slot + 1 };
            let Some(id) = all.get(slot)? else { continue };
            let Some(d) = self.records().get::<Delivery>(&key(&id))? else {
                continue;
            };
            let due = d
                .next_attempt_at
                .unwrap_or(Timestamp(d.created_at.0 + LEASE.as_millis() as i64));
            if !d.is_final() && due < late {
                self.schedule(self.clock.now(), &d.id)?;
                sweep.rescued += 1;
            }
        }
        self.records().put(RESCUE_CURSOR, &slot)
    }
}
