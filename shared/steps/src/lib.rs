//! Send-webhook steps, as plain Rust: the step's webhook config, read once into typed form and
//! stored in it ([`config`]), the BotHelp-style subscriber profile ([`profile`]), building the
//! request a step sends for a dialog ([`request`]), and the sample dialog test sends and
//! previews use when no real one is named ([`sample`]). Sending is the delivery engine's.

pub mod config;
pub mod profile;
pub mod request;
pub mod sample;

pub use config::{Body, Method, WebhookConfig, step_input};
pub use request::{Prepared, prepare};

/// A send-webhook step as stored, its config parsed.
pub type WebhookStep = funnelhooks_dialogs::bots::Step<WebhookConfig>;

/// The signing secret a step's webhook has now, if the step exists and signs: read at each
/// attempt of its deliveries, so none of them stores a copy.
pub fn signing_secret<K: funnelhooks_store::Kv>(
    repo: &funnelhooks_dialogs::Repo<'_, K>,
    bot_id: &str,
    step_id: &str,
) -> Result<Option<funnelhooks_delivery::SigningSecret>, funnelhooks_core::Error> {
    // Read as plain JSON: a typed reader for this one member would cost kilobytes.
    let step = repo.step_json(bot_id, step_id)?;
    Ok(step
        .as_ref()
        .and_then(|s| s["webhook"]["signingSecret"].as_str())
        .and_then(|text| funnelhooks_delivery::SigningSecret::parse(text).ok()))
}
