//! A call hook as CallKeeper's form holds it, and the request it builds for a call event.
//!
//! ```json
//! {"name": "CRM", "protocol": "https", "host": "crm.example.com", "port": 443,
//!  "path": "/calls/in",
//!  "parameters": [{"name": "call", "param": "id"}, {"name": "token", "value": "s3cret"},
//!                 {"name": "label", "template": "{city}/{site}"}],
//!  "method": "POST", "contentType": "application/json", "event": "end", "enabled": true,
//!  "timeoutMs": 10000, "retry": {"maxAttempts": 8}, "signingSecret": "whsec_..."}
//! ```

use funnelhooks_delivery::config::DeliveryOptions;
use funnelhooks_delivery::log::secret_name;
use funnelhooks_delivery::request::OutboundRequest;
use funnelhooks_delivery::{TargetPolicy, check_target};
use funnelhooks_template::{Target, Template};
use serde_json::{Map, Value as Json, json};
use url::Url;

use crate::error::CallError;
use crate::event::{CallEvent, EventKind, Lookup, PRESETS, preset, text};

/// Most parameters a hook sends.
pub const MAX_PARAMETERS: usize = 50;
/// Longest parameter name, constant or template.
pub const MAX_PARAMETER_TEXT: usize = 2048;
/// Longest host name.
const MAX_HOST: usize = 253;
/// Longest path.
const MAX_PATH: usize = 2048;

/// Where a parameter's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A preset call parameter, by CallKeeper's name.
    Preset(&'static str),
    /// The same text every time (a secret, a campaign tag).
    Constant(String),
    /// A template over the call's parameters (`{city}/{site}`).
    Template(Template),
}

/// One named parameter of the request.
#[derive(Debug, Clone, PartialEq)]
pub struct HookParam {
    /// The name the receiver gets.
    pub name: String,
    /// Its value.
    pub value: ParamValue,
}

/// How a POST body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json`: nested parameters stay objects, numbers stay numbers.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

impl ContentType {
    fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// A validated hook.
#[derive(Debug, Clone, PartialEq)]
pub struct HookConfig {
    /// A label for people.
    pub name: Option<String>,
    /// `http` or `https`.
    pub protocol: &'static str,
    /// Domain or IP (IPv6 without brackets).
    pub host: String,
    /// The port (80 or 443 unless given).
    pub port: u16,
    /// Everything before `?`.
    pub path: String,
    /// The parameters, in order.
    pub parameters: Vec<HookParam>,
    /// GET (parameters in the query string) or POST (in the body).
    pub post: bool,
    /// The body's encoding for POST.
    pub content_type: ContentType,
    /// The event the hook fires on.
    pub event: EventKind,
    /// Whether it fires at all.
    pub enabled: bool,
    /// Timeout, attempts, signing.
    pub options: DeliveryOptions,
}

/// What a hook's request is for an event: the request and the parameters the event lacked.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The request.
    pub request: OutboundRequest,
    /// Parameters the event did not carry (as the hook names their values).
    pub missing: Vec<String>,
}

const MEMBERS: [&str; 13] = [
    "name",
    "protocol",
    "host",
    "port",
    "path",
    "parameters",
    "method",
    "contentType",
    "event",
    "enabled",
    "timeoutMs",
    "retry",
    "signingSecret",
];

fn text_member<'j>(map: &'j Map<String, Json>, name: &str) -> Result<Option<&'j str>, CallError> {
    match map.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(CallError::invalid("wrong_type", name, "expected text")),
    }
}

