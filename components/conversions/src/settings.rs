//! `/api/bots/{botId}/auto-actions` and `/api/bots/{botId}/conversion-links`: a bot's Auto
//! Actions (what conversions by click id do, how a `/start` payload becomes tracker fields),
//! a preview of a payload under a rule, and the secret conversion URLs trackers call.

use funnelhooks_core::Error;
use funnelhooks_core::json::Members;
use funnelhooks_dialogs::auto::{AutoActions, StartRule, read_start_payload};
use funnelhooks_dialogs::bots::PostbackLink;
use funnelhooks_dialogs::conversions::WAIT_MS;
use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_dialogs::limits::valid_key;
use funnelhooks_spin::json;
use funnelhooks_spin::request::{NO_PUBLIC_BASE, body, public_base};
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Ctx;

/// The settings as the API shows them, with how many conversions wait for a dialog.
fn view(auto: &AutoActions, waiting: i64, left_to_index: Option<u64>) -> Json {
    let mut v = serde_json::to_value(auto).unwrap_or_default();
    v["waiting"] = waiting.into();
    v["waitHours"] = (WAIT_MS / 3_600_000).into();
    if let Some(left) = left_to_index {
        v["dialogsLeftToIndex"] = left.into();
    }
    v
}

pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let auto = bot.auto().unwrap_or_default();
    let waiting = ctx.repo.waiting_conversions(&bot)?;
    let mut v = view(&auto, waiting, None);
    v["setUp"] = bot.auto_actions.is_some().into();
    Ok(json(200, &v))
}

/// Saves the settings (every member optional: defaults for what is left out), then indexes
/// the click ids of dialogs that had them before, a batch at a time, applying conversions
/// that waited for them (their step webhooks are delivered after the answer).
pub(crate) fn put(ctx: &Ctx) -> Result<(Response, Vec<StepReached>), Error> {
    let body = body(ctx.req)?;
    let (auto, left, reached) =
        ctx.repo
            .put_auto_actions(ctx.params.get("botId"), &body, ctx.now)?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let waiting = ctx.repo.waiting_conversions(&bot)?;
    let mut v = view(&auto, waiting, Some(left));
    v["setUp"] = true.into();
    Ok((json(200, &v), reached))
}

/// `{"payload", "startPayload"?}`: the tracker fields a payload gives under the bot's rule,
/// or the rule given (the console's form before it is saved).
pub(crate) fn preview(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let body = body(ctx.req)?;
    let m = Members::of(&body, &["payload", "startPayload", "clickIdField"])?;
    let payload = m.required("payload", 1_000)?;
    let mut auto = bot.auto().unwrap_or_default();
    if let Some(rule) = m.get("startPayload") {
        auto.start_payload = StartRule::from_json(rule).map_err(|e| e.under("startPayload"))?;
    }
    if let Some(field) = m.string("clickIdField")? {
        if !valid_key(field.trim()) {
            return Err(Error::invalid(
                "bad_key",
                "clickIdField",
                "a tracker field key is 1 to 64 of A-Z a-z 0-9 _ -",
            ));
        }
        auto.click_id_field = field.trim().to_string();
    }
    let stored = serde_json::to_value(&auto).unwrap_or_default();
    let read = read_start_payload(&payload, Some(&stored), "payload")?;
    Ok(json(200, &read))
}

fn link_view(link: &PostbackLink, base: &str) -> Json {
    let mut v = link.view_at(link.conversion_url(base));
    if base.is_empty() {
        v["urlWarning"] = Json::from(NO_PUBLIC_BASE);
    }
    funnelhooks_spin::auth::link_for_caller(v)
}

pub(crate) fn create_link(ctx: &Ctx) -> Result<Response, Error> {
    let link = ctx
        .repo
        .create_conversion_link(ctx.params.get("botId"), ctx.now)?;
    Ok(json(201, &link_view(&link, &public_base(ctx.req))))
}

pub(crate) fn list_links(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let base = public_base(ctx.req);
    let items: Vec<Json> = ctx
        .repo
        .conversion_links(&bot)?
        .iter()
        .map(|l| link_view(l, &base))
        .collect();
    Ok(json(200, &json!({ "items": items })))
}

pub(crate) fn revoke_link(ctx: &Ctx) -> Result<Response, Error> {
    ctx.repo.revoke_conversion_link(
        ctx.params.get("botId"),
        ctx.params.get("conversionId"),
        ctx.now,
    )?;
    Ok(Response::new(204, ()))
}
