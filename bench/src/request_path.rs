//! The request-path benchmark: drive a served app with a fixed number of requests at a given
//! concurrency and report requests per second and latency percentiles.

use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;

use funnelhooks_testhost::Client;

/// The next `{n}` of a numbered probe.
static NEXT_NUMBER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// One benchmark run's figures.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Concurrent clients.
    pub concurrency: usize,
    /// Requests completed.
    pub requests: usize,
    /// Requests per second over the run.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th-percentile latency.
    pub p99: Duration,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "concurrency {:>3}: {:>6} requests, {:>8.0} req/s, p50 {:>8.2} ms, p99 {:>8.2} ms",
            self.concurrency,
            self.requests,
            self.per_second,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3
        )
    }
}

/// A request to repeat: method, path, headers, body.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Method.
    pub method: String,
    /// Path and query; `{n}` is replaced by a number no other request of this process got,
    /// so each request can address its own dialog.
    pub path: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// The status every answer must have.
    pub expect_status: u16,
}

/// Sends `total` requests from `concurrency` clients; fails if any answer is unexpected.
pub async fn run(
    client: &Client,
    probe: &Probe,
    concurrency: usize,
    total: usize,
) -> Result<Figures> {
    let per_client = total.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let probe = probe.clone();
        tasks.push(tokio::spawn(async move {
            let headers: Vec<(&str, &str)> = probe
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut latencies = Vec::with_capacity(per_client);
            let numbered = probe.path.contains("{n}");
            for _ in 0..per_client {
                let path = if numbered {
                    let n = NEXT_NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    probe.path.replace("{n}", &n.to_string())
                } else {
                    probe.path.clone()
                };
                let t = Instant::now();
                let reply = client
                    .send(&probe.method, &path, &headers, probe.body.clone())
                    .await?;
                anyhow::ensure!(
                    reply.status == probe.expect_status,
                    "{} {} answered {}: {}",
                    probe.method,
                    probe.path,
                    reply.status,
                    reply.text()
                );
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Ok(Figures {
        concurrency,
        requests: latencies.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    })
}
