//! `GET|POST /api/bots/webhooks/{postbackId}/updateDialog`: a tracker, an affiliate network
//! or a customer's backend changes a dialog through a postback link, as with Chatterfy. The
//! secret is the link id in the path; there is no other authentication.

use funnelhooks_dialog::{Repo, from_request};
use funnelhooks_spin::{ApiError, SpinKv, json, now};
use spin_sdk::http::{Method, Request, Response};

#[spin_sdk::http_component]
fn handle(req: Request) -> Response {
    update_dialog(req).unwrap_or_else(|e| e.response())
}

fn update_dialog(req: Request) -> Result<Response, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Post) {
        return Err(ApiError::method_not_allowed("GET or POST"));
    }
    let link = req
        .header("spin-path-match-postback-id")
        .and_then(|h| h.as_str())
        .unwrap_or("");
    let content_type = req.header("content-type").and_then(|h| h.as_str());
    let params = from_request(req.query(), content_type, req.body())?;
    let kv = SpinKv::open_default()?;
    let done = Repo::new(&kv).postback(link, params, now())?;
    Ok(json(
        200,
        &serde_json::json!({
            "ok": true,
            "created": done.created,
            "undefinedFields": done.update.undefined_fields,
            "dialog": done.dialog,
        }),
    ))
}
