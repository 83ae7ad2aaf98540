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
