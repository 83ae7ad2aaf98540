//! `/api/bots/{botId}/steps/{stepId}`: the steps postbacks move dialogs to. A send-webhook
//! step's `webhook` config is checked when it is saved (a template error is a 422 with its
//! position) and shown without its signing secret.

use funnelhooks_core::{Error, Kind, new_id};
use funnelhooks_delivery::check_target;
use funnelhooks_delivery::state::{DeliveryState, StepOrHook};
use funnelhooks_spin::json;
use funnelhooks_spin::request::body;
use funnelhooks_steps::sample::sample;
use funnelhooks_steps::{WebhookConfig, WebhookStep, step_input};
use spin_sdk::http::Response;

use crate::Ctx;

/// The step `step_id` of bot `bot_id` as a sender of deliveries.
fn sender(bot_id: &str, step_id: &str) -> StepOrHook {
    StepOrHook::Step {
        bot_id: bot_id.to_string(),
        step_id: step_id.to_string(),
    }
}

/// A step as the API shows it: the webhook config with `signed` instead of its secret, and
/// where it stands as a sender (`deliveryState`: active, failing, paused, disabled).
fn view(step: &WebhookStep, state: &DeliveryState) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": step.id,
        "key": step.key,
        "kind": step.kind.as_str(),
        "webhookGone": step.webhook_gone,
        "deliveryState": state.view(),
        "createdAt": step.created_at,
        "updatedAt": step.updated_at,
    });
    if let Some(config) = &step.webhook {
        v["webhook"] = config.to_view_json();
    }
    v
}

pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let mut steps = Vec::new();
    for step in ctx.repo.steps::<WebhookConfig>(&bot)? {
        let state = ctx.engine.state_of(&sender(&bot.id, &step.id))?;
        steps.push(view(&step, &state));
    }
    Ok(json(200, &serde_json::json!({ "items": steps })))
}

/// `POST`: a new step with a random id.
pub(crate) fn create(ctx: &Ctx) -> Result<Response, Error> {
    save(ctx, &new_id())
}

pub(crate) fn put(ctx: &Ctx) -> Result<Response, Error> {
    save(ctx, ctx.params.get("stepId"))
}

fn save(ctx: &Ctx, step: &str) -> Result<Response, Error> {
    let bot = ctx.params.get("botId");
    // A config sent back from a view carries `***` for its secrets: they keep their values.
    let stored = match ctx.repo.bot(bot) {
        Ok(b) => match ctx.repo.step::<WebhookConfig>(&b, step) {
            Ok(s) => s.webhook,
            Err(e) if e.kind == Kind::NotFound => None,
            Err(e) => return Err(e),
        },
        // No such bot: saving answers it.
        Err(e) if e.kind == Kind::NotFound => None,
        Err(e) => return Err(e),
    };
    let input = step_input(&body(ctx.req)?, stored.as_ref())?;
    if let Some(config) = &input.webhook {
        // The host is literal (a variable there is refused), so a sample render tells
        // whether the URL parses and may be delivered to.
        let dialog = sample(bot, ctx.now, None)?;
        let url = config
            .url
            .render(&dialog)
            .map(|r| r.output)
            .unwrap_or_default();
        check_target(&url, ctx.policy).map_err(|e| e.at("webhook.url"))?;
    }
    // Saving again also clears the step's "gone" mark.
    let (step, created) = ctx.repo.put_step(bot, step, input, ctx.now)?;
    let s = sender(bot, &step.id);
    let rate = step.webhook.as_ref().and_then(|w| w.options.rate_limit);
    ctx.engine.set_rate_limit(&s, rate)?;
    let state = ctx.engine.state_of(&s)?;
    Ok(json(if created { 201 } else { 200 }, &view(&step, &state)))
}

pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let step = ctx.repo.step(&bot, ctx.params.get("stepId"))?;
    let state = ctx.engine.state_of(&sender(&bot.id, &step.id))?;
    Ok(json(200, &view(&step, &state)))
}

pub(crate) fn delete(ctx: &Ctx) -> Result<Response, Error> {
    let (bot, step) = (ctx.params.get("botId"), ctx.params.get("stepId"));
    ctx.repo.delete_step(bot, step, ctx.now)?;
    // A step saved again under this id starts afresh.
    ctx.engine.forget_state(&sender(bot, step))?;
    Ok(Response::new(204, ()))
}

/// `POST .../steps/{stepId}/pause` (`pause: true`) or `.../resume`: the step with its new
/// `deliveryState`. Resuming also re-enables a step disabled for failing.
pub(crate) fn pause_or_resume(ctx: &Ctx, pause: bool) -> Result<Response, Error> {
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let step = ctx
        .repo
        .step::<WebhookConfig>(&bot, ctx.params.get("stepId"))?;
    let s = sender(&bot.id, &step.id);
    let state = if pause {
        ctx.engine.pause(&s)?
    } else {
        ctx.engine.resume(&s)?
    };
    Ok(json(200, &view(&step, &state)))
}
