//! Operator alerts: endpoints an operator registers receive operational events as Standard
//! Webhooks-signed JSON, sent through the delivery engine like any webhook (retried, logged):
//! `delivery.exhausted` (a delivery failed for good), `target.gone` (a receiver answered
//! `410`), `target.disabled` (a step or hook failed too long and was disabled) and
//! `target.reenabled`. An alert's own failure never raises an alert.
//!
//! The endpoints are one small record, `alerts` (at most [`MAX_ENDPOINTS`]), read only when
//! there is something to tell.

use funnelhooks_core::json::Members;
use funnelhooks_core::{Error, Timestamp};
use funnelhooks_store::{Records, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::log::{Delivery, host_of};
use crate::request::OutboundRequest;
use crate::signing::SigningSecret;
use crate::state::{DeliveryState, StepOrHook};
use crate::target::{TargetPolicy, check_target};

/// The record of every alert endpoint.
pub const KEY: &str = "alerts";
/// Most alert endpoints an installation has.
pub const MAX_ENDPOINTS: usize = 10;
/// The events an endpoint can receive.
pub const EVENTS: [&str; 4] = [
    "delivery.exhausted",
    "target.gone",
    "target.disabled",
    "target.reenabled",
];
/// What a test send of an endpoint carries.
pub const TEST_EVENT: &str = "alert.test";
/// Longest description.
const MAX_DESCRIPTION: usize = 200;
/// Longest URL of an endpoint.
const MAX_URL: usize = 2_048;
/// Per-attempt timeout of an alert.
pub const ALERT_TIMEOUT_MS: u64 = 10_000;

/// One alert endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEndpoint {
    /// Random UUID.
    pub id: String,
    /// Where alerts go (checked by the same target rules as webhooks).
    pub url: String,
    /// What it is, for people.
    #[serde(default)]
    pub description: String,
    /// The events it receives; empty: all of them.
    #[serde(default)]
    pub events: Vec<String>,
    /// Its Standard Webhooks secret (`whsec_...`), shown once when created.
    pub secret: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl AlertEndpoint {
    /// Whether it receives `event`.
    pub fn wants(&self, event: &str) -> bool {
        event == TEST_EVENT || self.events.is_empty() || self.events.iter().any(|e| e == event)
    }

    /// As the API shows it; the secret only when `with_secret` (once, when created).
    pub fn view(&self, with_secret: bool) -> Json {
        let mut v = json!({
            "id": self.id,
            "url": crate::mask::mask_url(&self.url),
            "description": self.description,
            "events": self.events,
            "signed": true,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        });
        if with_secret {
            v["signingSecret"] = json!(self.secret);
        }
        v
    }
}

/// An endpoint as sent by the API: `{"url", "description"?, "events"?, "signingSecret"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointInput {
    /// Where alerts go.
    pub url: String,
    /// What it is.
    pub description: String,
    /// The events it receives (empty: all).
    pub events: Vec<String>,
    /// A secret of the caller's choosing; `None` keeps the stored one, or makes one.
    pub secret: Option<String>,
}

impl EndpointInput {
    /// Reads and checks a body; errors name the member.
    pub fn parse(body: &Json, policy: TargetPolicy) -> Result<Self, Error> {
        let m = Members::of(body, &["url", "description", "events", "signingSecret"])?;
        let url = m.required("url", MAX_URL)?;
        check_target(&url, policy).map_err(|e| e.at("url"))?;
        let description = m.string("description")?.unwrap_or_default();
        if description.len() > MAX_DESCRIPTION {
            return Err(Error::invalid(
                "too_long",
                "description",
                format!("at most {MAX_DESCRIPTION} bytes"),
            ));
        }
        let mut events = Vec::new();
        for (i, e) in m.array("events")?.unwrap_or_default().iter().enumerate() {
            let field = format!("events[{i}]");
            let name = e.as_str().filter(|n| EVENTS.contains(n)).ok_or_else(|| {
                Error::invalid(
                    "unknown_event",
                    &field,
                    format!("one of: {}", EVENTS.join(", ")),
                )
            })?;
            if events.iter().any(|have| have == name) {
                return Err(Error::invalid("duplicate_event", &field, "each event once"));
            }
            events.push(name.to_string());
        }
        let secret = m.string("signingSecret")?;
        if let Some(s) = &secret {
            SigningSecret::parse(s)?;
        }
        Ok(Self {
            url,
            description: description.trim().to_string(),
            events,
            secret,
        })
    }
}

/// Every alert endpoint.
pub fn list(records: &Records<'_>) -> Result<Vec<AlertEndpoint>, StoreError> {
    Ok(records.get(KEY)?.unwrap_or_default())
}

/// One endpoint.
pub fn get(records: &Records<'_>, id: &str) -> Result<Option<AlertEndpoint>, StoreError> {
    Ok(list(records)?.into_iter().find(|e| e.id == id))
}

fn store(
    records: &Records<'_>,
    change: impl FnMut(&mut Vec<AlertEndpoint>) -> Result<AlertEndpoint, Error>,
) -> Result<AlertEndpoint, Error> {
    let (endpoint, _) = records.upsert(KEY, "alerts:born", Vec::new, change)?;
    Ok(endpoint)
}

/// A new secret from the host's random numbers.
fn new_secret() -> String {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    SigningSecret::generate(&key).expect("32 bytes is a valid key")
}