impl HookConfig {
    /// Reads and validates a hook; the error names the member. The target must pass the
    /// SSRF rules under `policy`.
    pub fn from_json(config: &Json, policy: TargetPolicy) -> Result<Self, CallError> {
        let map = config.as_object().ok_or_else(|| {
            CallError::new(400, "bad_body", Some("body"), "expected a JSON object")
        })?;
        if let Some(k) = map.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
            return Err(CallError::invalid(
                "unknown_field",
                k,
                format!("unknown member; expected one of: {}", MEMBERS.join(", ")),
            ));
        }
        let name = match text_member(map, "name")? {
            Some(n) if n.chars().count() > 100 => {
                return Err(CallError::invalid(
                    "too_long",
                    "name",
                    "at most 100 characters",
                ));
            }
            n => n.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
        };
        let protocol = match text_member(map, "protocol")?.map(|p| p.trim().to_ascii_lowercase()) {
            None => "https",
            Some(p) if p == "https" => "https",
            Some(p) if p == "http" => "http",
            Some(_) => {
                return Err(CallError::invalid(
                    "bad_protocol",
                    "protocol",
                    "http or https",
                ));
            }
        };
        let host = host(text_member(map, "host")?)?;
        let port = match map.get("port") {
            None | Some(Json::Null) => {
                if protocol == "https" {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .as_u64()
                .or_else(|| p.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| CallError::invalid("bad_port", "port", "a port from 1 to 65535"))?
                as u16,
        };
        let path = path(text_member(map, "path")?.unwrap_or("/"))?;
        let post = match text_member(map, "method")?.map(|m| m.trim().to_ascii_uppercase()) {
            None => false,
            Some(m) if m == "GET" => false,
            Some(m) if m == "POST" => true,
            Some(_) => return Err(CallError::invalid("bad_method", "method", "GET or POST")),
        };
        let content_type = match text_member(map, "contentType")?.map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        }) {
            None => ContentType::Json,
            Some(c) if c == "application/json" || c == "json" => ContentType::Json,
            Some(c) if c == "application/x-www-form-urlencoded" || c == "form" => ContentType::Form,
            Some(c) if c.starts_with("multipart/") => {
                return Err(CallError::invalid(
                    "bad_content_type",
                    "contentType",
                    "multipart/form-data is not supported; use application/x-www-form-urlencoded (same fields, simpler to read)",
                ));
            }
            Some(_) => {
                return Err(CallError::invalid(
                    "bad_content_type",
                    "contentType",
                    "application/json or application/x-www-form-urlencoded",
                ));
            }
        };
        let event = match map.get("event") {
            Some(Json::String(e)) => EventKind::parse(e).ok_or_else(|| {
                CallError::invalid(
                    "bad_event",
                    "event",
                    "start (\"Call is processing\") or end (\"Call is over\")",
                )
            })?,
            None | Some(Json::Null) => {
                return Err(CallError::invalid(
                    "missing_field",
                    "event",
                    "say when the hook fires: start (\"Call is processing\") or end (\"Call is over\")",
                ));
            }
            Some(_) => return Err(CallError::invalid("wrong_type", "event", "expected text")),
        };
        let enabled = match map.get("enabled") {
            None | Some(Json::Null) => true,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                return Err(CallError::invalid("wrong_type", "enabled", "true or false"));
            }
        };
        let parameters = parameters(map.get("parameters"))?;
        let options =
            DeliveryOptions::from_json(map, "").map_err(|e| CallError::from_delivery(e, "body"))?;
        let hook = HookConfig {
            name,
            protocol,
            host,
            port,
            path,
            parameters,
            post,
            content_type,
            event,
            enabled,
            options,
        };
        check_target(hook.base_url().as_str(), policy)
            .map_err(|e| CallError::from_delivery(e, "host"))?;
        Ok(hook)
    }

    /// `protocol://host:port/path`, no query.
    fn base_url(&self) -> Url {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        // Host, port and path were checked when the hook was read.
        Url::parse(&format!(
            "{}://{host}:{}{}",
            self.protocol, self.port, self.path
        ))
        .expect("a checked hook makes a URL")
    }

    /// The hook as stored (with its secret and constants).
    pub fn to_stored_json(&self) -> Json {
        let mut v = self.view(false);
        if let (Json::Object(m), Some(s)) = (&mut v, &self.options.secret_text) {
            m.remove("signed");
            m.insert("signingSecret".into(), Json::from(s.clone()));
        } else if let Json::Object(m) = &mut v {
            m.remove("signed");
        }
        v
    }

    /// The hook as the API shows it: no signing secret, and constants of secret-looking
    /// names (`token`, `key`, `password`...) as `***`.
    pub fn to_view_json(&self) -> Json {
        self.view(true)
    }

    fn view(&self, mask: bool) -> Json {
        let parameters: Vec<Json> = self
            .parameters
            .iter()
            .map(|p| match &p.value {
                ParamValue::Preset(name) => json!({"name": p.name, "param": name}),
                ParamValue::Constant(_) if mask && secret_name(&p.name) => {
                    json!({"name": p.name, "value": "***"})
                }
                ParamValue::Constant(v) => json!({"name": p.name, "value": v}),
                ParamValue::Template(t) => json!({"name": p.name, "template": t.source()}),
            })
            .collect();
        let mut v = json!({
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "path": self.path,
            "parameters": parameters,
            "method": if self.post { "POST" } else { "GET" },
            "contentType": self.content_type.as_str(),
            "event": self.event.as_str(),
            "enabled": self.enabled,
            "timeoutMs": self.options.timeout_ms,
            "retry": {"maxAttempts": self.options.max_attempts},
            "signed": self.options.signing_secret.is_some(),
        });
        if let Some(n) = &self.name {
            v["name"] = Json::from(n.clone());
        }
        v
    }

    /// The request this hook sends for `event`. Parameters the event lacks are sent empty
    /// and listed in `missing`; so are the ones that do not exist yet at call start.
    pub fn build(&self, event: &CallEvent, policy: TargetPolicy) -> Result<Built, CallError> {
        let mut missing = Vec::new();
        let mut values: Vec<(&str, Json)> = Vec::with_capacity(self.parameters.len());
        for p in &self.parameters {
            let value = match &p.value {
                ParamValue::Preset(name) => match event.lookup(name) {
                    Lookup::Value(v) => v.clone(),
                    Lookup::NotYet => Json::String(String::new()),
                    Lookup::Missing => {
                        missing.push((*name).to_string());
                        Json::String(String::new())
                    }
                },
                ParamValue::Constant(c) => Json::String(c.clone()),
                ParamValue::Template(t) => {
                    let rendered = t
                        .render(event)
                        .map_err(|e| CallError::invalid("render_failed", &p.name, e.to_string()))?;
                    missing.extend(rendered.missing.iter().map(|m| m.to_string()));
                    Json::String(rendered.output)
                }
            };
            values.push((&p.name, value));
        }
        let mut url = self.base_url();
        let mut headers = Vec::new();
        let mut body = Vec::new();
        if !self.post {
            if !values.is_empty() {
                let mut query = url.query_pairs_mut();
                for (name, value) in &values {
                    query.append_pair(name, &text(value));
                }
            }
        } else {
            headers.push((
                "content-type".to_string(),
                self.content_type.as_str().into(),
            ));
            body = match self.content_type {
                ContentType::Json => {
                    let object: Map<String, Json> = values
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                    Json::Object(object).to_string().into_bytes()
                }
                ContentType::Form => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    for (name, value) in &values {
                        form.append_pair(name, &text(value));
                    }
                    form.finish().into_bytes()
                }
            };
        }
        let url =
            check_target(url.as_str(), policy).map_err(|e| CallError::from_delivery(e, "host"))?;
        Ok(Built {
            request: OutboundRequest {
                method: if self.post { "POST" } else { "GET" }.into(),
                url: url.to_string(),
                headers,
                body,
            },
            missing,
        })
    }
}

