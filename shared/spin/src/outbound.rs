//! The delivery engine's sender and clock on Spin: `wasi:http/outgoing-handler` with a
//! deadline per request (its timeout covers the whole exchange: connecting, sending, the
//! response and its body; a receiver that trickles is cut there), no redirects followed
//! (wasi-http never follows them), the response body read up to the log's bound, and batches
//! sent concurrently (all requests started, then polled together, each reported as it ends).

use std::time::{Duration, Instant};

use funnelhooks_core::Timestamp;
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_delivery::engine::{Clock, Outgoing, Received, SendFailure, Sender, Sent};
use funnelhooks_delivery::log::MAX_RESPONSE_BODY;
use funnelhooks_delivery::request::OutboundRequest;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::clocks::monotonic_clock;
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::InputStream;

/// Sends through the host's outbound HTTP, refusing host names when the host does not block
/// private networks (see [`Guard`]).
pub struct SpinSender {
    guard: Guard,
}

impl SpinSender {
    /// A sender for webhooks that may go where `policy` says.
    pub fn new(policy: TargetPolicy) -> Self {
        Self {
            guard: Guard::new(policy),
        }
    }
}

/// What the host does with outbound requests to private networks, as a loopback probe
/// shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateNetworks {
    /// Refused, loopback included: `block_networks = ["private"]`.
    Blocked,
    /// Refused but for 127.0.0.1 and ::1: a local test set-up that lets webhooks reach
    /// receivers on the same machine (`runtime-config/sqlite-loopback.toml`).
    BlockedExceptLoopback,
    /// Not refused: a host name can lead a webhook to an internal address.
    Open,
}

impl PrivateNetworks {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivateNetworks::Blocked => "blocked",
            PrivateNetworks::BlockedExceptLoopback => "blocked-except-loopback",
            PrivateNetworks::Open => "open",
        }
    }
}

/// Whether the host refuses `http://<addr>:1/` before connecting (`block_networks`), as
/// opposed to connecting and finding the port closed. Only ever probes loopback addresses.
fn refused_by_host(addr: &str) -> bool {
    let request = OutboundRequest {
        method: "GET".into(),
        url: format!("http://{addr}:1/"),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let probe = Outgoing {
        request: &request,
        extra: Vec::new(),
        timeout: Duration::from_secs(2),
    };
    let mut refused = false;
    send_batch(std::slice::from_ref(&probe), &mut |round| {
        refused = round.iter().any(
            |(_, sent)| matches!(&sent.result, Err(SendFailure::Network(m)) if m == PROHIBITED),
        );
    });
    refused
}

/// What the host blocks, probed with requests to closed ports on 127.0.0.1 and 127.0.0.2
/// (never another address): refused before connecting means blocked.
pub fn private_networks() -> PrivateNetworks {
    if refused_by_host("127.0.0.1") {
        PrivateNetworks::Blocked
    } else if refused_by_host("127.0.0.2") {
        PrivateNetworks::BlockedExceptLoopback
    } else {
        PrivateNetworks::Open
    }
}

/// Host names are resolved by the host, where this component cannot look: a name can lead
/// to a loopback, private or metadata address that the literal-address rules would refuse.
/// Only the host's `block_networks` stops that, so requests to host names go out only when a
/// probe shows the host blocks private networks (loopback too, unless loopback webhooks are
/// allowed). The probe runs once per instance, when the first request to a host name is
/// about to go.
struct Guard {
    policy: TargetPolicy,
    verdict: std::cell::OnceCell<bool>,
}

impl Guard {
    fn new(policy: TargetPolicy) -> Self {
        Self {
            policy,
            verdict: std::cell::OnceCell::new(),
        }
    }

    /// Whether `request` may go: literal addresses were checked by the target rules; host
    /// names need the host's blocking.
    fn allows(&self, request: &OutboundRequest) -> bool {
        let by_name = url::Url::parse(&request.url)
            .is_ok_and(|u| matches!(u.host(), Some(url::Host::Domain(_))));
        !by_name
            || *self.verdict.get_or_init(|| {
                let probe = if self.policy.allow_loopback {
                    "127.0.0.2"
                } else {
                    "127.0.0.1"
                };
                refused_by_host(probe)
            })
    }
}

/// Why a request to a host name was not sent.
pub const UNGUARDED: &str = "not sent: this Spin does not block outbound requests to private networks, so a host name could lead to an internal address; run it with a runtime config that sets block_networks = [\"private\"] (runtime-config/sqlite.toml, docs/security.md)";

/// The host's clock, shifted by `offset_ms` (zero but in a sweep run with a test clock, see
/// [`SpinClock::for_sweep`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinClock {
    offset_ms: i64,
}

