//! Reading requests the same way in every component: query parameters, paging, JSON bodies.

use spin_sdk::http::Request;

use crate::error::ApiError;

/// The query parameter `name` as written (not percent-decoded: the parameters read this way
/// are numbers, cursors and plain words).
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_string())
    })
}

/// `?cursor=N&limit=M` (limit 1 to 200, 50 by default).
pub fn paging(req: &Request) -> Result<(u64, usize), ApiError> {
    let bad =
        |field: &str, message: &str| ApiError::new(400, "bad_query", message).with_field(field);
    // An empty cursor is the first page, as in the delivery log.
    let cursor = match query_param(req, "cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| bad("cursor", "use the nextCursor of the previous page"))?,
    };
    let limit = match query_param(req, "limit") {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n @ 1..=200) => n,
            _ => return Err(bad("limit", "a whole number from 1 to 200")),
        },
    };
    Ok((cursor, limit))
}

/// A page as JSON: `{"items": [...], "nextCursor": "N" | null}`.
pub fn page_json(items: Vec<serde_json::Value>, next: Option<u64>) -> serde_json::Value {
    serde_json::json!({"items": items, "nextCursor": next.map(|n| n.to_string())})
}

/// The request body as a JSON object.
pub fn body(req: &Request) -> Result<funnelhooks_dialog::input::JsonBody, ApiError> {
    Ok(funnelhooks_dialog::input::JsonBody::parse(req.body())?)
}

/// A chat id from a path segment or a JSON member: a Telegram chat id, a whole signed 64-bit
/// number; otherwise a 422 naming `chatId`.
pub fn chat_id(text: &str) -> Result<i64, ApiError> {
    text.trim().parse().map_err(|_| {
        funnelhooks_dialog::DialogError::unprocessable(
            "bad_chat_id",
            Some("chatId"),
            "chatId must be a Telegram chat id: a whole signed 64-bit number",
        )
        .into()
    })
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
