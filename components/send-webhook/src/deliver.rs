//! Delivering a send-webhook step for a dialog: now (`POST /api/bots/{botId}/dialogs/{chatId}/send-webhook`),
//! as a test (`POST /api/bots/{botId}/steps/{stepId}/test-send`), and when a postback moves a
//! dialog into the step (`POST /internal/step-reached`, chained from update-dialog).

use funnelhooks_delivery::config::WebhookConfig;
use funnelhooks_delivery::engine::NewDelivery;
use funnelhooks_delivery::log::{Delivery, Source};
use funnelhooks_delivery::request::prepare;
use funnelhooks_dialog::bots::{Bot, Step};
use funnelhooks_dialog::input::JsonBody;
use funnelhooks_dialog::{Dialog, DialogError, FieldValue, Timestamp};
use funnelhooks_spin::request::{body, chat_id};
use funnelhooks_spin::{ApiError, json};
use serde_json::Value as Json;
use spin_sdk::http::Response;

use crate::Call;

/// How much of a delivery's sending happens in this request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempts {
    /// The first attempt, and the retries due within seconds.
    WithRetries,
    /// The first attempt; retries wait in the outbox.
    OneAttempt,
    /// Nothing: the retry sweep sends it, within its time budget.
    Queue,
}

/// Builds and sends the step's webhook for the dialog; returns the logged delivery. Once the
/// delivery is in the log, the `handoff` of the step entry it answers is done.
pub(crate) fn deliver(
    call: &Call,
    bot: &Bot,
    dialog: &Dialog,
    step: &Step,
    test: bool,
    send: Attempts,
    handoff: Option<u64>,
) -> Result<Delivery, ApiError> {
    let log = |new: NewDelivery, skipped: Option<String>| -> Result<Delivery, ApiError> {
        let created = call.engine.create(new, skipped)?;
        if let Some(slot) = handoff {
            call.repo.handed_over(slot)?;
        }
        Ok(created)
    };
    let config = match (&step.webhook, step.kind.as_str()) {
        (Some(config), "send-webhook") => WebhookConfig::from_json(config)?,
        _ => {
            return Err(DialogError::unprocessable(
                "not_a_webhook_step",
                Some("stepId"),
                "this step is not a send-webhook step with a webhook config",
            )
            .into());
        }
    };
    let source = Source {
        bot_id: Some(bot.id.clone()),
        chat_id: Some(dialog.chat_id),
        step_id: Some(step.id.clone()),
        ..Source::default()
    };
    let mut new = NewDelivery {
        test,
        // Queued: the sweep that found the entry sends it, within its own time budget.
        first_attempt_after: (send == Attempts::Queue).then_some(std::time::Duration::ZERO),
        ..NewDelivery::with_options(source, &config.options)
    };
    if test {
        new.max_attempts = 1;
    }
    if step.webhook_gone && !test {
        let reason = "the receiver answered 410 Gone before; save the step again to resume";
        return log(new, Some(reason.into()));
    }
    let prepared = match prepare(&config, dialog, call.policy) {
        Ok(p) => p,
        Err(e) => return log(new, Some(e.to_string())),
    };
    new.request = Some(prepared.request);
    new.missing = prepared.missing;
    if config.skip_if_missing && !new.missing.is_empty() {
        let reason = format!("no value for {}", new.missing.join(", "));
        return log(new, Some(reason));
    }
    let created = log(new, None)?;
    let done = match send {
        Attempts::WithRetries => call.engine.run(created, true)?,
        Attempts::OneAttempt => call.engine.run(created, false)?,
        Attempts::Queue => return Ok(created),
    };
    if done.gone && !test {
        call.repo.mark_webhook_gone(&bot.id, &step.id)?;
    }
    Ok(done)
}

fn step_id(body: &JsonBody) -> Result<String, ApiError> {
    Ok(body.required_text("stepId", 64)?.trim().to_string())
}

/// `POST /api/bots/{botId}/dialogs/{chatId}/send-webhook` `{"stepId"}`.
pub(crate) fn send_now(call: &Call, bot: &str, chat: &str) -> Result<Response, ApiError> {
    let chat = chat_id(chat)?;
    let body = body(call.req)?;
    body.only(&["stepId"])?;
    let step = step_id(&body)?;
    let bot = call.repo.bot(bot)?;
    let step = call.repo.step(&bot, &step)?;
    let dialog = call.repo.dialog(&bot, chat)?;
    let done = deliver(
        call,
        &bot,
        &dialog,
        &step,
        false,
        Attempts::WithRetries,
        None,
    )?;
    Ok(json(200, &done.view()))
}

