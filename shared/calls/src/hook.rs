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

use funnelhooks_core::json::Members;
use funnelhooks_core::{Error, Kind};
use funnelhooks_delivery::mask::{MASK, secret_name};
use funnelhooks_delivery::options::keep_secret;
use funnelhooks_delivery::{DeliveryOptions, OutboundRequest, TargetPolicy, check_target};
use funnelhooks_template::{Target, Template};
use serde_json::{Map, Value as Json, json};
use url::Url;

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

/// The members a hook form may have.
const MEMBERS: [&str; 14] = [
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
    "rateLimit",
    "signingSecret",
];

fn protocol(given: Option<&str>) -> Result<&'static str, Error> {
    match given.map(|p| p.trim().to_ascii_lowercase()).as_deref() {
        None | Some("https") => Ok("https"),
        Some("http") => Ok("http"),
        Some(_) => Err(Error::invalid("bad_protocol", "protocol", "http or https")),
    }
}

fn port(given: Option<&Json>, protocol: &str) -> Result<u16, Error> {
    match given {
        None => Ok(if protocol == "https" { 443 } else { 80 }),
        Some(p) => funnelhooks_core::json::whole(p)
            .or_else(|| p.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|p| (1..=65535).contains(p))
            .map(|p| p as u16)
            .ok_or_else(|| Error::invalid("bad_port", "port", "a port from 1 to 65535")),
    }
}

fn content_type(given: Option<&str>) -> Result<ContentType, Error> {
    let media = given.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match media.as_deref() {
        None | Some("application/json") | Some("json") => Ok(ContentType::Json),
        Some("application/x-www-form-urlencoded") | Some("form") => Ok(ContentType::Form),
        Some(c) if c.starts_with("multipart/") => Err(Error::invalid(
            "bad_content_type",
            "contentType",
            "multipart/form-data is not supported; use application/x-www-form-urlencoded (same fields, simpler to read)",
        )),
        Some(_) => Err(Error::invalid(
            "bad_content_type",
            "contentType",
            "application/json or application/x-www-form-urlencoded",
        )),
    }
}

fn event(given: Option<&str>) -> Result<EventKind, Error> {
    let given = given.ok_or_else(|| {
        Error::invalid(
            "missing_field",
            "event",
            "say when the hook fires: start (\"Call is processing\") or end (\"Call is over\")",
        )
    })?;
    EventKind::parse(given).ok_or_else(|| {
        Error::invalid(
            "bad_event",
            "event",
            "start (\"Call is processing\") or end (\"Call is over\")",
        )
    })
}

fn post(method: Option<&str>) -> Result<bool, Error> {
    match method.map(|m| m.trim().to_ascii_uppercase()).as_deref() {
        None | Some("GET") => Ok(false),
        Some("POST") => Ok(true),
        Some(_) => Err(Error::invalid("bad_method", "method", "GET or POST")),
    }
}

impl HookConfig {
    /// Reads and checks a hook form (a request body, or the stored hook); errors name the
    /// member (`host`, `parameters[2].param`). Where the hook may send is checked separately
    /// ([`HookConfig::check_target`]), when it is saved and at every send.
    pub fn from_json(config: &Json) -> Result<Self, Error> {
        let mut config = config.clone();
        keep_secret(&mut config, None)?;
        let m = Members::of(&config, &MEMBERS)?;
        let name = match m.text("name")? {
            Some(n) if n.chars().count() > 100 => {
                return Err(Error::invalid("too_long", "name", "at most 100 characters"));
            }
            n => n.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
        };
        let protocol = protocol(m.text("protocol")?)?;
        Ok(HookConfig {
            name,
            protocol,
            host: host(m.text("host")?)?,
            port: port(m.get("port"), protocol)?,
            path: path(m.text("path")?.unwrap_or("/"))?,
            parameters: parameters(m.array("parameters")?.unwrap_or_default())?,
            post: post(m.text("method")?)?,
            content_type: content_type(m.text("contentType")?)?,
            event: event(m.text("event")?)?,
            enabled: m.bool("enabled")?.unwrap_or(true),
            options: DeliveryOptions::from_members(&m)?,
        })
    }

    /// Fails, naming `host`, when the hook's target may not be sent to under `policy`.
    pub fn check_target(&self, policy: TargetPolicy) -> Result<(), Error> {
        check_target(self.base_url().as_str(), policy)
            .map(drop)
            .map_err(|e| e.at("host"))
    }

