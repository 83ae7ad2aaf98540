//! Health and metrics for orchestrators, monitors and people with curl:
//!
//! - `GET /api/health/live`: the process answers (touches nothing: a Redis outage must not
//!   make Kubernetes restart every pod);
//! - `GET /api/health/ready`: the key-value store answers and the host blocks outbound
//!   requests to private networks (without that, webhooks to host names are refused);
//! - `GET /api/health`: all of that for people and monitors, and the installation's retry
//!   sweep: when it last ran (on any instance), how many deliveries are due and overdue,
//!   with a warning when work is overdue and no sweep ran for a while;
//! - `GET /api/metrics`: Prometheus text (admin token or `metrics_token`).

mod metrics;

use std::time::Duration;

use funnelhooks_core::Timestamp;
use funnelhooks_delivery::engine::Clock;
use funnelhooks_delivery::engine::SendFailure;
use funnelhooks_delivery::outbox::{Backlog, LastSweep, backlog, last_sweep};
use funnelhooks_routes::health::{Op, ROUTES};
use funnelhooks_spin::kv::BatchedSpinKv;
use funnelhooks_spin::outbound::chain;
use funnelhooks_spin::request::{MAX_JSON_BODY, query_param, read};
use funnelhooks_spin::{ApiError, PrivateNetworks, SpinClock, json, private_networks, respond};
use funnelhooks_store::Kv;
use serde_json::{Value as Json, json};
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// A key nothing else uses: reading it proves the store answers without touching user data.
const PROBE_KEY: &str = "health:probe";
/// How long the store may take to answer the probe. Spin's Redis store does not fail a call
/// while Redis is down, it waits: the probe runs in a chained request, and is given up on.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Overdue work and no sweep for this long: the health report warns.
const SWEEP_WARN_AFTER_S: i64 = 300;

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("health", &incoming);
    let response = match read(incoming, MAX_JSON_BODY).await {
        Ok(req) => serve(&req).unwrap_or_else(|e| e.response()),
        Err(e) => e.response(),
    };
    respond(out, response).await;
}

fn serve(req: &Request) -> Result<Response, ApiError> {
    let (op, _) = funnelhooks_spin::router::route_by_tokens(ROUTES, req)?;
    if let Some(at) = query_param(req, "at")
        && (at.is_empty() || at.len() > 15 || !at.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(funnelhooks_core::Error::malformed(
            "bad_query",
            "at",
            "a Unix time in milliseconds (tests only)",
        )
        .into());
    }
    Ok(match op {
        Op::Live => json(
            200,
            &json!({"status": "live", "version": env!("CARGO_PKG_VERSION")}),
        ),
        Op::Ready => ready(),
        Op::Health | Op::HealthHead => health(req),
        Op::Metrics => metrics::render(&clock(req))?,
        Op::StoreCheck => match store() {
            Ok(_) => json(200, &json!({"keyValue": "ok"})),
            Err(e) => json(503, &json!({"keyValue": e})),
        },
    })
}

/// The clock reports are read at: the host's, or a test clock (`?at=`, only where
/// `allow_test_clock` is on).
fn clock(req: &Request) -> SpinClock {
    SpinClock::for_sweep(query_param(req, "at").as_deref())
}

/// The store, opened and read once without touching user data.
fn store() -> Result<BatchedSpinKv, String> {
    let kv = BatchedSpinKv::open_default().map_err(|e| e.to_string())?;
    kv.get(PROBE_KEY).map_err(|e| e.to_string())?;
    Ok(kv)
}

/// Whether the store answers within [`STORE_CHECK_TIMEOUT`] (asked in a chained request,
/// which Spin abandons when this one stops waiting), then the store itself.
fn store_in_time() -> Result<BatchedSpinKv, String> {
    match chain(
        "health",
        "/internal/store-check",
        b"{}",
        STORE_CHECK_TIMEOUT,
    ) {
        Ok(200) => store(),
        Ok(_) => Err(store()
            .err()
            .unwrap_or_else(|| "the key-value store failed".into())),
        Err(SendFailure::Timeout(_)) => Err(format!(
            "the key-value store did not answer within {} s",
            STORE_CHECK_TIMEOUT.as_secs()
        )),
        Err(e) => Err(format!("the store check could not run: {}", e.message())),
    }
}

