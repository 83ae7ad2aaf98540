//! The delivery engine: sends a delivery's attempts, decides on retries, keeps the outbox
//! of attempts due later and the delivery log. Sending and the clock are traits, so the
//! components send through Spin's outbound HTTP and the tests through anything.
//!
//! Keys: `dlv:{id}` (a [`Delivery`]), `dlvs:n` / `dlvs:{slot}` (every delivery, the log's
//! order), `dlvs:bot:{botId}:…` and `dlvs:svc:{serviceId}:…` (per bot, per service),
//! `due:{minute}` (ids of deliveries whose next attempt falls in that Unix minute) and
//! `due:cursor` (the last minute the sweep finished).

use std::time::Duration;

use funnelhooks_core::Timestamp;
use funnelhooks_store::{Index, Kv, Records, StoreError};

use crate::log::{Attempt, Delivery, MAX_LOGGED_DELIVERIES, MAX_RESPONSE_BODY, Owner, Status};
use crate::options::DeliveryOptions;
use crate::request::OutboundRequest;
use crate::retry::{Outcome, Verdict, verdict};
use crate::signing::SigningSecret;

/// What every request says it is, unless its config sets a `User-Agent`.
pub const USER_AGENT: &str = concat!("funnelhooks/", env!("CARGO_PKG_VERSION"));
/// Attempts made within one request must end well inside the platform's 30 s budget.
pub const INLINE_BUDGET: Duration = Duration::from_secs(25);
/// The longest wait before an attempt made within the same request (the schedule's 5 s).
pub const INLINE_MAX_WAIT: Duration = Duration::from_secs(6);
/// How long a sweep holds a delivery it is sending before another sweep may take it.
pub const LEASE: Duration = Duration::from_secs(60);
/// How far back the first sweep ever looks for due attempts.
const FIRST_SWEEP_LOOKBACK_MINUTES: i64 = 3 * 24 * 60;
/// Most log entries one page of a filtered list reads.
pub const MAX_SCANNED_PER_PAGE: usize = 1000;
/// Most index pages one page of a filtered list reads.
const MAX_INDEX_PAGES_PER_PAGE: usize = 20;
/// Most empty minutes one sweep walks.
const MAX_MINUTES_PER_SWEEP: i64 = 3 * 24 * 60;

/// A response, as much of it as the log keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The first 20 KB of the body.
    pub body: Vec<u8>,
    /// Whether the body was longer.
    pub truncated: bool,
}

/// Why an attempt got no response.
#[derive(Debug, Clone, PartialEq)]
pub enum SendFailure {
    /// No answer within the timeout.
    Timeout(String),
    /// Refused, reset, DNS, TLS, a blocked network...
    Network(String),
}

/// One request of a batch sent at once.
pub struct Outgoing<'r> {
    /// The request.
    pub request: &'r OutboundRequest,
    /// Headers added for this attempt (`User-Agent`, the signature).
    pub extra: Vec<(String, String)>,
    /// Give up after this.
    pub timeout: Duration,
}

/// How one request of a batch went.
pub struct Sent {
    /// The response, or why there was none.
    pub result: Result<Received, SendFailure>,
    /// From the batch's start to the end of this response.
    pub elapsed: Duration,
}

/// Sends requests and reads (the start of) their responses. Never follows redirects.
pub trait Sender {
    /// Sends `request` with `extra` headers, giving up after `timeout`.
    fn send(
        &self,
        request: &OutboundRequest,
        extra: &[(String, String)],
        timeout: Duration,
    ) -> Result<Received, SendFailure>;

    /// Sends every request of `batch`, in the batch's order of results. Senders that can
    /// should send them concurrently, so a batch takes as long as its slowest request; this
    /// default sends one after the other.
    fn send_all(&self, batch: &[Outgoing<'_>]) -> Vec<Sent> {
        let started = std::time::Instant::now();
        batch
            .iter()
            .map(|o| Sent {
                result: self.send(o.request, &o.extra, o.timeout),
                elapsed: started.elapsed(),
            })
            .collect()
    }
}

/// The time, and waiting.
pub trait Clock {
    /// Now, in Unix milliseconds.
    fn now(&self) -> Timestamp;
    /// Waits `d`.
    fn sleep(&self, d: Duration);
}

/// A delivery to create.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// What it is for.
    pub owner: Owner,
    /// A test send.
    pub test: bool,
    /// The delivery it replays.
    pub replay_of: Option<String>,
    /// The request.
    pub request: Option<OutboundRequest>,
    /// Template names without a value.
    pub missing: Vec<String>,
    /// Attempts allowed (1 to 8).
    pub max_attempts: usize,
    /// Per-attempt timeout.
    pub timeout_ms: u64,
    /// Signing secret, `whsec_...`.
    pub signing_secret: Option<String>,
    /// Puts the first attempt in the outbox, due this long after creation: the sweep sends
    /// it then unless this request has sent it first (so a request that dies after creating
    /// it loses nothing). `None`: the caller runs it now.
    pub first_attempt_after: Option<Duration>,
}

