//! Who may call what: the admin token (the secret Spin variable `admin_token`, the root key),
//! API keys (decided by `funnelhooks_access` from the route's access and target), the retry
//! sweep's key, the metrics token, and requests chained from another component.

use std::cell::RefCell;

use funnelhooks_access::Keys;
use funnelhooks_access::keys::TOKEN_PREFIX;
pub use funnelhooks_access::{Caller, Role, Scope};
use funnelhooks_core::secret::same_secret;
use funnelhooks_core::{Error, Kind};
use funnelhooks_routes::{Access, Params, Route};
use spin_sdk::http::Request;

use crate::error::ApiError;

/// What the access check admitted, for the handler (lists filtered to the caller's scope)
/// and for the audit trail.
pub(crate) struct Admitted {
    pub caller: Caller,
    pub operation_id: &'static str,
    pub access: Access,
    pub params: Params,
}

thread_local! {
    // One request per instance: set by the access check, read by the handler and the audit.
    pub(crate) static ADMITTED: RefCell<Option<Admitted>> = const { RefCell::new(None) };
}

/// The caller the access check admitted; for a request that no key was asked of, a caller
/// that sees nothing (so a handler that forgets to ask cannot show more than it should).
pub fn caller() -> Caller {
    ADMITTED
        .with_borrow(|a| a.as_ref().map(|a| a.caller.clone()))
        .unwrap_or_else(|| Caller {
            key_id: Some("nobody".into()),
            name: "nobody".into(),
            role: Role::Viewer,
            bots: Scope::Only(Vec::new()),
            services: Scope::Only(Vec::new()),
        })
}

/// A postback or conversion link's view as the caller may see it. Its id and URL are
/// credentials that change dialogs, so a viewer's key sees that the link exists and how its
/// id starts (`hidden: true`), never the id or the URL.
pub fn link_for_caller(mut view: serde_json::Value) -> serde_json::Value {
    if caller().writes() {
        return view;
    }
    let start = funnelhooks_core::text::start_of(view["id"].as_str().unwrap_or_default());
    if let Some(o) = view.as_object_mut() {
        o.remove("url");
        o.remove("urlWarning");
        o.insert("id".into(), serde_json::Value::from(start));
        o.insert("hidden".into(), serde_json::Value::Bool(true));
    }
    view
}

/// The `admin_token` variable (the root key).
fn admin_token() -> Result<String, ApiError> {
    spin_sdk::variables::get("admin_token").map_err(|e| {
        ApiError::from(Error {
            detail: Some(e.to_string()),
            ..Error::new(
                Kind::Internal,
                "admin_token_unavailable",
                "the admin_token variable cannot be read",
            )
        })
    })
}

/// The caller `Authorization: Bearer` names: the admin token (compared hashed, in constant
/// time, so neither it nor its length leaks; an empty `admin_token` admits nobody by it), or
/// an API key that exists now (read from the store on every request: a revoked key stops
/// at once on every instance).
fn caller_of(req: &Request) -> Result<Caller, ApiError> {
    let token = bearer(req);
    if same_secret(token, &admin_token()?) {
        return Ok(Caller::root());
    }
    if token.starts_with(TOKEN_PREFIX) {
        let kv = crate::SpinKv::open_default()?;
        if let Some(caller) = Keys::new(&kv).verify(token)? {
            return Ok(caller);
        }
    }
    Err(ApiError::unauthorized())
}

/// The token after `Authorization: Bearer `, or empty.
fn bearer(req: &Request) -> &str {
    req.header("authorization")
        .and_then(|h| h.as_str())
        .and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .unwrap_or("")
}

/// Chained requests arrive on Spin's synthetic `/...` route; public requests never do, as
/// no public route of the app is a catch-all.
pub fn chained(req: &Request) -> bool {
    req.header("spin-matched-route").and_then(|h| h.as_str()) == Some("/...")
}

/// Decides what needs no key: `true` when `req` is admitted already (a public route, a
/// chained one, the sweep's `?key=`, the metrics token), `false` when the admin token or an API
/// key must decide. Routes that take an ingest key check it themselves (it is the service's
/// own). A chained-only route reached from outside is a 404, as if it were not there. An
/// empty `retry_sweep_key` or `metrics_token` admits nobody by it.
fn admitted_without_key<Op>(req: &Request, route: &Route<Op>) -> Result<bool, ApiError> {
    match route.access {
        Access::Public | Access::IngestKey => Ok(true),
        Access::Chained if chained(req) => Ok(true),
        Access::Chained => Err(ApiError::no_route()),
        Access::AdminOrSweepKey => match crate::request::query_param(req, "key") {
            Some(given) => {
                let expected = spin_sdk::variables::get("retry_sweep_key").unwrap_or_default();
                if same_secret(&given, &expected) {
                    Ok(true)
                } else {
                    Err(ApiError::unauthorized())
                }
            }
            None => Ok(false),
        },
        Access::AdminOrMetricsToken => {
            let expected = spin_sdk::variables::get("metrics_token").unwrap_or_default();
            Ok(same_secret(bearer(req), &expected))
        }
        Access::Read | Access::Write | Access::Admin => Ok(false),
    }
}

/// Checks `route`'s access for `req` (its path parameters in `params`): what needs no key,
/// then the admin token or an API key, decided by [`Caller::check`].
pub fn check<Op>(req: &Request, route: &Route<Op>, params: &Params) -> Result<(), ApiError> {
    // Nothing of an earlier request may carry over, should a host ever reuse an instance.
    ADMITTED.set(None);
    if admitted_without_key(req, route)? {
        return Ok(());
    }
    let caller = caller_of(req)?;
    caller.check(route.access, route.target(), params)?;
    ADMITTED.set(Some(Admitted {
        caller,
        operation_id: route.operation_id,
        access: route.access,
        params: params.clone(),
    }));
    Ok(())
}

/// [`check`] for the health component, which takes no API keys: only the admin token and its
/// own tokens (its metrics are for the admin token and a scraper's `metrics_token`), so the
/// key store and the rule stay out of it.
pub fn check_tokens<Op>(req: &Request, route: &Route<Op>) -> Result<(), ApiError> {
    if admitted_without_key(req, route)? || same_secret(bearer(req), &admin_token()?) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}