    /// This hook with the members `patch` names replaced (a PATCH), read and checked as a
    /// whole form.
    pub fn patched(&self, patch: &Json) -> Result<Self, Error> {
        let mut merged = self.to_stored_json();
        if let (Json::Object(base), Json::Object(p)) = (&mut merged, patch) {
            base.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.replaced(&merged)
    }

    /// The hook `form` describes, sent back after a view: a constant whose value is `***`
    /// keeps the value this hook has for a constant of that name, as long as the hook still
    /// sends where it did (protocol, host, port); to another place it must be entered again.
    pub fn replaced(&self, form: &Json) -> Result<Self, Error> {
        let mut form = form.clone();
        keep_secret(&mut form, self.options.secret_text.as_deref())?;
        // Where the form sends, read as a whole form would (defaults included).
        let moved = Self::from_json(&form)
            .is_ok_and(|f| (f.protocol, &f.host, f.port) != (self.protocol, &self.host, self.port));
        if let Some(Json::Array(rows)) = form.get_mut("parameters") {
            for (i, row) in rows.iter_mut().enumerate() {
                if moved && row["value"].as_str() == Some(MASK) {
                    return Err(Error::invalid(
                        "secret_not_carried",
                        &format!("parameters[{i}].value"),
                        "the hook now sends to another host: enter this value again (a stored secret is never sent to a host it was not saved for)",
                    ));
                }
                let kept = self.parameters.iter().find_map(|p| match &p.value {
                    ParamValue::Constant(c) if row["name"].as_str() == Some(p.name.as_str()) => {
                        Some(c.clone())
                    }
                    _ => None,
                });
                if let (Some(MASK), Some(value)) = (row["value"].as_str(), kept) {
                    row["value"] = Json::from(value);
                }
            }
        }
        Self::from_json(&form)
    }

    /// `protocol://host:port/path`, no query.
    fn base_url(&self) -> Url {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        // Host, port and path were checked when the hook was read, each on its own and as
        // a URL; a URL of them all parses (the fallback is never reached, and refused).
        Url::parse(&format!(
            "{}://{host}:{}{}",
            self.protocol, self.port, self.path
        ))
        .unwrap_or_else(|_| Url::parse("http://0.0.0.0/").expect("a literal URL"))
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
                    json!({"name": p.name, "value": MASK})
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
        if let Some(rate) = self.options.rate_limit {
            v["rateLimit"] = Json::from(rate);
        }
        if let Some(n) = &self.name {
            v["name"] = Json::from(n.clone());
        }
        v
    }

    /// The request this hook sends for `event`. Parameters the event lacks are sent empty
    /// and listed in `missing`; so are the ones that do not exist yet at call start.
    pub fn build(&self, event: &CallEvent, policy: TargetPolicy) -> Result<Built, Error> {
        let (values, missing) = self.values(event)?;
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
            body = self.content_type.body(values);
        }
        let url = check_target(url.as_str(), policy).map_err(|e| e.at("host"))?;
        let request = OutboundRequest {
            method: if self.post { "POST" } else { "GET" }.into(),
            url: url.to_string(),
            headers,
            body,
        };
        // Past a bound (a long event value in many parameters): never sent, never cut.
        if let Some(why) = request.unsendable(policy) {
            return Err(Error::invalid("unsendable", "parameters", why));
        }
        Ok(Built { request, missing })
    }

    /// Each parameter's name and value for `event`, and the names the event lacks.
    fn values(&self, event: &CallEvent) -> Result<(Values<'_>, Vec<String>), Error> {
        let mut missing = Vec::new();
        let mut values = Vec::with_capacity(self.parameters.len());
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
                        .map_err(|e| Error::invalid("render_failed", &p.name, e.to_string()))?;
                    missing.extend(rendered.missing.iter().map(|m| m.to_string()));
                    Json::String(rendered.output)
                }
            };
            values.push((p.name.as_str(), value));
        }
        Ok((values, missing))
    }
}

/// Parameter names and their values, in the hook's order.
type Values<'h> = Vec<(&'h str, Json)>;

impl ContentType {
    /// A POST body of `values` in this encoding.
    fn body(self, values: Vec<(&str, Json)>) -> Vec<u8> {
        match self {
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
        }
    }
}

