//! The plain-Rust core of funnelhooks' delivery engine, shared by send-webhook steps and call
//! hooks: where a webhook may go ([`target`]), how it is signed ([`signing`]) and when a
//! failed attempt is tried again ([`retry`]). No `spin-sdk` here: the components send.

pub mod error;
pub mod retry;
pub mod signing;
pub mod target;

pub use error::DeliveryError;
pub use retry::{Outcome, SCHEDULE, Verdict, verdict};
pub use signing::SigningSecret;
pub use target::{TargetPolicy, check_target};
