//! Call-tracking hooks, CallKeeper-style, as plain Rust: a service (a call-tracking account,
//! site or widget) with its ingest key and its hooks ([`repo`]), the call parameters and the
//! events that carry them ([`event`]), and a hook's form and the request it builds for an
//! event ([`hook`]). Sending goes through the shared delivery engine.

pub mod event;
pub mod hook;
pub mod repo;

pub use event::{CallEvent, EventKind, PRESETS, Preset};
pub use hook::HookConfig;
pub use repo::{CallRepo, EVENT_HOLD_MS, Edit, EventClaim, EventRecord, HookRecord, Service};
