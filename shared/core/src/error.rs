//! The one error type of the domain crates: what went wrong (a [`Kind`]), a machine-readable
//! code, a sentence, and where (the field or parameter, and for a template the byte
//! position). Nothing here knows HTTP: the Spin adapter maps each kind to a status.

use std::fmt;

use funnelhooks_store::StoreError;

/// What kind of problem an error is; the adapter turns it into a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request cannot be read at all: not JSON, not UTF-8, a bad query string (400).
    Malformed,
    /// No credentials, or the wrong ones (401).
    Unauthorized,
    /// Nothing there, or nothing the caller may know about (404).
    NotFound,
    /// Known caller, but its key's role does not allow this (403).
    Forbidden,
    /// The request conflicts with what is stored (409).
    Conflict,
    /// Past a size limit (413).
    TooLarge,
    /// A body in a media type that is not read here (415).
    UnsupportedMedia,
    /// Well-formed, but a value is wrong (422).
    Invalid,
    /// Too many requests from one source; try later (429).
    RateLimited,
    /// The store is failing or too busy; the same request may succeed later (503).
    Unavailable,
    /// Our fault: a stored record cannot be read (500).
    Internal,
}

impl Kind {
    /// Whether the same request can succeed later without changing it (a store outage), as
    /// opposed to a problem with the request or the data.
    pub fn is_transient(self) -> bool {
        matches!(self, Kind::Unavailable | Kind::RateLimited)
    }
}

/// A problem, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of problem.
    pub kind: Kind,
    /// Machine-readable code (`bad_chat_id`).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The field or parameter at fault, as the caller wrote it (a dotted path in bodies).
    pub field: Option<String>,
    /// For a template error: the byte offset in that template.
    pub position: Option<usize>,
    /// What only operators should see (a store's own message, a record key): logged and
    /// shown on admin routes, never to public callers.
    pub detail: Option<String>,
    /// For a problem that passes (a rate limit, work in progress): seconds until the same
    /// request may succeed.
    pub retry_after_s: Option<u32>,
}

impl Error {
    /// An error of `kind` with no field.
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            field: None,
            position: None,
            detail: None,
            retry_after_s: None,
        }
    }

    /// 422: a value that is well-formed but wrong, naming its field.
    pub fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, code, message).at(field)
    }

    /// The request cannot be read, naming the part that cannot (a parameter, `body`).
    pub fn malformed(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::new(Kind::Malformed, code, message).at(field)
    }

    /// Nothing there.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, code, message)
    }

    /// No bot with this id, or one the caller's key may not see: the same answer, so a key
    /// scoped to some bots cannot tell whether another exists.
    pub fn unknown_bot() -> Self {
        Self::not_found("unknown_bot", "no bot with this id").at("botId")
    }

    /// No call-tracking service with this id, or one the caller's key may not see.
    pub fn unknown_service() -> Self {
        Self::not_found("unknown_service", "no call-tracking service with this id").at("serviceId")
    }

    /// The caller's key may not do this (its role), whatever the target.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, code, message)
    }

    /// Conflicts with what is stored.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, code, message)
    }

    /// Past a size limit.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::TooLarge, code, message)
    }

    /// The same error, naming `field`.
    pub fn at(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// The same error, saying the request may succeed in `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The same error, at byte `position` of the template in its field.
    pub fn at_position(mut self, position: usize) -> Self {
        self.position = Some(position);
        self
    }

    /// The same error with its field under `prefix` (`url` becomes `webhook.url`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.field = Some(match self.field.take() {
            Some(f) if f.starts_with('[') => format!("{prefix}{f}"),
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_string(),
        });
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// The records found, in order: one that is gone (`NotFound`) is left out, any other error
/// is the error (a list by ids must not shorten itself on a store failure).
pub fn present<T>(found: impl IntoIterator<Item = Result<T, Error>>) -> Result<Vec<T>, Error> {
    found
        .into_iter()
        .filter(|r| !matches!(r, Err(e) if e.kind == Kind::NotFound))
        .collect()
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let (kind, code, message) = match &e {
            // A record we cannot read is our bug, not the caller's.
            StoreError::Corrupt { .. } => (
                Kind::Internal,
                "corrupt_record",
                "a stored record cannot be read; this is a bug, please report it",
            ),
            StoreError::Backend(_) => (
                Kind::Unavailable,
                "store_unavailable",
                "the key-value store is unavailable; try again shortly",
            ),
            StoreError::Contended(_) => (
                Kind::Unavailable,
                "store_unavailable",
                "too many changes to the same record at once; try again shortly",
            ),
            StoreError::Unsure(_) => (
                Kind::Unavailable,
                "store_unsure",
                "the store did not confirm this change; it may be saved",
            ),
        };
        Self {
            detail: Some(e.to_string()),
            ..Self::new(kind, code, message)
        }
    }
}

impl From<funnelhooks_template::TemplateError> for Error {
    fn from(e: funnelhooks_template::TemplateError) -> Self {
        Self {
            position: Some(e.offset),
            ..Self::new(Kind::Invalid, "bad_template", e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_keep_their_detail_for_operators_only() {
        let e = Error::from(StoreError::Backend("redis at 10.0.0.5: refused".into()));
        assert_eq!((e.kind, e.code), (Kind::Unavailable, "store_unavailable"));
        assert!(!e.message.contains("10.0.0.5"));
        assert!(e.detail.unwrap().contains("10.0.0.5"));
        let e = Error::from(StoreError::Corrupt {
            key: "bot:1".into(),
            problem: "x".into(),
        });
        assert_eq!(e.kind, Kind::Internal);
        assert!(!e.message.contains("bot:1"));
    }

    #[test]
    fn fields_nest_under_a_prefix() {
        let e = Error::invalid("bad_url", "url", "x").under("webhook");
        assert_eq!(e.field.as_deref(), Some("webhook.url"));
        let e = Error::invalid("x", "[2].param", "x").under("parameters");
        assert_eq!(e.field.as_deref(), Some("parameters[2].param"));
    }
}
