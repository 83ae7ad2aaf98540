//! `/api/bots/{botId}/webhooks`: postback links ("Add Webhook"). Creating one returns the URL
//! to paste into a tracker, built from the `public_base_url` variable (or, on this machine,
//! from the local origin the request came to; see `public_base`).

use funnelhooks_core::Error;
use funnelhooks_dialogs::bots::PostbackLink;
use funnelhooks_spin::json;
use funnelhooks_spin::request::{NO_PUBLIC_BASE, public_base};
use serde_json::Value as Json;
use spin_sdk::http::Response;

use crate::Ctx;

/// A link as the API shows it; a path-only URL says why; a viewer's key sees no credential.
fn view(link: &PostbackLink, base: &str) -> Json {
    let mut v = link.view(base);
    if base.is_empty() {
        v["urlWarning"] = Json::from(NO_PUBLIC_BASE);
    }
    funnelhooks_spin::auth::link_for_caller(v)
}

pub(crate) fn create(ctx: &Ctx) -> Result<Response, Error> {
    let link = ctx.repo.create_link(ctx.params.get("botId"), ctx.now)?;
    Ok(json(201, &view(&link, &public_base(ctx.req))))
}

/// `PUT /api/bots/{botId}/webhooks/{postbackId}`: imports a Chatterfy link's id, so its
/// trackers keep working with only the origin changed. `201` when new, `200` when the bot had
/// it already, `409 postback_id_in_use` when another bot has it.
pub(crate) fn import(ctx: &Ctx) -> Result<Response, Error> {
    let (link, created) = ctx.repo.import_link(
        ctx.params.get("botId"),
        ctx.params.get("postbackId"),
        ctx.now,
    )?;
    let status = if created { 201 } else { 200 };
    Ok(json(status, &view(&link, &public_base(ctx.req))))
}

pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let base = public_base(ctx.req);
    let items: Vec<_> = ctx
        .repo
        .links(&bot)?
        .iter()
        .map(|l| view(l, &base))
        .collect();
    Ok(json(200, &serde_json::json!({ "items": items })))
}

pub(crate) fn revoke(ctx: &Ctx) -> Result<Response, Error> {
    ctx.repo.revoke_link(
        ctx.params.get("botId"),
        ctx.params.get("postbackId"),
        ctx.now,
    )?;
    Ok(Response::new(204, ()))
}
