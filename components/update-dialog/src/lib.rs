//! `GET|POST /api/bots/webhooks/{postbackId}/updateDialog`: a tracker, an affiliate network
//! or a customer's backend changes a dialog through a postback link, as with Chatterfy. The
//! secret is the link id in the path; there is no other authentication.
//!
//! When the postback moves the dialog into a send-webhook step, the step's webhook is
//! delivered by the send-webhook component through Spin's local chaining, after this
//! component has answered: the tracker never waits for the receiver, nor for retries.

use std::collections::BTreeMap;

use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_dialogs::limits::{DialogLimits, MAX_BODY_BYTES};
use funnelhooks_dialogs::{Repo, from_request};
use funnelhooks_routes::update_dialog::ROUTES;
use std::time::Duration;

use funnelhooks_core::log::Level;
use funnelhooks_spin::kv::BatchedSpinKv;
use funnelhooks_spin::outbound::chain;
use funnelhooks_spin::request::read;
use funnelhooks_spin::{ApiError, json, now, respond};
use funnelhooks_store::Kv;
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// Where the send-webhook component takes step entries, by local chaining.
const STEP_REACHED: &str = "/internal/step-reached";
/// The chained delivery makes one attempt of at most 25 s; the chain waits a little longer.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(28);

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("update-dialog", &incoming);
    let (response, reached) = match read(incoming, MAX_BODY_BYTES).await {
        Ok(req) => match update_dialog(&req) {
            Ok(done) => done,
            Err(e) => (e.response(), None),
        },
        Err(e) => (e.response(), None),
    };
    respond(out, response).await;
    if let Some(reached) = reached {
        let body = serde_json::to_vec(&reached).unwrap_or_default();
        // The postback is answered already. If the chain fails, the handoff written before
        // the answer is still there, and the retry sweep delivers it.
        if let Err(e) = chain("send-webhook", STEP_REACHED, &body, CHAIN_TIMEOUT)
            && let Some(line) = funnelhooks_core::log::line(Level::Warn, "chain_failed")
        {
            line.str("to", "send-webhook")
                .str("error", e.message())
                .str("then", "the retry sweep delivers the step entry")
                .emit();
        }
    }
    // A refused postback is counted (accepted ones are not: see funnelhooks_core::metrics);
    // the tracker has its answer already.
    if let Some((code, _)) = funnelhooks_core::log::noted_error()
        && let Ok(kv) = BatchedSpinKv::open_default()
    {
        let _ = kv.increment(&funnelhooks_core::metrics::postback_refusal_key(code), 1);
    }
    funnelhooks_spin::nudge_sweep(64);
}

/// How many new dialogs a bot's links may create: the `max_new_dialogs_per_minute` and
/// `max_dialogs_per_bot` variables (0: no limit), else the defaults.
fn dialog_limits() -> DialogLimits {
    let var = |name: &str, default: u64| {
        spin_sdk::variables::get(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let defaults = DialogLimits::default();
    DialogLimits {
        per_minute: var("max_new_dialogs_per_minute", defaults.per_minute),
        total: var("max_dialogs_per_bot", defaults.total),
    }
}

/// The postback, and the step entry to chain when the dialog entered a send-webhook step.
fn update_dialog(req: &Request) -> Result<(Response, Option<StepReached>), ApiError> {
    let (_, params) = funnelhooks_spin::public_route(ROUTES, req)?;
    let content_type = req.header("content-type").and_then(|h| h.as_str());
    let update = from_request(req.query(), content_type, req.body())?;
    // Batched: the postback reads its link and bot, and a new dialog is written with its
    // list entry, each in one round trip.
    let kv = BatchedSpinKv::open_default()?;
    let repo = Repo::new(&kv);
    let at = now();
    let done = repo.postback(params.get("postbackId"), update, at, &dialog_limits)?;
    // Handed off before the dialog changed (see `funnelhooks_dialogs::handoff`): if the
    // chained delivery never happens, the retry sweep delivers it.
    let reached = done.step_entry;
    // What this postback wrote and nothing else: the link is a shared secret that sits in
    // a tracker's settings, and must not read the dialog's other data (docs/security.md).
    let u = &done.update;
    let answer = Answer {
        ok: true,
        chat_id: u.chat_id,
        created: done.created,
        changed: done.dialog.is_some(),
        applied: Applied {
            step_id: u.step.as_ref().map(|s| s.id.as_str()),
            step_key: u.step.as_ref().map(|s| s.key.as_str()),
            status: u.status,
            fields: &u.fields,
            tracker: &u.tracker,
            add_tags: &u.add_tags,
            remove_tags: &u.remove_tags,
        },
        undefined_fields: &u.undefined_fields,
        webhook_queued: reached.is_some(),
    };
    Ok((json(200, &answer), reached))
}

/// A postback's answer: accepted, whether it made the dialog, and what it wrote.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    ok: bool,
    chat_id: i64,
    created: bool,
    changed: bool,
    applied: Applied<'a>,
    undefined_fields: &'a [String],
    webhook_queued: bool,
}

/// The members a postback wrote, as it wrote them (typed by the bot's field definitions).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Applied<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    step_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<funnelhooks_dialogs::Status>,
    #[serde(skip_serializing_if = "no_entries")]
    fields: &'a BTreeMap<String, funnelhooks_dialogs::FieldValue>,
    #[serde(skip_serializing_if = "no_entries")]
    tracker: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "no_items")]
    add_tags: &'a [String],
    #[serde(skip_serializing_if = "no_items")]
    remove_tags: &'a [String],
}

fn no_entries<V>(map: &&BTreeMap<String, V>) -> bool {
    map.is_empty()
}

fn no_items(items: &&[String]) -> bool {
    items.is_empty()
}