impl SpinClock {
    /// The host's clock as it is.
    pub const REAL: SpinClock = SpinClock { offset_ms: 0 };

    /// The clock a retry sweep runs on: the host's, unless the operator allowed a test clock
    /// (the `allow_test_clock` variable, never in production) and the sweep was asked to run
    /// at `at` (Unix milliseconds), so a soak test can play hours of retries in minutes.
    pub fn for_sweep(at: Option<&str>) -> SpinClock {
        let allowed =
            spin_sdk::variables::get("allow_test_clock").is_ok_and(|v| v.trim() == "true");
        match at.and_then(|a| a.parse::<i64>().ok()) {
            Some(at) if allowed => SpinClock {
                offset_ms: at.saturating_sub(crate::now().0),
            },
            _ => SpinClock::REAL,
        }
    }
}

impl Clock for SpinClock {
    fn now(&self) -> Timestamp {
        Timestamp(crate::now().0.saturating_add(self.offset_ms))
    }
    fn wall(&self) -> Timestamp {
        crate::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// The host refused the address a request resolved to (`block_networks`).
const PROHIBITED: &str =
    "the host refused this destination: its address is in a blocked network (block_networks)";

/// What a header the host refuses (a forbidden name, a value with a line break) fails with.
const BAD_HEADER: &str = "the host refused a header name or value";

fn network(e: impl std::fmt::Display) -> SendFailure {
    SendFailure::Network(e.to_string())
}

/// Names the errors a webhook's author can act on; the generated `Debug` of every
/// wasi-http error code would cost the component kilobytes.
fn failure(code: ErrorCode) -> SendFailure {
    let timeout = |what: &str| SendFailure::Timeout(format!("timed out: {what}"));
    match code {
        ErrorCode::ConnectionTimeout => timeout("connecting"),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            timeout("waiting for the response")
        }
        ErrorCode::ConnectionWriteTimeout => timeout("sending the request"),
        ErrorCode::DnsTimeout => timeout("resolving the host"),
        ErrorCode::DnsError(_) => network("the host name does not resolve"),
        ErrorCode::ConnectionRefused => network("connection refused"),
        ErrorCode::ConnectionTerminated => network("the connection was closed"),
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => network("TLS failed"),
        ErrorCode::DestinationIpProhibited => network(PROHIBITED),
        ErrorCode::HttpRequestDenied => {
            network("the host refused this destination (allowed_outbound_hosts)")
        }
        ErrorCode::DestinationNotFound | ErrorCode::DestinationUnavailable => {
            network("the destination is unreachable")
        }
        _ => network("the request failed"),
    }
}

/// The wasi-http request for `request` with `extra` headers: method, scheme, authority,
/// path and query, and the headers with the body's length.
fn outgoing(
    request: &OutboundRequest,
    extra: &[(String, String)],
) -> Result<OutgoingRequest, SendFailure> {
    let url = url::Url::parse(&request.url).map_err(network)?;
    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    if !request.body.is_empty() {
        entries.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let headers = Fields::from_list(&entries).map_err(|_| network(BAD_HEADER))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match request.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let scheme = if url.scheme() == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let host = url.host_str().unwrap_or_default();
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let ok = outgoing.set_method(&method).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(&authority)).is_ok()
        && outgoing.set_path_with_query(Some(&path)).is_ok();
    if ok {
        Ok(outgoing)
    } else {
        Err(network("the URL cannot be sent"))
    }
}

/// Starts sending one request: the request is on its way when this returns.
fn start(
    request: &OutboundRequest,
    extra: &[(String, String)],
    timeout: Duration,
) -> Result<FutureIncomingResponse, SendFailure> {
    let outgoing = outgoing(request, extra)?;
    let options = RequestOptions::new();
    let nanos = Some(timeout.as_nanos() as u64);
    // Hosts may not support every timeout; what they support is applied.
    let _ = options.set_connect_timeout(nanos);
    let _ = options.set_first_byte_timeout(nanos);
    let _ = options.set_between_bytes_timeout(nanos);
    let body = outgoing.body().map_err(|_| network("no request body"))?;
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(failure)?;
    {
        let stream = body
            .write()
            .map_err(|_| network("no request body stream"))?;
        for chunk in request.body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(network)?;
        }
    }
    OutgoingBody::finish(body, None).map_err(failure)?;
    Ok(future)
}

