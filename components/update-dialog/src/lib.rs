//! `GET|POST /api/bots/webhooks/{postbackId}/updateDialog`: a tracker, an affiliate network
//! or a customer's backend changes a dialog through a postback link, as with Chatterfy. The
//! secret is the link id in the path; there is no other authentication.
//!
//! When the postback moves the dialog into a send-webhook step, the step's webhook is
//! delivered by the send-webhook component through Spin's local chaining, after this
//! component has answered: the tracker never waits for the receiver, nor for retries.
//!
//! When the postback gives the dialog a click id conversions wait for (Auto Actions), the
//! conversions component applies them, also by local chaining after the answer.

use std::collections::BTreeMap;

use funnelhooks_dialogs::clicks::ClickClaimed;
use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_dialogs::limits::{DialogLimits, MAX_BODY_BYTES};
use funnelhooks_dialogs::{Repo, from_request, refused};
use funnelhooks_routes::update_dialog::ROUTES;

use funnelhooks_spin::kv::BatchedSpinKv;
use funnelhooks_spin::outbound::deliver_step_entries;
use funnelhooks_spin::request::read;
use funnelhooks_spin::{ApiError, json, now, respond};
use funnelhooks_store::Kv;
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("update-dialog", &incoming);
    let req = read(incoming, MAX_BODY_BYTES).await;
    // The refusal's error, kept for the bot's refused postbacks once the answer has gone.
    let mut refused = None;
    let (response, reached, claimed) = match &req {
        Ok(req) => match update_dialog(req) {
            Ok(done) => done,
            Err(e) => {
                let response = e.response();
                refused = Some((e.status, e.error));
                (response, Vec::new(), None)
            }
        },
        Err(e) => (e.response(), Vec::new(), None),
    };
    respond(out, response).await;
    // Answered already: if a chain fails, the handoff written before the dialog changed is
    // still there, and the retry sweep delivers it.
    deliver_step_entries(
        reached
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap_or_default()),
    );
    if let Some(claimed) = claimed {
        let body = serde_json::to_vec(&claimed).unwrap_or_default();
        funnelhooks_spin::outbound::apply_waiting_conversions(&body);
    }
    // A refused postback is counted (accepted ones are not: see funnelhooks_core::metrics);
    // the tracker has its answer already.
    if let Some((code, _)) = funnelhooks_core::log::noted_error()
        && let Ok(kv) = BatchedSpinKv::open_default()
    {
        let _ = kv.increment(&funnelhooks_core::metrics::postback_refusal_key(code), 1);
        if let (Ok(req), Some((status, error))) = (&req, refused) {
            keep_refused(&kv, req, code, status, &error);
        }
    }
    funnelhooks_spin::nudge_sweep(64);
}

/// Keeps a refused postback for its bot's "refused postbacks" (when the link names a bot
/// that exists: a revoked or unknown link has nobody to tell).
fn keep_refused(
    kv: &BatchedSpinKv,
    req: &Request,
    code: &str,
    status: u16,
    error: &funnelhooks_core::Error,
) {
    // The dialog limiter's refusals come in floods it exists to absorb: counted (metrics),
    // not kept one by one.
    if matches!(
        code,
        "unknown_webhook"
            | "unknown_bot"
            | "not_found"
            | "method_not_allowed"
            | "too_many_new_dialogs"
            | "too_many_dialogs"
    ) {
        return;
    }
    // `/api/bots/webhooks/{postbackId}/updateDialog`.
    let link = req.path().split('/').nth(4).unwrap_or_default();
    let Ok(Some(bot)) = refused::bot_of_link(kv, link) else {
        return;
    };
    let sent = funnelhooks_core::refused::sent(req.query(), req.body());
    let refusal = funnelhooks_core::refused::Refusal {
        at: now(),
        status,
        code,
        field: error.field.as_deref(),
        message: &error.message,
        method: &req.method().to_string(),
        sent: &sent,
    };
    let _ = funnelhooks_core::refused::record_refused(kv, &refused::refused_list(&bot), &refusal);
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

/// The answer, the step entry to chain when the dialog entered a send-webhook step, and the
/// click id to hand to the conversions component when conversions wait for it.
type Served = (Response, Vec<StepReached>, Option<ClickClaimed>);

/// The postback, and the step entries to chain when the dialog entered send-webhook steps.
fn update_dialog(req: &Request) -> Result<Served, ApiError> {
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
    let mut reached: Vec<StepReached> = done.step_entry.into_iter().collect();
    // A store that refused this postback's batch read refuses its delivery's too.
    for r in &mut reached {
        r.reads_one_by_one = kv.batch_refused();
    }
    let queued = !reached.is_empty();
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
        webhook_queued: queued,
        start_payload: u.start_payload.as_ref(),
        conversions_waiting: done.click_claimed.is_some(),
    };
    Ok((json(200, &answer), reached, done.click_claimed))
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
    #[serde(skip_serializing_if = "Option::is_none")]
    start_payload: Option<&'a funnelhooks_dialogs::auto::PayloadRead>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    conversions_waiting: bool,
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
