//! The crate's one error type.

use std::fmt;

/// Why a delivery cannot be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// The URL does not parse, is not http(s), or carries credentials.
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL points somewhere webhooks may not go.
    RefusedTarget {
        /// The host.
        host: String,
        /// What kind of address it is.
        reason: String,
    },
    /// A signing secret that is not `whsec_` + base64 of 24 to 64 bytes.
    BadSecret {
        /// Why.
        reason: String,
    },
    /// A webhook config member that is wrong (`url`, `headers.X-Token`, `body.template`).
    Config {
        /// The member, as a dotted path.
        field: String,
        /// Machine-readable code (`bad_template`, `wrong_type`...).
        code: &'static str,
        /// A sentence for people.
        message: String,
        /// For a template error: the byte offset in that template.
        position: Option<usize>,
    },
}

impl DeliveryError {
    /// A config error without a position.
    pub fn config(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        DeliveryError::Config {
            field: field.into(),
            code,
            message: message.into(),
            position: None,
        }
    }
}

impl DeliveryError {
    /// A short machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::BadUrl { .. } => "bad_url",
            DeliveryError::RefusedTarget { .. } => "refused_target",
            DeliveryError::BadSecret { .. } => "bad_secret",
            DeliveryError::Config { code, .. } => code,
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::BadUrl { url, reason } => {
                write!(f, "{url:?} is not a usable URL: {reason}")
            }
            DeliveryError::RefusedTarget { host, reason } => {
                write!(f, "webhooks may not be sent to {host:?}: {reason}")
            }
            DeliveryError::BadSecret { reason } => write!(f, "bad signing secret: {reason}"),
            DeliveryError::Config { field, message, .. } => write!(f, "{field}: {message}"),
        }
    }
}

impl std::error::Error for DeliveryError {}
