//! Who may call what: the management API's bearer token (the secret Spin variable
//! `admin_token`), the retry sweep's key, and requests chained from another component.

use funnelhooks_core::secret::same_secret;
use funnelhooks_core::{Error, Kind};
use funnelhooks_routes::Access;
use spin_sdk::http::Request;

use crate::error::ApiError;

/// Passes when the request carries `Authorization: Bearer <admin_token>`. Both sides are
/// hashed before a constant-time comparison, so neither the token nor its length leaks; an
/// empty `admin_token` admits nobody.
pub fn require_admin(req: &Request) -> Result<(), ApiError> {
    let expected = spin_sdk::variables::get("admin_token").map_err(|e| {
        ApiError::from(Error {
            detail: Some(e.to_string()),
            ..Error::new(
                Kind::Internal,
                "admin_token_unavailable",
                "the admin_token variable cannot be read",
            )
        })
    })?;
    if same_secret(bearer(req), &expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// For the retry sweep: passes with the admin token, or with `?key=` equal to the secret
/// Spin variable `retry_sweep_key`, for schedulers that can set a URL but no header
/// (Akamai Functions' cron). An empty `retry_sweep_key` admits nobody by key.
pub fn require_admin_or_sweep_key(req: &Request) -> Result<(), ApiError> {
    let Some(given) = crate::request::query_param(req, "key") else {
        return require_admin(req);
    };
    let expected = spin_sdk::variables::get("retry_sweep_key").unwrap_or_default();
    if same_secret(&given, &expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// For the metrics: passes with the admin token, or with `Authorization: Bearer` equal to the
/// secret Spin variable `metrics_token`, so a scraper need not hold the admin token. An
/// empty `metrics_token` admits nobody by it.
pub fn require_admin_or_metrics_token(req: &Request) -> Result<(), ApiError> {
    if require_admin(req).is_ok() {
        return Ok(());
    }
    let expected = spin_sdk::variables::get("metrics_token").unwrap_or_default();
    if same_secret(bearer(req), &expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// The token after `Authorization: Bearer `, or empty.
fn bearer(req: &Request) -> &str {
    req.header("authorization")
        .and_then(|h| h.as_str())
        .and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .unwrap_or("")
}

/// Chained requests arrive on Spin's synthetic `/...` route; public requests never do, as
/// no public route of the app is a catch-all.
pub fn chained(req: &Request) -> bool {
    req.header("spin-matched-route").and_then(|h| h.as_str()) == Some("/...")
}

/// Checks `access` for `req`. Routes that take an ingest key check it themselves (it is the
/// service's own). A chained-only route reached from outside is a 404, as if it were not
/// there.
pub fn check(req: &Request, access: Access) -> Result<(), ApiError> {
    match access {
        Access::Public | Access::IngestKey => Ok(()),
        Access::Admin => require_admin(req),
        Access::AdminOrSweepKey => require_admin_or_sweep_key(req),
        Access::AdminOrMetricsToken => require_admin_or_metrics_token(req),
        Access::Chained if chained(req) => Ok(()),
        Access::Chained => Err(ApiError::no_route()),
    }
}
