//! The management API under `/api/bots` (bearer token from the `admin_token` variable):
//! bots, their postback links and custom fields, and the dialog routes the bot engine uses.
//! Steps are served by the send-webhook component, which understands their webhook configs.
//! One module per resource; errors become JSON in `funnelhooks_spin::error`.

mod bots;
mod dialogs;
mod fields;
mod webhooks;

pub(crate) use funnelhooks_spin::request::{body, page_json, paging};

use funnelhooks_dialog::Repo;
use funnelhooks_spin::{ApiError, SpinKv, require_admin};
use spin_sdk::http::{Method, Request, Response};

/// What every handler gets: the request, the store and the time it arrived.
pub(crate) struct Call<'a> {
    pub req: &'a Request,
    pub repo: Repo<'a, SpinKv>,
    pub now: funnelhooks_dialog::Timestamp,
}

#[spin_sdk::http_component]
fn handle(req: Request) -> Response {
    route(&req).unwrap_or_else(|e| e.response())
}

fn route(req: &Request) -> Result<Response, ApiError> {
    require_admin(req)?;
    let kv = SpinKv::open_default()?;
    let call = Call {
        req,
        repo: Repo::new(&kv),
        now: funnelhooks_spin::now(),
    };
    let path = req.path().trim_end_matches('/');
    let rest = path
        .strip_prefix("/api/bots")
        .ok_or_else(ApiError::no_route)?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method();
    use Method::{Delete, Get, Patch, Post, Put};
    match (segments.as_slice(), method) {
        ([], Post) => bots::create(&call),
        ([], Get) => bots::list(&call),
        ([], _) => Err(ApiError::method_not_allowed("GET or POST")),
        ([bot], Get) => bots::read(&call, bot),
        ([bot], Patch) => bots::rename(&call, bot),
        ([bot], Delete) => bots::delete(&call, bot),
        ([_], _) => Err(ApiError::method_not_allowed("GET, PATCH or DELETE")),
        ([bot, "webhooks"], Post) => webhooks::create(&call, bot),
        ([bot, "webhooks"], Get) => webhooks::list(&call, bot),
        ([_, "webhooks"], _) => Err(ApiError::method_not_allowed("GET or POST")),
        ([bot, "webhooks", link], Delete) => webhooks::revoke(&call, bot, link),
        ([_, "webhooks", _], _) => Err(ApiError::method_not_allowed("DELETE")),
        ([bot, "fields"], Get) => fields::list(&call, bot),
        ([_, "fields"], _) => Err(ApiError::method_not_allowed("GET")),
        ([bot, "fields", key], Put) => fields::put(&call, bot, key),
        ([bot, "fields", key], Get) => fields::read(&call, bot, key),
        ([bot, "fields", key], Delete) => fields::delete(&call, bot, key),
        ([_, "fields", _], _) => Err(ApiError::method_not_allowed("GET, PUT or DELETE")),
        ([bot, "dialogs"], Get) => dialogs::list(&call, bot),
        ([_, "dialogs"], _) => Err(ApiError::method_not_allowed("GET")),
        ([bot, "dialogs", chat], Put) => dialogs::start(&call, bot, chat),
        ([bot, "dialogs", chat], Get) => dialogs::read(&call, bot, chat),
        ([bot, "dialogs", chat], Delete) => dialogs::erase(&call, bot, chat),
        ([_, "dialogs", _], _) => Err(ApiError::method_not_allowed("GET, PUT or DELETE")),
        _ => Err(ApiError::no_route()),
    }
}
