//! Where a step or call hook stands as a sender of deliveries: active, failing (since when,
//! how many failed attempts, the last error), paused by hand, disabled after failing for too
//! long, or backing off after a `429`. One small record per step or hook,
//! `state:{step|hook}:{parentId}:{id}`, read once per request that delivers for it and
//! written only when it changes (a failed attempt, the first success after failures, a
//! pause, a resume); `state:attention` lists those that are not simply active, so the
//! console's "Needs attention" view reads them without scanning.

use funnelhooks_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::log::Owner;

/// Failed attempts, at least, before a step or hook is disabled (besides the time).
pub const MIN_FAILURES_TO_DISABLE: u32 = 5;
/// Most `delivery.exhausted` and `target.gone` alerts one step or hook raises in an hour: a
/// target that fails every delivery of a busy bot would otherwise raise one per postback.
/// The rest are in the log and on "Needs attention".
pub const MAX_FAILURE_ALERTS_PER_HOUR: i64 = 10;
/// Default time a step or hook may fail without a single success before it is disabled.
pub const DEFAULT_DISABLE_AFTER_HOURS: u64 = 120;
/// The list of steps and hooks that are failing, paused or disabled.
pub use funnelhooks_core::senders::ATTENTION;
/// Most entries the attention list keeps (a bound on its record; the oldest go first).
pub const MAX_ATTENTION: usize = 2_000;
/// Longest last error a state keeps.
const MAX_ERROR: usize = 300;

/// A step or a call hook, as a sender of deliveries (a delivery's owner without its dialog
/// or call).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepOrHook {
    /// A send-webhook step of a bot.
    Step {
        /// The bot.
        bot_id: String,
        /// The step.
        step_id: String,
    },
    /// A hook of a call-tracking service.
    Hook {
        /// The service.
        service_id: String,
        /// The hook.
        hook_id: String,
    },
}

impl StepOrHook {
    /// The step or hook a delivery is for; `None` for operator alerts.
    pub fn of(owner: &Owner) -> Option<StepOrHook> {
        match owner {
            Owner::Step {
                bot_id, step_id, ..
            } => Some(StepOrHook::Step {
                bot_id: bot_id.clone(),
                step_id: step_id.clone(),
            }),
            Owner::Hook {
                service_id,
                hook_id,
                ..
            } => Some(StepOrHook::Hook {
                service_id: service_id.clone(),
                hook_id: hook_id.clone(),
            }),
            Owner::Alert { .. } => None,
        }
    }

    /// `step:{botId}:{stepId}` or `hook:{serviceId}:{hookId}`.
    pub fn key(&self) -> String {
        match self {
            StepOrHook::Step { bot_id, step_id } => format!("step:{bot_id}:{step_id}"),
            StepOrHook::Hook {
                service_id,
                hook_id,
            } => format!("hook:{service_id}:{hook_id}"),
        }
    }

    /// Reads [`StepOrHook::key`]'s form.
    pub fn parse(key: &str) -> Option<StepOrHook> {
        let mut parts = key.splitn(3, ':');
        let (kind, parent, id) = (parts.next()?, parts.next()?, parts.next()?);
        let (parent, id) = (parent.to_string(), id.to_string());
        match kind {
            "step" => Some(StepOrHook::Step {
                bot_id: parent,
                step_id: id,
            }),
            "hook" => Some(StepOrHook::Hook {
                service_id: parent,
                hook_id: id,
            }),
            _ => None,
        }
    }

    /// The key of its state record.
    pub fn state_key(&self) -> String {
        format!("state:{}", self.key())
    }

    /// `"step"` or `"hook"`.
    pub fn kind(&self) -> &'static str {
        match self {
            StepOrHook::Step { .. } => "step",
            StepOrHook::Hook { .. } => "hook",
        }
    }

    /// Its ids as the API shows them: `{"kind", "botId", "stepId"}` or `{"kind",
    /// "serviceId", "hookId"}`.
    pub fn ids(&self) -> serde_json::Map<String, Json> {
        let mut m = serde_json::Map::new();
        m.insert("kind".into(), json!(self.kind()));
        match self {
            StepOrHook::Step { bot_id, step_id } => {
                m.insert("botId".into(), json!(bot_id));
                m.insert("stepId".into(), json!(step_id));
            }
            StepOrHook::Hook {
                service_id,
                hook_id,
            } => {
                m.insert("serviceId".into(), json!(service_id));
                m.insert("hookId".into(), json!(hook_id));
            }
        }
        m
    }

    /// "the step" or "the hook", for messages.
    pub fn noun(&self) -> &'static str {
        match self {
            StepOrHook::Step { .. } => "the step",
            StepOrHook::Hook { .. } => "the hook",
        }
    }
}

