//! The crate's one error type: a 4xx naming the field, or a store failure.

use std::fmt;

use funnelhooks_delivery::DeliveryError;
use funnelhooks_store::StoreError;

/// Why a call-tracking request cannot be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// HTTP status (4xx; 500/503 for the store).
    pub status: u16,
    /// Machine-readable code.
    pub code: &'static str,
    /// The field or parameter at fault.
    pub field: Option<String>,
    /// A sentence for people.
    pub message: String,
}

impl CallError {
    /// An error of `status` naming `field`.
    pub fn new(
        status: u16,
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// 422: a value that is well-formed but wrong.
    pub fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::new(422, code, Some(field), message)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CallError {}

impl From<StoreError> for CallError {
    fn from(e: StoreError) -> Self {
        let status = if matches!(e, StoreError::Contended(_)) {
            503
        } else {
            500
        };
        Self::new(status, "store_failed", None, e.to_string())
    }
}

impl CallError {
    /// A delivery-layer error about the hook's `field` (its URL, timeout, secret).
    pub fn from_delivery(e: DeliveryError, field: &str) -> Self {
        match e {
            DeliveryError::Config {
                field,
                code,
                message,
                ..
            } => Self::new(422, code, Some(&field), message),
            other => Self::new(422, other.code(), Some(field), other.to_string()),
        }
    }
}
