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
use funnelhooks_delivery::request::unsendable_header_name;
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

/// Headers a config may not set besides those the transport refuses
/// ([`funnelhooks_delivery::request::FORBIDDEN_HEADERS`]): the signature's.
const SIGNATURE_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// The members a webhook config may have.
const MEMBERS: [&str; 9] = [
    "url",
    "method",
    "headers",
    "body",
    "timeoutMs",
    "retry",
    "rateLimit",
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
    /// `"signed": true` without a `signingSecret` keeps the stored secret. A kept header
    /// value goes only where it was saved for: when the URL's origin (scheme, host, port)
    /// changes, each `***` must be entered again.
    pub fn from_json_over(config: &Json, stored: Option<&WebhookConfig>) -> Result<Self, Error> {
        let mut config = config.clone();
        keep_secret(
            &mut config,
            stored.and_then(|s| s.options.secret_text.as_deref()),
        )?;
        if config["url"].as_str().is_some_and(|u| u.contains(MASK))
            && stored
                .is_none_or(|s| config["url"].as_str() != Some(mask_url(s.url.source()).as_str()))
        {
            return Err(Error::invalid(
                "masked_value",
                "url",
                "the URL carries *** from a masked view but is not the saved URL: write the secret in it again",
            ));
        }
        let Some(stored) = stored else {
            return Self::from_json(&config);
        };
        if config["url"].as_str() == Some(mask_url(stored.url.source()).as_str()) {
            config["url"] = Json::from(stored.url.source());
        }
        let same_origin = config["url"]
            .as_str()
            .is_some_and(|u| origin(u).is_some_and(|o| Some(o) == origin(stored.url.source())));
        if let Some(Json::Object(headers)) = config.get_mut("headers") {
            for (name, value) in headers.iter_mut() {
                if value.as_str() != Some(MASK) {
                    continue;
                }
                let kept = stored
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name));
                match kept {
                    Some((_, template)) if same_origin => *value = Json::from(template.source()),
                    Some(_) => {
                        return Err(Error::invalid(
                            "secret_not_carried",
                            &format!("headers.{name}"),
                            "the URL now goes to another host: enter this header's value again (a stored secret is never sent to a host it was not saved for)",
                        ));
                    }
                    None => {}
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
        if let Some(rate) = self.options.rate_limit {
            v["rateLimit"] = Json::from(rate);
        }
        if let (true, Some(secret)) = (with_secret, &self.options.secret_text) {
            v["signingSecret"] = Json::from(secret.clone());
        }
        v
    }
}

/// The origin (`https://host:port`) a URL template sends to: its scheme, host and port are
/// literal (a variable there is refused), so the text parses as far as that.
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url.trim())
        .ok()
        .map(|u| u.origin().ascii_serialization())
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
        let lower = name.to_ascii_lowercase();
        if let Some(why) = unsendable_header_name(name) {
            let code = if why.starts_with("a header name") {
                "bad_header_name"
            } else {
                "reserved_header"
            };
            return Err(Error::invalid(code, &field, why));
        }
        if SIGNATURE_HEADERS.contains(&lower.as_str()) {
            return Err(Error::invalid(
                "reserved_header",
                &field,
                "this header is set by the signature (signingSecret)",
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
    if let Some(config) = &webhook {
        check_malformed(config)?;
        check_json_body(config)?;
    }
    Ok(StepInput { key, kind, webhook })
}

/// Every template of a config must be what its author meant: a `{` or `{{` that opens a
/// variable and does not close one (`subid={tracker.clickid&status=sale`) would be sent as
/// text and the tracker would lose the conversion. Checked when a step is saved (a config
/// stored before still loads and sends as it did), naming the member and the position.
fn check_malformed(config: &WebhookConfig) -> Result<(), Error> {
    let body = match &config.body {
        Body::Template(t) => Some(("webhook.body.template".to_string(), t)),
        _ => None,
    };
    let templates = std::iter::once(("webhook.url".to_string(), &config.url))
        .chain(
            config
                .headers
                .iter()
                .map(|(name, t)| (format!("webhook.headers.{name}"), t)),
        )
        .chain(body);
    for (field, template) in templates {
        if let Some(lint) = template.malformed() {
            return Err(
                Error::invalid("malformed_template", &field, lint.message).at_position(lint.offset)
            );
        }
    }
    Ok(())
}

/// A JSON body template must give JSON: rendered for the sample dialog (missing values are
/// `null` or empty text, which keep a document whole), it must parse. Checked when a step is
/// saved, so a broken body is a 422 then instead of a receiver's 400 on every delivery.
fn check_json_body(config: &WebhookConfig) -> Result<(), Error> {
    let Body::Template(template) = &config.body else {
        return Ok(());
    };
    if template.target() != Target::Json {
        return Ok(());
    }
    let dialog = crate::sample::sample(
        "00000000-0000-4000-8000-000000000000",
        funnelhooks_core::Timestamp(0),
        None,
    )?;
    let rendered = template
        .render(&dialog)
        .map_err(|e| Error::from(e).at("webhook.body.template"))?;
    match serde_json::from_str::<serde::de::IgnoredAny>(&rendered.output) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::invalid(
            "bad_json_template",
            "webhook.body.template",
            format!(
                "the body is not JSON once rendered ({e}); literal braces, quotes and commas must make a JSON document around the variables"
            ),
        )),
    }
}
