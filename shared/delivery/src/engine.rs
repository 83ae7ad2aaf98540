//! The delivery engine: sends a delivery's attempts, decides on retries, keeps the delivery
//! log; the outbox of attempts due later is [`crate::outbox`]. Sending, the clock and where
//! signing secrets come from are traits, so the components send through Spin's outbound
//! HTTP and the tests through anything.
//!
//! Keys: `dlv:{id}` (a [`Delivery`]), `dlvs:n` / `dlvs:{slot}` (every delivery, the log's
//! order), `dlvs:bot:{botId}:…` and `dlvs:svc:{serviceId}:…` (per bot, per service; each
//! keeps its newest [`MAX_DELIVERIES_PER_OWNER`]).
//!
//! Durability: a delivery is in the outbox before its record exists, due when its first
//! attempt should have happened at the latest (a request that dies after creating it loses
//! nothing: the sweep sends it), and a delivery that is pending or retrying is never
//! dropped by retention.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use funnelhooks_core::Timestamp;
use funnelhooks_store::{GetMany, Index, Kv, Records, StoreError, Values};

use crate::alerts::{self, Alert, AlertEndpoint};
use crate::limit;
use crate::log::{
    Attempt, Delivery, MAX_DELIVERIES_PER_OWNER, Owner, Status, bounded_body, bounded_headers,
    host_of,
};
use crate::metrics::Tally;
use crate::options::DeliveryOptions;
use crate::request::OutboundRequest;
use crate::retry::{Outcome, Verdict, verdict};
use crate::signing::SigningSecret;
use crate::state::{ATTENTION, DeliveryState, MAX_ATTENTION, StepOrHook};
use crate::target::TargetPolicy;

/// What every request says it is, unless its config sets a `User-Agent`.
pub const USER_AGENT: &str = concat!("funnelhooks/", env!("CARGO_PKG_VERSION"));
/// Attempts made within one request must end well inside the platform's 30 s budget.
pub const INLINE_BUDGET: Duration = Duration::from_secs(25);
/// The longest wait before an attempt made within the same request (the schedule's 5 s).
pub const INLINE_MAX_WAIT: Duration = Duration::from_secs(6);
/// How long a sweep holds a delivery it is sending before another sweep may take it, and
/// how long a new delivery waits for the request that created it to make its first attempt
/// before the sweep makes it.
pub const LEASE: Duration = Duration::from_secs(60);
/// Most log entries one page of a filtered list reads.
pub const MAX_SCANNED_PER_PAGE: usize = 1000;
/// Most index pages one page of a filtered list reads.
const MAX_INDEX_PAGES_PER_PAGE: usize = 20;

/// A response, as much of it as the log keeps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Received {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The first bytes of the body (up to the log's bound).
    pub body: Vec<u8>,
    /// Whether the body was longer.
    pub truncated: bool,
    /// Whether the attempt's deadline came while the body was still arriving: the status
    /// counts, the body is what had arrived.
    pub cut_at_deadline: bool,
}

/// Why an attempt got no response.
#[derive(Debug, Clone, PartialEq)]
pub enum SendFailure {
    /// No answer within the timeout.
    Timeout(String),
    /// Refused, reset, DNS, TLS, a blocked network...
    Network(String),
}

impl SendFailure {
    /// What happened, in words.
    pub fn message(&self) -> &str {
        match self {
            SendFailure::Timeout(m) | SendFailure::Network(m) => m,
        }
    }
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

    /// Sends every request of `batch` and calls `done` with the index and outcome of those
    /// that finished together (at least one) as soon as they have, so their results are kept
    /// (in one write) even while others still wait. Senders that can should send them
    /// concurrently, so a batch takes as long as its slowest request; this default sends one
    /// after the other.
    fn send_each(&self, batch: &[Outgoing<'_>], done: &mut dyn FnMut(Vec<(usize, Sent)>)) {
        let started = std::time::Instant::now();
        for (i, o) in batch.iter().enumerate() {
            let result = self.send(o.request, &o.extra, o.timeout);
            let elapsed = started.elapsed();
            done(vec![(i, Sent { result, elapsed })]);
        }
    }
}

/// The time, and waiting.
pub trait Clock {
    /// Now, in Unix milliseconds.
    fn now(&self) -> Timestamp;
    /// Waits `d`.
    fn sleep(&self, d: Duration);
    /// The real time, for what receivers check against their own clocks (a signature's
    /// timestamp), when [`Clock::now`] is a test clock played ahead.
    fn wall(&self) -> Timestamp {
        self.now()
    }
}

/// Where a signed delivery's secret is read at each attempt: with its step or hook, where it
/// is stored once (never in the log), so a rotated secret signs every later attempt.
pub trait Secrets {
    /// The owner's current signing secret; `None` when the owner (or its secret) is gone.
    fn secret(&self, owner: &Owner) -> Result<Option<SigningSecret>, StoreError>;
}

/// No secrets anywhere: signed deliveries fail (for engines that never sign).
pub struct NoSecrets;

impl Secrets for NoSecrets {
    fn secret(&self, _owner: &Owner) -> Result<Option<SigningSecret>, StoreError> {
        Ok(None)
    }
}

impl<F: Fn(&Owner) -> Result<Option<SigningSecret>, StoreError>> Secrets for F {
    fn secret(&self, owner: &Owner) -> Result<Option<SigningSecret>, StoreError> {
        self(owner)
    }
}

/// A delivery to create.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Its id, when the caller derives one so that creating it twice creates it once (a
    /// step entry's, a call event's per hook); otherwise a random UUID.
    pub id: Option<String>,
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
    /// Signed with its owner's secret (read from [`Secrets`] at each attempt).
    pub signed: bool,
    /// When the sweep makes the first attempt: this long after creation. `None`: the caller
    /// makes it now, and the sweep makes it after [`LEASE`] if the caller died first.
    pub first_attempt_after: Option<Duration>,
    /// The outbox key of its step entry, when one waits there already (a postback's
    /// handoff, see [`crate::outbox`]): it stands for the delivery's own outbox entry, which
    /// is not written.
    pub in_outbox: Option<String>,
}

impl NewDelivery {
    /// A delivery for `owner` that tries as hard and signs as `options` say.
    pub fn new(owner: Owner, options: &DeliveryOptions) -> Self {
        Self {
            id: None,
            owner,
            test: false,
            replay_of: None,
            request: None,
            missing: Vec::new(),
            max_attempts: options.max_attempts,
            timeout_ms: options.timeout_ms,
            signed: options.signing_secret.is_some(),
            first_attempt_after: None,
            in_outbox: None,
        }
    }
}

