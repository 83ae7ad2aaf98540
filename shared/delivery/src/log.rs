//! The delivery log: every delivery and every attempt, as stored and as shown (secrets
//! masked), kept newest first up to a retention cap per bot and per call-tracking service.

use funnelhooks_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::mask::{mask_body, mask_headers, mask_url};
use crate::request::OutboundRequest;

/// Most response body bytes an attempt keeps (the first ones; the rest is not read).
pub const MAX_RESPONSE_BODY: usize = 4 * 1024;
/// Most response headers an attempt keeps.
pub const MAX_RESPONSE_HEADERS: usize = 32;
/// Longest response header value an attempt keeps (longer ones are cut, marked `…`).
pub const MAX_RESPONSE_HEADER_VALUE: usize = 512;
/// Most bytes of response header names and values an attempt keeps in all.
pub const MAX_RESPONSE_HEADERS_BYTES: usize = 4 * 1024;
/// Longest URL a list of deliveries shows (the delivery itself shows it whole).
pub const MAX_SUMMARY_URL: usize = 300;
/// Most deliveries the log keeps per bot and per call-tracking service (so one busy source
/// cannot push another's out); the oldest go first, but never one that is still pending or
/// retrying: that one goes when it ends.
pub const MAX_DELIVERIES_PER_OWNER: u64 = 10_000;

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
    /// Not sent (a missing value with `skipIfMissing`, a gone webhook, its step or hook
    /// paused or disabled).
    Skipped,
}

impl Status {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

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
    /// Response body, at most [`MAX_RESPONSE_BODY`] bytes (lossy UTF-8, control characters
    /// but tab and line breaks shown as U+FFFD).
    pub body: String,
    /// Whether the body was cut (at [`MAX_RESPONSE_BODY`], or at the attempt's deadline), or
    /// headers were left out or cut.
    pub truncated: bool,
    /// Timeout or network error, if any.
    pub error: Option<String>,
}

/// What a delivery is for: a step a dialog entered, a call hook an event fired, or an
/// operator alert. Stored as flat ids (`{"botId", "chatId", "stepId"}`, `{"serviceId",
/// "hookId", "callId", "event"}` or `{"alertEndpointId", "event", "subject"}`), as the log
/// has always kept them.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    /// A send-webhook step.
    Step {
        /// The bot.
        bot_id: String,
        /// The dialog's chat.
        chat_id: i64,
        /// The step.
        step_id: String,
    },
    /// A call hook.
    Hook {
        /// The call-tracking service.
        service_id: String,
        /// The hook.
        hook_id: String,
        /// The call.
        call_id: String,
        /// `start` or `end`.
        event: String,
    },
    /// An operator alert.
    Alert {
        /// The alert endpoint.
        endpoint_id: String,
        /// The alert's type (`delivery.exhausted`...).
        event: String,
        /// What it is about (a delivery's id, a step's or hook's key).
        subject: String,
    },
}

/// An owner's ids as stored: one flat record for both kinds (a derive over plain options is
/// much smaller in Wasm than an untagged enum).
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chat_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hook_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alert_endpoint_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

impl Serialize for Owner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ids = match self.clone() {
            Owner::Step {
                bot_id,
                chat_id,
                step_id,
            } => OwnerIds {
                bot_id: Some(bot_id),
                chat_id: Some(chat_id),
                step_id: Some(step_id),
                ..OwnerIds::default()
            },
            Owner::Hook {
                service_id,
                hook_id,
                call_id,
                event,
            } => OwnerIds {
                service_id: Some(service_id),
                hook_id: Some(hook_id),
                call_id: Some(call_id),
                event: Some(event),
                ..OwnerIds::default()
            },
            Owner::Alert {
                endpoint_id,
                event,
                subject,
            } => OwnerIds {
                alert_endpoint_id: Some(endpoint_id),
                event: Some(event),
                subject: Some(subject),
                ..OwnerIds::default()
            },
        };
        ids.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = OwnerIds::deserialize(d)?;
        match ids {
            OwnerIds {
                bot_id: Some(bot_id),
                chat_id: Some(chat_id),
                step_id: Some(step_id),
                ..
            } => Ok(Owner::Step {
                bot_id,
                chat_id,
                step_id,
            }),
            OwnerIds {
                service_id: Some(service_id),
                hook_id: Some(hook_id),
                call_id,
                event,
                ..
            } => Ok(Owner::Hook {
                service_id,
                hook_id,
                call_id: call_id.unwrap_or_default(),
                event: event.unwrap_or_default(),
            }),
            OwnerIds {
                alert_endpoint_id: Some(endpoint_id),
                event,
                subject,
                ..
            } => Ok(Owner::Alert {
                endpoint_id,
                event: event.unwrap_or_default(),
                subject: subject.unwrap_or_default(),
            }),
            _ => Err(serde::de::Error::custom(
                "a delivery's owner is a step (botId, chatId, stepId), a hook (serviceId, hookId) or an alert (alertEndpointId)",
            )),
        }
    }
}

