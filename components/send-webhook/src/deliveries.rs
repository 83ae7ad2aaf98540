//! `/api/deliveries`: the delivery log (filtered, newest first, paged), one delivery with
//! its attempts, replay, and the sweep a scheduler calls to send the retries that are due.

use std::time::Duration;

use funnelhooks_core::{Error, Kind, Paging};
use funnelhooks_delivery::engine::{Attempts, LEASE, LogScope, NewDelivery};
use funnelhooks_delivery::log::Status;
use funnelhooks_delivery::{Delivery, Owner};
use funnelhooks_dialogs::handoff::{StepEntry, StepReached};
use funnelhooks_spin::auth::{Caller, Role, Scope, caller};
use funnelhooks_spin::json;
use funnelhooks_spin::request::query_param;
use spin_sdk::http::Response;

use crate::Ctx;
use crate::deliver::{Handled, Sending, deliver_entry, undeliverable};
use funnelhooks_store::{Jobs, StoreError};

/// Every attempt of one sweep ends within this, inside the platform's 30 s handler budget
/// (an attempt starts only when its timeout still fits).
const SWEEP_BUDGET: Duration = Duration::from_secs(27);
/// Most lost step entries one sweep takes over (each costs a few store reads and writes).
const MAX_HANDOFFS_PER_SWEEP: usize = 200;
/// The phases before the attempts leave them at least this much of the budget.
const PHASE_RESERVE: Duration = Duration::from_secs(10);

fn unknown() -> Error {
    Error::not_found("unknown_delivery", "no delivery with this id").at("deliveryId")
}

/// Whether the caller's key may see `d`: its bot's or its service's; alerts' are admins'.
fn seen(caller: &Caller, d: &Delivery) -> bool {
    match &d.owner {
        Owner::Step { bot_id, .. } => caller.sees_bot(bot_id),
        Owner::Hook { service_id, .. } => caller.sees_service(service_id),
        Owner::Alert { .. } => caller.role == Role::Admin,
    }
}

