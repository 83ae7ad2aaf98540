//! The crate's one error type: an HTTP-shaped problem naming the parameter at fault.

use std::fmt;

use funnelhooks_store::StoreError;

/// A rejected dialog update or start, ready to become `{"error": {code, message, field}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogError {
    /// The HTTP status it maps to (400, 413 or 422).
    pub status: u16,
    /// Machine-readable code (`bad_chat_id`).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The parameter at fault, as the caller wrote it.
    pub field: Option<String>,
}

impl DialogError {
    /// 400: the request itself is malformed.
    pub fn bad_request(
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(400, code, field, message)
    }

    /// 404: nothing there (or nothing the caller may know about).
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, None, message)
    }

    /// 409: the request conflicts with what is stored.
    pub fn conflict(code: &'static str, field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(409, code, field, message)
    }

    /// 413: past a size limit.
    pub fn too_large(code: &'static str, field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(413, code, field, message)
    }

    /// 422: well-formed, but a value is wrong.
    pub fn unprocessable(
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(422, code, field, message)
    }

    fn new(
        status: u16,
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }
}

impl fmt::Display for DialogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DialogError {}

impl From<StoreError> for DialogError {
    fn from(e: StoreError) -> Self {
        match e {
            // A record we cannot read is our bug, not the caller's: say so without detail.
            StoreError::Corrupt { .. } => Self::new(500, "corrupt_record", None, e.to_string()),
            StoreError::Backend(_) | StoreError::Contended(_) => {
                Self::new(503, "store_unavailable", None, e.to_string())
            }
        }
    }
}
