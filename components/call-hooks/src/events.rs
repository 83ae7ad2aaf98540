//! `POST|GET /api/calls/services/{serviceId}/events`: a call event from the telephony side,
//! authenticated by the service's ingest key (`X-Ingest-Key` header or `key` query
//! parameter). Every enabled hook of the event's type gets a delivery; the answer lists
//! them; their first attempts go out together after the answer.

use funnelhooks_calls::{CallEvent, CallRepo, EventClaim, EventRecord, HookRecord, Service};
use funnelhooks_core::{Error, Kind};
use funnelhooks_delivery::engine::{Engine, NewDelivery, Secrets};
use funnelhooks_delivery::{Delivery, Owner, SigningSecret};
use funnelhooks_spin::kv::BatchedSpinKv as SpinKv;
use funnelhooks_spin::request::query_param;
use funnelhooks_spin::{SpinClock, SpinSender, json};
use funnelhooks_store::StoreError;
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Ctx;
use funnelhooks_routes::call_hooks::Op;

/// The deliveries an event created, to send after the answer.
pub(crate) struct FanOut {
    service: Service,
    deliveries: Vec<Delivery>,
    /// The hooks' states as read when their deliveries were made (not read again).
    states: funnelhooks_delivery::engine::KnownStates,
}

/// The ingest key the request presents: in the URL's path (`…/events/{pathKey}`), the
/// `X-Ingest-Key` header or `?key=`.
fn check_key(ctx: &Ctx, service: &Service) -> Result<(), Error> {
    let wrong = || {
        Error::new(
            Kind::Unauthorized,
            "bad_ingest_key",
            "this is not the service's ingest key (was it rotated?)",
        )
        .at("key")
    };
    let in_path = ctx.params.get("pathKey");
    if !in_path.is_empty() {
        return match service.path_key_matches(in_path) {
            true => Ok(()),
            false => Err(wrong()),
        };
    }
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
            "send the service's ingest key in the URL's path, X-Ingest-Key or ?key=",
        )
        .at("key"));
    }
    if !service.key_matches(given.trim()) {
        return Err(wrong());
    }
    Ok(())
}

/// The delivery for one hook, under an id derived from the event and the hook (a retried
/// event finds the one it created before): pending, held in the outbox until this request
/// sends it, or skipped with the reason.
fn delivery_for(
    ctx: &Ctx,
    (service, hook): (&Service, &HookRecord),
    event: &CallEvent,
) -> (NewDelivery, Option<String>) {
    let owner = Owner::Hook {
        service_id: service.id.clone(),
        hook_id: hook.id.clone(),
        call_id: event.call_id.clone(),
        event: event.kind.as_str().into(),
    };
    let config = &hook.config;
    let mut new = NewDelivery::new(owner, &config.options);
    new.id = Some(CallRepo::<SpinKv>::event_delivery_id(
        &service.id,
        (event.kind, &event.call_id),
        &hook.id,
    ));
    let skip = if hook.gone {
        Some("the receiver answered 410 Gone before; save the hook again to resume".to_string())
    } else {
        match config.build(event, ctx.policy) {
            Ok(built) => {
                new.request = Some(built.request);
                new.missing = built.missing;
                None
            }
            Err(e) => Some(format!("the hook cannot be used: {e}")),
        }
    };
    (new, skip)
}

/// What the first copy of an event did, for the answer to its repeats.
fn repeat_answer(answer: &mut Json, first: EventRecord) {
    answer["duplicate"] = Json::Bool(true);
    answer["matched"] = first.matched.into();
    answer["deliveries"] = first
        .deliveries
        .iter()
        .map(|(hook, id)| json!({"hookId": hook, "deliveryId": id}))
        .collect();
}

/// The signing secrets of a service's hooks, as this request read them.
pub(crate) struct HookSecrets<'s>(pub(crate) &'s Service);

impl Secrets for HookSecrets<'_> {
    fn secret(&self, owner: &Owner) -> Result<Option<SigningSecret>, StoreError> {
        let Owner::Hook { hook_id, .. } = owner else {
            return Ok(None);
        };
        Ok(self
            .0
            .hooks
            .iter()
            .find(|h| &h.id == hook_id)
            .and_then(|h| h.config.options.signing_secret.clone()))
    }
}

