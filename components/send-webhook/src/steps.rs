//! `/api/bots/{botId}/steps/{stepId}`: the steps postbacks move dialogs to. A send-webhook
//! step's `webhook` config is validated when it is saved (a template error is a 422 with its
//! position) and shown without its signing secret.

use funnelhooks_delivery::check_target;
use funnelhooks_delivery::config::WebhookConfig;
use funnelhooks_dialog::bots::{Step, new_id, step_input};
use funnelhooks_spin::request::body;
use funnelhooks_spin::{ApiError, json};
use spin_sdk::http::Response;

use crate::Call;

/// A step as the API shows it: the webhook config with `signed` instead of its secret.
fn view(step: &Step) -> serde_json::Value {
    let mut v = serde_json::to_value(step).unwrap_or_default();
    if let Some(config) = &step.webhook {
        v["webhook"] = match WebhookConfig::from_json(config) {
            Ok(c) => c.to_view_json(),
            // Saved before configs were validated: show it, minus any secret.
            Err(_) => {
                let mut raw = config.clone();
                if let Some(m) = raw.as_object_mut() {
                    m.remove("signingSecret");
                }
                raw
            }
        };
    }
    v
}

pub(crate) fn list(call: &Call, bot: &str) -> Result<Response, ApiError> {
    let bot = call.repo.bot(bot)?;
    let steps: Vec<_> = call.repo.steps(&bot)?.iter().map(view).collect();
    Ok(json(200, &serde_json::json!({ "items": steps })))
}

/// `POST`: a new step with a random id.
pub(crate) fn create(call: &Call, bot: &str) -> Result<Response, ApiError> {
    put_with_id(call, bot, &new_id())
}

pub(crate) fn put(call: &Call, bot: &str, step: &str) -> Result<Response, ApiError> {
    put_with_id(call, bot, step)
}

fn put_with_id(call: &Call, bot: &str, step: &str) -> Result<Response, ApiError> {
    let mut input = step_input(&body(call.req)?)?;
    if input.kind == "send-webhook" && input.webhook.is_none() {
        return Err(ApiError::new(
            422,
            "missing_field",
            "a send-webhook step needs its webhook config",
        )
        .with_field("webhook"));
    }
    if let Some(config) = &input.webhook {
        let config = WebhookConfig::from_json(config)?;
        // The host is literal (a variable there is refused), so a sample render tells
        // whether the URL parses and may be delivered to.
        let sample = crate::deliver::sample(bot, None)?;
        let url = config
            .url
            .render(&sample)
            .map(|r| r.output)
            .unwrap_or_default();
        check_target(&url, call.policy)?;
        // Stored in its normal form, secret included; saving again also clears "gone".
        input.webhook = Some(config.to_stored_json());
    }
    let (step, created) = call.repo.put_step(bot, step, input, call.now)?;
    Ok(json(if created { 201 } else { 200 }, &view(&step)))
}

pub(crate) fn read(call: &Call, bot: &str, step: &str) -> Result<Response, ApiError> {
    let bot = call.repo.bot(bot)?;
    let step = call.repo.step(&bot, step)?;
    Ok(json(200, &view(&step)))
}

pub(crate) fn delete(call: &Call, bot: &str, step: &str) -> Result<Response, ApiError> {
    call.repo.delete_step(bot, step, call.now)?;
    Ok(Response::new(204, ()))
}
