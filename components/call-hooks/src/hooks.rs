//! `/api/calls/services/{serviceId}/hooks`: a service's hooks, as CallKeeper's form holds
//! them. PUT replaces a hook, PATCH changes the members it names (`{"enabled": false}`).

use funnelhooks_calls::Edit;
use funnelhooks_calls::event::sample;
use funnelhooks_core::json::Members;
use funnelhooks_core::{Error, Kind};
use funnelhooks_delivery::Owner;
use funnelhooks_delivery::engine::{Attempts, Engine, NewDelivery};
use funnelhooks_delivery::state::{DeliveryState, StepOrHook};
use funnelhooks_spin::{SpinClock, SpinSender, json};
use funnelhooks_store::Records;
use serde_json::Value as Json;
use spin_sdk::http::Response;

use crate::Ctx;

/// Largest hook form read (50 parameters of 2 KB each fit).
pub(crate) const MAX_FORM_BYTES: usize = 256 * 1024;

/// The hook form in the body.
fn form(ctx: &Ctx) -> Result<Json, Error> {
    funnelhooks_core::json::body(ctx.req.body(), MAX_FORM_BYTES).map_err(|e| {
        if e.kind == Kind::TooLarge {
            Error::too_large("too_large", "a hook form is at most 256 KiB").at("body")
        } else {
            e
        }
    })
}

fn sender(service_id: &str, hook_id: &str) -> StepOrHook {
    StepOrHook::Hook {
        service_id: service_id.to_string(),
        hook_id: hook_id.to_string(),
    }
}

/// A hook as the API shows it, with where it stands as a sender (`deliveryState`).
pub(crate) fn view(
    ctx: &Ctx,
    service_id: &str,
    hook: &funnelhooks_calls::HookRecord,
) -> Result<Json, Error> {
    let key = sender(service_id, &hook.id).state_key();
    let state: DeliveryState = Records::new(ctx.kv).get(&key)?.unwrap_or_default();
    Ok(with_state(hook.view(service_id), &state))
}

fn with_state(mut view: Json, state: &DeliveryState) -> Json {
    view["deliveryState"] = state.view();
    view
}

/// `GET /api/calls/services/{id}/hooks`.
pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let service = ctx.repo.service(ctx.params.get("serviceId"))?;
    let items = service
        .hooks
        .iter()
        .map(|h| view(ctx, &service.id, h))
        .collect::<Result<Vec<Json>, Error>>()?;
    Ok(json(200, &serde_json::json!({ "items": items })))
}

/// `POST .../hooks/{hookId}/pause` (`pause: true`) or `.../resume`: the hook with its new
/// `deliveryState`. Resuming also re-enables a hook disabled for failing (and tells the
/// alert endpoints).
pub(crate) fn pause_or_resume(ctx: &Ctx, pause: bool) -> Result<Response, Error> {
    let service = ctx.repo.service(ctx.params.get("serviceId"))?;
    let hook = service.hook(ctx.params.get("hookId"))?;
    let (sender_, clock) = (SpinSender::new(ctx.policy), SpinClock::REAL);
    let engine = Engine::new(ctx.kv, &sender_, &clock).with_policy(ctx.policy);
    let s = sender(&service.id, &hook.id);
    let state = if pause {
        engine.pause(&s)?
    } else {
        engine.resume(&s)?
    };
    Ok(json(200, &with_state(hook.view(&service.id), &state)))
}

/// Keeps the hook's `rateLimit` where its deliveries read it (its delivery state).
fn record_rate(
    ctx: &Ctx,
    service_id: &str,
    hook: &funnelhooks_calls::HookRecord,
) -> Result<(), Error> {
    let (sender_, clock) = (SpinSender::new(ctx.policy), SpinClock::REAL);
    Engine::new(ctx.kv, &sender_, &clock).set_rate_limit(
        &sender(service_id, &hook.id),
        hook.config.options.rate_limit,
    )?;
    Ok(())
}

/// `POST /api/calls/services/{id}/hooks`: 201 with the hook.
pub(crate) fn create(ctx: &Ctx) -> Result<Response, Error> {
    let service = ctx.params.get("serviceId");
    let hook = ctx
        .repo
        .add_hook(service, &form(ctx)?, ctx.policy, ctx.now)?;
    record_rate(ctx, service, &hook)?;
    Ok(json(201, &view(ctx, service, &hook)?))
}

/// `GET /api/calls/services/{id}/hooks/{hookId}`.
pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let s = ctx.repo.service(ctx.params.get("serviceId"))?;
    Ok(json(
        200,
        &view(ctx, &s.id, s.hook(ctx.params.get("hookId"))?)?,
    ))
}

/// `PUT` (whole hook) or `PATCH` (named members) `/api/calls/services/{id}/hooks/{hookId}`.
pub(crate) fn edit(ctx: &Ctx, edit: Edit) -> Result<Response, Error> {
    let service = ctx.params.get("serviceId");
    let hook = ctx.repo.edit_hook(
        service,
        ctx.params.get("hookId"),
        (edit, &form(ctx)?),
        ctx.policy,
        ctx.now,
    )?;
    record_rate(ctx, service, &hook)?;
    Ok(json(200, &view(ctx, service, &hook)?))
}

/// `DELETE /api/calls/services/{id}/hooks/{hookId}`.
pub(crate) fn delete(ctx: &Ctx) -> Result<Response, Error> {
    let (service, hook) = (ctx.params.get("serviceId"), ctx.params.get("hookId"));
    ctx.repo.delete_hook(service, hook, ctx.now)?;
    let (sender_, clock) = (SpinSender::new(ctx.policy), SpinClock::REAL);
    Engine::new(ctx.kv, &sender_, &clock).forget_state(&sender(service, hook))?;
    Ok(Response::new(204, ()))
}

/// `POST /api/calls/services/{id}/hooks/{hookId}/test-send` with `{"call": {...}}` (or
/// nothing): sends the hook's request for a sample call of the hook's event type (the given
/// parameters over CallKeeper-shaped defaults), once, marked as a test, and answers with the
/// delivery and the receiver's answer. Works on disabled and gone hooks too.
pub(crate) fn test_send(ctx: &Ctx) -> Result<Response, Error> {
    let body = funnelhooks_spin::request::body(ctx.req)?;
    let overrides = Members::of(&body, &["call"])?
        .object("call")?
        .cloned()
        .unwrap_or_default();
    let service = ctx.repo.service(ctx.params.get("serviceId"))?;
    let record = service.hook(ctx.params.get("hookId"))?;
    let config = &record.config;
    let event = sample(config.event, &overrides);
    let built = config.build(&event, ctx.policy)?;
    let owner = Owner::Hook {
        service_id: service.id.clone(),
        hook_id: record.id.clone(),
        call_id: event.call_id.clone(),
        event: config.event.as_str().into(),
    };
    let mut new = NewDelivery::new(owner, &config.options);
    new.test = true;
    new.request = Some(built.request);
    new.missing = built.missing;
    new.max_attempts = 1;
    let (sender, clock) = (SpinSender::new(ctx.policy), SpinClock::REAL);
    let secrets = crate::events::HookSecrets(&service);
    let engine = Engine::new(ctx.kv, &sender, &clock)
        .with_secrets(&secrets)
        .with_policy(ctx.policy);
    let created = engine.create(new, None)?;
    let done = engine.run(created, Attempts::FirstOnly)?;
    Ok(json(200, &done.view()))
}
