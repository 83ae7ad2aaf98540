//! `GET /api/audit`: the trail of changes, newest first, filtered by key, action or target.

use funnelhooks_access::Audit;
use funnelhooks_core::{Error, Paging};
use funnelhooks_spin::json;
use funnelhooks_spin::request::query_param;
use serde_json::{Value as Json, json};
use spin_sdk::http::Response;

use crate::Ctx;

/// `GET /api/audit?keyId&action&botId&serviceId&limit&cursor`.
pub(crate) fn list(ctx: &Ctx) -> Result<Response, Error> {
    let page = Paging::from_query(ctx.req.query())?;
    let q = |name| query_param(ctx.req, name).filter(|v| !v.is_empty());
    let (key, action, bot, service) = (q("keyId"), q("action"), q("botId"), q("serviceId"));
    let on = |entry: &funnelhooks_access::AuditEntry, name: &str, want: &Option<String>| {
        want.as_ref()
            .is_none_or(|w| entry.target.get(name) == Some(w))
    };
    let found = Audit::new(ctx.kv).page(page.cursor, page.limit, |e| {
        key.as_ref().is_none_or(|k| &e.key_id == k)
            && action.as_ref().is_none_or(|a| &e.action == a)
            && on(e, "botId", &bot)
            && on(e, "serviceId", &service)
    })?;
    let items: Vec<Json> = found
        .items
        .into_iter()
        .map(|(position, entry)| {
            let mut v = serde_json::to_value(&entry).unwrap_or_default();
            v["position"] = json!(position);
            v
        })
        .collect();
    Ok(json(
        200,
        &json!({ "items": items, "nextCursor": found.next.map(|n| n.to_string()) }),
    ))
}