/// A domain or an IP address, nothing else: no scheme, port, path or credentials.
fn host(given: Option<&str>) -> Result<String, CallError> {
    let bad = |why: &str| CallError::invalid("bad_host", "host", why);
    let raw = given.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Err(CallError::invalid(
            "missing_field",
            "host",
            "the host is required: a domain name or an IP address",
        ));
    }
    if raw.contains("://") {
        return Err(bad(
            "only the host name: put http/https in protocol and the rest in path",
        ));
    }
    let unbracketed = raw.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(unbracketed.to_ascii_lowercase());
    }
    if raw.contains(':') {
        return Err(bad("no port in the host: use the port field"));
    }
    if raw.len() > MAX_HOST
        || raw
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    {
        return Err(bad(
            "a domain name (letters, digits, dots and dashes; IDN as punycode) or an IP address",
        ));
    }
    let host = raw.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty()
        || host
            .split('.')
            .any(|label| label.is_empty() || label.len() > 63)
    {
        return Err(bad("every part of a domain name has 1 to 63 characters"));
    }
    Ok(host)
}

/// Everything before `?`, starting with `/`.
fn path(given: &str) -> Result<String, CallError> {
    let given = given.trim();
    let bad = |why: &str| CallError::invalid("bad_path", "path", why);
    if given.contains('?') || given.contains('#') {
        return Err(bad(
            "the path is everything before '?': put query parameters in parameters",
        ));
    }
    if given.len() > MAX_PATH || given.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad(
            "at most 2048 characters, without spaces or control characters",
        ));
    }
    if given.contains("://") {
        return Err(bad("only the path: the host goes in host"));
    }
    Ok(if given.starts_with('/') {
        given.to_string()
    } else {
        format!("/{given}")
    })
}

