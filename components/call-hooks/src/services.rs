//! `/api/calls/services`: call-tracking services and their ingest keys, and the list of
//! call parameters a hook can send.

use funnelhooks_calls::repo::path_key_of;
use funnelhooks_calls::{PRESETS, Service};
use funnelhooks_core::json::Members;
use funnelhooks_core::{Error, Page};
use funnelhooks_spin::auth::Scope;
use funnelhooks_spin::json;
use funnelhooks_spin::request::{NO_PUBLIC_BASE, body, paging, public_base};
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Ctx;

/// The URL the telephony side posts events to, with the key, under `base`.
fn ingest_url(base: &str, service: &Service, key: &str) -> String {
    format!("{base}/api/calls/services/{}/events?key={key}", service.id)
}

/// Where the service's events go, the key in the path: what a call tracker whose webhook
/// form has only host, port and path (CallKeeper's) is given. Known only with the key.
fn ingest_path(service: &Service, path_key: &str) -> String {
    format!("/api/calls/services/{}/events/{path_key}", service.id)
}

/// The service as the admin sees it: its key is not kept, so neither is the path that
/// carries it; a service whose path key could be computed from the store says so.
fn view(service: &Service) -> Json {
    let mut v = service.view();
    v["ingestPathPrefix"] = Json::from(format!("/api/calls/services/{}/events/", service.id));
    v["legacyPathKey"] = Json::from(service.has_legacy_path_key());
    v
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

/// The service as shown once, with its new key, its ingest URL and the path that carries
/// its path key.
fn with_key(ctx: &Ctx, service: &Service, key: String) -> Json {
    let mut v = view(service);
    let path = ingest_path(service, &path_key_of(&key));
    let base = public_base(ctx.req);
    if base.is_empty() {
        v["urlWarning"] = Json::from(NO_PUBLIC_BASE);
    }
    v["ingestUrl"] = Json::from(ingest_url(&base, service, &key));
    v["ingestUrlWithKey"] = Json::from(format!("{base}{path}"));
    v["ingestPath"] = Json::from(path);
    v["ingestKey"] = Json::from(key);
    v
}

/// `POST /api/calls/services` `{"name"}`: 201 with the ingest key, shown this once.
pub(crate) fn create(ctx: &Ctx) -> Result<Response, Error> {
    let body = body(ctx.req)?;
    let name = Members::of(&body, &["name"])?.required("name", 100)?;
    let (service, key) = ctx.repo.create_service(name, ctx.now)?;
    Ok(json(201, &with_key(ctx, &service, key)))
}

/// `GET /api/calls/services?cursor&limit`.
pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let page = paging(ctx.req)?;
    // A key scoped to some services lists those (at most 200: one page).
    let services = match funnelhooks_spin::auth::caller().services {
        Scope::All => ctx.repo.services(page.after(), page.limit)?,
        Scope::Only(ids) => Page {
            items: funnelhooks_core::error::present(ids.iter().map(|id| ctx.repo.service(id)))?,
            next: None,
        },
    };
    Ok(json(200, &services.to_json(view)))
}

/// `GET /api/calls/services/{id}`: the service, its hooks and the call parameters.
pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let service = ctx.repo.service(ctx.params.get("serviceId"))?;
    let mut v = view(&service);
    v["hooks"] = Json::Array(
        service
            .hooks
            .iter()
            .map(|h| crate::hooks::view(ctx, &service.id, h))
            .collect::<Result<_, Error>>()?,
    );
    v["parameters"] = preset_list();
    Ok(json(200, &v))
}

/// `DELETE /api/calls/services/{id}`: the service and its hooks; its deliveries stay in
/// the log.
pub(crate) fn delete(ctx: &Ctx) -> Result<Response, Error> {
    ctx.repo.delete_service(ctx.params.get("serviceId"))?;
    Ok(Response::new(204, ()))
}

/// `POST /api/calls/services/{id}/ingest-key`: a new key; the old one stops working now.
pub(crate) fn rotate_key(ctx: &Ctx) -> Result<Response, Error> {
    let id = ctx.params.get("serviceId");
    let key = ctx.repo.rotate_key(id, ctx.now)?;
    let service = ctx.repo.service(id)?;
    Ok(json(200, &with_key(ctx, &service, key)))
}
