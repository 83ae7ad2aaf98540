//! A call event: CallKeeper's call parameters as the telephony side posts them, and the
//! preset parameters a hook can map to its own names.
//!
//! Reading an event is liberal about the shape (JSON or form body, parameters in the query
//! string too, nested parameters as objects, as `visit_info[utm_source]=...` form keys or as
//! JSON text) and strict about what matters: the call id and the event type.

use std::collections::BTreeMap;

use funnelhooks_template::{Builtin, Context, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use funnelhooks_core::media::{self, BodyKind};
use funnelhooks_core::{Error, form};

/// Largest event body read.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Longest call id.
pub const MAX_CALL_ID: usize = 128;

/// Call start or call end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// "Call is processing": the connection is being set up.
    Start,
    /// "Call is over".
    End,
}

impl EventKind {
    /// Reads `start`/`end`, CallKeeper's `hook_event` texts and a few spellings of both.
    pub fn parse(text: &str) -> Option<EventKind> {
        let t: String = text
            .trim()
            .to_ascii_lowercase()
            .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Some(match t.as_str() {
            "start" | "call start" | "call is processing" | "processing" | "call processing" => {
                EventKind::Start
            }
            "end" | "call end" | "call is over" | "over" | "call over" => EventKind::End,
            _ => return None,
        })
    }

    /// `start` or `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::End => "end",
        }
    }

    /// CallKeeper's `hook_event` text.
    pub fn hook_event(self) -> &'static str {
        match self {
            EventKind::Start => "Call is processing",
            EventKind::End => "Call is over",
        }
    }
}

/// A call parameter a hook can send under a name of its choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// CallKeeper's name (`session pgs` is `session.pgs` in a nested event).
    pub name: &'static str,
    /// One line for people.
    pub description: &'static str,
    /// Whether the value exists when the call starts; if not, it renders empty at start.
    pub known_at_start: bool,
}

const fn p(name: &'static str, description: &'static str) -> Preset {
    Preset {
        name,
        description,
        known_at_start: true,
    }
}

const fn after_call(name: &'static str, description: &'static str) -> Preset {
    Preset {
        name,
        description,
        known_at_start: false,
    }
}

/// CallKeeper's call parameters (seed 002), in its order.
pub const PRESETS: [Preset; 40] = [
    p("id", "call id in CallKeeper"),
    p("visit_info", "UTM tags of the call (object)"),
    p("current", "UTM tags of the current visit (object)"),
    p("first", "UTM tags of the first visit (object)"),
    p("session pgs", "pages viewed before the call"),
    p("cpg", "page the call was ordered from"),
    p("udata vst", "visit number"),
    p("uag", "User-Agent of the visitor"),
    after_call("status_code", "SIP status of the call to the manager"),
    after_call("status_reason", "status message of the call to the manager"),
    after_call("status2_code", "SIP status of the call to the client"),
    after_call("status2_reason", "status message of the call to the client"),
    p("ip", "client IP address"),
    p("country", "country code"),
    p("city", "city"),
    p("region", "region"),
    p("district", "district"),
    p("site", "site"),
    p("ga_clientid", "Google Analytics client id"),
    p("phone1", "manager's phone number [extension]"),
    p("phone2", "client's phone number"),
    p("widget_hash", "CallKeeper widget hash"),
    p("date", "call date and time, UTC (\"2018-12-04 12:14:54\")"),
    after_call("duration_sec", "call duration in seconds"),
    p("a_type", "connection type the manager prefers"),
    p("asr_attempts", "voice smartcall attempts"),
    p("attempt", "call attempt number"),
    p("date_timestamp", "call date and time as a Unix timestamp"),
    after_call("duration_min", "call duration in minutes (rounded)"),
    p(
        "event_source",
        "tool the call was ordered from (\"widget\", ...)",
    ),
    p(
        "hook_event",
        "\"Call is processing\" (start) or \"Call is over\" (end)",
    ),
    p("order_date", "date and time the call was ordered"),
    after_call("playback_tick", "IVR playbacks during the call"),
    after_call("record_url", "link to the call recording"),
    p(
        "roistat_visit",
        "Roistat visitor id (with the Roistat integration)",
    ),
    p("tags", "tags the client put on the call"),
    p("ga_clid", "client id in Google Analytics"),
    p("widget_name", "widget name"),
    p("ya_clientid", "client id in Yandex Metrica"),
    p("uip", "user IP"),
];