/// A response being read. The stream is declared before the body it belongs to, so it is
/// dropped first, as wasi-http requires.
struct Reading {
    stream: InputStream,
    _body: IncomingBody,
    received: Received,
}

/// Where one request of a batch is.
enum State {
    /// Waiting for the response's head.
    Waiting(FutureIncomingResponse),
    /// Reading the body, up to the log's bound.
    Reading(Box<Reading>),
    /// Finished, at this time since the batch started.
    Done(Result<Received, SendFailure>, Duration),
}

/// Why an attempt ended at its deadline without a response.
const DEADLINE: &str = "timed out: no response within timeoutMs";

impl State {
    fn pollable(&self) -> Option<Pollable> {
        match self {
            State::Waiting(future) => Some(future.subscribe()),
            State::Reading(r) => Some(r.stream.subscribe()),
            State::Done(..) => None,
        }
    }

    /// Moves on after its pollable said it is ready.
    fn advance(self, started: Instant) -> State {
        let done = |result| State::Done(result, started.elapsed());
        match self {
            State::Waiting(future) => match future.get() {
                None => State::Waiting(future),
                Some(Ok(Ok(response))) => {
                    let headers = response
                        .headers()
                        .entries()
                        .into_iter()
                        .map(|(k, v)| {
                            (
                                k.to_ascii_lowercase(),
                                String::from_utf8_lossy(&v).into_owned(),
                            )
                        })
                        .collect();
                    let received = Received {
                        status: response.status(),
                        headers,
                        ..Received::default()
                    };
                    let Ok(body) = response.consume() else {
                        return done(Ok(received));
                    };
                    match body.stream() {
                        Ok(stream) => State::Reading(Box::new(Reading {
                            stream,
                            _body: body,
                            received,
                        })),
                        Err(()) => done(Ok(received)),
                    }
                }
                Some(Ok(Err(code))) => done(Err(failure(code))),
                Some(Err(())) => done(Err(network("the response was lost"))),
            },
            State::Reading(mut r) => match r.stream.read(8192) {
                Ok(chunk) => {
                    let body = &mut r.received.body;
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_RESPONSE_BODY {
                        body.truncate(MAX_RESPONSE_BODY);
                        r.received.truncated = true;
                        return done(Ok(r.received));
                    }
                    State::Reading(r)
                }
                // Closed, or failed mid-body: the status and what arrived are the answer.
                Err(_) => done(Ok(r.received)),
            },
            done @ State::Done(..) => done,
        }
    }

    /// Ends a request whose deadline has come: no response yet is a timeout; a response
    /// whose body is still arriving counts with what arrived.
    fn expire(self, started: Instant) -> State {
        let elapsed = started.elapsed();
        match self {
            State::Waiting(_) => {
                State::Done(Err(SendFailure::Timeout(DEADLINE.to_string())), elapsed)
            }
            State::Reading(r) => {
                let mut received = r.received;
                received.truncated = true;
                received.cut_at_deadline = true;
                State::Done(Ok(received), elapsed)
            }
            done @ State::Done(..) => done,
        }
    }
}