fn parameters(given: Option<&Json>) -> Result<Vec<HookParam>, CallError> {
    let list = match given {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(list)) => list,
        Some(_) => {
            return Err(CallError::invalid(
                "wrong_type",
                "parameters",
                "expected a list of {\"name\", \"param\" | \"value\" | \"template\"}",
            ));
        }
    };
    if list.len() > MAX_PARAMETERS {
        return Err(CallError::invalid(
            "too_many",
            "parameters",
            format!("at most {MAX_PARAMETERS} parameters"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = |member: &str| format!("parameters[{i}].{member}");
        let map = item.as_object().ok_or_else(|| {
            CallError::invalid(
                "wrong_type",
                &format!("parameters[{i}]"),
                "expected {\"name\", \"param\" | \"value\" | \"template\"}",
            )
        })?;
        if let Some(k) = map
            .keys()
            .find(|k| !["name", "param", "value", "template"].contains(&k.as_str()))
        {
            return Err(CallError::invalid(
                "unknown_field",
                &at(k),
                "a parameter has name and one of param, value, template",
            ));
        }
        let name = match map.get("name") {
            Some(Json::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
            _ => {
                return Err(CallError::invalid(
                    "missing_field",
                    &at("name"),
                    "the name the receiver gets is required",
                ));
            }
        };
        if name.len() > MAX_PARAMETER_TEXT || name.chars().any(char::is_control) {
            return Err(CallError::invalid(
                "bad_name",
                &at("name"),
                "at most 2048 bytes without control characters",
            ));
        }
        let sources: Vec<(&str, &Json)> = ["param", "value", "template"]
            .iter()
            .filter_map(|k| map.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
            .collect();
        let (kind, source) = match sources.as_slice() {
            [one] => *one,
            [] => {
                return Err(CallError::invalid(
                    "missing_field",
                    &at("param"),
                    "give param (a call parameter), value (a constant) or template",
                ));
            }
            _ => {
                return Err(CallError::invalid(
                    "ambiguous_value",
                    &format!("parameters[{i}]"),
                    "give only one of param, value, template",
                ));
            }
        };
        let source_text = match source {
            Json::String(s) => s.as_str(),
            Json::Number(_) | Json::Bool(_) if kind == "value" => "",
            _ => return Err(CallError::invalid("wrong_type", &at(kind), "expected text")),
        };
        if source_text.len() > MAX_PARAMETER_TEXT {
            return Err(CallError::invalid(
                "too_long",
                &at(kind),
                format!("at most {MAX_PARAMETER_TEXT} bytes"),
            ));
        }
        let value =
            match kind {
                "param" => ParamValue::Preset(
                    preset(source_text)
                        .ok_or_else(|| {
                            CallError::invalid(
                                "unknown_param",
                                &at("param"),
                                format!(
                                    "{source_text:?} is not a call parameter; use one of: {}",
                                    PRESETS.map(|p| p.name).join(", ")
                                ),
                            )
                        })?
                        .name,
                ),
                "value" => ParamValue::Constant(match source {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                _ => ParamValue::Template(Template::parse(source_text, Target::Text).map_err(
                    |e| CallError::invalid("bad_template", &at("template"), e.to_string()),
                )?),
            };
        out.push(HookParam { name, value });
    }
    Ok(out)
}
