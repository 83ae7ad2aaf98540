//! `POST /api/calls/services/{serviceId}/events`: a call event from the telephony side,
//! authenticated by the service's ingest key (`X-Ingest-Key` header or `key` query
//! parameter). Every enabled hook of the event's type gets a delivery; the answer lists
//! them; their first attempts go out together after the answer.

use funnelhooks_calls::{
    CallError, CallEvent, EventClaim, EventRecord, HookConfig, HookRecord, Service,
};
use funnelhooks_delivery::engine::{Engine, LEASE, NewDelivery};
use funnelhooks_delivery::log::{Delivery, Source};
use funnelhooks_spin::request::query_param;
use funnelhooks_spin::{ApiError, SpinClock, SpinKv, SpinSender, json};
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Call;

/// The deliveries an event created, to send after the answer.
pub(crate) struct FanOut {
    service_id: String,
    deliveries: Vec<Delivery>,
}

fn check_key(call: &Call, service: &Service) -> Result<(), ApiError> {
    let given = call
        .req
        .header("x-ingest-key")
        .and_then(|h| h.as_str())
        .map(str::to_string)
        .or_else(|| query_param(call.req, "key"))
        .unwrap_or_default();
    let field = |e: ApiError| e.with_field("key");
    if given.trim().is_empty() {
        return Err(field(ApiError::new(
            401,
            "missing_ingest_key",
            "send the service's ingest key in X-Ingest-Key or ?key=",
        )));
    }
    if !service.key_matches(given.trim()) {
        return Err(field(ApiError::new(
            401,
            "bad_ingest_key",
            "this is not the service's ingest key (was it rotated?)",
        )));
    }
    Ok(())
}

/// A delivery for one hook: pending (held in the outbox until this request sends it), or
/// skipped with the reason.
fn delivery_for(
    call: &Call,
    engine: &Engine<SpinKv, SpinSender, SpinClock>,
    service: &Service,
    hook: &HookRecord,
    config: &Result<HookConfig, CallError>,
    event: &CallEvent,
) -> Result<Delivery, ApiError> {
    let source = Source {
        service_id: Some(service.id.clone()),
        hook_id: Some(hook.id.clone()),
        call_id: Some(event.call_id.clone()),
        event: Some(event.kind.as_str().into()),
        ..Source::default()
    };
    let prepared = match config {
        Err(e) => Err(format!("the hook cannot be used: {e}")),
        Ok(_) if hook.gone => {
            Err("the receiver answered 410 Gone before; save the hook again to resume".into())
        }
        Ok(config) => config
            .build(event, call.policy)
            .map(|built| NewDelivery {
                request: Some(built.request),
                missing: built.missing,
                first_attempt_after: Some(LEASE),
                ..NewDelivery::with_options(source.clone(), &config.options)
            })
            .map_err(|e| e.to_string()),
    };
    let created = match prepared {
        Ok(new) => engine.create(new, None)?,
        Err(reason) => {
            let new = NewDelivery {
                source,
                ..NewDelivery::default()
            };
            engine.create(new, Some(reason))?
        }
    };
    Ok(created)
}

/// Reads, checks and de-duplicates the event, logs one delivery per matching hook, and
/// answers; the sending is left to [`send`].
pub(crate) fn ingest(call: &Call, service: &str) -> Result<(Response, Option<FanOut>), ApiError> {
    let service = call.repo.service(service)?;
    check_key(call, &service)?;
    let content_type = call.req.header("content-type").and_then(|h| h.as_str());
    let event = CallEvent::parse(call.req.query(), content_type, call.req.body())?;
    let mut answer = json!({
        "ok": true,
        "serviceId": service.id,
        "callId": event.call_id,
        "event": event.kind.as_str(),
    });
    if let EventClaim::Repeat(first) =
        call.repo
            .claim_event(&service.id, event.kind, &event.call_id)?
    {
        answer["duplicate"] = Json::Bool(true);
        if let Some(first) = first {
            answer["matched"] = first.matched.into();
            answer["deliveries"] = first
                .deliveries
                .iter()
                .map(|(hook, id)| json!({"hookId": hook, "deliveryId": id}))
                .collect();
        }
        return Ok((json(200, &answer), None));
    }
    let (sender, clock) = (SpinSender, SpinClock);
    let engine = Engine::new(call.kv, &sender, &clock);
    // Each hook's form is read once; one that no longer reads (the loopback policy changed)
    // is logged as skipped, with the reason, whatever its event.
    let hooks: Vec<(&HookRecord, Result<HookConfig, CallError>)> = service
        .hooks
        .iter()
        .map(|h| (h, h.hook(call.policy)))
        .filter(|(_, c)| {
            c.as_ref()
                .map_or(true, |c| c.enabled && c.event == event.kind)
        })
        .collect();
    let mut deliveries = Vec::with_capacity(hooks.len());
    for (hook, config) in &hooks {
        deliveries.push(delivery_for(call, &engine, &service, hook, config, &event)?);
    }
    let record = EventRecord {
        matched: hooks.len(),
        deliveries: deliveries
            .iter()
            .map(|d| (d.source.hook_id.clone().unwrap_or_default(), d.id.clone()))
            .collect(),
        at: call.now,
    };
    call.repo
        .record_event(&service.id, event.kind, &event.call_id, &record)?;
    answer["duplicate"] = Json::Bool(false);
    answer["matched"] = hooks.len().into();
    answer["deliveries"] = deliveries
        .iter()
        .map(|d| {
            json!({"hookId": d.source.hook_id, "deliveryId": d.id, "status": d.status,
                   "error": d.error})
        })
        .collect();
    let fan_out = FanOut {
        service_id: service.id.clone(),
        deliveries,
    };
    Ok((json(200, &answer), Some(fan_out)))
}

/// The first attempt of every delivery of an event, all at once; retries go to the outbox.
/// A receiver that answers 410 Gone stops its hook.
pub(crate) fn send(call: &Call, fan_out: FanOut) {
    let (sender, clock) = (SpinSender, SpinClock);
    let engine = Engine::new(call.kv, &sender, &clock);
    // If this fails (the store), the held deliveries are sent by the sweep after the lease.
    match engine.run_all(fan_out.deliveries) {
        Ok(done) => {
            for d in done.iter().filter(|d| d.gone) {
                let hook = d.source.hook_id.as_deref().unwrap_or_default();
                if let Err(e) = call
                    .repo
                    .mark_hook_gone(&fan_out.service_id, hook, call.now)
                {
                    eprintln!("call-hooks: could not mark hook {hook} gone: {e}");
                }
            }
        }
        Err(e) => eprintln!("call-hooks: first attempts not finished: {e}"),
    }
}
