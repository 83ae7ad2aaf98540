//! `/api/keys`: an admin's keys. The key itself is in the answer of create and rotate only.

use funnelhooks_access::Keys;
use funnelhooks_access::keys::KeySettings;
use funnelhooks_calls::CallRepo;
use funnelhooks_core::Error;
use funnelhooks_dialogs::Repo;
use funnelhooks_routes::Target;
use funnelhooks_spin::json;
use funnelhooks_spin::request::body;
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Ctx;

/// Whether the bot or service `id` exists (a key's scope may only name those).
fn known(ctx: &Ctx, target: Target, id: &str) -> Result<bool, Error> {
    match target {
        Target::Service => CallRepo::new(ctx.kv).service_exists(id),
        _ => Repo::new(ctx.kv).bot_exists(id),
    }
}

/// A key's view with the key itself, shown this once.
fn with_secret(view: Json, key: String) -> Json {
    let mut view = view;
    view["key"] = Json::String(key);
    view
}

/// `GET /api/keys`.
pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let items: Vec<Json> = Keys::new(ctx.kv).list()?.iter().map(|k| k.view()).collect();
    Ok(json(200, &json!({ "items": items })))
}

/// `POST /api/keys`: `{"name", "role", "bots", "services"}`.
pub(crate) fn create(ctx: &Ctx) -> Result<Response, Error> {
    let settings = KeySettings::read(&body(ctx.req)?)?;
    settings.check_known(None, &|t, id| known(ctx, t, id))?;
    let (key, secret) = Keys::new(ctx.kv).create(settings, ctx.now)?;
    Ok(json(201, &with_secret(key.view(), secret)))
}

/// `GET /api/keys/{keyId}`.
pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let key = Keys::new(ctx.kv).get(ctx.params.get("keyId"))?;
    Ok(json(200, &key.view()))
}

/// `PATCH /api/keys/{keyId}`: any of name, role, bots, services.
pub(crate) fn change(ctx: &Ctx) -> Result<Response, Error> {
    let change = body(ctx.req)?;
    let key = Keys::new(ctx.kv).change(ctx.params.get("keyId"), ctx.now, |now| {
        let new = now.changed(&change)?;
        new.check_known(Some(now), &|t, id| known(ctx, t, id))?;
        Ok(new)
    })?;
    Ok(json(200, &key.view()))
}

/// `DELETE /api/keys/{keyId}`: stops working at once, on every instance.
pub(crate) fn revoke(ctx: &Ctx) -> Result<Response, Error> {
    Keys::new(ctx.kv).revoke(ctx.params.get("keyId"))?;
    Ok(Response::new(204, ()))
}

/// `POST /api/keys/{keyId}/rotate`: a new key; the old one stops at once.
pub(crate) fn rotate(ctx: &Ctx) -> Result<Response, Error> {
    let (key, secret) = Keys::new(ctx.kv).rotate(ctx.params.get("keyId"), ctx.now)?;
    Ok(json(200, &with_secret(key.view(), secret)))
}
