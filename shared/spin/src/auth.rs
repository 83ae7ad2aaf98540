//! The management API's bearer token, from the secret Spin variable `admin_token`.

use spin_sdk::http::Request;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Passes when the request carries `Authorization: Bearer <admin_token>`. The comparison
/// takes the same time wherever the tokens differ; an empty `admin_token` admits nobody.
pub fn require_admin(req: &Request) -> Result<(), ApiError> {
    let expected = spin_sdk::variables::get("admin_token").map_err(|e| {
        ApiError::new(
            500,
            "admin_token_unavailable",
            format!("the admin_token variable cannot be read: {e}"),
        )
    })?;
    let given = req
        .header("authorization")
        .and_then(|h| h.as_str())
        .and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .unwrap_or("");
    if same_secret(given, &expected) {
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

/// Equal, non-empty, compared in the same time wherever they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}