/// Whether `op` is the ingest route (in any of its forms).
pub(crate) fn is_ingest(op: Op) -> bool {
    matches!(
        op,
        Op::IngestEvent | Op::IngestEventGet | Op::IngestEventByPath | Op::IngestEventByPathGet
    )
}

/// Keeps a refused call event for its service's page, when the service exists and the
/// request came with its key: a wrong or missing key is not kept (anyone who knows a
/// service's id could fill the list with those and push out what the telephony side sent
/// wrong; the request log has them). A busy event is not a refusal, only a "later". What was
/// sent is kept without any `key` parameter or member.
pub(crate) fn keep_refused(ctx: &Ctx, status: u16, error: &Error) {
    if matches!(
        error.code,
        "unknown_service"
            | "not_found"
            | "method_not_allowed"
            | "event_in_progress"
            | "missing_ingest_key"
            | "bad_ingest_key"
    ) || status == 404
    {
        return;
    }
    let Ok(service) = ctx.repo.service(ctx.params.get("serviceId")) else {
        return;
    };
    let (query, body) = funnelhooks_calls::event::without_key(ctx.req.query(), ctx.req.body());
    let sent = funnelhooks_core::refused::sent(&query, &body);
    let refusal = funnelhooks_core::refused::Refusal {
        at: ctx.now,
        status,
        code: error.code,
        field: error.field.as_deref(),
        message: &error.message,
        method: &ctx.req.method().to_string(),
        sent: &sent,
    };
    let list = funnelhooks_calls::repo::refused_list(&service.id);
    let _ = funnelhooks_core::refused::record_refused(ctx.kv, &list, &refusal);
}

/// `GET /api/calls/services/{serviceId}/refused-events`: the newest call events the
/// service's ingest URLs refused, with why and what was sent, newest first.
pub(crate) fn refused(ctx: &Ctx) -> Result<Response, Error> {
    let service = ctx.repo.service(ctx.params.get("serviceId"))?;
    let page = funnelhooks_core::Paging::from_query(ctx.req.query())?;
    let (items, next) = ctx.repo.refused_events(&service, page.cursor, page.limit)?;
    Ok(funnelhooks_spin::json_text(
        200,
        funnelhooks_core::refused::page_text(&items, next),
    ))
}

/// Reads, checks and de-duplicates the event, logs one delivery per matching hook, and
/// answers; the sending is left to [`send`]. A copy of an event that is being delivered by
/// another request right now is answered 503 with `Retry-After`; one whose delivery failed
/// before is delivered now, creating only the deliveries that do not exist yet.
pub(crate) fn ingest(ctx: &Ctx) -> Result<(Response, Option<FanOut>), Error> {
    let content_type = ctx.req.header("content-type").and_then(|h| h.as_str());
    // Parsed first to read its record with the service; refused in the order a tracker
    // expects (an unknown service or key before a bad event).
    let event = CallEvent::parse(ctx.req.query(), content_type, ctx.req.body());
    let service_id = ctx.params.get("serviceId");
    let keys = match &event {
        Ok(event) if funnelhooks_core::is_uuid(service_id) => {
            let which = (event.kind, event.call_id.as_str());
            funnelhooks_calls::repo::keys_read_by_event(service_id, which).to_vec()
        }
        _ => Vec::new(),
    };
    let _ahead = ctx.kv.read_ahead(&keys);
    let service = ctx.repo.service(service_id)?;
    check_key(ctx, &service)?;
    let event = event?;
    let mut answer = json!({
        "ok": true,
        "serviceId": service.id,
        "callId": event.call_id,
        "event": event.kind.as_str(),
    });
    let which = (event.kind, event.call_id.as_str());
    match ctx.repo.claim_event(&service.id, which, ctx.now)? {
        EventClaim::Repeat(first) => {
            repeat_answer(&mut answer, first);
            return Ok((json(200, &answer), None));
        }
        EventClaim::InProgress(until) => {
            let wait = ((until.0 - ctx.now.0) / 1000).clamp(1, 3600) as u32;
            return Err(Error::new(
                Kind::Unavailable,
                "event_in_progress",
                "this event is being delivered by another request right now; send it again later",
            )
            .retry_after(wait));
        }
        EventClaim::Deliver => {}
    }
    match deliver_event(ctx, &service, &event, &mut answer) {
        Ok(fan_out) => Ok((json(200, &answer), Some(fan_out))),
        Err(e) => {
            // The tracker's retry takes over at once, creating what is missing.
            if let Err(release) = ctx.repo.release_event(&service.id, which, ctx.now) {
                problem("event_release_failed", &release.to_string());
            }
            Err(e)
        }
    }
}

