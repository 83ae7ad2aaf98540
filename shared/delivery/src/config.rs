//! A send-webhook step's webhook config: what to send, how, and how hard to try.
//!
//! ```json
//! {"url": "https://keitaro.example/postback?subid={tracker.clickid}&status=lead",
//!  "method": "POST",
//!  "headers": {"X-Source": "funnelhooks {stepKey}"},
//!  "body": "profile",
//!  "timeoutMs": 10000,
//!  "retry": {"maxAttempts": 8},
//!  "signingSecret": "whsec_...",
//!  "skipIfMissing": false}
//! ```
//!
//! `body` is `"none"`, `"profile"` (the BotHelp-style subscriber profile) or
//! `{"template": "...", "contentType": "json" | "form" | "text"}`. Every template is parsed
//! when the config is saved, so a mistake is a 422 naming the member and the byte position.

use std::collections::BTreeMap;

use funnelhooks_template::{Target, Template};
use serde_json::{Map, Value as Json, json};

use crate::error::DeliveryError;
use crate::signing::SigningSecret;

/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Longest per-attempt timeout: one attempt must fit the platform's 30 s handler budget.
pub const MAX_TIMEOUT_MS: u64 = 25_000;
/// Most headers a config sets.
pub const MAX_HEADERS: usize = 32;

/// HTTP methods a webhook may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET (the default: Keitaro postbacks).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    fn parse(s: &str) -> Option<Method> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }
}

/// What the request body is.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    None,
    /// The subscriber profile as JSON (BotHelp's format; see [`crate::profile`]).
    Profile,
    /// A template, rendered for its content type.
    Template {
        /// The parsed template (its target says JSON, form or text).
        template: Template,
    },
}

impl Body {
    /// The `content-type` the body is sent with.
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Body::None => None,
            Body::Profile => Some("application/json"),
            Body::Template { template } => Some(match template.target() {
                Target::Json => "application/json",
                Target::Form => "application/x-www-form-urlencoded",
                _ => "text/plain; charset=utf-8",
            }),
        }
    }
}

/// A validated webhook config.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The URL template.
    pub url: Template,
    /// The method.
    pub method: Method,
    /// Header name and value template, in name order.
    pub headers: Vec<(String, Template)>,
    /// The body.
    pub body: Body,
    /// Timeout, attempts, signing.
    pub options: DeliveryOptions,
    /// Skip the send (and log it as skipped) when a template names a value the dialog lacks.
    pub skip_if_missing: bool,
}

/// Headers a config may not set: the transport's, and the signature's.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// How hard to try and whether to sign: the members a step's webhook and a call hook share
/// (`timeoutMs`, `retry.maxAttempts`, `signingSecret`).
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
}

impl DeliveryOptions {
    /// Reads the shared members of `map`; errors name them with `prefix` (`webhook.`).
    pub fn from_json(map: &Map<String, Json>, prefix: &str) -> Result<Self, DeliveryError> {
        let timeout_ms = match map.get("timeoutMs") {
            None | Some(Json::Null) => DEFAULT_TIMEOUT_MS,
            Some(t) => t
                .as_u64()
                .filter(|t| (100..=MAX_TIMEOUT_MS).contains(t))
                .ok_or_else(|| {
                    DeliveryError::config(
                        format!("{prefix}timeoutMs"),
                        "bad_timeout",
                        format!("milliseconds from 100 to {MAX_TIMEOUT_MS}"),
                    )
                })?,
        };
        let max_attempts = match map.get("retry") {
            None | Some(Json::Null) => crate::retry::SCHEDULE.len(),
            Some(Json::Object(r)) => {
                if let Some(k) = r.keys().find(|k| *k != "maxAttempts") {
                    return Err(DeliveryError::config(
                        format!("{prefix}retry.{k}"),
                        "unknown_field",
                        "the retry policy has one member, maxAttempts",
                    ));
                }
                r.get("maxAttempts")
                    .and_then(Json::as_u64)
                    .filter(|n| (1..=crate::retry::SCHEDULE.len() as u64).contains(n))
                    .ok_or_else(|| {
                        DeliveryError::config(
                            format!("{prefix}retry.maxAttempts"),
                            "bad_retry",
                            "attempts in all, from 1 (never retry) to 8",
                        )
                    })? as usize
            }
            Some(_) => {
                return Err(DeliveryError::config(
                    format!("{prefix}retry"),
                    "wrong_type",
                    "expected {\"maxAttempts\": 1..8}",
                ));
            }
        };
        let (signing_secret, secret_text) = match map.get("signingSecret") {
            None | Some(Json::Null) => (None, None),
            Some(Json::String(s)) => (
                Some(SigningSecret::parse(s).map_err(|e| {
                    DeliveryError::config(
                        format!("{prefix}signingSecret"),
                        "bad_secret",
                        e.to_string(),
                    )
                })?),
                Some(s.clone()),
            ),
            Some(_) => {
                return Err(DeliveryError::config(
                    format!("{prefix}signingSecret"),
                    "wrong_type",
                    "expected a string, whsec_...",
                ));
            }
        };
        Ok(DeliveryOptions {
            timeout_ms,
            max_attempts,
            signing_secret,
            secret_text,
        })
    }
}

