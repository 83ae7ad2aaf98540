//! `/api/calls/services`: call-tracking services and their ingest keys, and the list of
//! call parameters a hook can send.

use funnelhooks_calls::{PRESETS, Service};
use funnelhooks_spin::request::{body, page_json, paging, public_base};
use funnelhooks_spin::{ApiError, json};
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Call;

/// The URL the telephony side posts events to, with the key.
fn ingest_url(call: &Call, service: &Service, key: &str) -> String {
    format!(
        "{}/api/calls/services/{}/events?key={key}",
        public_base(call.req),
        service.id
    )
}

/// The preset call parameters, each with a line of description.
fn preset_list() -> Json {
    Json::Array(
        PRESETS
            .iter()
            .map(|p| {
                json!({"name": p.name, "description": p.description,
                       "knownAtStart": p.known_at_start})
            })
            .collect(),
    )
}

/// `GET /api/calls/parameters`.
pub(crate) fn parameters() -> Response {
    json(200, &json!({"parameters": preset_list()}))
}

/// `POST /api/calls/services` `{"name"}`: 201 with the ingest key, shown this once.
pub(crate) fn create(call: &Call) -> Result<Response, ApiError> {
    let body = body(call.req)?;
    body.only(&["name"])?;
    let name = body.required_text("name", 100)?.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::new(422, "missing_field", "the name is required").with_field("name"));
    }
    let (service, key) = call.repo.create_service(name, call.now)?;
    let mut v = service.view();
    v["ingestUrl"] = Json::from(ingest_url(call, &service, &key));
    v["ingestKey"] = Json::from(key);
    Ok(json(201, &v))
}

/// `GET /api/calls/services?cursor&limit`.
pub(crate) fn list(call: &Call) -> Result<Response, ApiError> {
    let (after, limit) = paging(call.req)?;
    let (items, next) = call.repo.services(after, limit)?;
    Ok(json(
        200,
        &page_json(items.iter().map(Service::view).collect(), next),
    ))
}

/// `GET /api/calls/services/{id}`: the service, its hooks and the call parameters.
pub(crate) fn read(call: &Call, id: &str) -> Result<Response, ApiError> {
    let service = call.repo.service(id)?;
    let mut v = service.view();
    v["hooks"] = Json::Array(service.hooks.iter().map(|h| h.view(&service.id)).collect());
    v["parameters"] = preset_list();
    Ok(json(200, &v))
}

/// `DELETE /api/calls/services/{id}`: the service and its hooks; its deliveries stay in
/// the log.
pub(crate) fn delete(call: &Call, id: &str) -> Result<Response, ApiError> {
    call.repo.delete_service(id)?;
    Ok(Response::new(204, ()))
}

/// `POST /api/calls/services/{id}/ingest-key`: a new key; the old one stops working now.
pub(crate) fn rotate_key(call: &Call, id: &str) -> Result<Response, ApiError> {
    let key = call.repo.rotate_key(id, call.now)?;
    let service = call.repo.service(id)?;
    let mut v = service.view();
    v["ingestUrl"] = Json::from(ingest_url(call, &service, &key));
    v["ingestKey"] = Json::from(key);
    Ok(json(200, &v))
}
