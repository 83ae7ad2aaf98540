//! The delivery log: every delivery and every attempt, as stored and as shown (secrets
//! masked), kept newest first up to a retention cap.

use funnelhooks_dialog::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::request::OutboundRequest;

/// Most response body bytes an attempt keeps.
pub const MAX_RESPONSE_BODY: usize = 20 * 1024;
/// Most deliveries the log keeps; the oldest go first.
pub const MAX_LOGGED_DELIVERIES: u64 = 10_000;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, no attempt finished yet.
    Pending,
    /// A 2xx answer.
    Delivered,
    /// Failed so far; the next attempt is scheduled (`nextAttemptAt`).
    Retrying,
    /// Given up: a non-retryable answer, or every attempt used.
    Failed,
    /// Not sent (a missing value with `skipIfMissing`, a gone webhook).
    Skipped,
}

impl Status {
    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "delivered" => Status::Delivered,
            "retrying" => Status::Retrying,
            "failed" => Status::Failed,
            "skipped" => Status::Skipped,
            _ => return None,
        })
    }
}

/// One attempt to send a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1 for the first.
    pub n: usize,
    /// When it started.
    pub at: Timestamp,
    /// How long it took.
    pub duration_ms: u64,
    /// The response status, if there was a response.
    pub status: Option<u16>,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Response body, at most 20 KB (lossy UTF-8).
    pub body: String,
    /// Whether the body was cut at 20 KB.
    pub truncated: bool,
    /// Timeout or network error, if any.
    pub error: Option<String>,
}

/// What the delivery is for: a step of a dialog, or a call hook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// The bot.
    pub bot_id: Option<String>,
    /// The dialog's chat.
    pub chat_id: Option<i64>,
    /// The send-webhook step.
    pub step_id: Option<String>,
    /// The call-tracking service.
    pub service_id: Option<String>,
    /// The call hook.
    pub hook_id: Option<String>,
    /// The call, for a call hook's delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// `start` or `end`, for a call hook's delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// One delivery: a request and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Random UUID; also the `webhook-id` of a signed request, the same on every attempt.
    pub id: String,
    /// What it is for.
    pub source: Source,
    /// A test send from the API, not a real event.
    pub test: bool,
    /// The delivery this one replays.
    pub replay_of: Option<String>,
    /// Where it stands.
    pub status: Status,
    /// The request, as rendered.
    pub request: OutboundRequest,
    /// Template names that had no value.
    pub missing: Vec<String>,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// Attempts allowed in all.
    pub max_attempts: usize,
    /// Per-attempt timeout.
    pub timeout_ms: u64,
    /// The signing secret (never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// When the next attempt is due, while retrying.
    pub next_attempt_at: Option<Timestamp>,
    /// The receiver answered 410 Gone.
    pub gone: bool,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Its slots in the log's indexes (all deliveries, and its bot's or service's).
    #[serde(default)]
    pub slots: (u64, u64),
}

/// Header and query parameter names whose values the log masks.
const SECRET_WORDS: [&str; 8] = [
    "authorization",
    "token",
    "secret",
    "password",
    "key",
    "cookie",
    "signature",
    "sig",
];

/// Whether a header or parameter called `name` holds a secret (its value is masked when shown).
pub fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// `url` with the values of secret-looking query parameters replaced by `***`.
pub fn mask_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret_name(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("{base}?{}", masked.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// The body as shown: the values of secret-looking members of a form or a JSON object
/// replaced by `***` (a call hook's `token` constant, a template's `api_key`).
fn mask_body(headers: &[(String, String)], body: &[u8]) -> String {
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(body);
        return text
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if secret_name(k) => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
    }
    if content_type.starts_with("application/json")
        && let Ok(Json::Object(mut m)) = serde_json::from_slice::<Json>(body)
        && m.keys().any(|k| secret_name(k))
    {
        for (k, v) in m.iter_mut() {
            if secret_name(k) {
                *v = Json::from("***");
            }
        }
        return Json::Object(m).to_string();
    }
    String::from_utf8_lossy(body).into_owned()
}

fn mask_headers(headers: &[(String, String)]) -> Json {
    Json::Array(
        headers
            .iter()
            .map(|(k, v)| json!([k, if secret_name(k) { "***" } else { v.as_str() }]))
            .collect(),
    )
}

impl Delivery {
    /// The delivery as the API shows it: secrets masked, bookkeeping left out.
    pub fn view(&self) -> Json {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Json::Object(m) = &mut v {
            // The source's ids read best at the top level: {"botId", "chatId", "stepId", ...}.
            if let Some(Json::Object(source)) = m.remove("source") {
                m.extend(source);
            }
            m.remove("signingSecret");
            m.remove("slots");
            m.insert("signed".into(), Json::from(self.signing_secret.is_some()));
            m.insert(
                "request".into(),
                json!({
                    "method": self.request.method,
                    "url": mask_url(&self.request.url),
                    "headers": mask_headers(&self.request.headers),
                    "body": mask_body(&self.request.headers, &self.request.body),
                }),
            );
            let attempts: Vec<Json> = self
                .attempts
                .iter()
                .map(|a| {
                    let mut j = serde_json::to_value(a).unwrap_or_default();
                    j["headers"] = mask_headers(&a.headers);
                    j
                })
                .collect();
            m.insert("attempts".into(), Json::Array(attempts));
        }
        v
    }
}
