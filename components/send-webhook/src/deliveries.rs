//! `/api/deliveries`: the delivery log (filtered, newest first, paged), one delivery with
//! its attempts, replay, and the sweep a scheduler calls to send the retries that are due.

use std::time::Duration;

use funnelhooks_delivery::engine::NewDelivery;
use funnelhooks_delivery::log::{Delivery, Source, Status};
use funnelhooks_spin::request::{page_json, query_param};
use funnelhooks_spin::{ApiError, json};
use spin_sdk::http::Response;

use crate::Call;
use crate::deliver::{Attempts, deliver_entry};

/// Every attempt of one sweep ends within this, inside the platform's 30 s handler budget
/// (an attempt starts only when its timeout still fits).
const SWEEP_BUDGET: Duration = Duration::from_secs(27);
/// Most lost step entries one sweep takes over (each costs a few store reads and writes).
const MAX_HANDOFFS_PER_SWEEP: usize = 200;

fn unknown() -> ApiError {
    ApiError::new(404, "unknown_delivery", "no delivery with this id")
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::new(400, "bad_query", message).with_field(field)
}

/// `GET /api/deliveries?botId&chatId&stepId&serviceId&hookId&callId&status&test&limit&cursor`.
pub(crate) fn list(call: &Call) -> Result<Response, ApiError> {
    let q = |name| query_param(call.req, name).filter(|v| !v.is_empty());
    let chat = match q("chatId") {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| bad("chatId", "a whole signed 64-bit number"))?,
        ),
        None => None,
    };
    let status = match q("status") {
        Some(s) => Some(
            Status::parse(&s)
                .ok_or_else(|| bad("status", "pending, delivered, retrying, failed or skipped"))?,
        ),
        None => None,
    };
    let test = match q("test").as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(bad("test", "true or false")),
    };
    let limit = match q("limit") {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n @ 1..=200) => n,
            _ => return Err(bad("limit", "a whole number from 1 to 200")),
        },
    };
    let before = match q("cursor") {
        None => None,
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| bad("cursor", "use the nextCursor of the previous page"))?,
        ),
    };
    let owner = Source {
        bot_id: q("botId"),
        service_id: q("serviceId"),
        ..Source::default()
    };
    let (step, hook, call_id) = (q("stepId"), q("hookId"), q("callId"));
    let keep = |d: &Delivery| {
        chat.is_none_or(|c| d.source.chat_id == Some(c))
            && step
                .as_ref()
                .is_none_or(|s| d.source.step_id.as_ref() == Some(s))
            && hook
                .as_ref()
                .is_none_or(|h| d.source.hook_id.as_ref() == Some(h))
            && call_id
                .as_ref()
                .is_none_or(|c| d.source.call_id.as_ref() == Some(c))
            && status.is_none_or(|s| d.status == s)
            && test.is_none_or(|t| d.test == t)
    };
    let (items, next) = call.engine.list(&owner, before, limit, keep)?;
    Ok(json(
        200,
        &page_json(items.iter().map(Delivery::view).collect(), next),
    ))
}

/// `GET /api/deliveries/{id}`.
pub(crate) fn read(call: &Call, id: &str) -> Result<Response, ApiError> {
    let d = call.engine.get(id)?.ok_or_else(unknown)?;
    Ok(json(200, &d.view()))
}

/// `POST /api/deliveries/{id}/replay`: the same request again, as a new delivery.
pub(crate) fn replay(call: &Call, id: &str) -> Result<Response, ApiError> {
    let old = call.engine.get(id)?.ok_or_else(unknown)?;
    if old.attempts.is_empty() && old.status == Status::Skipped {
        return Err(ApiError::new(
            409,
            "nothing_to_replay",
            "this delivery was never sent; send the step again instead",
        ));
    }
    let new = NewDelivery {
        source: old.source,
        test: old.test,
        replay_of: Some(old.id),
        request: Some(old.request),
        missing: old.missing,
        max_attempts: old.max_attempts,
        timeout_ms: old.timeout_ms,
        signing_secret: old.signing_secret,
        first_attempt_after: None,
    };
    let created = call.engine.create(new, None)?;
    let done = call.engine.run(created, true)?;
    Ok(json(201, &done.view()))
}

/// Step entries handed off by postbacks whose chained delivery never got into the log:
/// their deliveries are queued for this sweep. Returns how many.
fn recover_handoffs(call: &Call) -> Result<usize, ApiError> {
    let mut recovered = 0;
    for (slot, entry) in call.repo.stale_handoffs(call.now, MAX_HANDOFFS_PER_SWEEP)? {
        let ids = (entry.bot_id.as_str(), entry.chat_id, entry.step_id.as_str());
        match deliver_entry(call, ids, Attempts::Queue, Some(slot)) {
            Ok(_) => recovered += 1,
            // The bot, step or dialog is gone, or the step sends no webhook any more.
            Err(e) if e.status < 500 => call.repo.handed_over(slot)?,
            // The store is failing: the handoff stays for the next sweep.
            Err(e) => return Err(e),
        }
    }
    Ok(recovered)
}

/// `POST /api/deliveries/retry-due`: sends what is due, for a scheduler to call every minute.
pub(crate) fn retry_due(call: &Call) -> Result<Response, ApiError> {
    let recovered = recover_handoffs(call)?;
    let sweep = call.engine.retry_due(SWEEP_BUDGET)?;
    Ok(json(
        200,
        &serde_json::json!({
            "attempted": sweep.attempted,
            "delivered": sweep.delivered,
            "failed": sweep.failed,
            "rescheduled": sweep.rescheduled,
            "more": sweep.more,
            "recovered": recovered,
        }),
    ))
}
