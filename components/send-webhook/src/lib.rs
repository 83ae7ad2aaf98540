//! Steps (with their webhook configs) and the delivery log: save and read steps, deliver a
//! step's webhook for a dialog now, read the log, replay, test-send, sweep the retries that
//! are due, preview a template. The
//! update-dialog component reaches `POST /internal/step-reached` through Spin's local
//! chaining (`http://send-webhook.spin.internal`); no public route leads there.

mod deliver;
mod deliveries;
mod preview;
mod steps;

use funnelhooks_delivery::TargetPolicy;
use funnelhooks_dialog::Repo;
use funnelhooks_spin::{
    ApiError, SpinClock, SpinKv, SpinSender, require_admin, require_admin_or_sweep_key,
};
use spin_sdk::http::{Method, Request, Response};

/// What every handler gets.
pub(crate) struct Call<'a> {
    pub req: &'a Request,
    pub repo: Repo<'a, SpinKv>,
    pub engine: funnelhooks_delivery::engine::Engine<'a, SpinKv, SpinSender, SpinClock>,
    pub policy: TargetPolicy,
    pub now: funnelhooks_dialog::Timestamp,
}

#[spin_sdk::http_component]
fn handle(req: Request) -> Response {
    route(&req).unwrap_or_else(|e| e.response())
}

/// Chained requests arrive on Spin's synthetic `/...` route; public requests never do, as
/// no public route of this component is a catch-all.
fn chained(req: &Request) -> bool {
    req.header("spin-matched-route").and_then(|h| h.as_str()) == Some("/...")
}

fn route(req: &Request) -> Result<Response, ApiError> {
    let path = req.path().trim_end_matches('/').to_string();
    match path.as_str() {
        "/internal/step-reached" if !chained(req) => return Err(ApiError::no_route()),
        "/internal/step-reached" => {}
        "/api/deliveries/retry-due" => require_admin_or_sweep_key(req)?,
        _ => require_admin(req)?,
    }
    let kv = SpinKv::open_default()?;
    let (sender, clock) = (SpinSender, SpinClock);
    let call = Call {
        req,
        repo: Repo::new(&kv),
        engine: funnelhooks_delivery::engine::Engine::new(&kv, &sender, &clock),
        policy: funnelhooks_spin::target_policy(),
        now: funnelhooks_spin::now(),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    use Method::{Delete, Get, Post, Put};
    match (segments.as_slice(), req.method()) {
        (["internal", "step-reached"], Post) => deliver::step_reached(&call),
        (["api", "bots", bot, "steps"], Get) => steps::list(&call, bot),
        (["api", "bots", bot, "steps"], Post) => steps::create(&call, bot),
        (["api", "bots", _, "steps"], _) => Err(ApiError::method_not_allowed("GET or POST")),
        (["api", "bots", bot, "steps", step], Put) => steps::put(&call, bot, step),
        (["api", "bots", bot, "steps", step], Get) => steps::read(&call, bot, step),
        (["api", "bots", bot, "steps", step], Delete) => steps::delete(&call, bot, step),
        (["api", "bots", _, "steps", _], _) => {
            Err(ApiError::method_not_allowed("GET, PUT or DELETE"))
        }
        (["api", "deliveries"], Get) => deliveries::list(&call),
        (["api", "deliveries"], _) => Err(ApiError::method_not_allowed("GET")),
        // GET too: cron services that take only a URL send GET.
        (["api", "deliveries", "retry-due"], Post | Get) => deliveries::retry_due(&call),
        (["api", "deliveries", "retry-due"], _) => Err(ApiError::method_not_allowed("GET or POST")),
        (["api", "deliveries", id], Get) => deliveries::read(&call, id),
        (["api", "deliveries", _], _) => Err(ApiError::method_not_allowed("GET")),
        (["api", "deliveries", id, "replay"], Post) => deliveries::replay(&call, id),
        (["api", "deliveries", _, "replay"], _) => Err(ApiError::method_not_allowed("POST")),
        (["api", "templates", "preview"], Post) => preview::preview(&call),
        (["api", "templates", "preview"], _) => Err(ApiError::method_not_allowed("POST")),
        (["api", "bots", bot, "dialogs", chat, "send-webhook"], Post) => {
            deliver::send_now(&call, bot, chat)
        }
        (["api", "bots", _, "dialogs", _, "send-webhook"], _) => {
            Err(ApiError::method_not_allowed("POST"))
        }
        (["api", "bots", bot, "steps", step, "test-send"], Post) => {
            deliver::test_send(&call, bot, step)
        }
        (["api", "bots", _, "steps", _, "test-send"], _) => {
            Err(ApiError::method_not_allowed("POST"))
        }
        _ => Err(ApiError::no_route()),
    }
}
