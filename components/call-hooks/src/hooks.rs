//! `/api/calls/services/{serviceId}/hooks`: a service's hooks, as CallKeeper's form holds
//! them. PUT replaces a hook, PATCH changes the members it names (`{"enabled": false}`).

use funnelhooks_spin::{ApiError, json};
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
