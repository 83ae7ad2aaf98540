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

/// Starts or refreshes the dialog. With a `startPayload`, the answer says what it gave
/// (`startPayload`); conversions that waited for the dialog's click id are applied by the
/// conversions component after the answer (`conversionsWaiting: true`).
pub(crate) fn start(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let start = Start::from_json(&body(ctx.req)?)?;
    let started = ctx
        .repo
        .start_dialog_with(ctx.params.get("botId"), chat, &start, ctx.now)?;
    let mut v = view(&started.dialog);
    if let Some(read) = &started.payload {
        v["startPayload"] = serde_json::to_value(read).unwrap_or_default();
    }
    if started.click_claimed.is_some() {
        v["conversionsWaiting"] = true.into();
    }
    *ctx.after.borrow_mut() = started.click_claimed;
    Ok(json(if started.created { 201 } else { 200 }, &v))
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

/// `GET /api/bots/{botId}/refused-postbacks`: the newest postbacks the bot's links refused,
/// with why and what was sent, newest first.
pub(crate) fn refused(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let page = funnelhooks_core::Paging::from_query(ctx.req.query())?;
    let (items, next) = ctx.repo.refused_postbacks(&bot, page.cursor, page.limit)?;
    let next = next.map_or_else(|| "null".to_string(), |n| format!(r#""{n}""#));
    Ok(funnelhooks_spin::json_text(
        200,
        format!(r#"{{"items":[{}],"nextCursor":{next}}}"#, items.join(",")),
    ))
}
