//! `/api/bots/{botId}/steps/{stepId}`: the steps postbacks move dialogs to. A send-webhook
//! step's `webhook` config is stored and returned as given.

use funnelhooks_dialog::bots::{new_id, step_input};
use funnelhooks_spin::{ApiError, json};
use spin_sdk::http::Response;

use crate::{Call, body};

pub(crate) fn list(call: &Call, bot: &str) -> Result<Response, ApiError> {
    let bot = call.repo.bot(bot)?;
    let steps = call.repo.steps(&bot)?;
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
    let input = step_input(&body(call.req)?)?;
    let (step, created) = call.repo.put_step(bot, step, input, call.now)?;
    Ok(json(
        if created { 201 } else { 200 },
        &serde_json::to_value(step).unwrap_or_default(),
    ))
}

pub(crate) fn read(call: &Call, bot: &str, step: &str) -> Result<Response, ApiError> {
    let bot = call.repo.bot(bot)?;
    let step = call.repo.step(&bot, step)?;
    Ok(json(200, &serde_json::to_value(step).unwrap_or_default()))
}

pub(crate) fn delete(call: &Call, bot: &str, step: &str) -> Result<Response, ApiError> {
    call.repo.delete_step(bot, step, call.now)?;
    Ok(Response::new(204, ()))
}