/// The one part of the log a key reaches, when it reaches one bot and no service (or the
/// reverse).
fn single_scope(caller: &Caller) -> Option<LogScope> {
    match (&caller.bots, &caller.services) {
        (Scope::Only(bots), Scope::Only(services)) => {
            match (bots.as_slice(), services.as_slice()) {
                ([bot], []) => Some(LogScope::Bot(bot.clone())),
                ([], [service]) => Some(LogScope::Service(service.clone())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Delivery `{deliveryId}`, if the caller may see it (one it may not is unknown to it).
fn requested(ctx: &Ctx) -> Result<Delivery, Error> {
    let caller = caller();
    ctx.engine
        .get(ctx.params.get("deliveryId"))?
        .filter(|d| seen(&caller, d))
        .ok_or_else(unknown)
}

fn bad(field: &str, message: &str) -> Error {
    Error::malformed("bad_query", field, message)
}

/// The log's filters: which part of it, and what a delivery must be to be listed.
struct Filter {
    scope: LogScope,
    alert_endpoint: Option<String>,
    chat: Option<i64>,
    step: Option<String>,
    hook: Option<String>,
    call: Option<String>,
    status: Option<Status>,
    test: Option<bool>,
}

impl Filter {
    fn from_query(ctx: &Ctx) -> Result<Filter, Error> {
        let q = |name| query_param(ctx.req, name).filter(|v| !v.is_empty());
        let chat = q("chatId")
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| bad("chatId", "a whole signed 64-bit number"))
            })
            .transpose()?;
        let status = q("status")
            .map(|s| {
                Status::parse(&s)
                    .ok_or_else(|| bad("status", "pending, delivered, retrying, failed or skipped"))
            })
            .transpose()?;
        let test = match q("test").as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(bad("test", "true or false")),
        };
        let alert_endpoint = q("alertEndpointId");
        let scope = match (q("botId"), q("serviceId"), &alert_endpoint) {
            (Some(bot), _, _) => LogScope::Bot(bot),
            (None, Some(service), _) => LogScope::Service(service),
            (None, None, Some(_)) => LogScope::Alerts,
            (None, None, None) => LogScope::All,
        };
        Ok(Filter {
            scope,
            alert_endpoint,
            chat,
            step: q("stepId"),
            hook: q("hookId"),
            call: q("callId"),
            status,
            test,
        })
    }

    fn keeps(&self, d: &Delivery) -> bool {
        let alerts_only = self.alert_endpoint.is_some();
        let owner_matches = match &d.owner {
            Owner::Alert { endpoint_id, .. } => {
                matches!(self.scope, LogScope::All | LogScope::Alerts)
                    && self.chat.is_none()
                    && self.step.is_none()
                    && self.hook.is_none()
                    && self.call.is_none()
                    && self
                        .alert_endpoint
                        .as_ref()
                        .is_none_or(|e| e == endpoint_id)
            }
            _ if alerts_only => false,
            Owner::Step {
                bot_id,
                chat_id,
                step_id,
            } => {
                self.hook.is_none()
                    && self.call.is_none()
                    && !matches!(&self.scope, LogScope::Service(_))
                    && !matches!(&self.scope, LogScope::Bot(b) if b != bot_id)
                    && self.chat.is_none_or(|c| c == *chat_id)
                    && self.step.as_ref().is_none_or(|s| s == step_id)
            }
            Owner::Hook {
                service_id,
                hook_id,
                call_id,
                ..
            } => {
                self.chat.is_none()
                    && self.step.is_none()
                    && !matches!(&self.scope, LogScope::Bot(_))
                    && !matches!(&self.scope, LogScope::Service(s) if s != service_id)
                    && self.hook.as_ref().is_none_or(|h| h == hook_id)
                    && self.call.as_ref().is_none_or(|c| c == call_id)
            }
        };
        owner_matches
            && self.status.is_none_or(|s| d.status == s)
            && self.test.is_none_or(|t| d.test == t)
    }
}

/// `GET /api/deliveries?botId&chatId&stepId&serviceId&hookId&callId&status&test&limit&cursor`.
pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let mut filter = Filter::from_query(ctx)?;
    let page = Paging::from_query(ctx.req.query())?;
    let caller = caller();
    // A part of the log the key may not see is empty, without walking it: its cursor would
    // tell how much it holds. A key that reaches one bot (or one service) only walks that
    // one's part, not the installation's.
    let hidden = match &filter.scope {
        LogScope::Bot(bot) => !caller.sees_bot(bot),
        LogScope::Service(service) => !caller.sees_service(service),
        LogScope::Alerts => caller.role != Role::Admin,
        LogScope::All => {
            if let Some(own) = single_scope(&caller) {
                filter.scope = own;
            }
            false
        }
    };
    let (items, next) = if hidden {
        (Vec::new(), None)
    } else {
        ctx.engine
            .list(&filter.scope, page.cursor, page.limit, |d| {
                filter.keeps(d) && seen(&caller, d)
            })?
    };
    let page = funnelhooks_core::Page { items, next };
    // Summaries: a list stays small whatever its deliveries carry (bodies are in the detail).
    Ok(json(200, &page.to_json(Delivery::summary)))
}

/// `GET /api/deliveries/{id}`.
pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    Ok(json(200, &requested(ctx)?.view()))
}

/// `POST /api/deliveries/{id}/replay`: the same request again, as a new delivery.
pub(crate) fn replay(ctx: &Ctx) -> Result<Response, Error> {
    let old = requested(ctx)?;
    if old.attempts.is_empty() && old.status == Status::Skipped {
        return Err(Error::conflict(
            "nothing_to_replay",
            "this delivery was never sent; send the step again instead",
        ));
    }
    // Signed again with the owner's current secret, like every attempt.
    let new = NewDelivery {
        id: None,
        signed: old.signed || old.signing_secret.is_some(),
        owner: old.owner,
        test: old.test,
        replay_of: Some(old.id),
        request: Some(old.request),
        missing: old.missing,
        max_attempts: old.max_attempts,
        timeout_ms: old.timeout_ms,
        first_attempt_after: None,
        in_outbox: None,
    };
    let created = ctx.engine.create(new, None)?;
    let done = ctx.engine.run(created, Attempts::WithQuickRetries)?;
    Ok(json(201, &done.view()))
}

