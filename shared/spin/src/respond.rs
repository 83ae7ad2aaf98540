//! A request's life in every component: [`begin`] gives it an id and a log context,
//! [`respond`] answers (with the security headers every answer carries and the request's id)
//! and logs the request's line; what the caller need not wait for (chained deliveries, a
//! call's hooks) happens after.

use std::cell::RefCell;
use std::time::Instant;

use funnelhooks_core::log::{self, Level};
use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, Response, ResponseOutparam};

thread_local! {
    /// When the current request began, and its method.
    static STARTED: RefCell<Option<(Instant, String)>> = const { RefCell::new(None) };
}

/// The log level the `log_level` variable sets (`info` when it is unset or unreadable).
fn level() -> Level {
    spin_sdk::variables::get("log_level")
        .ok()
        .and_then(|l| Level::parse(&l))
        .unwrap_or(Level::Info)
}

/// A request id the caller sent in `x-request-id`, if it is one we repeat: 1 to 128 of
/// `A-Z a-z 0-9 . _ : / -`.
fn given_id(value: &[u8]) -> Option<String> {
    let ok = (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:/".contains(b));
    ok.then(|| String::from_utf8_lossy(value).into_owned())
}

/// Starts a request of `component`: its id is the caller's `x-request-id` (so a proxy's or
/// a chaining component's id follows it) or a new one, and every log line of the request
/// carries it.
pub fn begin(component: &'static str, incoming: &IncomingRequest) {
    let method = incoming.method().to_string();
    // The headers are a child resource of the request: dropped before the request is read.
    let id = {
        let headers = incoming.headers();
        headers
            .get("x-request-id")
            .first()
            .and_then(|v| given_id(v))
    };
    log::begin(
        component,
        id.unwrap_or_else(funnelhooks_core::new_id),
        level(),
    );
    STARTED.with(|s| *s.borrow_mut() = Some((Instant::now(), method)));
}

/// Logs the request's line: its route pattern (never its path, which can hold a secret),
/// method, status, duration and, when it was refused, the error's code and field.
fn log_request(status: u16) {
    let Some((started, method)) = STARTED.with(|s| s.borrow_mut().take()) else {
        return;
    };
    let level = match status {
        500.. => Level::Error,
        400.. => Level::Warn,
        _ => Level::Info,
    };
    let Some(line) = log::line(level, "request") else {
        return;
    };
    let route = log::route();
    let error = log::noted_error();
    line.str("route", if route.is_empty() { "(none)" } else { route })
        .str("method", &method)
        .num("status", i64::from(status))
        .num("durationMs", started.elapsed().as_millis() as i64)
        .opt_str("errorCode", error.as_ref().map(|(code, _)| *code))
        .opt_str("errorField", error.as_ref().and_then(|(_, f)| f.as_deref()))
        .emit();
}

/// Headers every answer carries unless its handler set them: no MIME sniffing, no caching
/// (answers hold dialogs, and a service's one-time key), no referrer.
const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
];

/// Sends `response` and finishes its body, so the caller has its answer.
///
/// The body is written before the response is handed to the host, so head and body leave in
/// one TCP segment: set first, the head went alone and Nagle's algorithm held the body until
/// the client acknowledged the head, which a client on a kept-alive connection delays by up
/// to 40 ms: every answer took up to 40 ms more (30-50 requests/s on one connection, now
/// 500-600 on the real Spin). The length goes in `Content-Length` rather than chunks.
pub async fn respond(out: ResponseOutparam, response: Response) {
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    for (name, value) in SECURITY_HEADERS {
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            headers.push((name.into(), value.as_bytes().to_vec()));
        }
    }
    let id = log::request_id();
    if !id.is_empty() {
        headers.push(("x-request-id".into(), id.into_bytes()));
    }
    let status = *response.status();
    // Never on a 204 or 304, which carry no body and must not say a length (no handler sets
    // one itself).
    if !matches!(*response.status(), 204 | 304) {
        let length = response.body().len().to_string();
        headers.push(("content-length".into(), length.into_bytes()));
    }
    let outgoing =
        OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = outgoing.set_status_code(status);
    let mut body = outgoing.take_body();
    let bytes = response.into_body();
    // Written before the response is handed over, so the host has head and body at once and
    // sends them together; a large body after.
    let mut unset = Some((out, outgoing));
    if bytes.len() > WRITTEN_BEFORE_SET
        && let Some((out, outgoing)) = unset.take()
    {
        out.set(outgoing);
    }
    let _ = body.send(bytes).await;
    if let Some((out, outgoing)) = unset {
        out.set(outgoing);
    }
    let _ = body.close().await;
    log_request(status);
}

/// Largest body written before the response is set: the host buffers one chunk of a body
/// nobody reads yet (1 MiB in Wasmtime's default); more would wait for a reader forever.
const WRITTEN_BEFORE_SET: usize = 64 * 1024;
