//! A loopback HTTP server standing in for a tracker, a CRM or a slow partner endpoint: it
//! records every request it gets and answers with scripted responses.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Frame;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query, as sent.
    pub path_and_query: String,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When its head arrived (to check a rate limit by the receiver's own clock).
    pub arrived: std::time::Instant,
}

impl Received {
    /// Decoded query pairs.
    pub fn query(&self) -> Vec<(String, String)> {
        let q = self
            .path_and_query
            .split_once('?')
            .map(|x| x.1)
            .unwrap_or("");
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    }

    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
    /// Sends the body one byte at a time, this long apart (a receiver that trickles).
    pub trickle: Option<Duration>,
}

impl Answer {
    /// An answer with this status and body.
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            trickle: None,
        }
    }

    /// Sends the body one byte every `every`, after the head.
    pub fn trickling(mut self, every: Duration) -> Self {
        self.trickle = Some(every);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    fallback: Mutex<Option<Answer>>,
    hold_until: Mutex<usize>,
    arrived: Notify,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1` that answers `200 ok` unless scripted otherwise.
    pub async fn start() -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let (addr, accept) =
            crate::server::serve_loopback(move |req, _peer| answer(s.clone(), req)).await?;
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    /// The answer once the script runs out (default `200 ok`).
    pub fn otherwise(&self, answer: Answer) {
        *self.shared.fallback.lock().unwrap() = Some(answer);
    }

    /// Holds every answer until `n` requests have arrived: only a caller that sends them
    /// concurrently ever gets an answer, which proves concurrency without timing anything.
    pub fn hold_until(&self, n: usize) {
        *self.shared.hold_until.lock().unwrap() = n;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Forgets what it got so far.
    pub fn received_clear(&self) {
        self.shared.received.lock().unwrap().clear();
    }

    /// Waits until `n` requests have arrived or `timeout` passes; returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.received();
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A body sent one byte at a time.
struct Trickle {
    bytes: Bytes,
    every: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.bytes.is_empty() {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let byte = self.bytes.split_to(1);
        let next = tokio::time::Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(byte))))
    }
}

/// What the receiver answers with: a whole body, or one that trickles.
type Reply = hyper::Response<Either<Full<Bytes>, Trickle>>;

async fn answer(shared: Arc<Shared>, req: hyper::Request<hyper::body::Incoming>) -> Reply {
    let arrived = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let next = shared.script.lock().unwrap().pop_front();
    let answer = next
        .or_else(|| shared.fallback.lock().unwrap().clone())
        .unwrap_or_else(|| Answer::new(200, "ok"));
    shared.received.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        arrived,
    });
    shared.arrived.notify_waiters();
    let hold = *shared.hold_until.lock().unwrap();
    loop {
        let notified = shared.arrived.notified();
        if shared.received.lock().unwrap().len() >= hold {
            break;
        }
        notified.await;
    }
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let body = Bytes::from(answer.body);
    let mut out = hyper::Response::new(match answer.trickle {
        Some(every) => Either::Right(Trickle {
            bytes: body,
            every,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }),
        None => Either::Left(Full::new(body)),
    });
    *out.status_mut() = http::StatusCode::from_u16(answer.status).expect("valid status");
    for (k, v) in answer.headers {
        out.headers_mut().append(
            http::HeaderName::try_from(k).expect("header name"),
            http::HeaderValue::try_from(v).expect("header value"),
        );
    }
    out
}