/// A domain or an IP address, nothing else: no scheme, port, path or credentials.
fn host(given: Option<&str>) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid("bad_host", "host", why);
    let raw = given.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Err(Error::invalid(
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
    // What URL parsers take for an IPv4 address must be one: `1.2.3.4.5` and `foo.123` are
    // neither a valid address nor a domain.
    if Url::parse(&format!("http://{host}/")).is_err() {
        return Err(bad(
            "not a valid IP address, and a domain name's last part is not all digits",
        ));
    }
    Ok(host)
}

/// Everything before `?`, starting with `/`.
fn path(given: &str) -> Result<String, Error> {
    let given = given.trim_matches(' ');
    let bad = |why: &str| Error::invalid("bad_path", "path", why);
    if given.contains('?') || given.contains('#') {
        return Err(bad(
            "the path is everything before '?': put query parameters in parameters",
        ));
    }
    if given.chars().count() > MAX_PATH || given.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad(
            "at most 2048 characters, without spaces or control characters",
        ));
    }
    Ok(if given.starts_with('/') {
        given.to_string()
    } else {
        format!("/{given}")
    })
}

fn parameters(rows: &[Json]) -> Result<Vec<HookParam>, Error> {
    if rows.len() > MAX_PARAMETERS {
        return Err(Error::invalid(
            "too_many",
            "parameters",
            format!("at most {MAX_PARAMETERS} parameters"),
        ));
    }
    rows.iter()
        .enumerate()
        .map(|(i, row)| parameter(row).map_err(|e| e.under(&format!("parameters[{i}]"))))
        .collect()
}

/// One row; errors name its member (`name`, `param`, ...), or the row itself.
fn parameter(row: &Json) -> Result<HookParam, Error> {
    let m = Members::of(row, &["name", "param", "value", "template"])?;
    let name = match m.text("name")?.map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            return Err(Error::invalid(
                "missing_field",
                "name",
                "the name the receiver gets is required",
            ));
        }
    };
    if name.chars().count() > MAX_PARAMETER_TEXT || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "bad_name",
            "name",
            "at most 2048 characters, without control characters",
        ));
    }
    let value = match (m.get("param"), m.get("value"), m.get("template")) {
        (Some(p), None, None) => ParamValue::Preset(preset_named(text_of(p, "param")?)?),
        (None, Some(v), None) => ParamValue::Constant(constant(v)?),
        (None, None, Some(t)) => {
            let t = text_of(t, "template")?;
            if t.chars().count() > MAX_PARAMETER_TEXT {
                return Err(too_long("template"));
            }
            ParamValue::Template(
                Template::parse(t, Target::Text).map_err(|e| Error::from(e).at("template"))?,
            )
        }
        (None, None, None) => {
            return Err(Error::invalid(
                "missing_field",
                "param",
                "give param (a call parameter), value (a constant) or template",
            ));
        }
        _ => {
            return Err(Error::new(
                Kind::Invalid,
                "ambiguous_value",
                "give only one of param, value, template",
            ));
        }
    };
    Ok(HookParam { name, value })
}

fn too_long(member: &str) -> Error {
    Error::invalid(
        "too_long",
        member,
        format!("at most {MAX_PARAMETER_TEXT} characters"),
    )
}

fn preset_named(name: &str) -> Result<&'static str, Error> {
    if name.len() > MAX_PARAMETER_TEXT {
        return Err(too_long("param"));
    }
    preset(name).map(|p| p.name).ok_or_else(|| {
        Error::invalid(
            "unknown_param",
            "param",
            format!(
                "{name:?} is not a call parameter; use one of: {}",
                PRESETS.map(|p| p.name).join(", ")
            ),
        )
    })
}

fn text_of<'j>(value: &'j Json, member: &str) -> Result<&'j str, Error> {
    value
        .as_str()
        .ok_or_else(|| Error::invalid("wrong_type", member, "expected text"))
}

fn constant(value: &Json) -> Result<String, Error> {
    let text = match value {
        Json::String(s) => s.clone(),
        v @ (Json::Number(_) | Json::Bool(_)) => v.to_string(),
        _ => return Err(Error::invalid("wrong_type", "value", "expected text")),
    };
    if text.chars().count() > MAX_PARAMETER_TEXT {
        return Err(too_long("value"));
    }
    Ok(text)
}

// Stored as the form it was read from, secret and constants included.
funnelhooks_core::stored_as_json_form!(HookConfig, to_stored_json, HookConfig::from_json);
