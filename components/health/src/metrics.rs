//! `GET /api/metrics`: the installation's counts in the Prometheus text format (0.0.4),
//! whichever instance is scraped: everything is read from the shared store.
//!
//! Two kinds of numbers: counters the delivery engine and the postback path add to
//! (`metrics:…` keys, see `funnelhooks_delivery::metrics` and `funnelhooks_core::metrics`),
//! and counts read off records that exist anyway (the log's, the dialog lists' and the call
//! event lists' slot counters, the outbox), which cost no write at all.

use std::fmt::Write as _;

use funnelhooks_core::Timestamp;
use funnelhooks_core::metrics::{POSTBACK_REFUSALS, postback_refusal_key};
use funnelhooks_delivery::engine::Clock;
use funnelhooks_delivery::metrics::{CLASSES, OUTCOMES, counter_key};
use funnelhooks_delivery::outbox::{backlog, last_sweep};
use funnelhooks_spin::kv::BatchedSpinKv;
use funnelhooks_spin::{ApiError, SpinClock};
use funnelhooks_store::{GetMany, Index, Kv, StoreError, read_counter};
use spin_sdk::http::Response;

/// Most bots (and call-tracking services) whose counters one scrape sums.
const MAX_OWNERS: usize = 1_000;

/// The text, family by family.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                // Label values here are our own codes: no quote or backslash to escape.
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Reads `keys` in one round trip where the host can, as counters.
fn counters(kv: &BatchedSpinKv, keys: &[String]) -> Result<Vec<i64>, StoreError> {
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    Ok(kv
        .get_many(&refs)?
        .iter()
        .map(|v| read_counter(v.as_deref()))
        .collect())
}

/// The sum of the slot counters `{prefix}:{id}:n` of the first [`MAX_OWNERS`] entries of
/// the index `list` (bots, services).
fn owners_sum(kv: &BatchedSpinKv, list: &str, prefix: &str) -> Result<i64, StoreError> {
    let page = Index::new(kv, list.into()).page(0, MAX_OWNERS)?;
    let keys: Vec<String> = page
        .items
        .iter()
        .map(|id| format!("{prefix}:{id}:n"))
        .collect();
    Ok(counters(kv, &keys)?.iter().sum())
}