/// `POST /api/deliveries/{deliveryId}/retry`: a retrying delivery's next attempt, made now
/// (after the receiver was fixed) instead of at its time. The delivery as it is after it.
pub(crate) fn retry_now(ctx: &Ctx) -> Result<Response, Error> {
    use funnelhooks_delivery::outbox::RetryNow;
    let id = requested(ctx)?.id;
    match ctx.engine.retry_now(&id)? {
        RetryNow::Attempted(done) => Ok(json(200, &done.view())),
        RetryNow::NotFound => Err(unknown()),
        RetryNow::DueSoon => Err(Error::conflict(
            "retry_due_soon",
            "its next attempt is due within a minute (or being made): the retry sweep sends it",
        )),
        RetryNow::NotRetrying => Err(Error::conflict(
            "not_retrying",
            "this delivery is not waiting for a retry: replay it to send it again",
        )),
        RetryNow::NotNow(_) => Err(Error::conflict(
            "retry_not_now",
            "it cannot go now: its step or hook is paused, or it waits for a rate limit or the receiver's Retry-After",
        )),
    }
}

/// Step entries handed off by postbacks whose chained delivery never got into the log:
/// their deliveries are queued for this sweep, as long as `has_time` says so. Returns how
/// many.
fn recover_handoffs(ctx: &Ctx, has_time: &mut dyn FnMut() -> bool) -> Result<usize, Error> {
    let mut recovered = 0;
    for (slot, entry) in ctx
        .repo
        .handoffs()
        .stale_handoffs(ctx.now, MAX_HANDOFFS_PER_SWEEP)?
    {
        if !has_time() {
            break;
        }
        let reached = StepReached {
            entry,
            handoff: Some(slot),
            in_outbox: None,
            reads_one_by_one: false,
        };
        match deliver_entry(ctx, &reached, Sending::Queue(Duration::ZERO)) {
            Ok(Handled::Delivered(_)) => recovered += 1,
            Ok(Handled::NeverHappened) => ctx.repo.handoffs().handed_over(slot)?,
            Err(e) if undeliverable(&e) => ctx.repo.handoffs().handed_over(slot)?,
            // The store is failing: the handoff stays for the next sweep.
            Err(e) => return Err(e),
        }
    }
    Ok(recovered)
}

/// What the sweep does with a postback's step entry found in the outbox whose delivery does
/// not exist ([`funnelhooks_delivery::Engine::retry_due_resolving`]): the chain never made it,
/// so it is made now (counted in `made`), due a lease later, so that two sweeps making it at
/// once both write it long before either takes it; its id is returned (the sweep gives it an
/// entry at its due time). `None` when there is nothing to send: the move never landed, its
/// bot or step is gone or no longer sends webhooks, or the entry cannot be read (logged).
fn resolve_entry(ctx: &Ctx, text: &str, made: &mut usize) -> Result<Option<String>, StoreError> {
    // Every entry in the outbox has its delivery's id (only those of the list before #30 may
    // lack one): without it two sweeps would each make a delivery of their own.
    let entry = match serde_json::from_str::<StepEntry>(text) {
        Ok(entry) if funnelhooks_core::is_uuid(&entry.id) => entry,
        _ => {
            dropped(
                "unreadable",
                "the outbox entry is not a step entry with an id",
            );
            return Ok(None);
        }
    };
    let reached = StepReached {
        entry,
        handoff: None,
        in_outbox: None,
        reads_one_by_one: false,
    };
    match deliver_entry(ctx, &reached, Sending::Queue(LEASE)) {
        // Made now with an entry of its own, or by the chain just before (with none): the
        // sweep gives it one at its due time either way.
        Ok(Handled::Delivered(d)) => {
            *made += 1;
            Ok(Some(d.id))
        }
        Ok(Handled::NeverHappened) => Ok(None),
        // The store is failing: the entry stays for the next sweep.
        Err(e) if e.kind == Kind::Unavailable => Err(StoreError::Backend(e.message)),
        Err(e) => {
            dropped(e.code, &e.message);
            Ok(None)
        }
    }
}

