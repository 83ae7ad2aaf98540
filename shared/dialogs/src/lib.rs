//! Bots, postback links, custom fields, steps and dialogs, and the Chatterfy-compatible
//! `updateDialog` postback, as plain Rust: the dialog model ([`model`]), reading parameters
//! from any request shape ([`params`]), validating them against the bot's fields and steps and
//! applying them ([`update`]), and merging data pre-assigned to a chat that had not started
//! yet ([`start`]). Limits are in [`limits`]. Bots, postback links, custom field definitions
//! and steps are in [`bots`] (a step's webhook config is typed by the crate that sends it),
//! step entries handed to the send-webhook component in [`handoff`], and where all of it is
//! stored in [`repo`], over the key-value trait of `funnelhooks-store`. HTTP lives in the
//! components: this crate never touches `spin-sdk`.

pub mod auto;
pub mod bots;
pub mod clicks;
pub mod conversion;
pub mod conversions;
pub mod handoff;
mod keys;
pub mod limits;
pub mod model;
pub mod params;
pub mod refused;
pub mod repo;
mod split;
pub mod start;
mod typed;
pub mod update;

pub use model::{Dialog, FieldType, FieldValue, Status};
pub use params::{Param, from_request};
pub use repo::{Postback, Repo, Started};
pub use start::Start;
pub use update::{BotSchema, StepRef, Update, parse_update};
