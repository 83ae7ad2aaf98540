//! `/api/bots/{botId}/dialogs/{chatId}`: the bot engine starts or refreshes a dialog (data a
//! postback pre-assigned is merged in), reads, erases and lists dialogs.

use funnelhooks_core::Error;
use funnelhooks_dialogs::{Dialog, Start};
use funnelhooks_spin::json;
use funnelhooks_spin::request::{body, chat_id, paging};
use spin_sdk::http::Response;

use crate::Ctx;

fn view(d: &Dialog) -> serde_json::Value {
    serde_json::to_value(d.view()).unwrap_or_default()
}

pub(crate) fn start(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let start = Start::from_json(&body(ctx.req)?)?;
    let (dialog, created) =
        ctx.repo
            .start_dialog(ctx.params.get("botId"), chat, &start, ctx.now)?;
    Ok(json(if created { 201 } else { 200 }, &view(&dialog)))
}

pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    Ok(json(200, &view(&ctx.repo.dialog(&bot, chat)?)))
}

pub(crate) fn erase(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    ctx.repo.erase_dialog(&bot, chat)?;
    Ok(Response::new(204, ()))
}

pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let page = paging(ctx.req)?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let dialogs = ctx.repo.dialogs(&bot, page.after(), page.limit)?;
    Ok(json(200, &dialogs.to_json(view)))
}
