//! `GET|POST /api/bots/webhooks/{postbackId}/updateDialog`: a tracker, an affiliate network
//! or a customer's backend changes a dialog through a postback link, as with Chatterfy. The
//! secret is the link id in the path; there is no other authentication.
//!
//! When the postback moves the dialog into a send-webhook step, the step's webhook is
//! delivered by the send-webhook component through Spin's local chaining, after this
//! component has answered: the tracker never waits for the receiver, nor for retries.

use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_dialogs::limits::{DialogLimits, MAX_BODY_BYTES};
use funnelhooks_dialogs::{Repo, from_request};
use funnelhooks_routes::update_dialog::ROUTES;
use std::time::Duration;

use funnelhooks_spin::kv::BatchedSpinKv;
use funnelhooks_spin::outbound::chain;
use funnelhooks_spin::request::read;
use funnelhooks_spin::{ApiError, json, now, respond};
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// Where the send-webhook component takes step entries, by local chaining.
const STEP_REACHED: &str = "/internal/step-reached";
/// The chained delivery makes one attempt of at most 25 s; the chain waits a little longer.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(28);

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
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
        if let Err(e) = chain("send-webhook", STEP_REACHED, &body, CHAIN_TIMEOUT) {
            eprintln!("update-dialog: could not reach send-webhook: {e:?}");
        }
    }
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
    // Written straight from the dialog: no copy of it and no JSON tree in between (a tenth
    // of a postback's Wasm instructions).
    let answer = Answer {
        ok: true,
        created: done.created,
        undefined_fields: &done.update.undefined_fields,
        dialog: &done.dialog.into_view(),
        webhook_queued: reached.is_some(),
    };
    Ok((json(200, &answer), reached))
}

/// A postback's answer; the dialog's members in the order of the design card.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    ok: bool,
    created: bool,
    undefined_fields: &'a [String],
    dialog: &'a funnelhooks_dialogs::Dialog,
    webhook_queued: bool,
}