impl Owner {
    /// Adds the owner to a log line: its kind and ids.
    pub fn log(&self, line: funnelhooks_core::log::Line) -> funnelhooks_core::log::Line {
        match self {
            Owner::Step {
                bot_id, step_id, ..
            } => line
                .str("owner", "step")
                .str("botId", bot_id)
                .str("stepId", step_id),
            Owner::Hook {
                service_id,
                hook_id,
                ..
            } => line
                .str("owner", "hook")
                .str("serviceId", service_id)
                .str("hookId", hook_id),
            Owner::Alert {
                endpoint_id, event, ..
            } => line
                .str("owner", "alert")
                .str("alertEndpointId", endpoint_id)
                .str("alertType", event),
        }
    }

    /// The owner's ids as the log shows them: `botId`, `chatId`, `stepId`, `serviceId`,
    /// `hookId` always (null for the other kinds), `callId` and `event` for hooks,
    /// `alertEndpointId`, `event` and `subject` for alerts.
    fn view(&self, out: &mut serde_json::Map<String, Json>) {
        let (bot, chat, step, service, hook) = match self {
            Owner::Step {
                bot_id,
                chat_id,
                step_id,
            } => (
                json!(bot_id),
                json!(chat_id),
                json!(step_id),
                Json::Null,
                Json::Null,
            ),
            Owner::Hook {
                service_id,
                hook_id,
                call_id,
                event,
            } => {
                out.insert("callId".into(), json!(call_id));
                out.insert("event".into(), json!(event));
                (
                    Json::Null,
                    Json::Null,
                    Json::Null,
                    json!(service_id),
                    json!(hook_id),
                )
            }
            Owner::Alert {
                endpoint_id,
                event,
                subject,
            } => {
                out.insert("alertEndpointId".into(), json!(endpoint_id));
                out.insert("event".into(), json!(event));
                out.insert("subject".into(), json!(subject));
                (Json::Null, Json::Null, Json::Null, Json::Null, Json::Null)
            }
        };
        for (k, v) in [
            ("botId", bot),
            ("chatId", chat),
            ("stepId", step),
            ("serviceId", service),
            ("hookId", hook),
        ] {
            out.insert(k.into(), v);
        }
    }
}

/// One delivery: a request and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Random UUID; also the `webhook-id` of a signed request, the same on every attempt.
    pub id: String,
    /// What it is for.
    #[serde(alias = "source")]
    pub owner: Owner,
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
    /// Signed with its owner's secret, read at each attempt.
    #[serde(default)]
    pub signed: bool,
    /// The secret itself, in deliveries logged before secrets stayed with their step or hook
    /// (read to finish their retries; never written for new ones, never shown).
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
    /// Skipped because its step or hook was paused or disabled (bulk recover sends it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// The delivery a bulk recover made of this one (it is recovered once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_by: Option<String>,
    /// The outbox key of the step entry a postback handed off for it, which stands for its
    /// own outbox entry: dropped with it, so that the sweep never finds an entry whose
    /// delivery retention removed (and makes it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_entry: Option<String>,
}

/// The host a URL goes to (what log lines name instead of the URL, which can hold secrets).
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    }
}