/// Logs a step entry the sweep found and cannot deliver.
fn dropped(code: &str, why: &str) {
    if let Some(line) =
        funnelhooks_core::log::line(funnelhooks_core::log::Level::Warn, "step_entry_dropped")
    {
        line.str("code", code).str("detail", why).emit();
    }
}

/// `POST /api/deliveries/retry-due`: sends what is due, for a scheduler to call every minute.
/// Every phase (lost step entries, cleanup of deleted bots and services, due attempts, the
/// walk for overdue deliveries) stops within the budget; `more: true` asks to be called again.
pub(crate) fn retry_due(ctx: &Ctx) -> Result<Response, Error> {
    Ok(json(200, &sweep(ctx, SWEEP_BUDGET, "scheduler")?))
}

/// One sweep within `budget`, started `by` a scheduler or by traffic; what it did.
fn sweep(ctx: &Ctx, budget: Duration, by: &str) -> Result<serde_json::Value, Error> {
    let started = std::time::Instant::now();
    let reserve = PHASE_RESERVE.min(budget / 3);
    let mut has_time = || started.elapsed() + reserve < budget;
    let recovered = recover_handoffs(ctx, &mut has_time)?;
    // Conversions waiting for a click id a dialog got, whose chained request was lost.
    if has_time() && ctx.repo.claims_waiting()? {
        funnelhooks_spin::outbound::apply_stale_claims();
    }
    let cleanup = Jobs::new(ctx.kv).run(&mut has_time)?;
    // Step entries whose chain never made their delivery: made now, counted as recovered.
    let mut made = 0;
    let mut resolve = |text: &str| resolve_entry(ctx, text, &mut made);
    let left = budget.saturating_sub(started.elapsed());
    let sweep = ctx.engine.retry_due_resolving(left, by, &mut resolve)?;
    let recovered = recovered + made;
    Ok(serde_json::json!({
        "attempted": sweep.attempted,
        "delivered": sweep.delivered,
        "failed": sweep.failed,
        "rescheduled": sweep.rescheduled,
        "recovered": recovered,
        "rescued": sweep.rescued,
        "cleaned": cleanup.cleaned,
        "more": sweep.more || cleanup.left > 0,
        "left": {
            "outboxMinutes": sweep.minutes_behind,
            "cleanupJobs": cleanup.left,
        },
    }))
}

/// No sweep for this long, with work due, and traffic runs one.
const IDLE_SWEEP_AFTER: Duration = Duration::from_secs(120);
/// A sweep run from traffic has the scheduler's budget: an attempt starts only when its
/// whole timeout fits (up to 25 s). The request that asked has its answer already.
const TRAFFIC_SWEEP_BUDGET: Duration = SWEEP_BUDGET;

/// Before the answer to `POST /internal/sweep-if-idle`, or after one request in a few here: runs a
/// sweep if none ran in the installation for [`IDLE_SWEEP_AFTER`] (or the last left work)
/// and a delivery is due, once per minute across every instance (an election on
/// `sweep:traffic`), so retries happen where traffic flows even without a scheduler.
/// Returns whether it swept.
pub(crate) fn sweep_if_idle(ctx: &Ctx) -> Result<bool, Error> {
    use funnelhooks_delivery::outbox::{backlog, last_sweep};
    // A recent sweep that left work (`more`) does not count: the next may start.
    let idle_since = ctx.now.0 - IDLE_SWEEP_AFTER.as_millis() as i64;
    if last_sweep(ctx.kv)?.is_some_and(|l| l.at.0 > idle_since && !l.more) {
        return Ok(false);
    }
    if backlog(ctx.kv, ctx.now)?.due == 0 {
        return Ok(false);
    }
    let minute = ctx.now.0.div_euclid(60_000);
    let (won, _) = funnelhooks_store::Records::new(ctx.kv).upsert(
        "sweep:traffic",
        "sweep:traffic:born",
        || 0i64,
        |claimed: &mut i64| {
            let won = *claimed < minute;
            *claimed = (*claimed).max(minute);
            Ok::<_, Error>(won)
        },
    )?;
    if won {
        sweep(ctx, TRAFFIC_SWEEP_BUDGET, "traffic")?;
    }
    Ok(won)
}