impl NewDelivery {
    /// A delivery for `owner` that tries as hard and signs as `options` say.
    pub fn new(owner: Owner, options: &DeliveryOptions) -> Self {
        Self {
            owner,
            test: false,
            replay_of: None,
            request: None,
            missing: Vec::new(),
            max_attempts: options.max_attempts,
            timeout_ms: options.timeout_ms,
            signing_secret: options.secret_text.clone(),
            first_attempt_after: None,
        }
    }
}

/// Which attempts a request makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// The first, and the retries due within seconds that fit the request's budget.
    WithQuickRetries,
    /// The first only; retries wait in the outbox for the sweep.
    FirstOnly,
}

/// Which part of the log a listing reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogScope {
    /// Every delivery.
    All,
    /// One bot's.
    Bot(String),
    /// One call-tracking service's.
    Service(String),
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
    /// The time budget ran out with due attempts left: call again.
    pub more: bool,
}

/// Attempt number `n`, started at `at`, ended at `end` with `result`, as the log keeps it,
/// and its outcome.
fn attempt_of(
    n: usize,
    at: Timestamp,
    end: Timestamp,
    result: Result<Received, SendFailure>,
) -> (Outcome, Attempt) {
    let duration_ms = (end.0 - at.0).max(0) as u64;
    match result {
        Ok(r) => (
            Outcome::Status(r.status),
            Attempt {
                n,
                at,
                duration_ms,
                status: Some(r.status),
                body: String::from_utf8_lossy(&r.body[..r.body.len().min(MAX_RESPONSE_BODY)])
                    .into_owned(),
                truncated: r.truncated || r.body.len() > MAX_RESPONSE_BODY,
                headers: r.headers,
                error: None,
            },
        ),
        Err(failure) => {
            let (outcome, error) = match failure {
                SendFailure::Timeout(e) => (Outcome::Timeout, e),
                SendFailure::Network(e) => (Outcome::NetworkError, e),
            };
            let attempt = Attempt {
                n,
                at,
                duration_ms,
                status: None,
                headers: Vec::new(),
                body: String::new(),
                truncated: false,
                error: Some(error),
            };
            (outcome, attempt)
        }
    }
}

/// Where the delivery stands after its latest attempt's `verdict`, at `end`.
fn decide(d: &mut Delivery, verdict: Verdict, end: Timestamp) {
    let n = d.attempts.len();
    match verdict {
        Verdict::Delivered => {
            d.status = Status::Delivered;
            d.error = None;
        }
        Verdict::RetryIn(wait) if n < d.max_attempts => {
            d.status = Status::Retrying;
            d.next_attempt_at = Some(Timestamp(end.0 + wait.as_millis() as i64));
        }
        Verdict::RetryIn(_) | Verdict::Exhausted => {
            d.status = Status::Failed;
            d.error = Some(format!("gave up after {n} attempts"));
        }
        Verdict::Failed { gone } => {
            d.status = Status::Failed;
            d.gone = gone;
            d.error = Some(match d.attempts.last().and_then(|a| a.status) {
                Some(410) => "the receiver answered 410 Gone".to_string(),
                Some(s) => format!("the receiver answered {s}; not retried"),
                None => "not retried".to_string(),
            });
        }
    }
}

/// What a sweep got when it tried to take a delivery.
enum Claim {
    /// Leased to this sweep.
    Taken(Box<Delivery>),
    /// Not (or no longer) due: sent, given up, or taken by another sweep.
    NotDue,
    /// Due, but its attempt could outlast what is left of the sweep's budget.
    NoTime,
}

