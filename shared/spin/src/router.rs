//! Dispatch from a component's route table (`funnelhooks_routes`): the route and its path
//! parameters, after the access check; `405` with `Allow` and `404` from the table itself.

use funnelhooks_routes::{Found, Params, Route, find};
use spin_sdk::http::Request;

use crate::error::ApiError;

/// The route of `table` serving `req`, once the caller is allowed to use it.
pub fn route<Op: Copy>(table: &[Route<Op>], req: &Request) -> Result<(Op, Params), ApiError> {
    let (route, params) = matched(table, req)?;
    crate::auth::check(req, &route, &params)?;
    Ok((route.op, params))
}

/// [`route`] for the health component: the admin token and its own tokens, no API keys.
pub fn route_by_tokens<Op: Copy>(
    table: &[Route<Op>],
    req: &Request,
) -> Result<(Op, Params), ApiError> {
    let (route, params) = matched(table, req)?;
    crate::auth::check_tokens(req, &route)?;
    Ok((route.op, params))
}

/// The route of `table` serving `req`, for a component whose routes are all public: no
/// access check is linked in, which keeps the public postback path small.
pub fn public_route<Op: Copy>(
    table: &[Route<Op>],
    req: &Request,
) -> Result<(Op, Params), ApiError> {
    let (route, params) = matched(table, req)?;
    Ok((route.op, params))
}

fn matched<Op: Copy>(table: &[Route<Op>], req: &Request) -> Result<(Route<Op>, Params), ApiError> {
    let method = req.method().to_string();
    match find(table, &method, req.path()) {
        Found::Route(route, params) => {
            funnelhooks_core::log::set_route(route.path);
            Ok((route, params))
        }
        Found::WrongMethod(allowed) => Err(ApiError::method_not_allowed(allowed)),
        Found::NoRoute => Err(ApiError::no_route()),
    }
}
