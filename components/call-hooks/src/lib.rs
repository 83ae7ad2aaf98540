//! Call tracking under `/api/calls`: services (a call-tracking account, site or widget) with
//! an ingest key, their CallKeeper-style hooks, and the ingest route the telephony side posts
//! call events to. An event is answered as soon as its deliveries are in the log; the hooks'
//! first attempts then go out in parallel, retries through the outbox that the retry sweep
//! (`/api/deliveries/retry-due`) sends. Routes are the table `funnelhooks_routes::call_hooks`.

mod events;
mod hooks;
mod services;

use funnelhooks_calls::CallRepo;
use funnelhooks_core::Timestamp;
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_routes::Params;
use funnelhooks_routes::call_hooks::{Op, ROUTES};
use funnelhooks_spin::request::read;
// Batched: a call event writes each new delivery with its outbox and log entries in one round
// trip.
use funnelhooks_spin::kv::BatchedSpinKv as SpinKv;
use funnelhooks_spin::{ApiError, respond};
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// What every handler gets: the request, its path parameters, the store (as call-tracking
/// services and raw, for the delivery engine), where hooks may send, the time it arrived.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request,
    pub params: Params,
    pub kv: &'a SpinKv,
    pub repo: CallRepo<'a, SpinKv>,
    pub policy: TargetPolicy,
    pub now: Timestamp,
}

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("call-hooks", &incoming);
    // Hook forms are the largest bodies (50 parameters of 2 KB each fit); events are
    // checked against their own, smaller limit.
    let req = match read(incoming, hooks::MAX_FORM_BYTES).await {
        Ok(req) => req,
        Err(e) => return respond(out, e.response()).await,
    };
    let (op, params) = match funnelhooks_spin::route(ROUTES, &req) {
        Ok(found) => found,
        Err(e) => return respond(out, e.response()).await,
    };
    let kv = match SpinKv::open_default() {
        Ok(kv) => kv,
        Err(e) => return respond(out, ApiError::from(e).response()).await,
    };
    let ctx = Ctx {
        req: &req,
        params,
        kv: &kv,
        repo: CallRepo::new(&kv),
        policy: funnelhooks_spin::target_policy(),
        now: funnelhooks_spin::now(),
    };
    let mut refused = None;
    let (response, fan_out) = match serve(&ctx, op) {
        Ok(answer) => answer,
        Err(e) => {
            let e = ApiError::from(e);
            let response = e.response();
            refused = Some((e.status, e.error));
            (response, None)
        }
    };
    funnelhooks_spin::audit::record(&req, &response);
    respond(out, response).await;
    // The telephony side has its answer; a refused event is kept for the service's page.
    if let (true, Some((status, error))) = (events::is_ingest(op), refused) {
        events::keep_refused(&ctx, status, &error);
    }
    // The telephony side has its answer; now the hooks' first attempts, all at once.
    if let Some(fan_out) = fan_out {
        events::send(&ctx, fan_out);
    }
    funnelhooks_spin::nudge_sweep(8);
}

fn serve(ctx: &Ctx, op: Op) -> Result<(Response, Option<events::FanOut>), funnelhooks_core::Error> {
    let answer = match op {
        Op::IngestEvent | Op::IngestEventGet | Op::IngestEventByPath | Op::IngestEventByPathGet => {
            return events::ingest(ctx);
        }
        Op::ListParameters => Ok(services::parameters()),
        Op::CreateService => services::create(ctx),
        Op::ListServices => services::list(ctx),
        Op::ReadService => services::read(ctx),
        Op::DeleteService => services::delete(ctx),
        Op::RotateKey => services::rotate_key(ctx),
        Op::ListHooks => hooks::list(ctx),
        Op::CreateHook => hooks::create(ctx),
        Op::ReadHook => hooks::read(ctx),
        Op::ReplaceHook => hooks::edit(ctx, funnelhooks_calls::Edit::Replace),
        Op::ChangeHook => hooks::edit(ctx, funnelhooks_calls::Edit::Patch),
        Op::DeleteHook => hooks::delete(ctx),
        Op::TestSendHook => hooks::test_send(ctx),
        Op::PauseHook => hooks::pause_or_resume(ctx, true),
        Op::ResumeHook => hooks::pause_or_resume(ctx, false),
        Op::ListRefusedEvents => events::refused(ctx),
    }?;
    Ok((answer, None))
}
