//! Call tracking under `/api/calls/services`: services (a call-tracking account, site or
//! widget) with an ingest key, their CallKeeper-style hooks, and the ingest route the
//! telephony side posts call events to. An event is answered as soon as its deliveries are
//! in the log; the hooks' first attempts then go out in parallel, retries through the outbox
//! that the retry sweep (`/api/deliveries/retry-due`) sends.

mod events;
mod hooks;
mod services;

use funnelhooks_calls::CallRepo;
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_spin::{ApiError, SpinKv, require_admin, respond};
use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::{IncomingRequest, Method, Request, Response, ResponseOutparam};

/// What every handler gets.
pub(crate) struct Call<'a> {
    pub req: &'a Request,
    pub kv: &'a SpinKv,
    pub repo: CallRepo<'a, SpinKv>,
    pub policy: TargetPolicy,
    pub now: funnelhooks_dialog::Timestamp,
}

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    let req = match Request::try_from_incoming_request(incoming).await {
        Ok(req) => req,
        Err(e) => {
            let e = ApiError::new(
                400,
                "bad_request",
                format!("the request cannot be read: {e}"),
            );
            return respond(out, e.response()).await;
        }
    };
    let kv = match SpinKv::open_default() {
        Ok(kv) => kv,
        Err(e) => return respond(out, ApiError::from(e).response()).await,
    };
    let call = Call {
        req: &req,
        kv: &kv,
        repo: CallRepo::new(&kv),
        policy: funnelhooks_spin::target_policy(),
        now: funnelhooks_spin::now(),
    };
    let (response, after) = match route(&call) {
        Ok(answer) => answer,
        Err(e) => (e.response(), None),
    };
    respond(out, response).await;
    // The telephony side has its answer; now the hooks' first attempts, all at once.
    if let Some(fan_out) = after {
        events::send(&call, fan_out);
    }
}

fn route(call: &Call) -> Result<(Response, Option<events::FanOut>), ApiError> {
    let path = call.req.path().trim_end_matches('/');
    let rest = path
        .strip_prefix("/api/calls")
        .ok_or_else(ApiError::no_route)?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    use Method::{Delete, Get, Patch, Post, Put};
    // The ingest route has its own key; everything else is management.
    if !matches!(segments.as_slice(), ["services", _, "events"]) {
        require_admin(call.req)?;
    }
    let answer = match (segments.as_slice(), call.req.method()) {
        // GET too: a call tracker configured with method GET sends the call in the query.
        (["services", service, "events"], Post | Get) => return events::ingest(call, service),
        (["services", _, "events"], _) => Err(ApiError::method_not_allowed("GET or POST")),
        (["services"], Post) => services::create(call),
        (["services"], Get) => services::list(call),
        (["services"], _) => Err(ApiError::method_not_allowed("GET or POST")),
        (["parameters"], Get) => Ok(services::parameters()),
        (["parameters"], _) => Err(ApiError::method_not_allowed("GET")),
        (["services", id], Get) => services::read(call, id),
        (["services", id], Delete) => services::delete(call, id),
        (["services", _], _) => Err(ApiError::method_not_allowed("GET or DELETE")),
        (["services", id, "ingest-key"], Post) => services::rotate_key(call, id),
        (["services", _, "ingest-key"], _) => Err(ApiError::method_not_allowed("POST")),
        (["services", id, "hooks"], Get) => hooks::list(call, id),
        (["services", id, "hooks"], Post) => hooks::create(call, id),
        (["services", _, "hooks"], _) => Err(ApiError::method_not_allowed("GET or POST")),
        (["services", id, "hooks", hook], Get) => hooks::read(call, id, hook),
        (["services", id, "hooks", hook], Put) => hooks::edit(call, id, hook, false),
        (["services", id, "hooks", hook], Patch) => hooks::edit(call, id, hook, true),
        (["services", id, "hooks", hook], Delete) => hooks::delete(call, id, hook),
        (["services", _, "hooks", _], _) => {
            Err(ApiError::method_not_allowed("GET, PUT, PATCH or DELETE"))
        }
        (["services", id, "hooks", hook, "test-send"], Post) => hooks::test_send(call, id, hook),
        (["services", _, "hooks", _, "test-send"], _) => Err(ApiError::method_not_allowed("POST")),
        _ => Err(ApiError::no_route()),
    }?;
    Ok((answer, None))
}
