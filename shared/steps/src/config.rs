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
//! `{"template": "...", "contentType": "json" | "form" | "text"}`. `method` defaults to `GET`,
//! or `POST` when there is a body. The config is read once —
//! from a request body or from the stored step — into [`WebhookConfig`], with every template
//! parsed; a mistake is an error naming the member and the byte position. The stored form is
//! the same JSON as the input (the secret included), so reading a step is reading its config
//! again, once per request.

use std::collections::BTreeMap;

use funnelhooks_core::Error;
use funnelhooks_core::json::Members;
use funnelhooks_delivery::DeliveryOptions;
use funnelhooks_delivery::mask::{MASK, mask_url, secret_name};
use funnelhooks_delivery::options::keep_secret;
use funnelhooks_dialogs::bots::{StepInput, key_and_kind};
use funnelhooks_template::{LintKind, Target, Template};
use serde_json::{Map, Value as Json, json};

/// Most headers a config sets.
pub const MAX_HEADERS: usize = 32;
/// Longest template (URL, header value or body) in a config.
pub const MAX_TEMPLATE_CHARS: usize = 16 * 1024;

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
    /// A template, rendered for its content type (its target says JSON, form or text).
    Template(Template),
}

impl Body {
    /// The `content-type` the body is sent with.
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Body::None => None,
            Body::Profile => Some("application/json"),
            Body::Template(template) => Some(match template.target() {
                Target::Json => "application/json",
                Target::Form => "application/x-www-form-urlencoded",
                _ => "text/plain; charset=utf-8",
            }),
        }
    }

    fn to_form(&self) -> Json {
        match self {
            Body::None => json!("none"),
            Body::Profile => json!("profile"),
            Body::Template(template) => json!({
                "template": template.source(),
                "contentType": match template.target() {
                    Target::Json => "json",
                    Target::Form => "form",
                    _ => "text",
                },
            }),
        }
    }
}

/// A checked webhook config, its templates parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The URL template.
    pub url: Template,
    /// The method.
    pub method: Method,
    /// Header name (lower case) and value template, in name order.
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

/// The members a webhook config may have.
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

fn template(field: &str, source: &str, target: Target) -> Result<Template, Error> {
    if source.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(Error::invalid(
            "too_long",
            field,
            format!("a template is at most {MAX_TEMPLATE_CHARS} characters"),
        ));
    }
    Template::parse(source, target).map_err(|e| Error::from(e).at(field))
}

impl WebhookConfig {
    /// Reads and checks a config (a request body's `webhook`, or the stored step's); errors
    /// name the member (`url`, `headers.X-Token`, `body.template`) and, in a template, the
    /// byte position.
    pub fn from_json(config: &Json) -> Result<WebhookConfig, Error> {
        let mut config = config.clone();
        keep_secret(&mut config, None)?;
        let m = Members::of(&config, &MEMBERS)?;
        let url = m
            .text("url")?
            .ok_or_else(|| Error::invalid("missing_field", "url", "the URL is required"))?;
        let url = template("url", url, Target::Url)?;
        check_url_shape(&url)?;
        let headers = headers(m.text_map("headers")?)?;
        let body = body(m.get("body"))?;
        // A body without a method is POSTed (BotHelp always POSTs its profile).
        let method = match m.text("method")? {
            None if body != Body::None => Method::Post,
            None => Method::Get,
            Some(t) => Method::parse(t).ok_or_else(|| {
                Error::invalid(
                    "bad_method",
                    "method",
                    "use GET, POST, PUT, PATCH or DELETE",
                )
            })?,
        };
        if method == Method::Get && body != Body::None {
            return Err(Error::invalid(
                "body_with_get",
                "body",
                "a GET request has no body; use POST, PUT or PATCH",
            ));
        }
        Ok(WebhookConfig {
            url,
            method,
            headers,
            body,
            options: DeliveryOptions::from_members(&m)?,
            skip_if_missing: m.bool("skipIfMissing")?.unwrap_or(false),
        })
    }

    /// The config as the API shows it: the signing secret is never returned, only whether
    /// there is one, and secrets written into the URL or headers show as `***`.
    pub fn to_view_json(&self) -> Json {
        let mut v = self.to_form(false);
        v["signed"] = Json::from(self.options.signing_secret.is_some());
        v["url"] = Json::from(mask_url(self.url.source()));
        if let Some(Json::Object(headers)) = v.get_mut("headers") {
            for (name, value) in headers.iter_mut() {
                if secret_name(name) {
                    *value = Json::from(MASK);
                }
            }
        }
        v
    }

