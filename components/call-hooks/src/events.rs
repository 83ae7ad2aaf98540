//! `POST|GET /api/calls/services/{serviceId}/events`: a call event from the telephony side,
//! authenticated by the service's ingest key (`X-Ingest-Key` header or `key` query
//! parameter). Every enabled hook of the event's type gets a delivery; the answer lists
//! them; their first attempts go out together after the answer.

use funnelhooks_calls::{CallEvent, EventClaim, EventRecord, HookRecord, Service};
use funnelhooks_core::{Error, Kind};
use funnelhooks_delivery::engine::{Engine, LEASE, NewDelivery};
use funnelhooks_delivery::{Delivery, Owner};
use funnelhooks_spin::request::query_param;
use funnelhooks_spin::{SpinClock, SpinKv, SpinSender, json};
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Ctx;

/// The deliveries an event created, to send after the answer.
pub(crate) struct FanOut {
    service_id: String,
    deliveries: Vec<Delivery>,
}

fn check_key(ctx: &Ctx, service: &Service) -> Result<(), Error> {
    let given = ctx
        .req
        .header("x-ingest-key")
        .and_then(|h| h.as_str())
        .map(str::to_string)
        .or_else(|| query_param(ctx.req, "key"))
        .unwrap_or_default();
    if given.trim().is_empty() {
        return Err(Error::new(
            Kind::Unauthorized,
            "missing_ingest_key",
            "send the service's ingest key in X-Ingest-Key or ?key=",
        )
        .at("key"));
    }
    if !service.key_matches(given.trim()) {
        return Err(Error::new(
            Kind::Unauthorized,
            "bad_ingest_key",
            "this is not the service's ingest key (was it rotated?)",
        )
        .at("key"));
    }
    Ok(())
}

/// A delivery for one hook: pending (held in the outbox until this request sends it), or
/// skipped with the reason.
fn delivery_for(
    ctx: &Ctx,
    engine: &Engine<SpinKv, SpinSender, SpinClock>,
    service: &Service,
    hook: &HookRecord,
    event: &CallEvent,
) -> Result<Delivery, Error> {
    let owner = Owner::Hook {
        service_id: service.id.clone(),
        hook_id: hook.id.clone(),
        call_id: event.call_id.clone(),
        event: event.kind.as_str().into(),
    };
    let config = &hook.config;
    let mut new = NewDelivery::new(owner, &config.options);
    let skip = if hook.gone {
        Some("the receiver answered 410 Gone before; save the hook again to resume".to_string())
    } else {
        match config.build(event, ctx.policy) {
            Ok(built) => {
                new.request = Some(built.request);
                new.missing = built.missing;
                new.first_attempt_after = Some(LEASE);
                None
            }
            Err(e) => Some(format!("the hook cannot be used: {e}")),
        }
    };
    Ok(engine.create(new, skip)?)
}

/// What the first copy of an event did, for the answer to its repeats.
fn repeat_answer(answer: &mut Json, first: Option<EventRecord>) {
    answer["duplicate"] = Json::Bool(true);
    if let Some(first) = first {
        answer["matched"] = first.matched.into();
        answer["deliveries"] = first
            .deliveries
            .iter()
            .map(|(hook, id)| json!({"hookId": hook, "deliveryId": id}))
            .collect();
    }
}

/// Reads, checks and de-duplicates the event, logs one delivery per matching hook, and
/// answers; the sending is left to [`send`].
pub(crate) fn ingest(ctx: &Ctx) -> Result<(Response, Option<FanOut>), Error> {
    let service = ctx.repo.service(ctx.params.get("serviceId"))?;
    check_key(ctx, &service)?;
    let content_type = ctx.req.header("content-type").and_then(|h| h.as_str());
    let event = CallEvent::parse(ctx.req.query(), content_type, ctx.req.body())?;
    let mut answer = json!({
        "ok": true,
        "serviceId": service.id,
        "callId": event.call_id,
        "event": event.kind.as_str(),
    });
    if let EventClaim::Repeat(first) =
        ctx.repo
            .claim_event(&service.id, event.kind, &event.call_id)?
    {
        repeat_answer(&mut answer, first);
        return Ok((json(200, &answer), None));
    }
    let (sender, clock) = (SpinSender::new(ctx.policy), SpinClock);
    let engine = Engine::new(ctx.kv, &sender, &clock);
    let hooks: Vec<&HookRecord> = service
        .hooks
        .iter()
        .filter(|h| h.config.enabled && h.config.event == event.kind)
        .collect();
    let mut deliveries = Vec::with_capacity(hooks.len());
    for hook in &hooks {
        deliveries.push(delivery_for(ctx, &engine, &service, hook, &event)?);
    }
    let ids = |d: &Delivery| match &d.owner {
        Owner::Hook { hook_id, .. } => hook_id.clone(),
        Owner::Step { .. } => String::new(),
    };
    let record = EventRecord {
        matched: hooks.len(),
        deliveries: deliveries.iter().map(|d| (ids(d), d.id.clone())).collect(),
        at: ctx.now,
    };
    ctx.repo
        .record_event(&service.id, event.kind, &event.call_id, &record)?;
    answer["duplicate"] = Json::Bool(false);
    answer["matched"] = hooks.len().into();
    answer["deliveries"] = deliveries
        .iter()
        .map(
            |d| json!({"hookId": ids(d), "deliveryId": d.id, "status": d.status, "error": d.error}),
        )
        .collect();
    let fan_out = FanOut {
        service_id: service.id.clone(),
        deliveries,
    };
    Ok((json(200, &answer), Some(fan_out)))
}

/// The first attempt of every delivery of an event, all at once; retries go to the outbox.
/// A receiver that answers 410 Gone stops its hook.
pub(crate) fn send(ctx: &Ctx, fan_out: FanOut) {
    let (sender, clock) = (SpinSender::new(ctx.policy), SpinClock);
    let engine = Engine::new(ctx.kv, &sender, &clock);
    // If this fails (the store), the held deliveries are sent by the sweep after the lease.
    match engine.run_all(fan_out.deliveries) {
        Ok(done) => {
            for d in done.iter().filter(|d| d.gone) {
                let Owner::Hook { hook_id, .. } = &d.owner else {
                    continue;
                };
                if let Err(e) = ctx
                    .repo
                    .mark_hook_gone(&fan_out.service_id, hook_id, ctx.now)
                {
                    eprintln!("call-hooks: could not mark hook {hook_id} gone: {e}");
                }
            }
        }
        Err(e) => eprintln!("call-hooks: first attempts not finished: {e}"),
    }
}
