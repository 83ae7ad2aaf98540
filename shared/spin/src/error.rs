//! The one place errors become responses: `{"error": {"code", "message", "field"}}` with the
//! status the error's kind maps to. The domain crates never name a status.

use funnelhooks_core::log::Level;
use funnelhooks_core::{Error, Kind};
use spin_sdk::http::Response;

/// An error on its way to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The domain error (boxed: errors travel by value through every handler).
    pub error: Box<Error>,
    /// For a 405: the methods the route takes, sent as `Allow`.
    pub allow: Option<Vec<&'static str>>,
}

/// The status a kind of problem is answered with.
pub fn status(kind: Kind) -> u16 {
    match kind {
        Kind::Malformed => 400,
        Kind::Unauthorized => 401,
        Kind::NotFound => 404,
        Kind::Forbidden => 403,
        Kind::Conflict => 409,
        Kind::TooLarge => 413,
        Kind::UnsupportedMedia => 415,
        Kind::Invalid => 422,
        Kind::RateLimited => 429,
        Kind::Internal => 500,
        Kind::Unavailable => 503,
    }
}

impl ApiError {
    /// 401 for a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Error::new(
            Kind::Unauthorized,
            "unauthorized",
            "send Authorization: Bearer <admin_token or an API key>",
        )
        .at("Authorization")
        .into()
    }

    /// 400 for a request whose head or body cannot be read at all.
    pub fn unreadable() -> Self {
        Error::new(Kind::Malformed, "bad_request", "the request cannot be read").into()
    }

    /// 404 for a route nothing serves.
    pub fn no_route() -> Self {
        Error::not_found("not_found", "no such route").into()
    }

    /// 405, naming the methods the route takes, in the message and in the `Allow` header
    /// RFC 9110 asks for.
    pub fn method_not_allowed(allowed: Vec<&'static str>) -> Self {
        let message = format!("this route takes {}", allowed.join(", "));
        Self {
            status: 405,
            error: Box::new(Error::new(Kind::Invalid, "method_not_allowed", message)),
            allow: Some(allowed),
        }
    }

    /// The JSON response. What only operators should see (a store's own message) is logged,
    /// never sent.
    pub fn response(&self) -> Response {
        let e = &self.error;
        funnelhooks_core::log::note_error(e.code, e.field.as_deref());
        if let Some(detail) = &e.detail
            && let Some(line) = funnelhooks_core::log::line(Level::Error, "problem")
        {
            line.str("code", e.code)
                .num("status", i64::from(self.status))
                .str("detail", &funnelhooks_core::log::redact_keys(detail))
                .emit();
        }
        let mut body = serde_json::json!({"error": {
            "code": e.code, "message": e.message, "field": e.field,
        }});
        if let Some(p) = e.position {
            body["error"]["position"] = p.into();
        }
        let mut response = json(self.status, &body);
        if self.status == 401 {
            response.set_header("www-authenticate", "Bearer");
        }
        // Rate limits are per minute: try again in the next one, unless the error knows.
        match (self.error.retry_after_s, self.status) {
            (Some(s), _) => response.set_header("retry-after", s.to_string()),
            (None, 429) => response.set_header("retry-after", "60"),
            _ => {}
        }
        if let Some(allow) = &self.allow {
            response.set_header("allow", allow.join(", "));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self {
            status: status(error.kind),
            error: Box::new(error),
            allow: None,
        }
    }
}

impl From<funnelhooks_store::StoreError> for ApiError {
    fn from(e: funnelhooks_store::StoreError) -> Self {
        Error::from(e).into()
    }
}

/// A response whose body is JSON text made already.
pub fn json_text(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into_bytes())
        .build()
}

/// A JSON response.
pub fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Response {
    // `to_vec` writes straight into the buffer; `to_string` goes through `Display`, a
    // formatter adapter per value (a measurable share of a postback's Wasm time).
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
        .build()
}
