//! Reading requests the same way in every component: query parameters, paging, JSON bodies,
//! chat ids in the path, the public origin.

use funnelhooks_core::{Error, Paging, form};
use serde_json::Value as Json;
use spin_sdk::http::Request;

/// Largest JSON body a management route reads.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The query parameter `name`, decoded.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    form::param(req.query(), name)
}

/// `?cursor=N&limit=M` (limit 1 to 200, 50 by default).
pub fn paging(req: &Request) -> Result<Paging, Error> {
    Paging::from_query(req.query())
}

/// The request body, a JSON object (an empty body is `{}`).
pub fn body(req: &Request) -> Result<Json, Error> {
    funnelhooks_core::json::body(req.body(), MAX_JSON_BODY)
}

/// A chat id from a path segment.
pub fn chat_id(segment: &str) -> Result<i64, Error> {
    funnelhooks_core::chat::parse(segment, "chatId")
}

/// `https://hooks.example.com`: the `public_base_url` variable, else the origin this request
/// came to (for the URLs users paste elsewhere: postback links, ingest URLs).
pub fn public_base(req: &Request) -> String {
    let configured = spin_sdk::variables::get("public_base_url").unwrap_or_default();
    if !configured.trim().is_empty() {
        return configured.trim().trim_end_matches('/').to_string();
    }
    let full = req
        .header("spin-full-url")
        .and_then(|h| h.as_str())
        .unwrap_or("");
    // scheme://authority is everything before the third '/'.
    match full.match_indices('/').nth(2) {
        Some((i, _)) => full[..i].to_string(),
        None => full.to_string(),
    }
}