/// Adds an endpoint; `409 too_many_alert_endpoints` past [`MAX_ENDPOINTS`].
pub fn create(
    records: &Records<'_>,
    input: EndpointInput,
    now: Timestamp,
) -> Result<AlertEndpoint, Error> {
    let endpoint = AlertEndpoint {
        id: funnelhooks_core::new_id(),
        url: input.url,
        description: input.description,
        events: input.events,
        secret: input.secret.unwrap_or_else(new_secret),
        created_at: now,
        updated_at: now,
    };
    store(records, |all| {
        if all.len() >= MAX_ENDPOINTS {
            return Err(Error::conflict(
                "too_many_alert_endpoints",
                format!("at most {MAX_ENDPOINTS} alert endpoints; delete one first"),
            ));
        }
        all.push(endpoint.clone());
        Ok(endpoint.clone())
    })
}

/// Replaces endpoint `id`'s URL, description and events (and its secret when given).
pub fn replace(
    records: &Records<'_>,
    id: &str,
    input: EndpointInput,
    now: Timestamp,
) -> Result<AlertEndpoint, Error> {
    store(records, |all| {
        let e = all.iter_mut().find(|e| e.id == id).ok_or_else(unknown)?;
        e.url = input.url.clone();
        e.description = input.description.clone();
        e.events = input.events.clone();
        if let Some(s) = &input.secret {
            e.secret = s.clone();
        }
        e.updated_at = now;
        Ok(e.clone())
    })
}

/// Removes endpoint `id`; `false` when there was none.
pub fn delete(records: &Records<'_>, id: &str) -> Result<bool, Error> {
    if get(records, id)?.is_none() {
        return Ok(false);
    }
    let removed = records.modify(KEY, |all: &mut Vec<AlertEndpoint>| {
        let before = all.len();
        all.retain(|e| e.id != id);
        Ok::<_, Error>(all.len() < before)
    })?;
    Ok(removed.unwrap_or(false))
}

/// The error for an id that names no endpoint.
pub fn unknown() -> Error {
    Error::not_found("unknown_alert_endpoint", "no alert endpoint with this id").at("endpointId")
}

/// Something to tell the operator.
pub enum Alert<'a> {
    /// A delivery failed for good (every attempt used, or an answer retrying cannot fix).
    Exhausted(&'a Delivery),
    /// A receiver answered `410 Gone`.
    Gone(&'a Delivery),
    /// A step or hook was disabled.
    Disabled(&'a StepOrHook, &'a DeliveryState),
    /// A disabled step or hook was resumed.
    Reenabled(&'a StepOrHook, Timestamp),
    /// A test send of an endpoint.
    Test,
}

impl Alert<'_> {
    /// The event's type.
    pub fn event(&self) -> &'static str {
        match self {
            Alert::Exhausted(_) => EVENTS[0],
            Alert::Gone(_) => EVENTS[1],
            Alert::Disabled(..) => EVENTS[2],
            Alert::Reenabled(..) => EVENTS[3],
            Alert::Test => TEST_EVENT,
        }
    }

    /// What it is about: a delivery's id, or a step's or hook's key (with the moment, so a
    /// step disabled twice is told twice).
    pub fn subject(&self) -> String {
        match self {
            Alert::Exhausted(d) | Alert::Gone(d) => d.id.clone(),
            Alert::Disabled(s, state) => {
                format!("{}@{}", s.key(), state.disabled_at.map_or(0, |t| t.0))
            }
            Alert::Reenabled(s, at) => format!("{}@{}", s.key(), at.0),
            Alert::Test => funnelhooks_core::new_id(),
        }
    }

    /// The event's `data`.
    fn data(&self) -> Json {
        match self {
            Alert::Exhausted(d) | Alert::Gone(d) => {
                let last = d.attempts.last();
                let mut m = match StepOrHook::of(&d.owner) {
                    Some(s) => s.ids(),
                    None => serde_json::Map::new(),
                };
                if let crate::log::Owner::Step { chat_id, .. } = &d.owner {
                    m.insert("chatId".into(), json!(chat_id));
                }
                if let crate::log::Owner::Hook { call_id, event, .. } = &d.owner {
                    m.insert("callId".into(), json!(call_id));
                    m.insert("callEvent".into(), json!(event));
                }
                for (k, v) in [
                    ("deliveryId", json!(d.id)),
                    ("targetHost", json!(host_of(&d.request.url))),
                    ("attempts", json!(d.attempts.len())),
                    ("lastStatus", json!(last.and_then(|a| a.status))),
                    (
                        "lastError",
                        json!(last.and_then(|a| a.error.clone()).or(d.error.clone())),
                    ),
                    ("createdAt", json!(d.created_at)),
                ] {
                    m.insert(k.into(), v);
                }
                Json::Object(m)
            }
            Alert::Disabled(s, state) => {
                let mut m = s.ids();
                m.insert("state".into(), state.view());
                Json::Object(m)
            }
            Alert::Reenabled(s, at) => {
                let mut m = s.ids();
                m.insert("reenabledAt".into(), json!(at));
                Json::Object(m)
            }
            Alert::Test => json!({"message": "a test alert from funnelhooks"}),
        }
    }

    /// The request to `endpoint` at `now`: `POST` of `{"type", "timestamp", "data"}`.
    pub fn request(&self, endpoint: &AlertEndpoint, now: Timestamp) -> OutboundRequest {
        let body = json!({"type": self.event(), "timestamp": now, "data": self.data()});
        OutboundRequest {
            method: "POST".into(),
            url: endpoint.url.clone(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}