fn template(field: &str, source: &Json, target: Target) -> Result<Template, DeliveryError> {
    let text = source.as_str().ok_or_else(|| {
        DeliveryError::config(field, "wrong_type", "expected a string (a template)")
    })?;
    Template::parse(text, target).map_err(|e| DeliveryError::Config {
        field: field.to_string(),
        code: "bad_template",
        message: e.to_string(),
        position: Some(e.offset),
    })
}

impl WebhookConfig {
    /// Reads and validates a config; the error names the member (and the position in a
    /// template).
    pub fn from_json(config: &Json) -> Result<WebhookConfig, DeliveryError> {
        let map = config
            .as_object()
            .ok_or_else(|| DeliveryError::config("webhook", "wrong_type", "expected an object"))?;
        const MEMBERS: [&str; 8] = [
            "url",
            "method",
            "headers",
            "body",
            "timeoutMs",
            "retry",
            "signingSecret",
            "skipIfMissing",
        ];
        if let Some(k) = map.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
            return Err(DeliveryError::config(
                format!("webhook.{k}"),
                "unknown_field",
                format!("unknown member; expected one of: {}", MEMBERS.join(", ")),
            ));
        }
        let url = template(
            "webhook.url",
            map.get("url").ok_or_else(|| {
                DeliveryError::config("webhook.url", "missing_field", "the URL is required")
            })?,
            Target::Url,
        )?;
        check_url_shape(&url)?;
        let method = match map.get("method") {
            None | Some(Json::Null) => Method::Get,
            Some(m) => m.as_str().and_then(Method::parse).ok_or_else(|| {
                DeliveryError::config(
                    "webhook.method",
                    "bad_method",
                    "use GET, POST, PUT, PATCH or DELETE",
                )
            })?,
        };
        let headers = headers(map.get("headers"))?;
        let body = body(map.get("body"))?;
        if method == Method::Get && body != Body::None {
            return Err(DeliveryError::config(
                "webhook.body",
                "body_with_get",
                "a GET request has no body; use POST, PUT or PATCH",
            ));
        }
        let options = DeliveryOptions::from_json(map, "webhook.")?;
        let skip_if_missing = match map.get("skipIfMissing") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                return Err(DeliveryError::config(
                    "webhook.skipIfMissing",
                    "wrong_type",
                    "expected true or false",
                ));
            }
        };
        Ok(WebhookConfig {
            url,
            method,
            headers,
            body,
            options,
            skip_if_missing,
        })
    }

    /// The signing secret as written (`whsec_...`), for the delivery that signs with it.
    pub fn signing_secret_text(&self) -> Option<&str> {
        self.options.secret_text.as_deref()
    }

    /// The config as stored (with its secret).
    pub fn to_stored_json(&self) -> Json {
        let mut v = self.to_view_json();
        if let Json::Object(m) = &mut v {
            // `signed` is the view's stand-in for the secret; the stored form holds the secret.
            m.remove("signed");
            if let Some(s) = &self.options.secret_text {
                m.insert("signingSecret".into(), Json::from(s.clone()));
            }
        }
        v
    }

    /// The config as the API shows it: the signing secret is never returned, only whether
    /// there is one.
    pub fn to_view_json(&self) -> Json {
        let headers: Map<String, Json> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Json::from(v.source())))
            .collect();
        let body = match &self.body {
            Body::None => json!("none"),
            Body::Profile => json!("profile"),
            Body::Template { template } => json!({
                "template": template.source(),
                "contentType": match template.target() {
                    Target::Json => "json",
                    Target::Form => "form",
                    _ => "text",
                },
            }),
        };
        json!({
            "url": self.url.source(),
            "method": self.method.as_str(),
            "headers": headers,
            "body": body,
            "timeoutMs": self.options.timeout_ms,
            "retry": {"maxAttempts": self.options.max_attempts},
            "signed": self.options.signing_secret.is_some(),
            "skipIfMissing": self.skip_if_missing,
        })
    }
}

