//! Reading requests the same way in every component: query parameters, paging, JSON bodies,
//! chat ids in the path, the public origin.

use funnelhooks_core::{Error, Paging, form};
use futures::TryStreamExt;
use serde_json::Value as Json;
use spin_sdk::http::{IncomingRequest, Request};

use crate::error::ApiError;

/// Reads an incoming request with a body of at most `limit` bytes. A larger body is refused
/// with 413 as soon as it is known: at once when its `Content-Length` says so, else when the
/// bytes read pass the limit (the host hands them over 16 KiB at a time), never after
/// buffering it all.
pub async fn read(incoming: IncomingRequest, limit: usize) -> Result<Request, ApiError> {
    let too_large = || {
        ApiError::from(
            Error::too_large(
                "body_too_large",
                format!("the body is larger than {limit} bytes"),
            )
            .at("body"),
        )
    };
    // Copied out and the host's handle dropped before the body is taken: a child resource
    // still open when its request goes is a trap on Spin 3.x.
    let headers = incoming.headers().entries();
    let declared = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let (method, uri) = (incoming.method(), incoming.uri());
    let mut stream = incoming.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|_| ApiError::unreadable())?
    {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(too_large());
        }
    }
    Ok(Request::builder()
        .method(method)
        .uri(uri)
        .headers(headers)
        .body(body)
        .build())
}

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

/// `https://hooks.example.com`: the `public_base_url` variable, for the URLs users paste
/// elsewhere (postback links, ingest URLs). Without it, the origin this request came to only
/// when that is this machine (`localhost`, `127.0.0.1`, `[::1]`: a laptop, a test): a `Host`
/// header can be set by anyone on the way, and a link built from it would send trackers,
/// and the secret in the link, elsewhere. Otherwise empty: URLs are paths, and the answer
/// says to set `public_base_url`.
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
    let origin = match full.match_indices('/').nth(2) {
        Some((i, _)) => &full[..i],
        None => full,
    };
    let host = origin.split_once("://").map_or("", |(_, a)| a);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        origin.to_string()
    } else {
        String::new()
    }
}

/// What an answer carrying links says when they are paths: how to get full URLs.
pub const NO_PUBLIC_BASE: &str = "public_base_url is not set and this request did not come to localhost: the URLs are paths; set public_base_url (e.g. https://hooks.example.com) to get full URLs";