impl NewDelivery {
    /// The record of this delivery as created: `skip_reason` makes it skipped (`held`: its
    /// step or hook is paused or disabled), else it is pending and due at `next_attempt_at`.
    fn into_record(
        self,
        id: String,
        now: Timestamp,
        (skip_reason, held): (Option<String>, bool),
        next_attempt_at: Option<Timestamp>,
        slots: (u64, u64),
    ) -> Delivery {
        Delivery {
            id,
            owner: self.owner,
            test: self.test,
            replay_of: self.replay_of,
            status: if skip_reason.is_some() {
                Status::Skipped
            } else {
                Status::Pending
            },
            request: self.request.unwrap_or(OutboundRequest {
                method: "GET".into(),
                url: String::new(),
                headers: Vec::new(),
                body: Vec::new(),
            }),
            missing: self.missing,
            attempts: Vec::new(),
            max_attempts: self.max_attempts.clamp(1, crate::retry::SCHEDULE.len()),
            timeout_ms: self.timeout_ms,
            signed: self.signed,
            signing_secret: None,
            next_attempt_at,
            gone: false,
            error: skip_reason,
            created_at: now,
            updated_at: now,
            slots,
            held,
            recovered_by: None,
            step_entry: self.in_outbox,
        }
    }
}

/// Logs a failure to drop an owner's oldest delivery (it is dropped by a later one).
fn retention_failed(e: &StoreError) {
    if let Some(line) =
        funnelhooks_core::log::line(funnelhooks_core::log::Level::Warn, "retention_failed")
    {
        line.str("detail", &e.to_string()).emit();
    }
}

/// What [`Engine::admit`] decides for a new delivery.
struct Admission {
    /// Why it is skipped, and whether because its step or hook is paused or disabled.
    skip: (Option<String>, bool),
    /// When the sweep makes its first attempt, unless skipped.
    due: Option<Timestamp>,
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
    /// Operator alerts'.
    Alerts,
}

/// What creating a delivery found.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The delivery as stored.
    pub delivery: Delivery,
    /// Whether this call created it (`false`: a delivery with its id existed already).
    pub fresh: bool,
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
        Ok(r) => {
            let (body, body_cut) = bounded_body(&r.body);
            let (headers, headers_cut) = bounded_headers(r.headers);
            let attempt = Attempt {
                n,
                at,
                duration_ms,
                status: Some(r.status),
                body,
                truncated: r.truncated || body_cut || headers_cut,
                headers,
                error: r.cut_at_deadline.then(|| {
                    "the response arrived, but its body was still coming at the deadline (timeoutMs); cut there".to_string()
                }),
            };
            (Outcome::Status(r.status), attempt)
        }
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

/// The installation's rules for failing and busy targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// A step or hook whose attempts have all failed for this long (and at least
    /// [`crate::state::MIN_FAILURES_TO_DISABLE`] of them) is disabled; 0: never.
    pub disable_after_ms: i64,
    /// Most deliveries per second to any one host, if limited.
    pub per_host: Option<f64>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            disable_after_ms: crate::state::DEFAULT_DISABLE_AFTER_HOURS as i64 * 3_600_000,
            per_host: None,
        }
    }
}

/// Whether an attempt may be made now.
enum Gate {
    /// Yes.
    Go,
    /// No: its step or hook is paused or disabled (why, in words).
    Held(String),
    /// Not before this: a rate limit, or a receiver's `429`.
    Wait(Timestamp),
}

/// States the engine read, passed to another engine of the same request.
#[derive(Debug, Clone, Default)]
pub struct KnownStates(BTreeMap<String, (Timestamp, DeliveryState)>);

/// How long a state read counts before it is read again.
pub const STATE_FRESH_FOR: Duration = Duration::from_secs(2);

/// Longest a sweep waits for a delivery's turn under a rate limit before moving on.
pub(crate) const MAX_SWEEP_WAIT: Duration = Duration::from_secs(1);
/// How long a target that answered `429` without `Retry-After` is left alone.
const BACKOFF_WITHOUT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest a `429`'s `Retry-After` holds back a step's or hook's other deliveries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What a bulk recover did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// The new deliveries, queued for the sweep.
    pub recovered: Vec<String>,
    /// Failed deliveries recovered before (by an earlier call, or another at once).
    pub already: usize,
    /// Failed deliveries left alone because their step or hook is paused or disabled.
    pub held: usize,
    /// Where the next call goes on, when there is more to look at.
    pub next: Option<u64>,
}

/// The engine over a store, a sender, a clock, where signing secrets come from and where
/// requests may go.
pub struct Engine<'a, K: Kv, S: Sender, C: Clock> {
    pub(crate) kv: &'a K,
    sender: &'a S,
    pub(crate) clock: &'a C,
    secrets: &'a dyn Secrets,
    policy: TargetPolicy,
    rules: Rules,
    /// The states of the steps and hooks this engine delivered for, as read (or written)
    /// in this request, and when.
    states: RefCell<BTreeMap<String, (Timestamp, DeliveryState)>>,
    /// What this engine's attempts did, added to the store's counters when it is dropped.
    tally: Tally,
    /// How long it has waited for turns under rate limits.
    pub(crate) waited: std::cell::Cell<Duration>,
}

impl<K: Kv, S: Sender, C: Clock> Drop for Engine<'_, K, S, C> {
    fn drop(&mut self) {
        self.tally.flush(self.kv);
    }
}

/// The keys making delivery `id` of `sender` reads ([`Engine::create_once`]): the delivery
/// (made already?) and its step's or hook's state, for a store that reads them in one round
/// trip with others.
pub fn keys_read_making(id: &str, sender: &StepOrHook) -> [String; 2] {
    [key(id), sender.state_key()]
}

pub(crate) fn key(id: &str) -> String {
    format!("dlv:{id}")
}

fn random_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

impl<'a, K: Kv, S: Sender, C: Clock> Engine<'a, K, S, C> {
    /// The engine; it signs nothing until given [`Engine::with_secrets`], and sends only to
    /// public targets until given [`Engine::with_policy`].
    pub fn new(kv: &'a K, sender: &'a S, clock: &'a C) -> Self {
        Self {
            kv,
            sender,
            clock,
            secrets: &NoSecrets,
            policy: TargetPolicy::default(),
            rules: Rules::default(),
            states: RefCell::new(BTreeMap::new()),
            tally: Tally::default(),
            waited: std::cell::Cell::new(Duration::ZERO),
        }
    }

    /// The engine, knowing the states another engine of this request read (so they are
    /// not read again: [`Engine::known_states`]).
    pub fn with_known_states(self, states: KnownStates) -> Self {
        self.states.replace(states.0);
        self
    }

    /// The states of the steps and hooks this engine read or wrote.
    pub fn known_states(&self) -> KnownStates {
        KnownStates(self.states.borrow().clone())
    }