/// POSTs a JSON `body` to another component of this app through Spin's local chaining
/// (`http://<component>.spin.internal<path>`) and returns the answer's status, waiting at
/// most `timeout`. Built by hand, without the URL parser: the public postback path stays
/// small.
pub fn chain(
    component: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<u16, SendFailure> {
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"application/json".to_vec()),
        // The chained request's log lines carry this request's id.
        (
            "x-request-id".to_string(),
            funnelhooks_core::log::request_id().into_bytes(),
        ),
        (
            "content-length".to_string(),
            body.len().to_string().into_bytes(),
        ),
    ])
    .map_err(|_| network(BAD_HEADER))?;
    let outgoing = OutgoingRequest::new(headers);
    let authority = format!("{component}.spin.internal");
    let ok = outgoing.set_method(&Method::Post).is_ok()
        && outgoing.set_scheme(Some(&Scheme::Http)).is_ok()
        && outgoing.set_authority(Some(&authority)).is_ok()
        && outgoing.set_path_with_query(Some(path)).is_ok();
    if !ok {
        return Err(network("the chained request cannot be built"));
    }
    let options = RequestOptions::new();
    let _ = options.set_first_byte_timeout(Some(timeout.as_nanos() as u64));
    let out_body = outgoing.body().map_err(|_| network("no request body"))?;
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(failure)?;
    {
        let stream = out_body
            .write()
            .map_err(|_| network("no request body stream"))?;
        stream.blocking_write_and_flush(body).map_err(network)?;
    }
    OutgoingBody::finish(out_body, None).map_err(failure)?;
    // Local chaining ignores the request's timeouts: wait for the answer or the deadline,
    // whichever comes first (dropping the future abandons the chained request).
    let answered = future.subscribe();
    let deadline = monotonic_clock::subscribe_duration(timeout.as_nanos() as u64);
    let ready = poll(&[&answered, &deadline]);
    drop(answered);
    drop(deadline);
    if !ready.contains(&0) {
        return Err(SendFailure::Timeout(format!(
            "timed out: {component} did not answer within {} ms",
            timeout.as_millis()
        )));
    }
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response.status()),
        Some(Ok(Err(code))) => Err(failure(code)),
        _ => Err(network("the chained response was lost")),
    }
}

impl Sender for SpinSender {
    fn send(
        &self,
        request: &OutboundRequest,
        extra: &[(String, String)],
        timeout: Duration,
    ) -> Result<Received, SendFailure> {
        let one = Outgoing {
            request,
            extra: extra.to_vec(),
            timeout,
        };
        let mut result = Err(network("the request was not sent"));
        self.send_each(std::slice::from_ref(&one), &mut |mut round| {
            if let Some((_, sent)) = round.pop() {
                result = sent.result;
            }
        });
        result
    }

