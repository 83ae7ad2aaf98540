//! `/api/bots` and `/api/bots/{botId}`: create, list, read, rename, delete.

use funnelhooks_dialog::bots::bot_name;
use funnelhooks_spin::{ApiError, json};
use spin_sdk::http::Response;

use crate::{Call, body, page_json, paging};

pub(crate) fn create(call: &Call) -> Result<Response, ApiError> {
    let name = bot_name(&body(call.req)?)?;
    let bot = call.repo.create_bot(name, call.now)?;
    Ok(json(201, &bot.view()))
}

pub(crate) fn list(call: &Call) -> Result<Response, ApiError> {
    let (cursor, limit) = paging(call.req)?;
    let page = call.repo.bots(cursor, limit)?;
    let items = page.items.iter().map(|b| b.view()).collect();
    Ok(json(200, &page_json(items, page.next)))
}

pub(crate) fn read(call: &Call, bot: &str) -> Result<Response, ApiError> {
    Ok(json(200, &call.repo.bot(bot)?.view()))
}

pub(crate) fn rename(call: &Call, bot: &str) -> Result<Response, ApiError> {
    let name = bot_name(&body(call.req)?)?;
    call.repo.modify_bot(bot, call.now, |b| {
        b.name.clone_from(&name);
        Ok(())
    })?;
    read(call, bot)
}

pub(crate) fn delete(call: &Call, bot: &str) -> Result<Response, ApiError> {
    call.repo.delete_bot(bot)?;
    Ok(Response::new(204, ()))
}
