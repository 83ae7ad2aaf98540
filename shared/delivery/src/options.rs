//! How hard to try, how fast and whether to sign: the members a step's webhook and a call
//! hook share (`timeoutMs`, `retry.maxAttempts`, `rateLimit`, `signingSecret`), checked once
//! when a config is read.

use funnelhooks_core::Error;
use funnelhooks_core::json::{Members, whole};
use serde_json::Value as Json;

use crate::signing::SigningSecret;

/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Longest per-attempt timeout: one attempt must fit the platform's 30 s handler budget.
pub const MAX_TIMEOUT_MS: u64 = 25_000;

/// Timeout, attempts, signing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOptions {
    /// Per-attempt timeout.
    pub timeout_ms: u64,
    /// Attempts in all, 1 to 8.
    pub max_attempts: usize,
    /// The Standard Webhooks signing secret, if requests are signed.
    pub signing_secret: Option<SigningSecret>,
    /// The secret as written, to store it again; never shown.
    pub secret_text: Option<String>,
    /// Most deliveries per second to this target (`rateLimit`), if limited.
    pub rate_limit: Option<f64>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_attempts: crate::retry::SCHEDULE.len(),
            signing_secret: None,
            secret_text: None,
            rate_limit: None,
        }
    }
}

impl DeliveryOptions {
    /// Reads the four members of a config; errors name `timeoutMs`, `retry.maxAttempts`,
    /// `rateLimit` or `signingSecret`.
    pub fn from_members(m: &Members<'_>) -> Result<Self, Error> {
        let timeout_ms = match m.get("timeoutMs") {
            None => DEFAULT_TIMEOUT_MS,
            Some(t) => whole(t)
                .filter(|t| (100..=MAX_TIMEOUT_MS).contains(t))
                .ok_or_else(|| {
                    Error::invalid(
                        "bad_timeout",
                        "timeoutMs",
                        format!("milliseconds from 100 to {MAX_TIMEOUT_MS}"),
                    )
                })?,
        };
        let max_attempts = match m.get("retry") {
            None => crate::retry::SCHEDULE.len(),
            Some(retry) => {
                let r = Members::of(retry, &["maxAttempts"]).map_err(|e| e.under("retry"))?;
                let schedule = crate::retry::SCHEDULE.len() as u64;
                r.get("maxAttempts")
                    .and_then(whole)
                    .filter(|n| (1..=schedule).contains(n))
                    .ok_or_else(|| {
                        Error::invalid(
                            "bad_retry",
                            "retry.maxAttempts",
                            "attempts in all, from 1 (never retry) to 8",
                        )
                    })? as usize
            }
        };
        let rate_limit = match m.get("rateLimit") {
            None => None,
            Some(r) => Some(
                r.as_f64()
                    .filter(|r| {
                        (crate::limit::MIN_PER_SECOND..=crate::limit::MAX_PER_SECOND).contains(r)
                    })
                    .ok_or_else(|| {
                        Error::invalid(
                            "bad_rate_limit",
                            "rateLimit",
                            format!(
                                "deliveries per second, from {} to {}",
                                crate::limit::MIN_PER_SECOND,
                                crate::limit::MAX_PER_SECOND
                            ),
                        )
                    })?,
            ),
        };
        let secret = m.text("signingSecret")?;
        Ok(DeliveryOptions {
            timeout_ms,
            max_attempts,
            signing_secret: secret.map(SigningSecret::parse).transpose()?,
            secret_text: secret.map(str::to_string),
            rate_limit,
        })
    }
}

/// A view's `"signed"` sent back: `true` without a `signingSecret` keeps `stored`, `false`
/// means unsigned; the member itself is not part of the stored form.
pub fn keep_secret(config: &mut Json, stored: Option<&str>) -> Result<(), Error> {
    let Some(m) = config.as_object_mut() else {
        return Ok(());
    };
    match m.remove("signed") {
        Some(Json::Bool(true)) if !m.contains_key("signingSecret") => {
            let secret = stored.ok_or_else(|| {
                Error::invalid(
                    "missing_secret",
                    "signingSecret",
                    "\"signed\": true keeps a stored secret, and there is none: send signingSecret",
                )
            })?;
            m.insert("signingSecret".into(), Json::from(secret));
        }
        Some(Json::Bool(_)) | None => {}
        Some(_) => {
            return Err(Error::invalid(
                "wrong_type",
                "signed",
                "expected true or false",
            ));
        }
    }
    Ok(())
}