/// The engine over a store, a sender and a clock.
pub struct Engine<'a, K: Kv, S: Sender, C: Clock> {
    kv: &'a K,
    sender: &'a S,
    clock: &'a C,
}

fn key(id: &str) -> String {
    format!("dlv:{id}")
}

fn minute(t: Timestamp) -> i64 {
    t.0.div_euclid(60_000)
}

fn random_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

impl<'a, K: Kv, S: Sender, C: Clock> Engine<'a, K, S, C> {
    /// The engine.
    pub fn new(kv: &'a K, sender: &'a S, clock: &'a C) -> Self {
        Self { kv, sender, clock }
    }

    fn records(&self) -> Records<'a> {
        Records::new(self.kv)
    }

    fn all(&self) -> Index<'a> {
        Index::new(self.kv, "dlvs".into())
    }

    fn scope_index(&self, scope: &LogScope) -> Index<'a> {
        match scope {
            LogScope::All => self.all(),
            LogScope::Bot(bot) => Index::new(self.kv, format!("dlvs:bot:{bot}")),
            LogScope::Service(svc) => Index::new(self.kv, format!("dlvs:svc:{svc}")),
        }
    }

    fn owner_index(&self, owner: &Owner) -> Index<'a> {
        self.scope_index(&match owner {
            Owner::Step { bot_id, .. } => LogScope::Bot(bot_id.clone()),
            Owner::Hook { service_id, .. } => LogScope::Service(service_id.clone()),
        })
    }

    /// Stores a new delivery (pending, or skipped with `skip_reason`) and logs it.
    pub fn create(
        &self,
        new: NewDelivery,
        skip_reason: Option<String>,
    ) -> Result<Delivery, StoreError> {
        let now = self.clock.now();
        let id = uuid::Uuid::new_v4().to_string();
        let all_slot = self.all().add(&id)?;
        let owner_slot = self.owner_index(&new.owner).add(&id)?;
        let skipped = skip_reason.is_some();
        let next_attempt_at = match new.first_attempt_after {
            Some(after) if !skipped => Some(Timestamp(now.0 + after.as_millis() as i64)),
            _ => None,
        };
        let delivery = Delivery {
            id,
            owner: new.owner,
            test: new.test,
            replay_of: new.replay_of,
            status: if skipped {
                Status::Skipped
            } else {
                Status::Pending
            },
            request: new.request.unwrap_or(OutboundRequest {
                method: "GET".into(),
                url: String::new(),
                headers: Vec::new(),
                body: Vec::new(),
            }),
            missing: new.missing,
            attempts: Vec::new(),
            max_attempts: new.max_attempts.clamp(1, crate::retry::SCHEDULE.len()),
            timeout_ms: new.timeout_ms,
            signing_secret: new.signing_secret,
            next_attempt_at,
            gone: false,
            error: skip_reason,
            created_at: now,
            updated_at: now,
            slots: (all_slot, owner_slot),
        };
        self.records().put(&key(&delivery.id), &delivery)?;
        if let Some(due) = next_attempt_at {
            self.schedule(due, &delivery.id)?;
        }
        self.enforce_retention(all_slot)?;
        Ok(delivery)
    }

    /// Drops the oldest delivery once the log holds more than the cap.
    fn enforce_retention(&self, newest_slot: u64) -> Result<(), StoreError> {
        if newest_slot <= MAX_LOGGED_DELIVERIES {
            return Ok(());
        }
        let old_slot = newest_slot - MAX_LOGGED_DELIVERIES;
        if let Some(old_id) = self.all().get(old_slot)? {
            if let Some(old) = self.records().get::<Delivery>(&key(&old_id))? {
                self.owner_index(&old.owner).remove(old.slots.1)?;
            }
            self.kv.delete(&key(&old_id))?;
        }
        self.all().remove(old_slot)
    }

    /// A delivery by id.
    pub fn get(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        if !funnelhooks_core::is_uuid(id) {
            return Ok(None);
        }
        self.records().get(&key(id))
    }

    /// Makes attempts now: the first, and with [`Attempts::WithQuickRetries`] those due
    /// within a few seconds as long as they fit the request budget. A retry due later goes
    /// to the outbox.
    pub fn run(&self, mut delivery: Delivery, attempts: Attempts) -> Result<Delivery, StoreError> {
        let inline_retries = attempts == Attempts::WithQuickRetries;
        let started = self.clock.now();
        loop {
            self.attempt(&mut delivery)?;
            let Some(next) = delivery.next_attempt_at else {
                return Ok(delivery);
            };
            let now = self.clock.now();
            let wait = Duration::from_millis((next.0 - now.0).max(0) as u64);
            let spent = Duration::from_millis((now.0 - started.0).max(0) as u64);
            let fits = spent + wait + Duration::from_millis(delivery.timeout_ms) <= INLINE_BUDGET;
            if inline_retries && wait <= INLINE_MAX_WAIT && fits {
                self.clock.sleep(wait);
                continue;
            }
            self.schedule(next, &delivery.id)?;
            return Ok(delivery);
        }
    }

    /// The headers an attempt starting at `at` adds to the request: a `User-Agent` unless the
    /// config set one (some firewalls drop requests without it), and the signature when the
    /// delivery is signed.
    fn extra_headers(&self, d: &Delivery, at: Timestamp) -> Vec<(String, String)> {
        let mut extra = Vec::new();
        if !d
            .request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        {
            extra.push(("user-agent".to_string(), USER_AGENT.to_string()));
        }
        if let Some(secret) = d
            .signing_secret
            .as_deref()
            .and_then(|s| SigningSecret::parse(s).ok())
        {
            for (name, value) in secret.headers(&d.id, at.0.div_euclid(1000), &d.request.body) {
                extra.push((name.to_string(), value));
            }
        }
        extra
    }

    /// One attempt: send, log, decide.
    fn attempt(&self, d: &mut Delivery) -> Result<(), StoreError> {
        let at = self.clock.now();
        let extra = self.extra_headers(d, at);
        let result = self
            .sender
            .send(&d.request, &extra, Duration::from_millis(d.timeout_ms));
        let end = self.clock.now();
        self.record(d, at, end, result)
    }

    /// Makes the first attempt of every pending delivery in `deliveries` at once (a call
    /// event's hooks): the batch takes as long as its slowest receiver. Retries go to the
    /// outbox. Returns the deliveries as they stand after it.
    pub fn run_all(&self, mut deliveries: Vec<Delivery>) -> Result<Vec<Delivery>, StoreError> {
        let at = self.clock.now();
        let due: Vec<usize> = (0..deliveries.len())
            .filter(|&i| deliveries[i].status == Status::Pending)
            .collect();
        let batch: Vec<Outgoing> = due
            .iter()
            .map(|&i| Outgoing {
                request: &deliveries[i].request,
                extra: self.extra_headers(&deliveries[i], at),
                timeout: Duration::from_millis(deliveries[i].timeout_ms),
            })
            .collect();
        let sent = self.sender.send_all(&batch);
        drop(batch);
        for (i, sent) in due.into_iter().zip(sent) {
            let end = Timestamp(at.0 + sent.elapsed.as_millis() as i64);
            let d = &mut deliveries[i];
            self.record(d, at, end, sent.result)?;
            if let Some(next) = d.next_attempt_at {
                self.schedule(next, &d.id)?;
            }
        }
        Ok(deliveries)
    }

    /// Logs an attempt that started at `at` and ended at `end` with `result`, and decides
    /// what comes next.
    fn record(
        &self,
        d: &mut Delivery,
        at: Timestamp,
        end: Timestamp,
        result: Result<Received, SendFailure>,
    ) -> Result<(), StoreError> {
        let n = d.attempts.len() + 1;
        let (outcome, attempt) = attempt_of(n, at, end, result);
        let retry_after = attempt
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .map(|(_, v)| v.clone());
        d.attempts.push(attempt);
        d.updated_at = end;
        d.next_attempt_at = None;
        let verdict = verdict(
            outcome,
            n,
            retry_after.as_deref(),
            end.0.div_euclid(1000),
            random_u32(),
        );
        decide(d, verdict, end);
        self.records().put(&key(&d.id), &*d)
    }

    /// Puts `id` in the outbox bucket of `at`'s minute.
    fn schedule(&self, at: Timestamp, id: &str) -> Result<(), StoreError> {
        let bucket = format!("due:{}", minute(at));
        self.records().upsert(
            &bucket,
            &format!("{bucket}:born"),
            Vec::<String>::new,
            |ids: &mut Vec<String>| {
                if !ids.iter().any(|i| i == id) {
                    ids.push(id.to_string());
                }
                Ok::<_, StoreError>(())
            },
        )?;
        Ok(())
    }

    /// Sends every attempt that is due and can end within `budget` (an attempt starts only
    /// when its timeout still fits); what is left waits for the next sweep. Two sweeps at
    /// once never send the same attempt twice: each delivery is leased.
    pub fn retry_due(&self, budget: Duration) -> Result<Sweep, StoreError> {
        let started = self.clock.now();
        let now_minute = minute(started);
        let mut sweep = Sweep::default();
        let cursor: i64 = self
            .records()
            .get("due:cursor")?
            .unwrap_or(now_minute - FIRST_SWEEP_LOOKBACK_MINUTES);
        let first = cursor + 1;
        let last = now_minute.min(first + MAX_MINUTES_PER_SWEEP);
        for m in first..=last {
            let bucket = format!("due:{m}");
            let ids: Vec<String> = self.records().get(&bucket)?.unwrap_or_default();
            for id in ids {
                let spent = Duration::from_millis((self.clock.now().0 - started.0).max(0) as u64);
                let left = budget.saturating_sub(spent);
                let delivery = match self.claim(&id, left)? {
                    Claim::Taken(d) => *d,
                    Claim::NotDue => continue,
                    // Its attempt could outlast the request: the next sweep starts with it.
                    Claim::NoTime => {
                        sweep.more = true;
                        return Ok(sweep);
                    }
                };
                let done = self.run(delivery, Attempts::FirstOnly)?;
                sweep.attempted += 1;
                match done.status {
                    Status::Delivered => sweep.delivered += 1,
                    Status::Retrying => sweep.rescheduled += 1,
                    _ => sweep.failed += 1,
                }
            }
            // The current minute may still get attempts due later in it: keep it.
            if m < now_minute {
                self.kv.delete(&bucket)?;
                self.kv.delete(&format!("{bucket}:born"))?;
                self.records().put("due:cursor", &m)?;
            }
        }
        sweep.more = last < now_minute;
        Ok(sweep)
    }

    /// Takes a due delivery for this sweep, if its attempt fits in `left`: moves its next
    /// attempt past the lease (and schedules that, in case this sweep dies) so no other sweep
    /// sends it.
    fn claim(&self, id: &str, left: Duration) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let lease_end = Timestamp(now.0 + LEASE.as_millis() as i64);
        let claimed = self.records().modify(&key(id), |d: &mut Delivery| {
            // Pending with a due time: created for the outbox, no attempt yet.
            let waiting = matches!(d.status, Status::Retrying | Status::Pending);
            let due = waiting && d.next_attempt_at.is_some_and(|t| t <= now);
            Ok::<_, StoreError>(if !due {
                Claim::NotDue
            } else if Duration::from_millis(d.timeout_ms) > left {
                Claim::NoTime
            } else {
                d.next_attempt_at = Some(lease_end);
                Claim::Taken(Box::new(d.clone()))
            })
        })?;
        let claim = claimed.unwrap_or(Claim::NotDue);
        if matches!(claim, Claim::Taken(_)) {
            self.schedule(lease_end, id)?;
        }
        Ok(claim)
    }

    /// A page of the log, newest first, with `keep` deciding which deliveries match: up to
    /// `limit` matches, reading at most [`MAX_SCANNED_PER_PAGE`] entries of the owner's log
    /// (a page with a cursor and fewer matches means "more may follow").
    pub fn list(
        &self,
        scope: &LogScope,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&Delivery) -> bool,
    ) -> Result<(Vec<Delivery>, Option<u64>), StoreError> {
        let index = self.scope_index(scope);
        let mut out = Vec::with_capacity(limit);
        let (mut cursor, mut scanned) = (before, 0);
        // Bounded in reads: entries, and index pages (a stretch of expired slots is empty).
        for _ in 0..MAX_INDEX_PAGES_PER_PAGE {
            let page = index.page_newest_first(cursor, limit - out.len())?;
            scanned += page.items.len();
            for id in page.items {
                if let Some(d) = self.records().get::<Delivery>(&key(&id))?
                    && keep(&d)
                {
                    out.push(d);
                }
            }
            cursor = page.next;
            if out.len() >= limit || cursor.is_none() || scanned >= MAX_SCANNED_PER_PAGE {
                break;
            }
        }
        Ok((out, cursor))
    }
}
