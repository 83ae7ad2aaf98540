//! What every funnelhooks component needs from Spin, in one place: the key-value store as a
//! [`Kv`](funnelhooks_store::Kv), errors turned into JSON responses (the only place a kind of
//! problem becomes a status), dispatch from the route tables with access checks, reading
//! requests, outbound HTTP and the clock. The domain crates stay free of `spin-sdk`.

pub mod auth;
pub mod error;
pub mod kv;
pub mod outbound;
pub mod request;
pub mod respond;
pub mod router;

pub use error::{ApiError, json};
pub use kv::SpinKv;
pub use outbound::{PrivateNetworks, SpinClock, SpinSender, private_networks};
pub use respond::{begin, respond};
pub use router::{public_route, route};

use funnelhooks_core::Timestamp;

/// Where webhooks may go, from the `allow_loopback_webhooks` variable (off unless "true").
pub fn target_policy() -> funnelhooks_delivery::TargetPolicy {
    let allow_loopback = spin_sdk::variables::get("allow_loopback_webhooks")
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    funnelhooks_delivery::TargetPolicy { allow_loopback }
}

/// Now, in Unix milliseconds.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}