impl Delivery {
    /// Logs what just happened to it (`event`), at warn unless it was delivered or is pending.
    pub fn log(&self, event: &str) {
        use funnelhooks_core::log::{Level, line};
        let level = match self.status {
            Status::Delivered | Status::Pending => Level::Info,
            _ => Level::Warn,
        };
        let Some(l) = line(level, event) else {
            return;
        };
        let l = self.owner.log(l.str("deliveryId", &self.id));
        let last = self.attempts.last();
        l.str("targetHost", host_of(&self.request.url))
            .opt_num("attempt", last.map(|a| a.n as i64))
            .opt_num("status", last.and_then(|a| a.status).map(i64::from))
            .opt_num("durationMs", last.map(|a| a.duration_ms as i64))
            .opt_str(
                "error",
                last.and_then(|a| a.error.as_deref())
                    .or(self.error.as_deref()),
            )
            .str("outcome", self.status.as_str())
            .emit();
    }

    /// Whether it has ended: delivered, failed or skipped (no attempt will follow).
    pub fn is_final(&self) -> bool {
        !matches!(self.status, Status::Pending | Status::Retrying)
    }

    /// The delivery as the API shows it: secrets masked, bookkeeping left out. Written out
    /// member by member rather than through its stored form (a second serialiser of the
    /// record would cost the components kilobytes).
    pub fn view(&self) -> Json {
        let attempts: Vec<Json> = self
            .attempts
            .iter()
            .map(|a| {
                json!({
                    "n": a.n,
                    "at": a.at,
                    "durationMs": a.duration_ms,
                    "status": a.status,
                    "headers": mask_headers(&a.headers),
                    "body": mask_body(&a.headers, a.body.as_bytes()),
                    "truncated": a.truncated,
                    "error": a.error,
                })
            })
            .collect();
        self.shown_with(vec![
            (
                "signed",
                json!(self.signed || self.signing_secret.is_some()),
            ),
            ("missing", json!(self.missing)),
            (
                "request",
                json!({
                    "method": self.request.method,
                    "url": mask_url(&self.request.url),
                    "headers": mask_headers(&self.request.headers),
                    "body": mask_body(&self.request.headers, &self.request.body),
                }),
            ),
            ("attempts", Json::Array(attempts)),
            ("timeoutMs", json!(self.timeout_ms)),
        ])
    }

    /// The delivery as a list shows it: what it is for, where it stands and its last
    /// attempt, with the URL masked and cut to [`MAX_SUMMARY_URL`] bytes; no bodies, no
    /// headers (`GET /api/deliveries/{id}` has them).
    pub fn summary(&self) -> Json {
        let mut url = mask_url(&self.request.url);
        funnelhooks_core::text::shorten(&mut url, MAX_SUMMARY_URL);
        let last = self.attempts.last().map(|a| {
            json!({"n": a.n, "at": a.at, "durationMs": a.duration_ms, "status": a.status,
                   "error": a.error})
        });
        self.shown_with(vec![
            (
                "request",
                json!({"method": self.request.method, "url": url}),
            ),
            ("attemptCount", json!(self.attempts.len())),
            ("lastAttempt", last.unwrap_or(Json::Null)),
        ])
    }

    /// The members the detail and the list both show, with `own` (each view's) between them.
    fn shown_with(&self, own: Vec<(&str, Json)>) -> Json {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), json!(self.id));
        // The owner's ids read best at the top level: {"botId", "chatId", "stepId", ...}.
        self.owner.view(&mut m);
        let common = [
            ("test", json!(self.test)),
            ("replayOf", json!(self.replay_of)),
            ("status", json!(self.status)),
            ("maxAttempts", json!(self.max_attempts)),
            ("nextAttemptAt", json!(self.next_attempt_at)),
            ("gone", json!(self.gone)),
            ("held", json!(self.held)),
            ("recoveredBy", json!(self.recovered_by)),
            ("error", json!(self.error)),
            ("createdAt", json!(self.created_at)),
            ("updatedAt", json!(self.updated_at)),
        ];
        for (k, v) in common.into_iter().chain(own) {
            m.insert(k.into(), v);
        }
        Json::Object(m)
    }
}

