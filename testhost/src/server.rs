//! Serves an [`App`] over real HTTP/1.1 on a loopback port, one task per connection and per
//! request, so concurrent requests really run concurrently.

use std::net::SocketAddr;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::host::App;

/// A running server; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl App {
    /// Serves the app on `127.0.0.1` at a free port until the returned server is dropped.
    pub async fn serve(&self) -> Result<Server> {
        Server::start(self.clone()).await
    }
}

impl Server {
    async fn start(app: App) -> Result<Self> {
        let (addr, accept) =
            serve_loopback(move |req, peer| respond(app.clone(), req, peer)).await?;
        Ok(Self { addr, accept })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Serves HTTP/1.1 on a free loopback port, one task per connection, calling `handle` with
/// each request and the peer's address; the returned task accepts until aborted.
pub async fn serve_loopback<F, Fut, B>(handle: F) -> Result<(SocketAddr, JoinHandle<()>)>
where
    F: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = handle(req, peer);
                    async move { Ok::<_, std::convert::Infallible>(response.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, accept))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn respond(
    app: App,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(400, format!("reading request body: {e}")),
    };
    match app
        .handle(http::Request::from_parts(parts, body), peer)
        .await
    {
        Ok(resp) => {
            let mut out = hyper::Response::new(Full::new(resp.body));
            *out.status_mut() = http::StatusCode::from_u16(resp.status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            *out.headers_mut() = resp.headers;
            out
        }
        Err(e) => plain(500, format!("{e:#}")),
    }
}

fn plain(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(body)));
    *out.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    out
}
