//! The delivery log: every delivery and every attempt, as stored and as shown (secrets
//! masked), kept newest first up to a retention cap per bot and per call-tracking service.

use funnelhooks_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::mask::{mask_body, mask_headers, mask_url};
use crate::request::OutboundRequest;

/// Most response body bytes an attempt keeps.
pub const MAX_RESPONSE_BODY: usize = 20 * 1024;
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

/// What a delivery is for: a step a dialog entered, or a call hook an event fired. Stored
/// as flat ids (`{"botId", "chatId", "stepId"}` or `{"serviceId", "hookId", "callId",
/// "event"}`), as the log has always kept them.
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
            _ => Err(serde::de::Error::custom(
                "a delivery's owner is a step (botId, chatId, stepId) or a hook (serviceId, hookId)",
            )),
        }
    }
}

impl Owner {
    /// The owner's ids as the log shows them: `botId`, `chatId`, `stepId`, `serviceId`,
    /// `hookId` always (null for the other kind), `callId` and `event` for hooks.
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
}

impl Delivery {
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
                    "body": a.body,
                    "truncated": a.truncated,
                    "error": a.error,
                })
            })
            .collect();
        let mut m = serde_json::Map::new();
        m.insert("id".into(), json!(self.id));
        // The owner's ids read best at the top level: {"botId", "chatId", "stepId", ...}.
        self.owner.view(&mut m);
        for (k, v) in [
            ("test", json!(self.test)),
            ("replayOf", json!(self.replay_of)),
            ("status", json!(self.status)),
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
            ("maxAttempts", json!(self.max_attempts)),
            ("timeoutMs", json!(self.timeout_ms)),
            ("nextAttemptAt", json!(self.next_attempt_at)),
            ("gone", json!(self.gone)),
            ("error", json!(self.error)),
            ("createdAt", json!(self.created_at)),
            ("updatedAt", json!(self.updated_at)),
        ] {
            m.insert(k.into(), v);
        }
        Json::Object(m)
    }
}