/// Response headers as an attempt keeps them: at most [`MAX_RESPONSE_HEADERS`] of them,
/// each value cut at [`MAX_RESPONSE_HEADER_VALUE`] bytes, at most
/// [`MAX_RESPONSE_HEADERS_BYTES`] in all; `true` when any was left out or cut.
pub fn bounded_headers(headers: Vec<(String, String)>) -> (Vec<(String, String)>, bool) {
    let mut kept = Vec::new();
    let (mut total, mut cut) = (0, false);
    for (name, mut value) in headers {
        if funnelhooks_core::text::shorten(&mut value, MAX_RESPONSE_HEADER_VALUE) {
            cut = true;
        }
        if kept.len() == MAX_RESPONSE_HEADERS
            || total + name.len() + value.len() > MAX_RESPONSE_HEADERS_BYTES
        {
            cut = true;
            continue;
        }
        total += name.len() + value.len();
        kept.push((name, value));
    }
    (kept, cut)
}

/// A response body as an attempt keeps it: the first [`MAX_RESPONSE_BODY`] bytes as text,
/// control characters but tab and line breaks replaced (so a stored attempt stays within its
/// bound once written as JSON); `true` when it was longer.
pub fn bounded_body(body: &[u8]) -> (String, bool) {
    let cut = body.len() > MAX_RESPONSE_BODY;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_RESPONSE_BODY)])
        .chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    (text, cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{MAX_BODY_BYTES, MAX_HEADERS_BYTES, MAX_URL_BYTES};

    /// The largest record a delivery can become: every bound reached, with the bytes that
    /// grow most when written as JSON.
    #[test]
    fn the_largest_delivery_record_stays_under_400_kb() {
        let quotes = |n: usize| "\"".repeat(n);
        let request = OutboundRequest {
            method: "POST".into(),
            url: format!("https://t.example/{}", "a".repeat(MAX_URL_BYTES - 18)),
            headers: (0..2)
                .map(|i| (format!("x-h{i}"), quotes(MAX_HEADERS_BYTES / 2 - 4)))
                .collect(),
            body: vec![b'"'; MAX_BODY_BYTES],
        };
        assert_eq!(request.unsendable(crate::TargetPolicy::default()), None);
        let hostile = vec![0xffu8; MAX_RESPONSE_BODY * 4];
        let attempts = (1..=8)
            .map(|n| {
                let (body, _) = bounded_body(&hostile);
                let (headers, _) =
                    bounded_headers((0..100).map(|i| (format!("h{i}"), quotes(2000))).collect());
                Attempt {
                    n,
                    at: Timestamp(0),
                    duration_ms: 25_000,
                    status: Some(500),
                    headers,
                    body,
                    truncated: true,
                    error: Some("e".repeat(300)),
                }
            })
            .collect();
        let d = Delivery {
            id: "7b0a5d1e-2c3f-4a8b-9d6e-1f2a3b4c5d6e".into(),
            owner: Owner::Hook {
                service_id: "s".repeat(36),
                hook_id: "h".repeat(36),
                call_id: "c".repeat(128),
                event: "end".into(),
            },
            test: false,
            replay_of: Some("r".repeat(36)),
            status: Status::Failed,
            request,
            missing: vec!["x".repeat(64); 32],
            attempts,
            max_attempts: 8,
            timeout_ms: 25_000,
            signed: true,
            signing_secret: None,
            next_attempt_at: None,
            gone: false,
            error: Some("e".repeat(300)),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            slots: (u64::MAX, u64::MAX),
            held: true,
            recovered_by: Some("r".repeat(36)),
            step_entry: Some(format!("due:{}:{}", i64::MAX, u64::MAX)),
        };
        let bytes = serde_json::to_vec(&d).unwrap().len();
        println!("largest delivery record: {bytes} bytes");
        assert!(bytes < 400_000, "{bytes} bytes");
        // The list's summary of it stays small.
        let summary = d.summary().to_string().len();
        assert!(summary < 2_000, "{summary} bytes");
    }
}
