//! Auto Actions, as Chatterfy calls them: trackers and affiliate programs report conversions
//! by click id through a bot's secret conversion link (`/api/bots/conversions/{id}`, public),
//! and the dialog with that click id moves as the bot's action for the event type says, or
//! the conversion waits until a dialog gets the click id (`funnelhooks_dialogs::conversions`).
//! The settings and links are management routes under `/api/bots/{botId}` ([`settings`]). Routes
//! are the table `funnelhooks_routes::conversions`; step webhooks are delivered by the
//! send-webhook component, chained after the answer.

mod convert;
mod settings;

use funnelhooks_core::Timestamp;
use funnelhooks_dialogs::Repo;
use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_dialogs::limits::MAX_BODY_BYTES;
use funnelhooks_routes::Params;
use funnelhooks_routes::conversions::{Op, ROUTES};
use funnelhooks_spin::kv::BatchedSpinKv;
use funnelhooks_spin::request::read;
use funnelhooks_spin::{ApiError, respond};
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// What every handler gets: the request, its path parameters, the store, the time it
/// arrived.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request,
    pub params: Params,
    pub repo: Repo<'a, BatchedSpinKv>,
    pub now: Timestamp,
}

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("conversions", &incoming);
    let (response, reached) = match read(incoming, MAX_BODY_BYTES).await {
        Ok(req) => {
            let (response, reached) = serve(&req).unwrap_or_else(|e| (e.response(), Vec::new()));
            funnelhooks_spin::audit::record(&req, &response);
            (response, reached)
        }
        Err(e) => (e.response(), Vec::new()),
    };
    respond(out, response).await;
    // Answered already: a lost chain leaves the handoff, which the retry sweep delivers.
    funnelhooks_spin::outbound::deliver_step_entries(
        reached
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap_or_default()),
    );
    funnelhooks_spin::nudge_sweep(16);
}

/// The answer, and the step entries the conversions moved dialogs into.
fn serve(req: &Request) -> Result<(Response, Vec<StepReached>), ApiError> {
    let (op, params) = funnelhooks_spin::route(ROUTES, req)?;
    let kv = BatchedSpinKv::open_default()?;
    let ctx = Ctx {
        req,
        params,
        repo: Repo::new(&kv),
        now: funnelhooks_spin::now(),
    };
    let plain = |r: Result<Response, funnelhooks_core::Error>| r.map(|r| (r, Vec::new()));
    Ok(match op {
        Op::Conversion | Op::ConversionPost => convert::conversion(&ctx),
        Op::ClickClaimed => convert::click_claimed(&ctx),
        Op::ClaimsDue => convert::claims_due(&ctx),
        Op::ReadAutoActions => plain(settings::read(&ctx)),
        Op::PutAutoActions => settings::put(&ctx),
        Op::PreviewStartPayload => plain(settings::preview(&ctx)),
        Op::CreateConversionLink => plain(settings::create_link(&ctx)),
        Op::ListConversionLinks => plain(settings::list_links(&ctx)),
        Op::RevokeConversionLink => plain(settings::revoke_link(&ctx)),
    }?)
}