/// Most recoveries one call makes when the caller does not say.
const DEFAULT_RECOVER_LIMIT: usize = 50;

/// `POST /api/deliveries/recover` `{"botId" | "serviceId", "stepId"?, "hookId"?, "since",
/// "cursor"?, "limit"?}`: sends again every delivery of the bot or service (or one step or
/// hook of it) created at `since` or later that failed for good, or was held while its step
/// or hook was paused or disabled, as new deliveries linked to the ones they recover and
/// queued for the sweep. Bounded per call: `nextCursor` goes on. Each failed delivery is
/// recovered once, however often (and wherever) this is called.
pub(crate) fn recover(ctx: &Ctx) -> Result<Response, Error> {
    use funnelhooks_core::json::{Members, whole};
    let body = funnelhooks_spin::request::body(ctx.req)?;
    let m = Members::of(
        &body,
        &[
            "botId",
            "serviceId",
            "stepId",
            "hookId",
            "since",
            "cursor",
            "limit",
        ],
    )?;
    let since = m.required("since", 64)?;
    let since = funnelhooks_core::Timestamp::parse_iso(&since).ok_or_else(|| {
        Error::invalid(
            "bad_time",
            "since",
            "an ISO 8601 time, e.g. 2026-12-07T09:00:00Z",
        )
    })?;
    let cursor = match m.text("cursor")?.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            Error::invalid(
                "bad_cursor",
                "cursor",
                "use the nextCursor of the previous call",
            )
        })?),
    };
    let limit = match m.get("limit") {
        None => DEFAULT_RECOVER_LIMIT,
        Some(l) => whole(l)
            .filter(|l| (1..=funnelhooks_core::MAX_PAGE as u64).contains(l))
            .ok_or_else(|| {
                Error::invalid(
                    "bad_limit",
                    "limit",
                    format!(
                        "recoveries per call, from 1 to {}",
                        funnelhooks_core::MAX_PAGE
                    ),
                )
            })? as usize,
    };
    let (step, hook) = (m.string("stepId")?, m.string("hookId")?);
    let scope = match (m.string("botId")?, m.string("serviceId")?) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "one_owner",
                "serviceId",
                "recover a bot's deliveries or a service's, not both at once",
            ));
        }
        (Some(bot), None) => {
            if hook.is_some() {
                return Err(Error::invalid(
                    "wrong_owner",
                    "hookId",
                    "a bot has steps, not hooks",
                ));
            }
            let bot = ctx.repo.bot(&bot)?;
            if let Some(step) = &step {
                ctx.repo
                    .step::<funnelhooks_steps::WebhookConfig>(&bot, step)?;
            }
            LogScope::Bot(bot.id)
        }
        (None, Some(service)) => {
            if step.is_some() {
                return Err(Error::invalid(
                    "wrong_owner",
                    "stepId",
                    "a call-tracking service has hooks, not steps",
                ));
            }
            let service = funnelhooks_calls::CallRepo::new(ctx.kv).service(&service)?;
            if let Some(hook) = &hook {
                service.hook(hook)?;
            }
            LogScope::Service(service.id)
        }
        (None, None) => {
            return Err(Error::invalid(
                "missing_field",
                "botId",
                "name the bot (botId) or the call-tracking service (serviceId) whose deliveries to recover",
            ));
        }
    };
    let done = ctx
        .engine
        .recover(&scope, since, cursor, limit, |d| match &d.owner {
            Owner::Step { step_id, .. } => step.as_ref().is_none_or(|s| s == step_id),
            Owner::Hook { hook_id, .. } => hook.as_ref().is_none_or(|h| h == hook_id),
            Owner::Alert { .. } => false,
        })?;
    Ok(json(
        200,
        &serde_json::json!({
            "recovered": done.recovered,
            "count": done.recovered.len(),
            "alreadyRecovered": done.already,
            "held": done.held,
            "nextCursor": done.next.map(|n| n.to_string()),
        }),
    ))
}
