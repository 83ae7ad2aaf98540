//! A small HTTP/1.1 client for tests and benchmarks: a tracker, a bot engine or a person
//! with curl, calling the app over loopback.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A client bound to one base URL.
#[derive(Clone)]
pub struct Client {
    base: String,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:3000`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends any request; `path` is appended to the base URL as written.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into()))?;
        let resp = self
            .inner
            .request(req)
            .await
            .with_context(|| format!("{method} {path}"))?;
        let (parts, body) = resp.into_parts();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await?.to_bytes(),
        })
    }

    /// The base URL requests go to (`http://127.0.0.1:<port>`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send("GET", path, &[], Bytes::new()).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply> {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }
}

/// The management API with the admin token (benchmarks and the soak).
#[derive(Clone)]
pub struct Admin {
    /// The client underneath.
    pub client: Client,
    auth: String,
}

impl Admin {
    /// Calls through `client` with the admin `token`.
    pub fn new(client: Client, token: &str) -> Self {
        Self {
            client,
            auth: format!("Bearer {token}"),
        }
    }

    /// `method path` with a JSON body; fails unless the answer is 2xx. Returns its JSON
    /// (`null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let headers = [
            ("authorization", self.auth.as_str()),
            ("content-type", "application/json"),
        ];
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let reply = self.client.send(method, path, &headers, body).await?;
        anyhow::ensure!(
            reply.status < 300,
            "{method} {path}: {} {}",
            reply.status,
            reply.text()
        );
        Ok(if reply.body.is_empty() {
            serde_json::Value::Null
        } else {
            reply.json()
        })
    }

    /// The `Authorization` header value.
    pub fn authorization(&self) -> &str {
        &self.auth
    }
}