    /// Reads a config sent back after a view: a header whose value is `***` keeps the value
    /// `stored` has for it, a URL equal to the stored URL's view keeps the stored URL, and
    /// `"signed": true` without a `signingSecret` keeps the stored secret.
    pub fn from_json_over(config: &Json, stored: Option<&WebhookConfig>) -> Result<Self, Error> {
        let mut config = config.clone();
        keep_secret(
            &mut config,
            stored.and_then(|s| s.options.secret_text.as_deref()),
        )?;
        let Some(stored) = stored else {
            return Self::from_json(&config);
        };
        if config["url"].as_str() == Some(mask_url(stored.url.source()).as_str()) {
            config["url"] = Json::from(stored.url.source());
        }
        if let Some(Json::Object(headers)) = config.get_mut("headers") {
            for (name, value) in headers.iter_mut() {
                let kept = stored
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name));
                if let (Some(MASK), Some((_, template))) = (value.as_str(), kept) {
                    *value = Json::from(template.source());
                }
            }
        }
        Self::from_json(&config)
    }

    /// The config as stored (with its secret).
    pub fn to_stored_json(&self) -> Json {
        self.to_form(true)
    }

    fn to_form(&self, with_secret: bool) -> Json {
        let headers: Map<String, Json> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Json::from(v.source())))
            .collect();
        let mut v = json!({
            "url": self.url.source(),
            "method": self.method.as_str(),
            "headers": headers,
            "body": self.body.to_form(),
            "timeoutMs": self.options.timeout_ms,
            "retry": {"maxAttempts": self.options.max_attempts},
            "skipIfMissing": self.skip_if_missing,
        });
        if let (true, Some(secret)) = (with_secret, &self.options.secret_text) {
            v["signingSecret"] = Json::from(secret.clone());
        }
        v
    }
}

// Stored as the form it was read from, secret included; templates parsed once per read.
funnelhooks_core::stored_as_json_form!(WebhookConfig, to_stored_json, WebhookConfig::from_json);

/// The URL must render to http(s): its text before the first variable must start with a
/// scheme, and no variable may decide the scheme or host.
fn check_url_shape(url: &Template) -> Result<(), Error> {
    let source = url.source().trim_start();
    let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Error::invalid(
            "bad_url",
            "url",
            "the URL must start with http:// or https://",
        )
        .at_position(0));
    }
    if let Some(lint) = url
        .lint(|_| funnelhooks_template::Known::Yes)
        .into_iter()
        .find(|l| l.kind == LintKind::VariableInHost)
    {
        return Err(
            Error::invalid("variable_in_host", "url", lint.message).at_position(lint.offset)
        );
    }
    Ok(())
}

fn headers(given: Vec<(&str, &str)>) -> Result<Vec<(String, Template)>, Error> {
    if given.len() > MAX_HEADERS {
        return Err(Error::invalid(
            "too_many_headers",
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out: BTreeMap<String, Template> = BTreeMap::new();
    for (name, value) in given {
        let field = format!("headers.{name}");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(Error::invalid(
                "bad_header_name",
                &field,
                "a header name is letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Error::invalid(
                "reserved_header",
                &field,
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

fn body(value: Option<&Json>) -> Result<Body, Error> {
    let m = match value {
        None => return Ok(Body::None),
        Some(Json::String(s)) if s == "none" => return Ok(Body::None),
        Some(Json::String(s)) if s == "profile" => return Ok(Body::Profile),
        Some(v @ Json::Object(_)) => {
            Members::of(v, &["template", "contentType"]).map_err(|e| e.under("body"))?
        }
        Some(_) => {
            return Err(Error::invalid(
                "bad_body",
                "body",
                "use \"none\", \"profile\" or {\"template\": ..., \"contentType\": \"json|form|text\"}",
            ));
        }
    };
    let target = match m.text("contentType").ok().flatten() {
        Some("json") | Some("application/json") => Target::Json,
        Some("form") | Some("application/x-www-form-urlencoded") => Target::Form,
        Some("text") | Some("text/plain") => Target::Text,
        _ => {
            return Err(Error::invalid(
                "bad_content_type",
                "body.contentType",
                "use json, form or text",
            ));
        }
    };
    let source = m
        .text("template")
        .map_err(|e| e.under("body"))?
        .ok_or_else(|| Error::invalid("missing_field", "body.template", "required"))?;
    Ok(Body::Template(template("body.template", source, target)?))
}

/// A step's PUT or POST body, `{"key", "kind", "webhook"}`, checked: its key and kind first,
/// then the webhook config, whose errors name `webhook.<member>`.
/// `stored` is the step's config before this save: values masked in its view (`***`) and
/// sent back keep what it has.
pub fn step_input(
    body: &Json,
    stored: Option<&WebhookConfig>,
) -> Result<StepInput<WebhookConfig>, Error> {
    let m = Members::of(body, &["key", "kind", "webhook"])?;
    let webhook = m.get("webhook");
    let (key, kind) = key_and_kind(m.string("key")?, m.string("kind")?, webhook.is_some())?;
    let webhook = webhook
        .map(|w| WebhookConfig::from_json_over(w, stored).map_err(|e| e.under("webhook")))
        .transpose()?;
    Ok(StepInput { key, kind, webhook })
}
