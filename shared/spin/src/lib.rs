//! What every funnelhooks component needs from Spin, in one place: the key-value store as a
//! [`Kv`](funnelhooks_store::Kv), errors turned into JSON responses (the only place a kind of
//! problem becomes a status), dispatch from the route tables with access checks, reading
//! requests, outbound HTTP and the clock. The domain crates stay free of `spin-sdk`.

pub mod audit;
pub mod auth;
pub mod error;
pub mod kv;
pub mod outbound;
pub mod request;
pub mod respond;
pub mod router;

pub use error::{ApiError, json, json_text};
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

/// The installation's rules for failing and busy targets: `auto_disable_after_hours`
/// (default 120; 0: never disable) and `rate_limit_per_host` (deliveries per second to any
/// one host; empty or 0: no limit). A value that is not a number counts as the default.
pub fn delivery_rules() -> funnelhooks_delivery::engine::Rules {
    let number = |name: &str| {
        spin_sdk::variables::get(name)
            .ok()
            // serde_json's number reading is in every component already; `str::parse`
            // would link a second float parser.
            .and_then(|v| serde_json::from_str::<f64>(v.trim()).ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    let mut rules = funnelhooks_delivery::engine::Rules::default();
    if let Some(hours) = number("auto_disable_after_hours") {
        rules.disable_after_ms = (hours * 3_600_000.0) as i64;
    }
    rules.per_host = number("rate_limit_per_host").filter(|r| *r > 0.0).map(|r| {
        r.clamp(
            funnelhooks_delivery::limit::MIN_PER_SECOND,
            funnelhooks_delivery::limit::MAX_PER_SECOND,
        )
    });
    rules
}

/// Whether the app sweeps its retries from traffic (the `auto_sweep` variable; on unless
/// "false"): see [`nudge_sweep`].
pub fn auto_sweep() -> bool {
    spin_sdk::variables::get("auto_sweep").map_or(true, |v| v.trim() != "false")
}

/// True once in `one_in` calls, at random.
pub fn one_in(one_in: u64) -> bool {
    wasi::random::random::get_random_u64().is_multiple_of(one_in.max(1))
}

/// After an answer, once in `one_in` requests: asks send-webhook (by local chaining) to run
/// the retry sweep if none ran lately and work is due, so retries happen where traffic flows
/// even without a scheduler. It answers when done (a sweep stops within 27 s): Spin drops a
/// chained component's work once its caller has the answer, so this waits. Never on the
/// answer's path: call it after [`respond`].
pub fn nudge_sweep(one_in_requests: u64) {
    if !one_in(one_in_requests) || !auto_sweep() {
        return;
    }
    let _ = outbound::chain(
        "send-webhook",
        "/internal/sweep-if-idle",
        b"{}",
        std::time::Duration::from_secs(30),
    );
}

/// Now, in Unix milliseconds.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}