/// Creates the event's deliveries (those that exist already are kept as they are) and
/// records the event as done; fills in the answer.
fn deliver_event(
    ctx: &Ctx,
    service: &Service,
    event: &CallEvent,
    answer: &mut Json,
) -> Result<FanOut, Error> {
    let (sender, clock) = (SpinSender::new(ctx.policy), SpinClock::REAL);
    let engine = Engine::new(ctx.kv, &sender, &clock).with_policy(ctx.policy);
    let hooks: Vec<&HookRecord> = service
        .hooks
        .iter()
        .filter(|h| h.config.enabled && h.config.event == event.kind)
        .collect();
    let news: Vec<(NewDelivery, Option<String>)> = hooks
        .iter()
        .map(|hook| delivery_for(ctx, (service, hook), event))
        .collect();
    // The ids are derived: the event's record is written with its deliveries, last.
    let record = EventRecord {
        matched: hooks.len(),
        deliveries: hooks
            .iter()
            .zip(&news)
            .map(|(hook, (new, _))| (hook.id.clone(), new.id.clone().unwrap_or_default()))
            .collect(),
        at: ctx.now,
        processing_until: None,
    };
    let which = (event.kind, event.call_id.as_str());
    let done = funnelhooks_calls::repo::event_done(&service.id, which, &record);
    let created = engine.create_many(news, vec![done])?;
    let fresh = created
        .iter()
        .filter(|c| c.fresh)
        .map(|c| c.delivery.clone())
        .collect();
    let deliveries: Vec<(String, Delivery)> = hooks
        .iter()
        .zip(created)
        .map(|(hook, c)| (hook.id.clone(), c.delivery))
        .collect();
    answer["duplicate"] = Json::Bool(false);
    answer["matched"] = hooks.len().into();
    answer["deliveries"] = deliveries
        .iter()
        .map(|(hook, d)| {
            json!({"hookId": hook, "deliveryId": d.id, "status": d.status, "error": d.error})
        })
        .collect();
    Ok(FanOut {
        service: service.clone(),
        deliveries: fresh,
        states: engine.known_states(),
    })
}

/// The first attempt of every new delivery of an event, all at once; retries go to the
/// outbox. A receiver that answers 410 Gone stops its hook.
pub(crate) fn send(ctx: &Ctx, fan_out: FanOut) {
    let (sender, clock) = (SpinSender::new(ctx.policy), SpinClock::REAL);
    let secrets = HookSecrets(&fan_out.service);
    let engine = Engine::new(ctx.kv, &sender, &clock)
        .with_secrets(&secrets)
        .with_policy(ctx.policy)
        .with_rules(funnelhooks_spin::delivery_rules())
        .with_known_states(fan_out.states);
    // If this fails (the store), the held deliveries are sent by the sweep after the lease.
    match engine.run_all(fan_out.deliveries) {
        Ok(done) => {
            for d in done.iter().filter(|d| d.gone) {
                let Owner::Hook { hook_id, .. } = &d.owner else {
                    continue;
                };
                if let Err(e) = ctx
                    .repo
                    .mark_hook_gone(&fan_out.service.id, hook_id, ctx.now)
                {
                    problem("mark_gone_failed", &e.to_string());
                }
            }
        }
        Err(e) => problem("first_attempts_unfinished", &e.to_string()),
    }
}

/// Logs work after the answer that could not be done (the sweep or the tracker's retry
/// takes it over).
fn problem(event: &str, detail: &str) {
    if let Some(line) = funnelhooks_core::log::line(funnelhooks_core::log::Level::Error, event) {
        line.str("detail", &funnelhooks_core::log::redact_keys(detail))
            .emit();
    }
}
