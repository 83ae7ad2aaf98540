//! The plain-Rust core of funnelhooks' delivery engine, shared by send-webhook steps and call
//! hooks: a step's webhook config ([`config`]), building the request ([`request`], with the
//! BotHelp-style [`profile`]), where a webhook may go ([`target`]), how it is signed
//! ([`signing`]), when a failed attempt is tried again ([`retry`]), and the engine that sends,
//! retries, keeps the outbox and the log ([`engine`], [`log`]). No `spin-sdk` here: the
//! components supply the sender.

pub mod config;
pub mod engine;
pub mod error;
pub mod log;
pub mod profile;
pub mod request;
pub mod retry;
pub mod signing;
pub mod target;

pub use error::DeliveryError;
pub use retry::{Outcome, SCHEDULE, Verdict, verdict};
pub use signing::SigningSecret;
pub use target::{TargetPolicy, check_target};
