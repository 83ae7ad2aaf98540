//! `/api/alerts/endpoints`: where operator alerts go (`delivery.exhausted`, `target.gone`,
//! `target.disabled`, `target.reenabled`), each signed with its own secret, shown once when
//! it is created; and a test send.

use funnelhooks_core::Error;
use funnelhooks_delivery::alerts::{self, EndpointInput};
use funnelhooks_spin::json;
use funnelhooks_spin::request::body;
use funnelhooks_store::Records;
use serde_json::json as j;
use spin_sdk::http::Response;

use crate::Ctx;

fn records<'a>(ctx: &Ctx<'a>) -> Records<'a> {
    Records::new(ctx.kv)
}

/// `GET /api/alerts/endpoints`.
pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let items: Vec<_> = alerts::list(&records(ctx))?
        .iter()
        .map(|e| e.view(false))
        .collect();
    Ok(json(200, &j!({"items": items, "events": alerts::EVENTS})))
}

/// `POST /api/alerts/endpoints`: 201 with the endpoint and its signing secret (shown once).
pub(crate) fn create(ctx: &Ctx) -> Result<Response, Error> {
    let input = EndpointInput::parse(&body(ctx.req)?, ctx.policy)?;
    let endpoint = alerts::create(&records(ctx), input, ctx.now)?;
    Ok(json(201, &endpoint.view(true)))
}

/// `GET /api/alerts/endpoints/{endpointId}`.
pub(crate) fn read(ctx: &Ctx) -> Result<Response, Error> {
    let endpoint =
        alerts::get(&records(ctx), ctx.params.get("endpointId"))?.ok_or_else(alerts::unknown)?;
    Ok(json(200, &endpoint.view(false)))
}

/// `PUT /api/alerts/endpoints/{endpointId}`: a new URL, description or events; the secret
/// stays unless a `signingSecret` is sent.
pub(crate) fn replace(ctx: &Ctx) -> Result<Response, Error> {
    let id = ctx.params.get("endpointId");
    alerts::get(&records(ctx), id)?.ok_or_else(alerts::unknown)?;
    let input = EndpointInput::parse(&body(ctx.req)?, ctx.policy)?;
    let endpoint = alerts::replace(&records(ctx), id, input, ctx.now)?;
    Ok(json(200, &endpoint.view(false)))
}

/// `DELETE /api/alerts/endpoints/{endpointId}`: 204; alerts queued for it are not sent.
pub(crate) fn delete(ctx: &Ctx) -> Result<Response, Error> {
    if !alerts::delete(&records(ctx), ctx.params.get("endpointId"))? {
        return Err(alerts::unknown());
    }
    Ok(Response::new(204, ()))
}

/// `POST /api/alerts/endpoints/{endpointId}/test-send`: one signed `alert.test` now; the
/// delivery, with the receiver's answer.
pub(crate) fn test_send(ctx: &Ctx) -> Result<Response, Error> {
    let endpoint =
        alerts::get(&records(ctx), ctx.params.get("endpointId"))?.ok_or_else(alerts::unknown)?;
    let done = ctx.engine.test_alert(&endpoint)?;
    Ok(json(200, &done.view()))
}