/// Lower case, with spaces, dots and dashes read as underscores: `Session PGS`, `session.pgs`
/// and `session_pgs` are one name.
fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            ' ' | '.' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The preset called `name` (in any of the spellings [`normalise`] accepts).
pub fn preset(name: &str) -> Option<&'static Preset> {
    let wanted = normalise(name);
    PRESETS.iter().find(|p| normalise(p.name) == wanted)
}

/// What an event has for a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lookup<'e> {
    /// The value sent.
    Value(&'e Json),
    /// A parameter that does not exist yet at call start: renders empty.
    NotYet,
    /// Not sent.
    Missing,
}

/// One call event, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// Start or end.
    pub kind: EventKind,
    /// The call's id (`id`).
    pub call_id: String,
    /// Every parameter sent, nested ones as objects.
    pub params: Map<String, Json>,
    /// The parameters by normalised name, as text, for templates.
    texts: BTreeMap<String, String>,
}

impl CallEvent {
    /// Reads an event from the query string (without `key`) and a JSON or form body;
    /// body parameters win over query parameters of the same name. `event` (query or body)
    /// names the event type explicitly; otherwise `hook_event` decides.
    pub fn parse(query: &str, content_type: Option<&str>, body: &[u8]) -> Result<Self, Error> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(Error::too_large(
                "too_large",
                format!("a call event is at most {MAX_EVENT_BYTES} bytes"),
            )
            .at("body"));
        }
        let mut params = form_params(query.as_bytes())?;
        params.remove("key");
        let body_params = body_params(content_type, body)?;
        params.extend(body_params);
        let kind = event_kind(&params)?;
        params.remove("event");
        let call_id = call_id(&params)?;
        Ok(Self::new(kind, call_id, params))
    }

    /// An event from parts already checked (tests, samples).
    pub fn new(kind: EventKind, call_id: String, params: Map<String, Json>) -> Self {
        let texts = params
            .iter()
            .map(|(k, v)| (normalise(k), text(v)))
            .collect();
        Self {
            kind,
            call_id,
            params,
            texts,
        }
    }

    /// The value of preset (or any sent) parameter `name`.
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        if self.kind == EventKind::Start && preset(name).is_some_and(|p| !p.known_at_start) {
            return Lookup::NotYet;
        }
        if let Some(v) = self.params.get(name) {
            return Lookup::Value(v);
        }
        let wanted = normalise(name);
        if let Some((_, v)) = self.params.iter().find(|(k, _)| normalise(k) == wanted) {
            return Lookup::Value(v);
        }
        // `session pgs` sent nested: {"session": {"pgs": 3}}.
        if let Some((outer, inner)) = name.split_once(' ')
            && let Some(Json::Object(m)) = self.params.get(outer)
            && let Some(v) = m.get(inner)
        {
            return Lookup::Value(v);
        }
        Lookup::Missing
    }
}

/// Every preset parameter in CallKeeper's shapes, for test sends. Parsed at run time: a
/// `json!` literal of this size costs the component ~20 KB of code.
const SAMPLE_CALL: &str = r#"{"id": 123456,
 "visit_info": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "sample"},
 "current": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "sample"},
 "first": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "sample"},
 "session": {"pgs": 3}, "cpg": "https://shop.example/contacts", "udata": {"vst": 2},
 "uag": "Mozilla/5.0 (sample)", "status_code": "200", "status_reason": "OK",
 "status2_code": "200", "status2_reason": "OK", "ip": "203.0.113.10", "country": "RU",
 "city": "Moscow", "region": "Moscow", "district": "Central", "site": "shop.example",
 "ga_clientid": "GA1.2.1234567890.1543925694", "phone1": "+74950000000 [101]",
 "phone2": "+79990000000", "widget_hash": "a1b2c3d4", "date": "2018-12-04 12:14:54",
 "duration_sec": 95, "a_type": 0, "asr_attempts": 0, "attempt": 1,
 "date_timestamp": 1543925694, "duration_min": "2", "event_source": "widget",
 "order_date": "2018-12-04 12:14:54", "playback_tick": 0,
 "record_url": "https://shop.example/records/123456.mp3", "roistat_visit": null,
 "tags": "sample", "ga_clid": "", "widget_name": "custom css", "ya_clientid": null,
 "uip": "203.0.113.10"}"#;

