//! `/api/bots/{botId}/fields/{key}`: custom field definitions ("Bot Settings"), which type
//! the values updateDialog writes.

use funnelhooks_dialog::DialogError;
use funnelhooks_dialog::bots::{FieldDef, check_field_key, field_def};
use funnelhooks_spin::{ApiError, json};
use spin_sdk::http::Response;

use crate::{Call, body};

fn view(key: &str, def: &FieldDef) -> serde_json::Value {
    serde_json::json!({"key": key, "type": def.kind, "description": def.description})
}

pub(crate) fn list(call: &Call, bot: &str) -> Result<Response, ApiError> {
    let bot = call.repo.bot(bot)?;
    let items: Vec<_> = bot.fields.iter().map(|(k, d)| view(k, d)).collect();
    Ok(json(200, &serde_json::json!({ "items": items })))
}

pub(crate) fn put(call: &Call, bot: &str, key: &str) -> Result<Response, ApiError> {
    check_field_key(key)?;
    let def = field_def(&body(call.req)?)?;
    let created = call.repo.put_field(bot, key, def.clone(), call.now)?;
    Ok(json(if created { 201 } else { 200 }, &view(key, &def)))
}

pub(crate) fn read(call: &Call, bot: &str, key: &str) -> Result<Response, ApiError> {
    let bot = call.repo.bot(bot)?;
    let def = bot.fields.get(key).ok_or_else(|| {
        DialogError::not_found(
            "unknown_field",
            "this bot has no custom field with this key",
        )
    })?;
    Ok(json(200, &view(key, def)))
}

pub(crate) fn delete(call: &Call, bot: &str, key: &str) -> Result<Response, ApiError> {
    call.repo.delete_field(bot, key, call.now)?;
    Ok(Response::new(204, ()))
}
