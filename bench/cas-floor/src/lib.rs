//! The floors our request paths are measured against, in one component so that all are built
//! and run alike (`bench/floors.py` runs them beside the app):
//! - `GET /floor`: one get and one set of a counter, as Spin's own `spin-kv-floor`;
//! - `GET /cas`: the store calls a postback to an existing chat makes and nothing else: one
//!   `get-many` of three keys (link, bot and dialog), then a compare-and-swap of the counter
//!   (`current`, `swap`), retried when it loses.
//! - `GET /deliver?to={url}`: the least a durable delivery does: one write recording it
//!   before the request (so an instance that dies mid-request leaves it to be sent again),
//!   the request, one write with its outcome (so it is not sent twice).
//! - `GET /fanout?to={url}&n={hooks}`: the same for a call event to `n` hooks: one write
//!   recording the `n` deliveries, the `n` requests at once, one write with their outcomes.
//!
//! What updateDialog serves beyond `/cas` is its own work; what `/cas` serves below `/floor`
//! is what a compare-and-swap costs on that store.

use std::hash::{BuildHasher, Hasher};

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};

/// The counter after `bytes`.
fn next(bytes: Option<&[u8]>) -> u64 {
    let current = bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    current + 1
}

/// A delivery record about the size of the app's (its request, status and attempt).
fn record(id: &str, to: &str, status: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","request":{{"method":"GET","url":"{to}","headers":[],"body":""}},"status":"{status}","attempts":[{{"n":1,"status":200,"body":"ok","durationMs":1}}],"padding":"{}"}}"#,
        "x".repeat(400)
    )
    .into_bytes()
}

/// A random id (std's hasher keys come from WASI's random source).
fn new_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    format!("{:016x}", h.finish())
}

/// The value of query parameter `name`.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Records `n` deliveries to `to`, sends them at once, records their outcomes.
async fn deliver(bucket: &store::Bucket, to: &str, n: usize) -> anyhow::Result<usize> {
    let to = to.replace("%3A", ":").replace("%2F", "/");
    let ids: Vec<String> = (0..n).map(|_| format!("dlv:{}", new_id())).collect();
    let pending: Vec<(String, Vec<u8>)> = ids
        .iter()
        .map(|id| (id.clone(), record(id, &to, "pending")))
        .collect();
    batch::set_many(bucket, &pending)?;
    let sends = ids.iter().map(|_| {
        let req = Request::builder().method(Method::Get).uri(&to).build();
        spin_sdk::http::send::<_, Response>(req)
    });
    let answers = futures::future::join_all(sends).await;
    let done: Vec<(String, Vec<u8>)> = ids
        .iter()
        .zip(&answers)
        .map(|(id, a)| {
            let status = if a.is_ok() { "delivered" } else { "retrying" };
            (id.clone(), record(id, &to, status))
        })
        .collect();
    batch::set_many(bucket, &done)?;
    Ok(answers.iter().filter(|a| a.is_ok()).count())
}

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let bucket = store::open("default")?;
    let query = req.query().to_string();
    let counter = match req.path() {
        "/deliver" | "/fanout" => {
            let Some(to) = param(&query, "to") else {
                return Ok(Response::new(400, "to= is missing\n"));
            };
            let n = param(&query, "n").and_then(|n| n.parse().ok()).unwrap_or(1);
            let delivered = deliver(&bucket, to, n).await?;
            if delivered < n {
                return Ok(Response::new(502, "a delivery failed\n"));
            }
            delivered as u64
        }
        "/floor" => {
            let n = next(bucket.get("counter")?.as_deref());
            bucket.set("counter", n.to_string().as_bytes())?;
            n
        }
        "/cas" => {
            let keys = ["link", "bot", "counter"].map(String::from);
            batch::get_many(&bucket, &keys)?;
            let mut cas = atomics::Cas::new(&bucket, "counter")?;
            loop {
                let n = next(cas.current()?.as_deref());
                match atomics::swap(cas, n.to_string().as_bytes()) {
                    Ok(()) => break n,
                    Err(atomics::CasError::CasFailed(fresh)) => cas = fresh,
                    Err(atomics::CasError::StoreError(e)) => anyhow::bail!("{e:?}"),
                }
            }
        }
        _ => {
            return Ok(Response::new(
                404,
                "GET /floor, /cas, /deliver?to= or /fanout?to=&n=\n",
            ));
        }
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(format!("counter={counter}\n"))
        .build())
}