/// A sample call with every preset parameter (values in CallKeeper's shapes), for test
/// sends; `overrides` replace or add parameters.
pub fn sample(kind: EventKind, overrides: &Map<String, Json>) -> CallEvent {
    let mut params: Map<String, Json> = serde_json::from_str(SAMPLE_CALL).unwrap_or_default();
    params.insert("hook_event".into(), Json::from(kind.hook_event()));
    params.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    let call_id = params.get("id").map(text).unwrap_or_default();
    CallEvent::new(kind, call_id, params)
}

/// A parameter's value as text: strings as they are, numbers and flags as written, null as
/// nothing, objects and arrays as compact JSON.
pub fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Templates in a hook's parameters read the call's parameters by name (`{city}`,
/// `{visit_info}`, `{fields.phone2}`); there are no dialog built-ins in a call.
impl Context for CallEvent {
    fn builtin(&self, _builtin: Builtin) -> Option<Value<'_>> {
        None
    }

    fn field(&self, key: &str) -> Option<Value<'_>> {
        if self.kind == EventKind::Start && preset(key).is_some_and(|p| !p.known_at_start) {
            return None;
        }
        let key = normalise(key);
        if let Some(t) = self.texts.get(&key) {
            return Some(Value::Str(t));
        }
        let (outer, inner) = key.split_once('_')?;
        match self.params.get(outer)? {
            Json::Object(m) => match m.get(inner)? {
                Json::String(s) => Some(Value::Str(s)),
                Json::Number(n) => n.as_i64().map(Value::Int),
                _ => None,
            },
            _ => None,
        }
    }

    fn tracker(&self, _key: &str) -> Option<Value<'_>> {
        None
    }
}

/// Parameters of a form (or a query string): `a[b]=c` nests, JSON text in the nested
/// presets (`visit_info`, `current`, `first`) is read as JSON.
fn form_params(bytes: &[u8]) -> Result<Map<String, Json>, Error> {
    let mut out = Map::new();
    for (k, v) in form::pairs(bytes)? {
        if let Some((outer, rest)) = k.split_once('[')
            && let Some(inner) = rest.strip_suffix(']')
            && !outer.is_empty()
        {
            let entry = out
                .entry(outer.to_string())
                .or_insert_with(|| Json::Object(Map::new()));
            if !entry.is_object() {
                *entry = Json::Object(Map::new());
            }
            if let Json::Object(m) = entry {
                m.insert(inner.to_string(), Json::String(v));
            }
            continue;
        }
        let nested = matches!(k.as_str(), "visit_info" | "current" | "first");
        let value = match serde_json::from_str::<Json>(&v) {
            Ok(j @ (Json::Object(_) | Json::Array(_))) if nested => j,
            _ => Json::String(v),
        };
        out.insert(k, value);
    }
    Ok(out)
}

fn body_params(content_type: Option<&str>, body: &[u8]) -> Result<Map<String, Json>, Error> {
    match media::classify(content_type, body)? {
        BodyKind::Empty => Ok(Map::new()),
        BodyKind::Form => form_params(body.trim_ascii()),
        BodyKind::Json => match serde_json::from_slice::<Json>(body) {
            Ok(Json::Object(m)) => Ok(m),
            Ok(_) => Err(Error::malformed(
                "bad_body",
                "body",
                "expected a JSON object of call parameters",
            )),
            Err(e) => Err(Error::malformed(
                "bad_json",
                "body",
                format!("the body is not valid JSON: {e}"),
            )),
        },
    }
}

