//! `/api/bots/{botId}/dialogs/{chatId}`: the bot engine starts or refreshes a dialog (data a
//! postback pre-assigned is merged in), reads, erases and lists dialogs.

use funnelhooks_core::Error;
use funnelhooks_core::json::Members;
use funnelhooks_dialogs::{Dialog, Start, Status};
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
    ctx.after.borrow_mut().claimed = started.click_claimed;
    Ok(json(if started.created { 201 } else { 200 }, &v))
}

pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    Ok(json(200, &view(&ctx.repo.dialog(&bot, chat)?)))
}

/// `POST .../dialogs/{chatId}/move` `{"stepId", "status"}` (either or both): the dialog moves
/// as a postback would move it. Entering a send-webhook step delivers its webhook after the
/// answer, as after a postback; the answer names that delivery (`deliveryId`), which is in
/// the log moments later.
pub(crate) fn move_to(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let body = body(ctx.req)?;
    let m = Members::of(&body, &["stepId", "status"])?;
    let step = m.text("stepId")?.map(str::trim);
    let status = m
        .text("status")?
        .map(|s| Status::parse_field(s, "status"))
        .transpose()?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let step = match step {
        None => None,
        Some(id) => Some(ctx.repo.step_ref(&bot, id)?.ok_or_else(|| {
            let id = funnelhooks_core::text::cut_at(id, 64);
            Error::not_found("unknown_step", format!("this bot has no step {id:?}")).at("stepId")
        })?),
    };
    let moved = ctx.repo.move_dialog(&bot, chat, step, status, ctx.now)?;
    let mut v = moved.dialog.as_ref().map(view).unwrap_or_default();
    v["deliveryId"] = moved.step_entry.as_ref().map(|r| r.entry.id.clone()).into();
    ctx.after.borrow_mut().reached = moved.step_entry;
    Ok(json(200, &v))
}

pub(crate) fn erase(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    ctx.repo.erase_dialog(&bot, chat)?;
    Ok(Response::new(204, ()))
}

/// A page of the bot's dialogs, oldest first; with `?q=`, those that match it (a chat id,
/// a username, part of a name, a click id: see `Dialog::matches`).
pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let page = paging(ctx.req)?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let dialogs = match funnelhooks_spin::request::query_param(ctx.req, "q") {
        Some(q) if !q.trim().is_empty() => {
            if q.chars().count() > 200 {
                return Err(Error::malformed(
                    "bad_query",
                    "q",
                    "search for at most 200 characters",
                ));
            }
            ctx.repo
                .search_dialogs(&bot, page.after(), page.limit, &q)?
        }
        _ => ctx.repo.dialogs(&bot, page.after(), page.limit)?,
    };
    // A list shows each dialog without its history: that is the dialog's own page.
    Ok(json(
        200,
        &dialogs.to_json(|d| {
            let mut v = view(d);
            if let Some(o) = v.as_object_mut() {
                o.remove("history");
            }
            v
        }),
    ))
}

/// `GET /api/bots/{botId}/refused-postbacks`: the newest postbacks the bot's links refused,
/// with why and what was sent, newest first.
pub(crate) fn refused(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let page = funnelhooks_core::Paging::from_query(ctx.req.query())?;
    let (items, next) = ctx.repo.refused_postbacks(&bot, page.cursor, page.limit)?;
    Ok(funnelhooks_spin::json_text(
        200,
        funnelhooks_core::refused::page_text(&items, next),
    ))
}
