//! `/api/bots` and `/api/bots/{botId}`: create, list, read, rename, delete.

use funnelhooks_core::{Error, Page};
use funnelhooks_dialogs::bots::bot_name;
use funnelhooks_spin::auth::Scope;
use funnelhooks_spin::json;
use funnelhooks_spin::request::{body, paging};
use spin_sdk::http::Response;

use crate::Ctx;

pub(crate) fn create(ctx: &Ctx) -> Result<Response, Error> {
    let name = bot_name(&body(ctx.req)?)?;
    let bot = ctx.repo.create_bot(name, ctx.now)?;
    Ok(json(201, &bot.view()))
}

pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let page = paging(ctx.req)?;
    // A key scoped to some bots lists those (at most 200: one page), not a filtered index.
    let bots = match funnelhooks_spin::auth::caller().bots {
        Scope::All => ctx.repo.bots(page.after(), page.limit)?,
        Scope::Only(ids) => Page {
            items: funnelhooks_core::error::present(ids.iter().map(|id| ctx.repo.bot(id)))?,
            next: None,
        },
    };
    Ok(json(200, &bots.to_json(|b| b.view())))
}

pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    Ok(json(200, &ctx.repo.bot(ctx.params.get("botId"))?.view()))
}

pub(crate) fn rename(ctx: &Ctx) -> Result<Response, Error> {
    let name = bot_name(&body(ctx.req)?)?;
    ctx.repo.modify_bot(ctx.params.get("botId"), ctx.now, |b| {
        b.name.clone_from(&name);
        Ok(())
    })?;
    read(ctx)
}

pub(crate) fn delete(ctx: &Ctx) -> Result<Response, Error> {
    ctx.repo.delete_bot(ctx.params.get("botId"))?;
    Ok(Response::new(204, ()))
}
