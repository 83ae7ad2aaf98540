//! What every funnelhooks crate shares, as plain Rust: the one domain error type ([`Error`],
//! whose [`Kind`] only the Spin adapter turns into an HTTP status), ids, timestamps, JSON
//! bodies read into typed values with errors that name the member path, paging, chat ids,
//! liberal form decoding, media types and secret comparison.

pub mod chat;
pub mod error;
pub mod form;
pub mod ids;
pub mod json;
pub mod log;
pub mod media;
pub mod metrics;
pub mod paging;
pub mod refused;
pub mod secret;
pub mod senders;
pub mod text;
pub mod time;

pub use error::{Error, Kind};
pub use ids::{derived_id, is_uuid, new_id};
pub use paging::{MAX_PAGE, Page, Paging};
pub use time::Timestamp;