    /// The engine, with the installation's rules for failing and busy targets.
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The engine, reading signed deliveries' secrets from `secrets`.
    pub fn with_secrets(mut self, secrets: &'a dyn Secrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// The engine, checking every attempt's request against `policy` (the rules its step
    /// or hook was saved under) before it goes.
    pub fn with_policy(mut self, policy: TargetPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Where this engine's requests may go.
    pub fn policy(&self) -> TargetPolicy {
        self.policy
    }

    pub(crate) fn records(&self) -> Records<'a> {
        Records::new(self.kv)
    }

    pub(crate) fn all(&self) -> Index<'a> {
        Index::new(self.kv, "dlvs".into())
    }

    fn scope_index(&self, scope: &LogScope) -> Index<'a> {
        match scope {
            LogScope::All => self.all(),
            LogScope::Bot(bot) => Index::new(self.kv, format!("dlvs:bot:{bot}")),
            LogScope::Service(svc) => Index::new(self.kv, format!("dlvs:svc:{svc}")),
            LogScope::Alerts => Index::new(self.kv, "dlvs:alerts".into()),
        }
    }

    fn owner_index(&self, owner: &Owner) -> Index<'a> {
        self.scope_index(&match owner {
            Owner::Step { bot_id, .. } => LogScope::Bot(bot_id.clone()),
            Owner::Hook { service_id, .. } => LogScope::Service(service_id.clone()),
            Owner::Alert { .. } => LogScope::Alerts,
        })
    }

    /// Stores a new delivery (pending, or skipped with `skip_reason`) and logs it.
    pub fn create(
        &self,
        new: NewDelivery,
        skip_reason: Option<String>,
    ) -> Result<Delivery, StoreError> {
        Ok(self.create_once(new, skip_reason)?.delivery)
    }

    /// Stores a new delivery, or finds the one with `new.id` if it exists already. Order
    /// matters: the outbox entry first, then the log's indexes, then the record (all in one
    /// transaction where the store batches), so whatever step fails, nothing that exists is
    /// left without a way to be sent.
    pub fn create_once(
        &self,
        new: NewDelivery,
        skip_reason: Option<String>,
    ) -> Result<Created, StoreError> {
        if let Some(id) = &new.id
            && let Some(existing) = self.records().get::<Delivery>(&key(id))?
        {
            return Ok(Created {
                delivery: existing,
                fresh: false,
            });
        }
        let now = self.clock.now();
        let id = new
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let Admission {
            skip,
            due: next_attempt_at,
        } = self.admit(&new, skip_reason, now)?;
        // Slots first (each an increment), then the entries and the record in one round
        // trip (one SQLite transaction where the store batches): outbox entry, log entries,
        // record, in that order where it writes one at a time.
        let mut entries = Vec::with_capacity(4);
        if let Some(due) = next_attempt_at.filter(|_| new.in_outbox.is_none()) {
            entries.push(self.schedule_entry(due, &id)?);
        }
        let (all, owner) = (self.all(), self.owner_index(&new.owner));
        let all_slot = all.reserve()?;
        let owner_slot = owner.reserve()?;
        entries.push((all.slot_key(all_slot), id.clone().into_bytes()));
        entries.push((owner.slot_key(owner_slot), id.clone().into_bytes()));
        let delivery = new.into_record(id, now, skip, next_attempt_at, (all_slot, owner_slot));
        entries.push((key(&delivery.id), Records::encode(&delivery)));
        self.kv.set_many(&entries)?;
        self.created(&delivery)?;
        Ok(Created {
            delivery,
            fresh: true,
        })
    }

    /// Whether a new delivery is skipped (why, and whether because its step or hook is
    /// paused or disabled) and, if not, when the sweep makes its first attempt.
    fn admit(
        &self,
        new: &NewDelivery,
        skip_reason: Option<String>,
        now: Timestamp,
    ) -> Result<Admission, StoreError> {
        // A paused or disabled step or hook: logged, not sent (a test send still goes).
        let mut held = false;
        let skip_reason = match (skip_reason, StepOrHook::of(&new.owner)) {
            (None, Some(s)) if !new.test => {
                let reason = self.state_of(&s)?.held(&s);
                held = reason.is_some();
                reason
            }
            (reason, _) => reason,
        };
        let next_attempt_at = skip_reason.is_none().then(|| {
            let after = new.first_attempt_after.unwrap_or(LEASE);
            Timestamp(now.0 + after.as_millis() as i64)
        });
        Ok(Admission {
            skip: (skip_reason, held),
            due: next_attempt_at,
        })
    }

    /// What follows a new delivery's write: a skipped one is logged, and its owner's log,
    /// past its bound, drops its oldest.
    fn created(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.log_skipped(delivery);
        let owner_slot = delivery.slots.1;
        // It is made: a store failing now leaves the oldest for the next one.
        if owner_slot > MAX_DELIVERIES_PER_OWNER
            && let Err(e) = self.evict(&delivery.owner, owner_slot - MAX_DELIVERIES_PER_OWNER)
        {
            retention_failed(&e);
        }
        Ok(())
    }

    /// A new delivery that is skipped is logged and counted.
    fn log_skipped(&self, delivery: &Delivery) {
        if delivery.status == Status::Skipped {
            delivery.log("skipped");
            self.tally.count(delivery);
        }
    }

    /// Drops the delivery in `slot` of its owner's log, unless it is still pending or
    /// retrying: that one is dropped when it ends ([`Engine::evict_if_beyond`]).
    fn evict(&self, owner: &Owner, slot: u64) -> Result<(), StoreError> {
        let index = self.owner_index(owner);
        let Some(old_id) = index.get(slot)? else {
            return Ok(());
        };
        match self.records().get::<Delivery>(&key(&old_id))? {
            Some(old) if !old.is_final() => Ok(()),
            Some(old) => self.forget(&old),
            None => index.remove(slot),
        }
    }

    /// A delivery that just ended is dropped if its owner's log moved past it meanwhile.
    fn evict_if_beyond(&self, d: &Delivery) -> Result<bool, StoreError> {
        let newest = self.owner_index(&d.owner).last_slot()?;
        if newest < d.slots.1 + MAX_DELIVERIES_PER_OWNER {
            return Ok(false);
        }
        self.forget(d)?;
        Ok(true)
    }

    /// Drops a delivery: its record, then its places in its owner's log and in the log, in
    /// one round trip where the host can.
    fn forget(&self, d: &Delivery) -> Result<(), StoreError> {
        self.kv.delete_many(&self.keys_of(d))
    }

    /// A delivery's keys: its record, its places in its owner's log and in the log, and the
    /// step entry that stood for its outbox entry.
    fn keys_of(&self, d: &Delivery) -> Vec<String> {
        let mut keys = vec![
            key(&d.id),
            self.owner_index(&d.owner).slot_key(d.slots.1),
            self.all().slot_key(d.slots.0),
        ];
        keys.extend(d.step_entry.clone());
        keys
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
    /// to the outbox, and so does a delivery whose turn under a rate limit has not come.
    pub fn run(&self, delivery: Delivery, attempts: Attempts) -> Result<Delivery, StoreError> {
        self.run_waiting(delivery, attempts, Duration::ZERO)
    }

    /// [`Engine::run`], waiting up to `max_wait` for a turn under a rate limit.
    pub(crate) fn run_waiting(
        &self,
        mut delivery: Delivery,
        attempts: Attempts,
        max_wait: Duration,
    ) -> Result<Delivery, StoreError> {
        let inline_retries = attempts == Attempts::WithQuickRetries;
        let started = self.clock.now();
        loop {
            let made = delivery.attempts.len();
            self.attempt(&mut delivery, max_wait)?;
            if delivery.attempts.len() == made {
                // Held, postponed to the outbox, or given up without an attempt.
                return Ok(delivery);
            }
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
            return Ok(delivery);
        }
    }

    /// The signing secret of a signed delivery: its owner's (an alert endpoint's kept with
    /// it), or (deliveries logged before secrets were kept with their owners) the copy in
    /// the record.
    fn secret_of(&self, d: &Delivery) -> Result<Option<SigningSecret>, StoreError> {
        if let Some(legacy) = &d.signing_secret {
            return Ok(SigningSecret::parse(legacy).ok());
        }
        if !d.signed {
            return Ok(None);
        }
        if let Owner::Alert { endpoint_id, .. } = &d.owner {
            let endpoint = alerts::get(&self.records(), endpoint_id)?;
            return Ok(endpoint.and_then(|e| SigningSecret::parse(&e.secret).ok()));
        }
        self.secrets.secret(&d.owner)
    }

    /// The headers an attempt adds to the request: a `User-Agent` unless the config set one
    /// (some firewalls drop requests without it), and the signature when the delivery is
    /// signed (timed by the real clock, which receivers check theirs against). `Err` with
    /// the reason when it must be signed and cannot be.
    fn extra_headers(
        &self,
        d: &Delivery,
    ) -> Result<Result<Vec<(String, String)>, String>, StoreError> {
        let mut extra = Vec::new();
        if !d
            .request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        {
            extra.push(("user-agent".to_string(), USER_AGENT.to_string()));
        }
        if d.signed || d.signing_secret.is_some() {
            let Some(secret) = self.secret_of(d)? else {
                return Ok(Err(
                    "its step, hook or alert endpoint (and with it the signing secret) was deleted or no longer signs; not sent unsigned"
                        .to_string(),
                ));
            };
            let at = self.clock.wall();
            for (name, value) in secret.headers(&d.id, at.0.div_euclid(1000), &d.request.body) {
                extra.push((name.to_string(), value));
            }
        }
        Ok(Ok(extra))
    }

    /// Whether `d` may be sent now: not while its step or hook is paused or disabled, not
    /// before its turn under a rate limit or after a `429`. Test sends always go.
    fn gate(&self, d: &Delivery) -> Result<Gate, StoreError> {
        if d.test {
            return Ok(Gate::Go);
        }
        let now = self.clock.now();
        if let Some(s) = StepOrHook::of(&d.owner) {
            let state = self.state_of(&s)?;
            if let Some(reason) = state.held(&s) {
                return Ok(Gate::Held(reason));
            }
            if let Some(until) = state.backoff_until.filter(|u| *u > now) {
                return Ok(Gate::Wait(until));
            }
            // The limit the step or hook has now (a backlog slows down, or speeds up, with it).
            // A turn is taken at the time it is taken, not at the time this check began: on
            // a busy host the state read above can take a fifth of a second, and a turn dated
            // before it let the next one go that much sooner after this one's request.
            if let Some(rate) = state.rate_limit
                && let Some(turn) = self.turn(&limit::sender_key(&s.key()), rate)?
            {
                return Ok(Gate::Wait(turn));
            }
        }
        let host = host_of(&d.request.url);
        if let Some(rate) = self.rules.per_host.filter(|_| !host.is_empty())
            && let Some(turn) = self.turn(&limit::host_key(host), rate)?
        {
            return Ok(Gate::Wait(turn));
        }
        Ok(Gate::Go)
    }

    /// Takes a turn on the limit at `key`: `None` to go now, else when to ask again. A turn
    /// is dated when it is taken; one whose taking took longer than the limit's spacing
    /// margin (a busy store, a stalled host) is let go unused, because the next turn, dated
    /// from it, would follow this request too closely.
    fn turn(&self, key: &str, rate: f64) -> Result<Option<Timestamp>, StoreError> {
        let taken_at = self.clock.now();
        if let Some(turn) = limit::take(&self.records(), key, rate, taken_at)? {
            return Ok(Some(turn));
        }
        if self.clock.now().0 - taken_at.0 > limit::LATE_TURN_MS {
            return Ok(Some(taken_at.plus_ms(limit::interval_ms(rate))));
        }
        Ok(None)
    }

    /// Waits for `d`'s turn when it comes within `max_wait`; otherwise (or when held) says
    /// what became of it instead of an attempt: `false` when it is not to be sent now.
    fn ready(&self, d: &mut Delivery, max_wait: Duration) -> Result<bool, StoreError> {
        // One deadline for all the waiting: turns lost to other instances do not add up.
        let deadline = self.clock.now().plus_ms(max_wait.as_millis() as i64);
        loop {
            match self.gate(d)? {
                Gate::Go => return Ok(true),
                Gate::Held(reason) => {
                    self.hold(d, reason)?;
                    return Ok(false);
                }
                Gate::Wait(turn) => {
                    let now = self.clock.now();
                    if turn > deadline {
                        self.postpone(d, turn)?;
                        return Ok(false);
                    }
                    let wait = Duration::from_millis((turn.0 - now.0).max(0) as u64);
                    self.waited.set(self.waited.get() + wait);
                    self.clock.sleep(wait);
                }
            }
        }
    }

    /// Ends a delivery whose step or hook is paused or disabled, without an attempt: skipped
    /// and held, so a bulk recover sends it once the step or hook is resumed.
    fn hold(&self, d: &mut Delivery, reason: String) -> Result<(), StoreError> {
        d.status = Status::Skipped;
        d.held = true;
        d.next_attempt_at = None;
        d.error = Some(reason);
        d.updated_at = self.clock.now();
        self.records().put(&key(&d.id), &*d)?;
        d.log("held");
        self.tally.count(d);
        Ok(())
    }

    /// Moves a delivery's next attempt to `turn` (a rate limit, a `429`): it waits in the
    /// outbox, as it stands.
    fn postpone(&self, d: &mut Delivery, turn: Timestamp) -> Result<(), StoreError> {
        d.next_attempt_at = Some(turn);
        self.schedule(turn, &d.id)?;
        self.records().put(&key(&d.id), &*d)?;
        if let Some(line) =
            funnelhooks_core::log::line(funnelhooks_core::log::Level::Debug, "postponed")
        {
            d.owner
                .log(line.str("deliveryId", &d.id))
                .str("until", &turn.iso())
                .emit();
        }
        Ok(())
    }

    /// One attempt: check, send, log, decide. A request that can never be sent (a target
    /// the rules refuse now, a header the host refuses, past a bound) fails without one; one
    /// held or waiting its turn (for longer than `max_wait`) is not sent now.
    fn attempt(&self, d: &mut Delivery, max_wait: Duration) -> Result<(), StoreError> {
        // An alert goes where its endpoint points now (its URL may have been changed since
        // it was raised), and nowhere once the endpoint is deleted.
        if let Owner::Alert { endpoint_id, .. } = &d.owner {
            match alerts::get(&self.records(), endpoint_id)? {
                Some(endpoint) => d.request.url = endpoint.url,
                None => {
                    return self.give_up(d, "its alert endpoint was deleted".to_string());
                }
            }
        }
        if let Some(reason) = d.request.unsendable(self.policy) {
            return self.give_up(d, reason);
        }
        // Headers first (a signing secret may be read from the store): between a rate-limit
        // turn and the request nothing but the clock is read, so requests leave spaced as
        // their turns are.
        let extra = match self.extra_headers(d)? {
            Ok(extra) => extra,
            Err(reason) => return self.give_up(d, reason),
        };
        if !self.ready(d, max_wait)? {
            return Ok(());
        }
        let at = self.clock.now();
        let result = self
            .sender
            .send(&d.request, &extra, Duration::from_millis(d.timeout_ms));
        let end = self.clock.now();
        self.record(d, at, end, result)
    }

    /// Ends a delivery that cannot be sent, without an attempt.
    fn give_up(&self, d: &mut Delivery, reason: String) -> Result<(), StoreError> {
        d.status = Status::Failed;
        d.next_attempt_at = None;
        d.error = Some(reason);
        d.updated_at = self.clock.now();
        self.records().put(&key(&d.id), &*d)?;
        d.log("not_sent");
        self.tally.count(d);
        let may_alert = match (StepOrHook::of(&d.owner), d.test) {
            (Some(s), false) => {
                let now = self.clock.now();
                self.change_state(&s, |state| state.may_alert(now))?.0
            }
            _ => false,
        };
        if may_alert {
            self.tell_failure(d)?;
        } else if !d.test && StepOrHook::of(&d.owner).is_some() {
            d.log("alert_suppressed");
        }
        Ok(())
    }

    /// Makes the first attempt of every pending delivery in `deliveries` at once (a call
    /// event's hooks): the batch takes as long as its slowest receiver, and each attempt is
    /// logged as soon as it ends, so a slow receiver never holds a fast one's result.
    /// Retries, and first attempts waiting their turn, go to the outbox. Returns the
    /// deliveries as they stand after it.
    pub fn run_all(&self, mut deliveries: Vec<Delivery>) -> Result<Vec<Delivery>, StoreError> {
        let mut due = Vec::new();
        let mut extras = Vec::new();
        for (i, d) in deliveries.iter_mut().enumerate() {
            if d.status != Status::Pending {
                continue;
            }
            if let Some(reason) = d.request.unsendable(self.policy) {
                self.give_up(d, reason)?;
                continue;
            }
            if !self.ready(d, Duration::ZERO)? {
                continue;
            }
            match self.extra_headers(d)? {
                Ok(extra) => {
                    due.push(i);
                    extras.push(extra);
                }
                Err(reason) => self.give_up(d, reason)?,
            }
        }
        let at = self.clock.now();
        // The requests apart from the deliveries, which are logged while the batch runs.
        let requests: Vec<OutboundRequest> =
            due.iter().map(|&i| deliveries[i].request.clone()).collect();
        let batch: Vec<Outgoing> = requests
            .iter()
            .zip(extras)
            .zip(&due)
            .map(|((request, extra), &i)| Outgoing {
                request,
                extra,
                timeout: Duration::from_millis(deliveries[i].timeout_ms),
            })
            .collect();
        // Every round is recorded, whatever failed before: its requests were sent.
        let mut failed = None;
        self.sender.send_each(&batch, &mut |round| {
            if let Err(e) = self.record_round(&mut deliveries, &due, at, round) {
                failed.get_or_insert(e);
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(deliveries),
        }
    }

    /// Logs the attempts of a batch that ended together (started at `at`): their records
    /// in one write, then how their steps or hooks are doing.
    fn record_round(
        &self,
        deliveries: &mut [Delivery],
        due: &[usize],
        at: Timestamp,
        round: Vec<(usize, Sent)>,
    ) -> Result<(), StoreError> {
        let (mut records, mut ended) = (Vec::new(), Vec::new());
        let mut failed = None;
        for (k, sent) in round {
            let end = Timestamp(at.0 + sent.elapsed.as_millis() as i64);
            match self.settle(&mut deliveries[due[k]], at, end, sent.result) {
                Ok(record) => records.extend(record),
                // The others' records are still written: their requests were sent.
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            }
            ended.push((due[k], end));
        }
        match records.len() {
            0 => {}
            1 => self.kv.set(&records[0].0, &records[0].1)?,
            _ => self.kv.set_many(&records)?,
        }
        // Those written: how their steps or hooks are doing, the operator told of failures.
        for (i, end) in ended {
            if let Err(e) = self.after_attempt(&deliveries[i], end) {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Logs an attempt that started at `at` and ended at `end` with `result`, decides what
    /// comes next, and puts a retry in the outbox (before the record says it is due). Then
    /// notes how its step or hook is doing, and tells the operator of a final failure.
    fn record(
        &self,
        d: &mut Delivery,
        at: Timestamp,
        end: Timestamp,
        result: Result<Received, SendFailure>,
    ) -> Result<(), StoreError> {
        if let Some((k, record)) = self.settle(d, at, end, result)? {
            self.kv.set(&k, &record)?;
        }
        self.after_attempt(d, end)
    }

    /// An attempt's outcome in `d`: what comes next decided, a retry put in the outbox
    /// (before the record says it is due). Returns the record to write, unless retention
    /// dropped the delivery.
    fn settle(
        &self,
        d: &mut Delivery,
        at: Timestamp,
        end: Timestamp,
        result: Result<Received, SendFailure>,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
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
        d.log("attempt");
        self.tally.count(d);
        if let Some(next) = d.next_attempt_at {
            self.schedule(next, &d.id)?;
        }
        // One that waited (retries, or a slow first attempt) may have been passed over by
        // retention meanwhile.
        let waited = n > 1 || end.0 - d.created_at.0 > INLINE_BUDGET.as_millis() as i64;
        if d.is_final() && waited && self.evict_if_beyond(d)? {
            return Ok(None);
        }
        Ok(Some((key(&d.id), Records::encode(&*d))))
    }

    /// After an attempt's record is written: how its step or hook is doing, and the
    /// operator told of a final failure.
    fn after_attempt(&self, d: &Delivery, end: Timestamp) -> Result<(), StoreError> {
        let may_alert = match (StepOrHook::of(&d.owner), d.test) {
            (Some(s), false) => self.note_outcome(&s, d, end)?,
            _ => false,
        };
        if may_alert {
            self.tell_failure(d)?;
        }
        Ok(())
    }

    /// Raises `delivery.exhausted` (or `target.gone`) for a real delivery of a step or hook
    /// that just failed for good; an alert's own failure raises nothing.
    fn tell_failure(&self, d: &Delivery) -> Result<(), StoreError> {
        if d.status != Status::Failed || d.test || matches!(d.owner, Owner::Alert { .. }) {
            return Ok(());
        }
        let alert = if d.gone {
            Alert::Gone(d)
        } else {
            Alert::Exhausted(d)
        };
        self.raise(&alert).map(|_| ())
    }

    /// The state of step or hook `s`, read at most every [`STATE_FRESH_FOR`] (a sweep runs
    /// for up to 27 s: a pause or resume meanwhile counts within seconds).
    pub fn state_of(&self, s: &StepOrHook) -> Result<DeliveryState, StoreError> {
        let now = self.clock.now();
        if let Some((at, state)) = self.states.borrow().get(&s.key())
            && now.0 - at.0 < STATE_FRESH_FOR.as_millis() as i64
        {
            return Ok(state.clone());
        }
        let state: DeliveryState = self.records().get(&s.state_key())?.unwrap_or_default();
        self.states
            .borrow_mut()
            .insert(s.key(), (now, state.clone()));
        Ok(state)
    }

    /// Changes the state of `s` with `change`, and keeps the attention list in step: a
    /// step or hook that is failing, paused or disabled is on it, one that is active is not.
    fn change_state<R>(
        &self,
        s: &StepOrHook,
        mut change: impl FnMut(&mut DeliveryState) -> R,
    ) -> Result<(R, DeliveryState), StoreError> {
        let key = s.state_key();
        let ((r, before, after), _) = self.records().upsert(
            &key,
            &format!("{key}:born"),
            DeliveryState::default,
            |state: &mut DeliveryState| {
                let before = state.needs_attention();
                let r = change(state);
                Ok::<_, StoreError>((r, before, state.clone()))
            },
        )?;
        self.states
            .borrow_mut()
            .insert(s.key(), (self.clock.now(), after.clone()));
        let listed = s.key();
        if after.needs_attention() {
            self.records().upsert(
                ATTENTION,
                &format!("{ATTENTION}:born"),
                Vec::<String>::new,
                |list: &mut Vec<String>| {
                    if !list.contains(&listed) {
                        list.push(listed.clone());
                        if list.len() > MAX_ATTENTION {
                            list.remove(0);
                        }
                    }
                    Ok::<_, StoreError>(())
                },
            )?;
        } else if before {
            self.records().modify(ATTENTION, |list: &mut Vec<String>| {
                list.retain(|k| k != &listed);
                Ok::<_, StoreError>(())
            })?;
        }
        Ok((r, after))
    }

    /// Notes how an attempt for `s` went: a success ends a run of failures (written only
    /// when there was one); a failure is counted, backs the target off after a `429`, and
    /// disables the step or hook once it has failed for the installation's time.
    /// Returns whether a final failure may raise its alert (at most
    /// [`crate::state::MAX_FAILURE_ALERTS_PER_HOUR`] an hour per step or hook), counted in
    /// the same write.
    fn note_outcome(
        &self,
        s: &StepOrHook,
        d: &Delivery,
        end: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(last) = d.attempts.last() else {
            return Ok(false);
        };
        if d.status == Status::Delivered {
            let state = self.state_of(s)?;
            if state.failing_since.is_some() || state.backoff_until.is_some() {
                self.change_state(s, DeliveryState::succeeded)?;
            }
            return Ok(false);
        }
        let is_final = d.status == Status::Failed;
        let error = match (last.status, &last.error) {
            (Some(status), _) => format!("HTTP {status}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".to_string(),
        };
        // After a 429, its Retry-After (at most an hour), else a minute: the schedule's own
        // wait (up to 10 h late in a delivery's life) says nothing about the target.
        let backoff = (last.status == Some(429)).then(|| {
            let asked = last
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| crate::retry::parse_retry_after(v, end.unix_seconds()));
            let wait = asked.map_or(BACKOFF_WITHOUT_RETRY_AFTER, |w| w.min(MAX_BACKOFF));
            end.plus_ms(wait.as_millis() as i64)
        });
        let after_ms = self.rules.disable_after_ms;
        let ((disabled, may_alert), state) = self.change_state(s, |state| {
            state.failed(end, &error);
            if let Some(b) = backoff {
                state.backoff_until = Some(state.backoff_until.map_or(b, |u| u.max(b)));
            }
            let may_alert = is_final && state.may_alert(end);
            if !state.should_disable(end, after_ms) {
                return (false, may_alert);
            }
            state.disabled_at = Some(end);
            let hours = after_ms as f64 / 3_600_000.0;
            state.disabled_reason = Some(format!(
                "every attempt failed for {} hours ({} failures); last error: {error}",
                if hours.fract() == 0.0 {
                    format!("{hours:.0}")
                } else {
                    format!("{hours:.2}")
                },
                state.failures
            ));
            (true, may_alert)
        })?;
        if is_final && !may_alert {
            d.log("alert_suppressed");
        }
        if disabled {
            if let Some(line) =
                funnelhooks_core::log::line(funnelhooks_core::log::Level::Warn, "disabled")
            {
                d.owner
                    .log(line)
                    .opt_str("reason", state.disabled_reason.as_deref())
                    .emit();
            }
            self.raise(&Alert::Disabled(s, &state))?;
        }
        Ok(may_alert)
    }

    /// Forgets the state of `s` (deleted: one saved again under its id starts afresh).
    pub fn forget_state(&self, s: &StepOrHook) -> Result<(), StoreError> {
        self.states.borrow_mut().remove(&s.key());
        self.kv.delete(&s.state_key())?;
        self.kv.delete(&format!("{}:born", s.state_key()))?;
        let listed = s.key();
        self.records().modify(ATTENTION, |list: &mut Vec<String>| {
            list.retain(|k| k != &listed);
            Ok::<_, StoreError>(())
        })?;
        Ok(())
    }

    /// Records the rate limit `s` is saved with (every delivery of it takes its turns under
    /// the limit it has at that moment); written only when it changes.
    pub fn set_rate_limit(&self, s: &StepOrHook, rate: Option<f64>) -> Result<(), StoreError> {
        if self.state_of(s)?.rate_limit == rate {
            return Ok(());
        }
        self.change_state(s, |state| state.rate_limit = rate)?;
        Ok(())
    }

    /// Pauses `s` by hand: its new deliveries are logged as skipped, due retries are not
    /// made, until it is resumed.
    pub fn pause(&self, s: &StepOrHook) -> Result<DeliveryState, StoreError> {
        let now = self.clock.now();
        let (_, state) = self.change_state(s, |state| {
            state.paused_at.get_or_insert(now);
        })?;
        Ok(state)
    }

    /// Resumes `s`, paused or disabled: it sends again, its run of failures forgotten.
    /// Resuming a disabled one tells the operator (`target.reenabled`).
    pub fn resume(&self, s: &StepOrHook) -> Result<DeliveryState, StoreError> {
        let now = self.clock.now();
        let (was_disabled, state) = self.change_state(s, |state| {
            let was = state.disabled_at.is_some();
            *state = DeliveryState {
                rate_limit: state.rate_limit,
                ..DeliveryState::default()
            };
            was
        })?;
        if was_disabled {
            self.raise(&Alert::Reenabled(s, now))?;
        }
        Ok(state)
    }

    /// Queues `alert` to every alert endpoint that wants it; the sweep sends them. Each
    /// endpoint gets one delivery per alert, however often it is raised. Returns how many.
    pub fn raise(&self, alert: &Alert<'_>) -> Result<usize, StoreError> {
        let endpoints = alerts::list(&self.records())?;
        let event = alert.event();
        let subject = alert.subject();
        let mut queued = 0;
        for endpoint in endpoints.iter().filter(|e| e.wants(event)) {
            self.create_once(
                self.alert_delivery(alert, endpoint, &subject, Some(Duration::ZERO)),
                None,
            )?;
            queued += 1;
        }
        if queued > 0
            && let Some(line) =
                funnelhooks_core::log::line(funnelhooks_core::log::Level::Info, "alert_raised")
        {
            line.str("alertType", event)
                .str("subject", &subject)
                .num("endpoints", queued as i64)
                .emit();
        }
        Ok(queued)
    }

    /// Sends a test alert to `endpoint` now (one attempt, marked as a test in the log).
    pub fn test_alert(&self, endpoint: &AlertEndpoint) -> Result<Delivery, StoreError> {
        let alert = Alert::Test;
        let mut new = self.alert_delivery(&alert, endpoint, &alert.subject(), None);
        new.test = true;
        new.max_attempts = 1;
        let created = self.create(new, None)?;
        self.run(created, Attempts::FirstOnly)
    }

    fn alert_delivery(
        &self,
        alert: &Alert<'_>,
        endpoint: &AlertEndpoint,
        subject: &str,
        first_attempt_after: Option<Duration>,
    ) -> NewDelivery {
        let event = alert.event();
        NewDelivery {
            id: Some(funnelhooks_core::derived_id(&[
                "alert",
                &endpoint.id,
                event,
                subject,
            ])),
            owner: Owner::Alert {
                endpoint_id: endpoint.id.clone(),
                event: event.to_string(),
                subject: subject.to_string(),
            },
            test: false,
            replay_of: None,
            request: Some(alert.request(endpoint, self.clock.wall())),
            missing: Vec::new(),
            max_attempts: crate::retry::SCHEDULE.len(),
            timeout_ms: alerts::ALERT_TIMEOUT_MS,
            signed: true,
            first_attempt_after,
            in_outbox: None,
        }
    }

    /// Bulk recover: sends again, as new deliveries queued for the sweep, every delivery of
    /// `scope` that `keep` accepts, created at `since` or later, that failed for good (or
    /// was held while its step or hook was paused or disabled), oldest first from after
    /// slot `after`. Oldest first, because each recovery joins the log at its newest end
    /// and retention then drops its oldest entry: one already walked. At most `limit`
    /// recoveries and [`MAX_SCANNED_PER_PAGE`] entries (or [`MAX_INDEX_PAGES_PER_PAGE`]
    /// pages of removed slots) a call; each delivery is recovered once, whoever calls and
    /// however often: the failed delivery's record names its recovery, set by a
    /// compare-and-swap before the recovery is created.
    pub fn recover(
        &self,
        scope: &LogScope,
        since: Timestamp,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&Delivery) -> bool,
    ) -> Result<Recovery, StoreError> {
        let index = self.scope_index(scope);
        let mut out = Recovery::default();
        // Retention keeps the newest MAX_DELIVERIES_PER_OWNER (and pending ones, which are
        // not failed): older slots are empty, no use reading them.
        let start = match after {
            Some(after) => after,
            None => index
                .peek_last_slot()?
                .saturating_sub(MAX_DELIVERIES_PER_OWNER + 1),
        };
        let (mut cursor, mut scanned) = (start, 0);
        for _ in 0..MAX_INDEX_PAGES_PER_PAGE {
            let page = index.page(cursor, 50)?;
            for (id, slot) in page.items.iter().zip(&page.slots) {
                if out.recovered.len() >= limit || scanned >= MAX_SCANNED_PER_PAGE {
                    out.next = Some(slot - 1);
                    return Ok(out);
                }
                scanned += 1;
                let Some(d) = self.records().get::<Delivery>(&key(id))? else {
                    continue;
                };
                let failed = d.status == Status::Failed || (d.status == Status::Skipped && d.held);
                if d.created_at < since || d.test || !failed || !keep(&d) {
                    continue;
                }
                if d.recovered_by.is_some() {
                    out.already += 1;
                    continue;
                }
                if let Some(s) = StepOrHook::of(&d.owner)
                    && self.state_of(&s)?.held(&s).is_some()
                {
                    out.held += 1;
                    continue;
                }
                match self.recover_one(&d)? {
                    Some(new) => out.recovered.push(new),
                    None => out.already += 1,
                }
            }
            match page.next {
                Some(next) => cursor = next,
                None => return Ok(out),
            }
        }
        out.next = Some(cursor);
        Ok(out)
    }

    /// Recovers `d` unless another caller did: its id, or `None`.
    fn recover_one(&self, d: &Delivery) -> Result<Option<String>, StoreError> {
        let new_id = funnelhooks_core::derived_id(&["recover", &d.id]);
        let won = self
            .records()
            .modify(&key(&d.id), |old: &mut Delivery| {
                if old.recovered_by.is_some() {
                    return Ok::<_, StoreError>(false);
                }
                old.recovered_by = Some(new_id.clone());
                Ok(true)
            })?
            .unwrap_or(false);
        if !won {
            return Ok(None);
        }
        let new = NewDelivery {
            id: Some(new_id),
            owner: d.owner.clone(),
            test: false,
            replay_of: Some(d.id.clone()),
            request: Some(d.request.clone()),
            missing: d.missing.clone(),
            max_attempts: d.max_attempts,
            timeout_ms: d.timeout_ms,
            signed: d.signed || d.signing_secret.is_some(),
            first_attempt_after: Some(Duration::ZERO),
            in_outbox: None,
        };
        Ok(Some(self.create_once(new, None)?.delivery.id))
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

impl<K: GetMany, S: Sender, C: Clock> Engine<'_, K, S, C> {
    /// [`Engine::create_once`] for several deliveries at once (a call event's, one per
    /// hook) in as many round trips as one: one read for those that exist already and the
    /// states not known yet, one slot reservation per index (the outbox's minute, the
    /// log, each owner's log) and one write of every entry and record, with `also` written
    /// last in it (what says they exist, e.g. the event's record). In the order given.
    pub fn create_many(
        &self,
        news: Vec<(NewDelivery, Option<String>)>,
        also: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<Created>, StoreError> {
        if !self.kv.atomic() {
            // An increment read and written can overlap another: a range of slots would
            // widen what two writers at once share. One at a time, as one delivery is made.
            let made = news
                .into_iter()
                .map(|(new, skip)| self.create_once(new, skip))
                .collect::<Result<Vec<_>, _>>()?;
            if !also.is_empty() {
                self.kv.set_many(&also)?;
            }
            return Ok(made);
        }
        let keys: Vec<String> = news
            .iter()
            .filter_map(|(n, _)| n.id.as_deref().map(key))
            .collect();
        // The states a new one is admitted by, read with the deliveries (those of deliveries
        // that turn out to exist are read for nothing: a few bytes in the same `get-many`).
        let senders: Vec<StepOrHook> = news
            .iter()
            .filter(|(n, skip)| skip.is_none() && !n.test)
            .filter_map(|(n, _)| StepOrHook::of(&n.owner))
            .collect();
        let stale = self.stale_states(&senders);
        let state_keys: Vec<String> = stale.iter().map(|s| s.state_key()).collect();
        let asked: Vec<&str> = keys.iter().chain(&state_keys).map(String::as_str).collect();
        let mut values = self.kv.get_many(&asked)?;
        self.know_states(&stale, values.split_off(keys.len()))?;
        let mut found = asked.iter().zip(values);
        let mut out = Vec::with_capacity(news.len());
        for (new, _) in &news {
            let existing = match &new.id {
                Some(_) => match found.next() {
                    Some((k, bytes)) => Records::parse::<Delivery>(k, bytes)?,
                    None => None,
                },
                None => None,
            };
            out.push(existing.map(|delivery| Created {
                delivery,
                fresh: false,
            }));
        }
        let now = self.clock.now();
        // The new ones, each with the indexes it takes a slot in (the outbox's first).
        let mut making = Vec::new();
        for (i, (new, skip)) in news.into_iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            let id = new
                .id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let admission = self.admit(&new, skip, now)?;
            let due = (admission.due)
                .filter(|_| new.in_outbox.is_none())
                .map(|at| self.due_index(at));
            let (all, owner) = (self.all(), self.owner_index(&new.owner));
            making.push((i, new, id, admission, (due, all, owner)));
        }
        // Every index's slots in one increment, handed out in order.
        let mut slots: Vec<(String, u64)> = Vec::new();
        for (_, _, _, _, (due, all, owner)) in &making {
            for index in due.iter().chain([all, owner]) {
                match slots.iter_mut().find(|(p, _)| p == index.prefix()) {
                    Some((_, n)) => *n += 1,
                    None => slots.push((index.prefix().to_string(), 1)),
                }
            }
        }
        for (prefix, n) in &mut slots {
            *n = Index::new(self.kv, prefix.clone()).reserve_many(*n)?;
        }
        let mut take = |index: &Index| -> u64 {
            let (_, next) = slots
                .iter_mut()
                .find(|(p, _)| p == index.prefix())
                .expect("every index's slots are reserved");
            *next += 1;
            *next - 1
        };
        // Outbox entries, then log entries, then records, then `also`: in that order where
        // the host writes one key at a time.
        let (mut outbox, mut log, mut records) = (Vec::new(), Vec::new(), Vec::new());
        let mut fresh = Vec::with_capacity(making.len());
        for (i, new, id, Admission { skip, due: next }, (due, all, owner)) in making {
            if let Some(due) = &due {
                outbox.push((due.slot_key(take(due)), id.clone().into_bytes()));
            }
            let at = (take(&all), take(&owner));
            log.push((all.slot_key(at.0), id.clone().into_bytes()));
            log.push((owner.slot_key(at.1), id.clone().into_bytes()));
            let delivery = new.into_record(id, now, skip, next, at);
            records.push((key(&delivery.id), Records::encode(&delivery)));
            fresh.push((i, delivery));
        }
        let mut entries = outbox;
        entries.extend(log);
        entries.extend(records);
        entries.extend(also);
        if !entries.is_empty() {
            self.kv.set_many(&entries)?;
        }
        // Owners' logs past their bound drop their oldest, all in a few round trips.
        let mut beyond = Vec::new();
        for (i, delivery) in fresh {
            self.log_skipped(&delivery);
            if let Some(old) = delivery.slots.1.checked_sub(MAX_DELIVERIES_PER_OWNER)
                && old > 0
            {
                beyond.push((self.owner_index(&delivery.owner), old));
            }
            out[i] = Some(Created {
                delivery,
                fresh: true,
            });
        }
        // The deliveries are made: a store failing now leaves the oldest for the next one.
        if let Err(e) = self.evict_many(&beyond) {
            retention_failed(&e);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// [`Engine::evict`] for several places in owners' logs: their entries read in one round
    /// trip, their deliveries in one, and every key of those that ended (or an entry whose
    /// delivery is gone) removed in one.
    fn evict_many(&self, places: &[(Index<'_>, u64)]) -> Result<(), StoreError> {
        if places.is_empty() {
            return Ok(());
        }
        let slot_keys: Vec<String> = places.iter().map(|(i, s)| i.slot_key(*s)).collect();
        let asked: Vec<&str> = slot_keys.iter().map(String::as_str).collect();
        let ids: Vec<Option<String>> = self
            .kv
            .get_many(&asked)?
            .into_iter()
            .map(|v| v.and_then(|b| String::from_utf8(b).ok()))
            .collect();
        let record_keys: Vec<String> = ids.iter().flatten().map(|id| key(id)).collect();
        let asked: Vec<&str> = record_keys.iter().map(String::as_str).collect();
        let mut records = asked.iter().zip(self.kv.get_many(&asked)?);
        let mut gone = Vec::new();
        for (slot_key, id) in slot_keys.into_iter().zip(&ids) {
            if id.is_none() {
                continue;
            }
            let Some((k, bytes)) = records.next() else {
                break;
            };
            match Records::parse::<Delivery>(k, bytes)? {
                // Pending or retrying: dropped when it ends.
                Some(old) if !old.is_final() => {}
                Some(old) => {
                    gone.extend(self.keys_of(&old));
                    gone.push(slot_key);
                }
                None => gone.push(slot_key),
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        self.kv.delete_many(&gone)
    }

    /// Those of `steps_or_hooks` whose state is not known fresh, once each.
    fn stale_states<'s>(&self, steps_or_hooks: &'s [StepOrHook]) -> Vec<&'s StepOrHook> {
        let now = self.clock.now();
        let states = self.states.borrow();
        let mut stale: Vec<&StepOrHook> = Vec::new();
        for s in steps_or_hooks {
            let known = states
                .get(&s.key())
                .is_some_and(|(at, _)| now.0 - at.0 < STATE_FRESH_FOR.as_millis() as i64);
            if !known && !stale.iter().any(|t| t.key() == s.key()) {
                stale.push(s);
            }
        }
        stale
    }

    /// Keeps the states just read for `stale` (their records, in its order).
    fn know_states(&self, stale: &[&StepOrHook], records: Values) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut states = self.states.borrow_mut();
        for (s, bytes) in stale.iter().zip(records) {
            let state: DeliveryState = Records::parse(&s.state_key(), bytes)?.unwrap_or_default();
            states.insert(s.key(), (now, state));
        }
        Ok(())
    }
}
