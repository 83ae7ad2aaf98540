//! `/api/bots/{botId}/fields/{key}`: custom field definitions ("Bot Settings"), which type
//! the values updateDialog writes.

use funnelhooks_core::Error;
use funnelhooks_dialogs::bots::{FieldDef, check_field_key, field_def};
use funnelhooks_dialogs::repo::field_missing;
use funnelhooks_spin::json;
use funnelhooks_spin::request::body;
use spin_sdk::http::Response;

use crate::Ctx;

fn view(key: &str, def: &FieldDef) -> serde_json::Value {
    serde_json::json!({"key": key, "type": def.kind, "description": def.description})
}

pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let items: Vec<_> = bot.fields.iter().map(|(k, d)| view(k, d)).collect();
    Ok(json(200, &serde_json::json!({ "items": items })))
}

pub(crate) fn put(ctx: &Ctx) -> Result<Response, Error> {
    let key = ctx.params.get("key");
    check_field_key(key)?;
    let def = field_def(&body(ctx.req)?)?;
    let created = ctx
        .repo
        .put_field(ctx.params.get("botId"), key, def.clone(), ctx.now)?;
    Ok(json(if created { 201 } else { 200 }, &view(key, &def)))
}

pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let key = ctx.params.get("key");
    let def = bot.fields.get(key).ok_or_else(field_missing)?;
    Ok(json(200, &view(key, def)))
}

pub(crate) fn delete(ctx: &Ctx) -> Result<Response, Error> {
    ctx.repo
        .delete_field(ctx.params.get("botId"), ctx.params.get("key"), ctx.now)?;
    Ok(Response::new(204, ()))
}
