//! The delivery engine funnelhooks' send-webhook steps and call hooks share, as plain Rust:
//! deliveries, their attempts and the log ([`log`]), the engine that sends and retries
//! ([`engine`]), the outbox of attempts due later and its sweep ([`outbox`]), when a failed
//! attempt is tried again ([`retry`]), where a request may go ([`target`]), how it is signed
//! ([`signing`]), the options every delivering config shares ([`options`]), where each step
//! or hook stands as a sender ([`state`]), rate limits ([`limit`]) and operator alerts
//! ([`alerts`]). No `spin-sdk` here: the components supply the sender, and the crates
//! above build the requests.

pub mod alerts;
pub mod engine;
pub mod limit;
pub mod log;
pub mod mask;
pub mod metrics;
pub mod options;
pub mod outbox;
pub mod request;
pub mod retry;
pub mod signing;
pub mod state;
pub mod target;

pub use log::{Delivery, Owner};
pub use options::DeliveryOptions;
pub use request::OutboundRequest;
pub use retry::{Outcome, SCHEDULE, Verdict, verdict};
pub use signing::SigningSecret;
pub use target::{TargetPolicy, check_target};
