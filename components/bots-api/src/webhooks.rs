//! `/api/bots/{botId}/webhooks`: postback links ("Add Webhook"). Creating one returns the URL
//! to paste into a tracker, built from the `public_base_url` variable or, when that is empty,
//! from the origin this request came to.

use funnelhooks_dialog::bots::PostbackLink;
use funnelhooks_spin::{ApiError, json};
use spin_sdk::http::Response;

use crate::Call;

fn base_url(call: &Call) -> String {
    funnelhooks_spin::request::public_base(call.req)
}

fn view(link: &PostbackLink, base: &str) -> serde_json::Value {
    serde_json::json!({
        "id": link.id,
        "botId": link.bot_id,
        "url": link.url(base),
        "createdAt": link.created_at,
    })
}

pub(crate) fn create(call: &Call, bot: &str) -> Result<Response, ApiError> {
    let link = call.repo.create_link(bot, call.now)?;
    Ok(json(201, &view(&link, &base_url(call))))
}

pub(crate) fn list(call: &Call, bot: &str) -> Result<Response, ApiError> {
    let bot = call.repo.bot(bot)?;
    let base = base_url(call);
    let items: Vec<_> = call
        .repo
        .links(&bot)?
        .iter()
        .map(|l| view(l, &base))
        .collect();
    Ok(json(200, &serde_json::json!({ "items": items })))
}

pub(crate) fn revoke(call: &Call, bot: &str, link: &str) -> Result<Response, ApiError> {
    call.repo.revoke_link(bot, link, call.now)?;
    Ok(Response::new(204, ()))
}