/// Where a step or hook stands as a sender. Absent means active and never failing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryState {
    /// Paused by hand: new deliveries are logged as skipped, due retries are not made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Timestamp>,
    /// Disabled after failing too long; held like a pause until resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// The first failed attempt since the last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub failures: u32,
    /// The last failed attempt's error or status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<Timestamp>,
    /// The receiver answered `429`: nothing is sent to it before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_until: Option<Timestamp>,
    /// The `rateLimit` it is saved with, in deliveries per second (its deliveries, queued
    /// ones included, take turns under this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// The Unix hour of its latest failure alert, and how many it raised in that hour.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alert_hour: i64,
    /// See `alert_hour`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alerts_in_hour: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl DeliveryState {
    /// Why nothing is sent for it now (paused or disabled), in words; `None` when active.
    pub fn held(&self, sender: &StepOrHook) -> Option<String> {
        let noun = sender.noun();
        if let Some(at) = self.disabled_at {
            let why = self.disabled_reason.as_deref().unwrap_or("failing");
            return Some(format!(
                "not sent: {noun} was disabled at {} ({why}); resume it to send again",
                at.iso()
            ));
        }
        self.paused_at.map(|at| {
            format!(
                "not sent: {noun} was paused at {}; resume it to send again",
                at.iso()
            )
        })
    }

    /// `disabled`, `paused`, `failing` or `active`.
    pub fn status(&self) -> &'static str {
        if self.disabled_at.is_some() {
            "disabled"
        } else if self.paused_at.is_some() {
            "paused"
        } else if self.failing_since.is_some() {
            "failing"
        } else {
            "active"
        }
    }

    /// Whether "Needs attention" lists it.
    pub fn needs_attention(&self) -> bool {
        self.status() != "active"
    }

    /// Records a failed attempt at `at` with `error`.
    pub fn failed(&mut self, at: Timestamp, error: &str) {
        self.failing_since.get_or_insert(at);
        self.failures = self.failures.saturating_add(1);
        let mut error = error.to_string();
        funnelhooks_core::text::shorten(&mut error, MAX_ERROR);
        self.last_error = Some(error);
        self.last_failure_at = Some(at);
    }

    /// Counts a failure alert at `at`; `false` once the hour's
    /// [`MAX_FAILURE_ALERTS_PER_HOUR`] are used.
    pub fn may_alert(&mut self, at: Timestamp) -> bool {
        let hour = at.0.div_euclid(3_600_000);
        if self.alert_hour != hour {
            self.alert_hour = hour;
            self.alerts_in_hour = 0;
        }
        self.alerts_in_hour += 1;
        self.alerts_in_hour <= MAX_FAILURE_ALERTS_PER_HOUR
    }

    /// Records a success: no longer failing, no back-off.
    pub fn succeeded(&mut self) {
        self.failing_since = None;
        self.failures = 0;
        self.backoff_until = None;
    }

    /// Whether it has failed long and often enough, at `now`, to be disabled after
    /// `after_ms` (0: never).
    pub fn should_disable(&self, now: Timestamp, after_ms: i64) -> bool {
        after_ms > 0
            && self.disabled_at.is_none()
            && self.failures >= MIN_FAILURES_TO_DISABLE
            && self.failing_since.is_some_and(|s| now.0 - s.0 >= after_ms)
    }

    /// The state as the API shows it (`deliveryState` of a step or hook).
    pub fn view(&self) -> Json {
        json!({
            "status": self.status(),
            "pausedAt": self.paused_at,
            "disabledAt": self.disabled_at,
            "disabledReason": self.disabled_reason,
            "failingSince": self.failing_since,
            "failures": self.failures,
            "lastError": self.last_error,
            "lastFailureAt": self.last_failure_at,
            "backoffUntil": self.backoff_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_key_reads_back_and_ids_with_colons_stay_whole() {
        for s in [
            StepOrHook::Step {
                bot_id: "b".into(),
                step_id: "s:1".into(),
            },
            StepOrHook::Hook {
                service_id: "svc".into(),
                hook_id: "h".into(),
            },
        ] {
            assert_eq!(StepOrHook::parse(&s.key()), Some(s.clone()));
        }
        assert_eq!(StepOrHook::parse("alert:x:y"), None);
    }

    #[test]
    fn disabling_needs_both_the_time_and_repeated_failures() {
        let hour = 3_600_000;
        let mut s = DeliveryState::default();
        s.failed(Timestamp(0), "500");
        assert!(
            !s.should_disable(Timestamp(200 * hour), 120 * hour),
            "one failure"
        );
        for i in 1..MIN_FAILURES_TO_DISABLE {
            s.failed(Timestamp(i as i64 * hour), "500");
        }
        assert!(
            !s.should_disable(Timestamp(119 * hour), 120 * hour),
            "too soon"
        );
        assert!(s.should_disable(Timestamp(120 * hour), 120 * hour));
        assert!(!s.should_disable(Timestamp(120 * hour), 0), "0 means never");
        s.succeeded();
        assert!(!s.should_disable(Timestamp(500 * hour), 120 * hour));
        assert_eq!(s.status(), "active");
    }
}