    /// Starts every request, then waits on all of them at once with `wasi:io/poll`: the
    /// batch takes as long as its slowest receiver, not the sum, and the requests are
    /// reported as they end (those that ended together at once). Requests to host names
    /// wait for the [`Guard`].
    fn send_each(&self, batch: &[Outgoing<'_>], done: &mut dyn FnMut(Vec<(usize, Sent)>)) {
        let started = Instant::now();
        let (allowed, refused): (Vec<usize>, Vec<usize>) =
            (0..batch.len()).partition(|&i| self.guard.allows(batch[i].request));
        if !refused.is_empty() {
            let elapsed = started.elapsed();
            done(
                refused
                    .iter()
                    .map(|&i| {
                        let result = Err(network(UNGUARDED));
                        (i, Sent { result, elapsed })
                    })
                    .collect(),
            );
        }
        let cleared: Vec<Outgoing<'_>> = allowed
            .iter()
            .map(|&i| Outgoing {
                request: batch[i].request,
                extra: batch[i].extra.clone(),
                timeout: batch[i].timeout,
            })
            .collect();
        send_batch(&cleared, &mut |round| {
            done(round.into_iter().map(|(k, s)| (allowed[k], s)).collect())
        });
    }
}

/// Starts every request of `batch`, then polls them together, each until it is answered or
/// its deadline (start plus its timeout) comes, and hands those that ended to `done` after
/// each poll.
fn send_batch(batch: &[Outgoing<'_>], done: &mut dyn FnMut(Vec<(usize, Sent)>)) {
    let started = Instant::now();
    let origin = monotonic_clock::now();
    let deadlines: Vec<u64> = batch
        .iter()
        .map(|o| origin.saturating_add(o.timeout.as_nanos() as u64))
        .collect();
    let mut states: Vec<State> = batch
        .iter()
        .map(|o| match start(o.request, &o.extra, o.timeout) {
            Ok(future) => State::Waiting(future),
            Err(e) => State::Done(Err(e), started.elapsed()),
        })
        .collect();
    let mut reported = vec![false; batch.len()];
    loop {
        let mut round = Vec::new();
        for (i, state) in states.iter_mut().enumerate() {
            if reported[i] {
                continue;
            }
            if matches!(state, State::Done(..)) {
                reported[i] = true;
                let State::Done(result, elapsed) =
                    std::mem::replace(state, State::Done(Ok(Received::default()), Duration::ZERO))
                else {
                    continue;
                };
                round.push((i, Sent { result, elapsed }));
            }
        }
        if !round.is_empty() {
            done(round);
        }
        let waiting: Vec<(usize, Pollable)> = states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.pollable().map(|p| (i, p)))
            .collect();
        let Some(next_deadline) = waiting.iter().map(|(i, _)| deadlines[*i]).min() else {
            break;
        };
        // The timer is last: an index past the requests means a deadline came.
        let timer = monotonic_clock::subscribe_instant(next_deadline);
        let mut refs: Vec<&Pollable> = waiting.iter().map(|(_, p)| p).collect();
        refs.push(&timer);
        let ready = poll(&refs);
        let ready: Vec<usize> = ready
            .iter()
            .filter_map(|&r| waiting.get(r as usize).map(|(i, _)| *i))
            .collect();
        // Pollables are children of the futures and streams: drop them before moving on.
        drop(refs);
        drop(timer);
        let waiting: Vec<usize> = waiting.into_iter().map(|(i, _)| i).collect();
        for i in ready {
            let state = std::mem::replace(
                &mut states[i],
                State::Done(Ok(Received::default()), Duration::ZERO),
            );
            states[i] = state.advance(started);
        }
        let now = monotonic_clock::now();
        for i in waiting {
            if deadlines[i] <= now && !matches!(states[i], State::Done(..)) {
                let state = std::mem::replace(
                    &mut states[i],
                    State::Done(Ok(Received::default()), Duration::ZERO),
                );
                states[i] = state.expire(started);
            }
        }
    }
}

/// Where the send-webhook component takes step entries, by local chaining.
const STEP_REACHED: &str = "/internal/step-reached";
/// The chained delivery makes one attempt of at most 25 s; the chain waits a little longer.
const STEP_CHAIN_TIMEOUT: Duration = Duration::from_secs(28);

/// Asks the send-webhook component to deliver step entries (each a JSON `StepReached`),
/// after the answer has gone. A failed chain is logged: the entry's handoff, written before
/// the dialog changed, is still there, and the retry sweep delivers it.
pub fn deliver_step_entries(entries: impl IntoIterator<Item = Vec<u8>>) {
    for body in entries {
        chain_or_say(
            "send-webhook",
            STEP_REACHED,
            &body,
            "the retry sweep delivers the step entry",
        );
    }
}

/// Where the conversions component applies conversions waiting for a click id a dialog got.
const CLICK_CLAIMED: &str = "/internal/click-claimed";

/// Asks the conversions component to apply the conversions waiting for the click id a dialog
/// just got (a JSON `ClickClaimed`), after the answer has gone. A failed chain is logged:
/// the conversions go on waiting, and the next conversion for the click id applies them.
pub fn apply_waiting_conversions(body: &[u8]) {
    chain_or_say(
        "conversions",
        CLICK_CLAIMED,
        body,
        "the next conversion for the click id applies those waiting",
    );
}

/// Asks the conversions component to apply the notes of [`apply_waiting_conversions`] whose
/// chained request never came (from the retry sweep).
pub fn apply_stale_claims() {
    chain_or_say(
        "conversions",
        "/internal/claims-due",
        b"{}",
        "the next sweep tries again",
    );
}

fn chain_or_say(component: &str, path: &str, body: &[u8], then: &str) {
    if let Err(e) = chain(component, path, body, STEP_CHAIN_TIMEOUT)
        && let Some(line) =
            funnelhooks_core::log::line(funnelhooks_core::log::Level::Warn, "chain_failed")
    {
        line.str("to", component)
            .str("error", e.message())
            .str("then", then)
            .emit();
    }
}