/// `GET /api/health/ready`: 200 when the store answers and private networks are blocked.
fn ready() -> Response {
    let kv = store_in_time().err();
    let private = private_networks();
    let mut reasons = Vec::new();
    if let Some(e) = &kv {
        reasons.push(format!("the key-value store does not answer: {e}"));
    }
    if private == PrivateNetworks::Open {
        reasons
            .push("outbound requests to private networks are not blocked (block_networks)".into());
    }
    let status = if reasons.is_empty() { 200 } else { 503 };
    json(
        status,
        &json!({"status": if reasons.is_empty() { "ready" } else { "not ready" },
                "keyValue": kv.unwrap_or_else(|| "ok".into()),
                "outbound": {"privateNetworks": private.as_str()},
                "reasons": reasons}),
    )
}

/// `GET /api/health`: everything, for people and monitors.
fn health(req: &Request) -> Response {
    let now = clock(req).now();
    let private = private_networks();
    let mut warnings: Vec<String> = Vec::new();
    if private == PrivateNetworks::Open {
        warnings.push(
            "outbound requests to private networks are not blocked: webhooks and call hooks to host names are refused until the app runs with block_networks = [\"private\"] (runtime-config/sqlite.toml; see docs/security.md)".into(),
        );
    }
    let outbound = json!({"privateNetworks": private.as_str()});
    let version = env!("CARGO_PKG_VERSION");
    let kv = match store_in_time() {
        Ok(kv) => kv,
        Err(e) => {
            return json(
                503,
                &json!({"status": "degraded", "version": version, "keyValue": e,
                        "outbound": outbound, "warnings": warnings}),
            );
        }
    };
    let sweep = match (last_sweep(&kv), backlog(&kv, now)) {
        (Ok(last), Ok(backlog)) => {
            if let Some(warning) = sweep_warning(now, last.as_ref(), &backlog) {
                warnings.push(warning);
            }
            sweep_view(now, last.as_ref(), &backlog)
        }
        (Err(e), _) | (_, Err(e)) => json!({"error": e.to_string()}),
    };
    json(
        200,
        &json!({"status": "ok", "version": version, "keyValue": "ok", "outbound": outbound,
                "sweep": sweep, "warnings": warnings}),
    )
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    (to.0 - from.0).max(0) / 1000
}

/// The sweep as the report shows it.
fn sweep_view(now: Timestamp, last: Option<&LastSweep>, backlog: &Backlog) -> Json {
    json!({
        "lastRunAt": last.map(|l| l.at),
        "lastRunBy": last.map(|l| l.by.as_str()),
        "secondsSinceLastRun": last.map(|l| seconds_between(l.at, now)),
        "due": backlog.due,
        "overdue": backlog.overdue,
        "oldestOverdueSeconds": backlog.oldest_overdue.map(|t| seconds_between(t, now)),
        "atLeast": backlog.at_least,
    })
}

/// Overdue work and no sweep for [`SWEEP_WARN_AFTER_S`]: what to do about it.
fn sweep_warning(now: Timestamp, last: Option<&LastSweep>, backlog: &Backlog) -> Option<String> {
    let idle = last.is_none_or(|l| seconds_between(l.at, now) > SWEEP_WARN_AFTER_S);
    if backlog.overdue == 0 || !idle {
        return None;
    }
    let since = match last {
        Some(l) => format!("for {} minutes", seconds_between(l.at, now) / 60),
        None => "ever".to_string(),
    };
    Some(format!(
        "{} deliveries are overdue (the oldest by {} s) and no sweep ran {since}: call POST /api/deliveries/retry-due every minute (docs/operations.md, \"The retry sweep\"); traffic also runs one now and then",
        backlog.overdue,
        backlog
            .oldest_overdue
            .map_or(0, |t| seconds_between(t, now))
    ))
}
