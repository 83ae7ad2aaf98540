//! API keys and the audit trail, under `/api/keys`, `/api/audit` and `/api/me`: an admin
//! makes keys with a role and a scope, rotates and revokes them, and reads the trail of
//! changes; any key asks who it is (the console shows only what it may do). Routes are the
//! table `funnelhooks_routes::access`; the rule and the records are `funnelhooks_access`.

mod audit;
mod keys;

use funnelhooks_core::Timestamp;
use funnelhooks_routes::Params;
use funnelhooks_routes::access::{Op, ROUTES};
use funnelhooks_spin::request::{MAX_JSON_BODY, read};
use funnelhooks_spin::{ApiError, SpinKv, json, respond};
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// What every handler gets: the request, its path parameters, the store, the time it
/// arrived.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request,
    pub params: Params,
    pub kv: &'a SpinKv,
    pub now: Timestamp,
}

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("access", &incoming);
    let response = match read(incoming, MAX_JSON_BODY).await {
        Ok(req) => {
            let response = serve(&req).unwrap_or_else(|e| e.response());
            funnelhooks_spin::audit::record(&req, &response);
            response
        }
        Err(e) => e.response(),
    };
    respond(out, response).await;
}

fn serve(req: &Request) -> Result<Response, ApiError> {
    let (op, params) = funnelhooks_spin::route(ROUTES, req)?;
    let kv = SpinKv::open_default()?;
    let ctx = Ctx {
        req,
        params,
        kv: &kv,
        now: funnelhooks_spin::now(),
    };
    Ok(match op {
        Op::ListKeys => keys::list(&ctx),
        Op::CreateKey => keys::create(&ctx),
        Op::ReadKey => keys::read(&ctx),
        Op::ChangeKey => keys::change(&ctx),
        Op::RevokeKey => keys::revoke(&ctx),
        Op::RotateKey => keys::rotate(&ctx),
        Op::ListAudit => audit::list(&ctx),
        Op::Me => Ok(json(200, &funnelhooks_spin::auth::caller().view())),
    }?)
}
