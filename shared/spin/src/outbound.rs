//! The delivery engine's sender and clock on Spin: `wasi:http/outgoing-handler` with
//! per-request timeouts (connect, first byte, between bytes), no redirects followed (wasi-http
//! never follows them), and the response body read up to the log's 20 KB.

use std::time::Duration;

use funnelhooks_delivery::engine::{Clock, Received, SendFailure, Sender};
use funnelhooks_delivery::log::MAX_RESPONSE_BODY;
use funnelhooks_delivery::request::OutboundRequest;
use funnelhooks_dialog::Timestamp;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};

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

impl Sender for SpinSender {
    fn send(
        &self,
        request: &OutboundRequest,
        extra: &[(String, String)],
        timeout: Duration,
    ) -> Result<Received, SendFailure> {
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
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let ok = outgoing.set_method(&method).is_ok()
            && outgoing.set_scheme(Some(&scheme)).is_ok()
            && outgoing.set_authority(Some(&authority)).is_ok()
            && outgoing.set_path_with_query(Some(&path)).is_ok();
        if !ok {
            return Err(network("the URL cannot be sent"));
        }
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
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(code))) => return Err(failure(code)),
            Some(Err(())) | None => return Err(network("the response was lost")),
        };
        let status = response.status();
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
        let mut body = Vec::new();
        let mut truncated = false;
        if let Ok(incoming) = response.consume()
            && let Ok(stream) = incoming.stream()
        {
            while let Ok(chunk) = stream.blocking_read(8192) {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE_BODY {
                    truncated = true;
                    body.truncate(MAX_RESPONSE_BODY);
                    break;
                }
            }
        }
        Ok(Received {
            status,
            headers,
            body,
            truncated,
        })
    }
}
