//! `/api/bots/{botId}/dialogs/{chatId}`: the bot engine starts or refreshes a dialog (data a
//! postback pre-assigned is merged in), reads, erases and lists dialogs.

use funnelhooks_dialog::Start;
use funnelhooks_spin::request::chat_id;
use funnelhooks_spin::{ApiError, json};
use spin_sdk::http::Response;

use crate::{Call, body, page_json, paging};

fn view(d: &funnelhooks_dialog::Dialog) -> serde_json::Value {
    serde_json::to_value(d).unwrap_or_default()
}

pub(crate) fn start(call: &Call, bot: &str, chat: &str) -> Result<Response, ApiError> {
    let chat = chat_id(chat)?;
    let start = Start::from_body(&body(call.req)?)?;
    let (dialog, created) = call.repo.start_dialog(bot, chat, &start, call.now)?;
    Ok(json(if created { 201 } else { 200 }, &view(&dialog)))
}

pub(crate) fn read(call: &Call, bot: &str, chat: &str) -> Result<Response, ApiError> {
    let chat = chat_id(chat)?;
    let bot = call.repo.bot(bot)?;
    Ok(json(200, &view(&call.repo.dialog(&bot, chat)?)))
}

pub(crate) fn erase(call: &Call, bot: &str, chat: &str) -> Result<Response, ApiError> {
    let chat = chat_id(chat)?;
    let bot = call.repo.bot(bot)?;
    call.repo.erase_dialog(&bot, chat)?;
    Ok(Response::new(204, ()))
}

pub(crate) fn list(call: &Call, bot: &str) -> Result<Response, ApiError> {
    let (cursor, limit) = paging(call.req)?;
    let bot = call.repo.bot(bot)?;
    let page = call.repo.dialogs(&bot, cursor, limit)?;
    Ok(json(
        200,
        &page_json(page.items.iter().map(view).collect(), page.next),
    ))
}
