//! Two floors for updateDialog on one hot chat, in one component so that both are built and
//! run alike:
//! - `GET /floor`: one get and one set of a counter, as Spin's own `spin-kv-floor`;
//! - `GET /cas`: the store calls a postback to an existing chat makes and nothing else: one
//!   `get-many` of three keys (link, bot and dialog), then a compare-and-swap of the counter
//!   (`current`, `swap`), retried when it loses.
//!
//! What updateDialog serves beyond `/cas` is its own work; what `/cas` serves below `/floor`
//! is what a compare-and-swap costs on that store (`bench/floors.py` runs all three).

use spin_sdk::http::{IntoResponse, Request, Response};
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

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let bucket = store::open("default")?;
    let counter = match req.path() {
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
        _ => return Ok(Response::new(404, "GET /floor or /cas\n")),
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(format!("counter={counter}\n"))
        .build())
}