/// `POST /internal/step-reached` `{"botId", "chatId", "stepId", "handoff"}`: a postback
/// moved the dialog into a send-webhook step. One attempt now; retries go to the outbox.
pub(crate) fn step_reached(call: &Call) -> Result<Response, ApiError> {
    let body = body(call.req)?;
    let bot = body.required_text("botId", 64)?;
    let chat = chat_id(&body.required_text("chatId", 24)?)?;
    let step = step_id(&body)?;
    let handoff = body.get("handoff").and_then(Json::as_u64);
    let done = deliver_entry(call, (&bot, chat, &step), Attempts::OneAttempt, handoff)?;
    Ok(json(200, &done.view()))
}

/// Delivers the entry of chat `chat` of bot `bot` into step `step`: now, from the chain, or
/// queued, by the sweep finding its handoff.
pub(crate) fn deliver_entry(
    call: &Call,
    (bot, chat, step): (&str, i64, &str),
    send: Attempts,
    handoff: Option<u64>,
) -> Result<Delivery, ApiError> {
    let bot = call.repo.bot(bot)?;
    let step = call.repo.step(&bot, step)?;
    let dialog = call.repo.dialog(&bot, chat)?;
    deliver(call, &bot, &dialog, &step, false, send, handoff)
}

/// `POST /api/bots/{botId}/steps/{stepId}/test-send` with `{"chatId"}` (a real dialog) or
/// `{"sample": {...}}` (or nothing: the default sample). One attempt, marked as a test.
pub(crate) fn test_send(call: &Call, bot: &str, step: &str) -> Result<Response, ApiError> {
    let body = body(call.req)?;
    body.only(&["chatId", "sample"])?;
    let bot = call.repo.bot(bot)?;
    let step = call.repo.step(&bot, step)?;
    let dialog = dialog_or_sample(call, &bot, &body)?;
    let done = deliver(call, &bot, &dialog, &step, true, Attempts::OneAttempt, None)?;
    Ok(json(200, &done.view()))
}

/// The dialog named by `chatId`, else a sample dialog (from `sample`, over defaults).
pub(crate) fn dialog_or_sample(
    call: &Call,
    bot: &Bot,
    body: &JsonBody,
) -> Result<Dialog, ApiError> {
    let chat = match body.get("chatId") {
        None | Some(Json::Null) => return sample(&bot.id, body.object("sample")?),
        Some(Json::String(s)) => s.clone(),
        // A number, or anything else, which the parser then refuses by name.
        Some(other) => other.to_string(),
    };
    Ok(call.repo.dialog(bot, chat_id(&chat)?)?)
}

/// A sample dialog: a started chat with a name, a username, a click id and a creation time,
/// with `username`, `name`, `chatId`, `fields` and `tracker` taken from `sample` when given.
pub(crate) fn sample(
    bot_id: &str,
    overrides: Option<&serde_json::Map<String, Json>>,
) -> Result<Dialog, ApiError> {
    let now = funnelhooks_spin::now();
    let mut d = Dialog::pending(bot_id, 123_456_789, now);
    d.username = Some("sample_user".into());
    d.name = Some("Sample User".into());
    d.started = true;
    d.created_at = Some(Timestamp(now.0 - 3_600_000));
    d.tracker.insert("clickid".into(), "sample-click-id".into());
    let bad = |member: &str, what: &str| {
        ApiError::new(422, "bad_sample", format!("expected {what}"))
            .with_field(&format!("sample.{member}"))
    };
    for (key, value) in overrides.into_iter().flatten() {
        match (key.as_str(), value) {
            ("username", Json::String(s)) => d.username = Some(s.clone()),
            ("name", Json::String(s)) => d.name = Some(s.clone()),
            ("chatId", v) => {
                d.chat_id = v.as_i64().ok_or_else(|| bad("chatId", "a whole number"))?
            }
            ("fields", Json::Object(m)) => {
                for (k, v) in m {
                    let v = match v {
                        Json::Bool(b) => FieldValue::Bool(*b),
                        Json::Number(n) => FieldValue::Number(n.clone()),
                        Json::String(s) => FieldValue::Text(s.clone()),
                        _ => return Err(bad("fields", "text, numbers and booleans")),
                    };
                    d.fields.insert(k.clone(), v);
                }
            }
            ("tracker", Json::Object(m)) => {
                for (k, v) in m {
                    let v = v.as_str().ok_or_else(|| bad("tracker", "text values"))?;
                    d.tracker.insert(k.clone(), v.to_string());
                }
            }
            (other, _) => {
                return Err(bad(other, "username, name, chatId, fields or tracker"));
            }
        }
    }
    Ok(d)
}
