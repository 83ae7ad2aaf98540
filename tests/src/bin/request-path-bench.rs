//! Request-path benchmark: serves the real app through the test host on loopback and drives
//! one route at 1, 8 and 32 concurrent clients, printing requests/s and p50/p99 latency, then
//! each component's `.wasm` size.
//!
//!   cargo run -p funnelhooks-tests --bin request-path-bench -- [PATH] [REQUESTS]
//!
//! (The dev profile already optimises wasmtime and every other dependency; see Cargo.toml.)
//!
//! PATH defaults to `/api/health`, REQUESTS (per concurrency level) to 2000.

use anyhow::Result;
use bytes::Bytes;
use funnelhooks_tests::bench::{Probe, run};
use funnelhooks_tests::manifest::Manifest;
use funnelhooks_tests::{Client, HostBuilder, repo_root};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/api/health".into());
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2000);

    let app = HostBuilder::new(repo_root().join("spin.toml"))
        .variable("admin_token", "bench-admin-token")
        .build()?;
    let server = app.serve().await?;
    let client = Client::new(server.url());
    let probe = Probe {
        method: "GET".into(),
        path: path.clone(),
        headers: vec![],
        body: Bytes::new(),
        expect_status: 200,
    };
    // Warm-up: first instantiations and connection set-up are not what we measure.
    run(&client, &probe, 4, 200).await?;
    println!("GET {path} through the test host ({} cores)", num_cpus());
    for concurrency in [1, 8, 32] {
        println!("{}", run(&client, &probe, concurrency, total).await?);
    }

    let manifest = Manifest::load(&repo_root().join("spin.toml"))?;
    println!("component sizes (budget 409600 bytes):");
    for (id, c) in &manifest.components {
        let size = std::fs::metadata(manifest.source_path(c))?.len();
        println!("  {id:<24} {size:>8} bytes");
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