/// How many steps and hooks are failing, paused and disabled: the attention list's
/// entries, each state read (one round trip where the host can). Read as plain JSON: the
/// three moments say it.
fn senders_needing_attention(kv: &BatchedSpinKv) -> Result<[(&'static str, i64); 3], StoreError> {
    use funnelhooks_delivery::state::ATTENTION;
    let listed: Vec<String> = funnelhooks_store::Records::new(kv)
        .get(ATTENTION)?
        .unwrap_or_default();
    let keys: Vec<String> = listed.iter().map(|k| format!("state:{k}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut counts = [("failing", 0), ("paused", 0), ("disabled", 0)];
    for bytes in kv.get_many(&refs)?.into_iter().flatten() {
        let Ok(state) =
            serde_json::from_slice::<serde_json::Value>(funnelhooks_store::strip_ops(&bytes))
        else {
            continue;
        };
        let has = |k: &str| state.get(k).is_some_and(|v| !v.is_null());
        let slot = if has("disabledAt") {
            2
        } else if has("pausedAt") {
            1
        } else if has("failingSince") {
            0
        } else {
            continue;
        };
        counts[slot].1 += 1;
    }
    Ok(counts)
}

/// The metrics at `clock`'s now.
pub(crate) fn render(clock: &SpinClock) -> Result<Response, ApiError> {
    let kv = BatchedSpinKv::open_default()?;
    let now = clock.now();
    let mut t = Text(String::with_capacity(4096));

    let pairs: Vec<(&str, &str)> = CLASSES
        .iter()
        .flat_map(|c| OUTCOMES.iter().map(move |o| (*c, *o)))
        .collect();
    let keys: Vec<String> = pairs.iter().map(|(c, o)| counter_key(c, o)).collect();
    let attempts = counters(&kv, &keys)?;
    let created = read_counter(kv.get("dlvs:n")?.as_deref());
    t.family(
        "funnelhooks_deliveries_created_total",
        "counter",
        "Deliveries created (step entries, call hooks, test sends, replays), skipped ones included.",
    );
    t.sample("funnelhooks_deliveries_created_total", &[], created);
    t.family(
        "funnelhooks_delivery_attempts_total",
        "counter",
        "Attempts made, by the answer's status class (or timeout, network) and where the delivery stood after it.",
    );
    for ((class, outcome), n) in pairs.iter().zip(&attempts) {
        if *class != "none" && *outcome != "skipped" {
            t.sample(
                "funnelhooks_delivery_attempts_total",
                &[("class", class), ("outcome", outcome)],
                *n,
            );
        }
    }
    t.family(
        "funnelhooks_deliveries_ended_total",
        "counter",
        "Deliveries that ended: delivered, failed (given up, refused, gone) or skipped.",
    );
    for outcome in ["delivered", "failed", "skipped"] {
        let n: i64 = pairs
            .iter()
            .zip(&attempts)
            .filter(|((_, o), _)| *o == outcome)
            .map(|(_, n)| *n)
            .sum();
        t.sample(
            "funnelhooks_deliveries_ended_total",
            &[("outcome", outcome)],
            n,
        );
    }
    t.family(
        "funnelhooks_delivery_retries_total",
        "counter",
        "Attempts that failed and were scheduled again.",
    );
    let retries: i64 = pairs
        .iter()
        .zip(&attempts)
        .filter(|((_, o), _)| *o == "retrying")
        .map(|(_, n)| *n)
        .sum();
    t.sample("funnelhooks_delivery_retries_total", &[], retries);

    let backlog = backlog(&kv, now)?;
    t.family(
        "funnelhooks_outbox_due",
        "gauge",
        "Deliveries whose next attempt is due now or was due before.",
    );
    t.sample("funnelhooks_outbox_due", &[], backlog.due as i64);
    t.family(
        "funnelhooks_outbox_overdue",
        "gauge",
        "Deliveries due more than two minutes ago: a sweep should have made their attempt.",
    );
    t.sample("funnelhooks_outbox_overdue", &[], backlog.overdue as i64);
    t.family(
        "funnelhooks_outbox_oldest_overdue_seconds",
        "gauge",
        "How long the oldest overdue delivery has been due (0: none).",
    );
    let oldest = backlog
        .oldest_overdue
        .map_or(0, |t| (now.0 - t.0).max(0) / 1000);
    t.sample("funnelhooks_outbox_oldest_overdue_seconds", &[], oldest);
    t.family(
        "funnelhooks_outbox_counted_partly",
        "gauge",
        "1 when the outbox was too far behind to count whole: due and overdue are at least these.",
    );
    t.sample(
        "funnelhooks_outbox_counted_partly",
        &[],
        i64::from(backlog.at_least),
    );
    let last = last_sweep(&kv)?;
    t.family(
        "funnelhooks_sweep_last_run_timestamp_seconds",
        "gauge",
        "When the installation's last retry sweep started, on any instance (0: never).",
    );
    t.sample(
        "funnelhooks_sweep_last_run_timestamp_seconds",
        &[],
        last.as_ref().map_or(0, |l| l.at.unix_seconds()),
    );

    t.family(
        "funnelhooks_senders_needing_attention",
        "gauge",
        "Steps and call hooks that are failing, paused or disabled (GET /api/attention lists them).",
    );
    for (status, n) in senders_needing_attention(&kv)? {
        t.sample(
            "funnelhooks_senders_needing_attention",
            &[("status", status)],
            n,
        );
    }

    let codes: Vec<&str> = POSTBACK_REFUSALS.iter().copied().chain(["other"]).collect();
    let keys: Vec<String> = codes.iter().map(|c| postback_refusal_key(c)).collect();
    let refused = counters(&kv, &keys)?;
    t.family(
        "funnelhooks_postbacks_refused_total",
        "counter",
        "Postbacks answered with an error, by its code (accepted postbacks are not counted: see docs/operations.md).",
    );
    for (code, n) in codes.iter().zip(&refused) {
        t.sample("funnelhooks_postbacks_refused_total", &[("code", code)], *n);
    }
    t.family(
        "funnelhooks_dialogs_created_total",
        "counter",
        "Dialogs created, by postbacks and by the bot engine (summed over the first 1,000 bots).",
    );
    t.sample(
        "funnelhooks_dialogs_created_total",
        &[],
        owners_sum(&kv, "bots", "dlgs")?,
    );
    t.family(
        "funnelhooks_call_events_total",
        "counter",
        "Distinct call events received (repeats not counted; summed over the first 1,000 services).",
    );
    t.sample(
        "funnelhooks_call_events_total",
        &[],
        owners_sum(&kv, "callsvcs", "callevs")?,
    );
    t.family(
        "funnelhooks_scrape_timestamp_seconds",
        "gauge",
        "When these numbers were read.",
    );
    t.sample(
        "funnelhooks_scrape_timestamp_seconds",
        &[],
        Timestamp(now.0).unix_seconds(),
    );
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(t.0.into_bytes())
        .build())
}
