//! The management API under `/api/bots` (bearer token from the `admin_token` variable):
//! bots, their postback links and custom fields, and the dialog routes the bot engine uses.
//! Steps are served by the send-webhook component, which understands their webhook configs.
//! Routes are the table `funnelhooks_routes::bots_api`; one module per resource; errors
//! become JSON in `funnelhooks_spin::error`.

mod bots;
mod dialogs;
mod fields;
mod webhooks;

use std::cell::RefCell;

use funnelhooks_core::Timestamp;
use funnelhooks_dialogs::Repo;
use funnelhooks_dialogs::clicks::ClickClaimed;
use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_routes::Params;
use funnelhooks_routes::bots_api::{Op, ROUTES};
use funnelhooks_spin::request::{MAX_JSON_BODY, read};
use funnelhooks_spin::{ApiError, SpinKv, respond};
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// What every handler gets: the request, its path parameters, the store, the time it
/// arrived.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request,
    pub params: Params,
    pub repo: Repo<'a, SpinKv>,
    pub now: Timestamp,
    /// What is handed on once the answer has gone.
    pub after: RefCell<After>,
}

/// Work handed to other components after the answer, by Spin's local chaining.
#[derive(Default)]
pub(crate) struct After {
    /// A started dialog got a click id conversions wait for: to the conversions component.
    pub claimed: Option<ClickClaimed>,
    /// A moved dialog entered a send-webhook step: to the send-webhook component.
    pub reached: Option<StepReached>,
}

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("bots-api", &incoming);
    let (response, after) = match read(incoming, MAX_JSON_BODY).await {
        Ok(req) => {
            let (response, after) =
                serve(&req).unwrap_or_else(|e| (e.response(), After::default()));
            funnelhooks_spin::audit::record(&req, &response);
            (response, after)
        }
        Err(e) => (e.response(), After::default()),
    };
    respond(out, response).await;
    // Handed off before the dialog changed: a chain that fails leaves it to the sweep.
    funnelhooks_spin::outbound::deliver_step_entries(
        after
            .reached
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap_or_default()),
    );
    if let Some(claimed) = after.claimed {
        let body = serde_json::to_vec(&claimed).unwrap_or_default();
        funnelhooks_spin::outbound::apply_waiting_conversions(&body);
    }
    funnelhooks_spin::nudge_sweep(16);
}

fn serve(req: &Request) -> Result<(Response, After), ApiError> {
    let (op, params) = funnelhooks_spin::route(ROUTES, req)?;
    let kv = SpinKv::open_default()?;
    let ctx = Ctx {
        req,
        params,
        repo: Repo::new(&kv),
        now: funnelhooks_spin::now(),
        after: RefCell::new(After::default()),
    };
    let response = match op {
        Op::CreateBot => bots::create(&ctx),
        Op::ListBots => bots::list(&ctx),
        Op::ReadBot => bots::read(&ctx),
        Op::RenameBot => bots::rename(&ctx),
        Op::DeleteBot => bots::delete(&ctx),
        Op::CreateLink => webhooks::create(&ctx),
        Op::ListLinks => webhooks::list(&ctx),
        Op::ImportLink => webhooks::import(&ctx),
        Op::RevokeLink => webhooks::revoke(&ctx),
        Op::ListFields => fields::list(&ctx),
        Op::PutField => fields::put(&ctx),
        Op::ReadField => fields::read(&ctx),
        Op::DeleteField => fields::delete(&ctx),
        Op::ListDialogs => dialogs::list(&ctx),
        Op::StartDialog => dialogs::start(&ctx),
        Op::ReadDialog => dialogs::read(&ctx),
        Op::EraseDialog => dialogs::erase(&ctx),
        Op::MoveDialog => dialogs::move_to(&ctx),
        Op::ListRefused => dialogs::refused(&ctx),
    }?;
    Ok((response, ctx.after.into_inner()))
}