fn event_kind(params: &Map<String, Json>) -> Result<EventKind, Error> {
    let read = |name: &str| -> Result<Option<EventKind>, Error> {
        match params.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Json::String(s)) => EventKind::parse(s).map(Some).ok_or_else(|| {
                Error::invalid(
                    "unknown_event",
                    name,
                    format!(
                        "{s:?} is not an event type; use \"Call is processing\" (start) or \"Call is over\" (end)"
                    ),
                )
            }),
            Some(_) => Err(Error::invalid(
                "unknown_event",
                name,
                "expected text: \"Call is processing\", \"Call is over\", start or end",
            )),
        }
    };
    match (read("event")?, read("hook_event")?) {
        (Some(a), Some(b)) if a != b => Err(Error::invalid(
            "conflicting_event",
            "event",
            format!(
                "event says {} but hook_event says {}",
                a.as_str(),
                b.as_str()
            ),
        )),
        (Some(k), _) | (None, Some(k)) => Ok(k),
        (None, None) => Err(Error::invalid(
            "missing_event",
            "hook_event",
            "say which event this is: hook_event \"Call is processing\" or \"Call is over\", or event start or end",
        )),
    }
}

fn call_id(params: &Map<String, Json>) -> Result<String, Error> {
    let id = match params.get("id") {
        Some(Json::String(s)) => s.trim().to_string(),
        Some(Json::Number(n)) => n.to_string(),
        None | Some(Json::Null) => String::new(),
        Some(_) => {
            return Err(Error::invalid(
                "bad_call_id",
                "id",
                "the call id is text or a number",
            ));
        }
    };
    if id.is_empty() {
        return Err(Error::invalid(
            "missing_call_id",
            "id",
            "the call id is required: it tells a repeated event from a new one",
        ));
    }
    if id.chars().count() > MAX_CALL_ID || id.chars().any(char::is_control) {
        return Err(Error::invalid(
            "bad_call_id",
            "id",
            format!("at most {MAX_CALL_ID} characters, without control characters"),
        ));
    }
    Ok(id)
}

/// A refused call event's query and body as its service's page may show them: without any
/// `key` parameter or member (the ingest key), whatever its letter case or encoding
/// (`KEY=`, `k%65y=`), in the query, a form body or a JSON body's top level.
pub fn without_key(query: &str, body: &[u8]) -> (String, Vec<u8>) {
    let is_key =
        |name: &[u8]| form::decode(name).is_ok_and(|n| n.trim().eq_ignore_ascii_case("key"));
    let keep_pairs = |text: &[u8]| -> Vec<u8> {
        text.split(|b| *b == b'&')
            .filter(|p| !p.is_empty() && !is_key(p.split(|b| *b == b'=').next().unwrap_or(p)))
            .collect::<Vec<_>>()
            .join(&b'&')
    };
    let query = String::from_utf8_lossy(&keep_pairs(query.as_bytes())).into_owned();
    let body = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut members)) => {
            members.retain(|k, _| !k.trim().eq_ignore_ascii_case("key"));
            serde_json::to_vec(&members).unwrap_or_default()
        }
        Ok(_) => body.to_vec(),
        // Not JSON: a form, or text whose `key=` pairs are dropped all the same.
        Err(_) => keep_pairs(body),
    };
    (query, body)
}

#[cfg(test)]
mod without_key_tests {
    use super::without_key;

    #[test]
    fn the_ingest_key_is_dropped_however_it_is_written() {
        let (q, b) = without_key(
            "id=1&key=ik_abc&KEY=ik_abc&k%65y=ik_abc&%6B%45y=x&keys=2",
            b"",
        );
        assert_eq!(q, "id=1&keys=2");
        assert!(b.is_empty());
        let (q, b) = without_key("", b"id=1&key=ik_abc&city=Omsk");
        assert_eq!((q.as_str(), b.as_slice()), ("", &b"id=1&city=Omsk"[..]));
        let (_, b) = without_key("", br#"{"id": 1, "Key": "ik_abc", "city": "Omsk"}"#);
        assert_eq!(b, br#"{"city":"Omsk","id":1}"#);
        let (_, b) = without_key("", b"[1,2]");
        assert_eq!(b, b"[1,2]");
    }
}