/// The URL must render to http(s): its text before the first variable must start with a
/// scheme, and no variable may decide the scheme or host.
fn check_url_shape(url: &Template) -> Result<(), DeliveryError> {
    let source = url.source().trim_start();
    let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(DeliveryError::Config {
            field: "webhook.url".into(),
            code: "bad_url",
            message: "the URL must start with http:// or https://".into(),
            position: Some(0),
        });
    }
    if let Some(lint) = url
        .lint(|_| true)
        .into_iter()
        .find(|l| l.kind == funnelhooks_template::LintKind::VariableInHost)
    {
        return Err(DeliveryError::Config {
            field: "webhook.url".into(),
            code: "variable_in_host",
            message: lint.message,
            position: Some(lint.offset),
        });
    }
    Ok(())
}

fn headers(value: Option<&Json>) -> Result<Vec<(String, Template)>, DeliveryError> {
    let map = match value {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Object(m)) => m,
        Some(_) => {
            return Err(DeliveryError::config(
                "webhook.headers",
                "wrong_type",
                "expected an object of header name to value template",
            ));
        }
    };
    if map.len() > MAX_HEADERS {
        return Err(DeliveryError::config(
            "webhook.headers",
            "too_many_headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out: BTreeMap<String, Template> = BTreeMap::new();
    for (name, value) in map {
        let field = format!("webhook.headers.{name}");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(DeliveryError::config(
                field,
                "bad_header_name",
                "a header name is letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(DeliveryError::config(
                field,
                "reserved_header",
                "this header is set by the transport or the signature",
            ));
        }
        out.insert(
            name.to_ascii_lowercase(),
            template(&field, value, Target::Header)?,
        );
    }
    Ok(out.into_iter().collect())
}

fn body(value: Option<&Json>) -> Result<Body, DeliveryError> {
    match value {
        None | Some(Json::Null) => Ok(Body::None),
        Some(Json::String(s)) if s == "none" => Ok(Body::None),
        Some(Json::String(s)) if s == "profile" => Ok(Body::Profile),
        Some(Json::Object(m)) => {
            if let Some(k) = m
                .keys()
                .find(|k| !["template", "contentType"].contains(&k.as_str()))
            {
                return Err(DeliveryError::config(
                    format!("webhook.body.{k}"),
                    "unknown_field",
                    "a body template has template and contentType",
                ));
            }
            let target = match m.get("contentType").and_then(Json::as_str) {
                Some("json") | Some("application/json") => Target::Json,
                Some("form") | Some("application/x-www-form-urlencoded") => Target::Form,
                Some("text") | Some("text/plain") => Target::Text,
                _ => {
                    return Err(DeliveryError::config(
                        "webhook.body.contentType",
                        "bad_content_type",
                        "use json, form or text",
                    ));
                }
            };
            let source = m.get("template").ok_or_else(|| {
                DeliveryError::config("webhook.body.template", "missing_field", "required")
            })?;
            Ok(Body::Template {
                template: template("webhook.body.template", source, target)?,
            })
        }
        Some(_) => Err(DeliveryError::config(
            "webhook.body",
            "bad_body",
            "use \"none\", \"profile\" or {\"template\": ..., \"contentType\": \"json|form|text\"}",
        )),
    }
}
