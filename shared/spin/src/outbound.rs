//! The delivery engine's sender and clock on Spin: `wasi:http/outgoing-handler` with
//! per-request timeouts (connect, first byte, between bytes), no redirects followed (wasi-http
//! never follows them), the response body read up to the log's 20 KB, and batches sent
//! concurrently (all requests started, then polled together).

use std::time::{Duration, Instant};

use funnelhooks_core::Timestamp;
use funnelhooks_delivery::engine::{Clock, Outgoing, Received, SendFailure, Sender, Sent};
use funnelhooks_delivery::log::MAX_RESPONSE_BODY;
use funnelhooks_delivery::request::OutboundRequest;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::InputStream;

/// Sends through the host's outbound HTTP.
pub struct SpinSender;

/// The host's clock.
pub struct SpinClock;

impl Clock for SpinClock {
    fn now(&self) -> Timestamp {
        crate::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

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
        ErrorCode::DestinationIpProhibited | ErrorCode::HttpRequestDenied => {
            network("the host refused this destination (allowed_outbound_hosts or block_networks)")
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
    let headers = Fields::from_list(&entries).map_err(|e| network(format!("{e:?}")))?;
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
    /// Reading the body, up to the log's 20 KB.
    Reading(Box<Reading>),
    /// Finished, at this time since the batch started.
    Done(Result<Received, SendFailure>, Duration),
}

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
                        body: Vec::new(),
                        truncated: false,
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
        (
            "content-length".to_string(),
            body.len().to_string().into_bytes(),
        ),
    ])
    .map_err(|e| network(format!("{e:?}")))?;
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
    future.subscribe().block();
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
        self.send_all(std::slice::from_ref(&one))
            .pop()
            .map(|sent| sent.result)
            .unwrap_or_else(|| Err(network("the request was not sent")))
    }

    /// Starts every request, then waits on all of them at once with `wasi:io/poll`: the
    /// batch takes as long as its slowest receiver, not the sum.
    fn send_all(&self, batch: &[Outgoing<'_>]) -> Vec<Sent> {
        let started = Instant::now();
        let mut states: Vec<State> = batch
            .iter()
            .map(|o| match start(o.request, &o.extra, o.timeout) {
                Ok(future) => State::Waiting(future),
                Err(e) => State::Done(Err(e), started.elapsed()),
            })
            .collect();
        loop {
            let waiting: Vec<(usize, Pollable)> = states
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.pollable().map(|p| (i, p)))
                .collect();
            if waiting.is_empty() {
                break;
            }
            let refs: Vec<&Pollable> = waiting.iter().map(|(_, p)| p).collect();
            let ready = poll(&refs);
            let ready: Vec<usize> = ready.iter().map(|&r| waiting[r as usize].0).collect();
            // Pollables are children of the futures and streams: drop them before moving on.
            drop(refs);
            drop(waiting);
            for i in ready {
                let state =
                    std::mem::replace(&mut states[i], State::Done(Ok(empty()), Duration::ZERO));
                states[i] = state.advance(started);
            }
        }
        states
            .into_iter()
            .map(|s| match s {
                State::Done(result, elapsed) => Sent { result, elapsed },
                // The loop ends only when every request is done.
                _ => Sent {
                    result: Err(network("the request was not finished")),
                    elapsed: started.elapsed(),
                },
            })
            .collect()
    }
}

fn empty() -> Received {
    Received {
        status: 0,
        headers: Vec::new(),
        body: Vec::new(),
        truncated: false,
    }
}
