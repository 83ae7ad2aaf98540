//! The one place errors become responses: `{"error": {"code", "message", "field"}}` with a
//! 4xx or 5xx status.

use funnelhooks_calls::CallError;
use funnelhooks_delivery::DeliveryError;
use funnelhooks_dialog::DialogError;
use funnelhooks_store::StoreError;
use spin_sdk::http::Response;

/// An error on its way to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The field or parameter at fault.
    pub field: Option<String>,
    /// For a template error: the byte offset in the template.
    pub position: Option<usize>,
    /// For a 405: the methods the route takes (`GET or POST`), sent as `Allow`.
    pub allow: Option<&'static str>,
}

impl ApiError {
    /// 401 for a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "unauthorized",
            "send Authorization: Bearer <admin_token>",
        )
    }

    /// 404 for a route nothing serves.
    pub fn no_route() -> Self {
        Self::new(404, "not_found", "no such route")
    }

    /// 405, naming the methods the route takes (`"GET, PUT or DELETE"`), in the message and
    /// in the `Allow` header RFC 9110 asks for.
    pub fn method_not_allowed(allowed: &'static str) -> Self {
        let mut e = Self::new(
            405,
            "method_not_allowed",
            format!("this route takes {allowed}"),
        );
        e.allow = Some(allowed);
        e
    }

    /// An error with no field.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            position: None,
            allow: None,
        }
    }

    /// The same error, naming `field`.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// The JSON response.
    pub fn response(&self) -> Response {
        let mut body = serde_json::json!({"error": {
            "code": self.code, "message": self.message, "field": self.field,
        }});
        if self.status == 401 {
            body["error"]["field"] = "Authorization".into();
        }
        if let Some(p) = self.position {
            body["error"]["position"] = p.into();
        }
        let mut response = json(self.status, &body);
        if self.status == 401 {
            response.set_header("www-authenticate", "Bearer");
        }
        if let Some(allow) = self.allow {
            response.set_header("allow", allow.replace(" or ", ", "));
        }
        response
    }
}

impl From<DialogError> for ApiError {
    fn from(e: DialogError) -> Self {
        Self {
            field: e.field,
            ..Self::new(e.status, e.code, e.message)
        }
    }
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        let message = e.to_string();
        match e {
            DeliveryError::Config {
                field,
                code,
                message,
                position,
            } => Self {
                status: 422,
                code,
                message,
                field: Some(field),
                position,
                allow: None,
            },
            DeliveryError::BadSecret { .. } => {
                Self::new(422, "bad_secret", message).with_field("webhook.signingSecret")
            }
            other => Self::new(422, other.code(), message).with_field("webhook.url"),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        Self {
            field: e.field,
            ..Self::new(e.status, e.code, e.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        DialogError::from(e).into()
    }
}

/// A JSON response.
pub fn json(status: u16, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
