//! `/api/calls/services/{serviceId}/hooks`: a service's hooks, as CallKeeper's form holds
//! them. PUT replaces a hook, PATCH changes the members it names (`{"enabled": false}`).

use funnelhooks_calls::event::sample;
use funnelhooks_delivery::engine::{Engine, NewDelivery};
use funnelhooks_delivery::log::Source;
use funnelhooks_spin::{ApiError, SpinClock, SpinSender, json};
use serde_json::Value as Json;
use spin_sdk::http::Response;

use crate::Call;

/// Largest hook form read (50 parameters of 2 KB each fit).
const MAX_FORM_BYTES: usize = 256 * 1024;

fn config(call: &Call) -> Result<Json, ApiError> {
    if call.req.body().len() > MAX_FORM_BYTES {
        return Err(
            ApiError::new(413, "too_large", "a hook form is at most 256 KiB").with_field("body"),
        );
    }
    serde_json::from_slice(call.req.body()).map_err(|e| {
        ApiError::new(400, "bad_json", format!("the body is not valid JSON: {e}"))
            .with_field("body")
    })
}

/// `GET /api/calls/services/{id}/hooks`.
pub(crate) fn list(call: &Call, service: &str) -> Result<Response, ApiError> {
    let service = call.repo.service(service)?;
    let items: Vec<Json> = service.hooks.iter().map(|h| h.view(&service.id)).collect();
    Ok(json(200, &serde_json::json!({ "items": items })))
}

/// `POST /api/calls/services/{id}/hooks`: 201 with the hook.
pub(crate) fn create(call: &Call, service: &str) -> Result<Response, ApiError> {
    let hook = call
        .repo
        .add_hook(service, &config(call)?, call.policy, call.now)?;
    Ok(json(201, &hook.view(service)))
}

/// `GET /api/calls/services/{id}/hooks/{hookId}`.
pub(crate) fn read(call: &Call, service: &str, hook: &str) -> Result<Response, ApiError> {
    let s = call.repo.service(service)?;
    Ok(json(200, &s.hook(hook)?.view(&s.id)))
}

/// `PUT` (whole hook) or `PATCH` (named members) `/api/calls/services/{id}/hooks/{hookId}`.
pub(crate) fn edit(
    call: &Call,
    service: &str,
    hook: &str,
    merge: bool,
) -> Result<Response, ApiError> {
    let hook = call
        .repo
        .edit_hook(service, hook, &config(call)?, merge, call.policy, call.now)?;
    Ok(json(200, &hook.view(service)))
}

/// `DELETE /api/calls/services/{id}/hooks/{hookId}`.
pub(crate) fn delete(call: &Call, service: &str, hook: &str) -> Result<Response, ApiError> {
    call.repo.delete_hook(service, hook, call.now)?;
    Ok(Response::new(204, ()))
}

/// `POST /api/calls/services/{id}/hooks/{hookId}/test-send` with `{"call": {...}}` (or
/// nothing): sends the hook's request for a sample call of the hook's event type (the given
/// parameters over CallKeeper-shaped defaults), once, marked as a test, and answers with the
/// delivery and the receiver's answer. Works on disabled and gone hooks too.
pub(crate) fn test_send(call: &Call, service: &str, hook: &str) -> Result<Response, ApiError> {
    let body = funnelhooks_spin::request::body(call.req)?;
    body.only(&["call"])?;
    let overrides = body.object("call")?.cloned().unwrap_or_default();
    let service = call.repo.service(service)?;
    let record = service.hook(hook)?;
    let config = record.hook(call.policy)?;
    let event = sample(config.event, &overrides);
    let built = config.build(&event, call.policy)?;
    let source = Source {
        service_id: Some(service.id.clone()),
        hook_id: Some(record.id.clone()),
        call_id: Some(event.call_id.clone()),
        event: Some(config.event.as_str().into()),
        ..Source::default()
    };
    let new = NewDelivery {
        test: true,
        request: Some(built.request),
        missing: built.missing,
        max_attempts: 1,
        ..NewDelivery::with_options(source, &config.options)
    };
    let (sender, clock) = (SpinSender, SpinClock);
    let engine = Engine::new(call.kv, &sender, &clock);
    let created = engine.create(new, None)?;
    let done = engine.run(created, false)?;
    Ok(json(200, &done.view()))
}
