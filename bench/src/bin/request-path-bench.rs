//! Request-path benchmark: serves the real app through the test host on loopback and drives
//! one route at 1, 8 and 32 concurrent clients, printing requests/s and p50/p99 latency, then
//! each component's `.wasm` size.
//!
//!   cargo run -p funnelhooks-bench --bin request-path-bench -- [PATH] [REQUESTS]
//!
//! (The dev profile already optimises wasmtime and every other dependency; see Cargo.toml.)
//!
//! With `FUNNELHOOKS_FUEL=1` it also prints the Wasm fuel (about one unit per Wasm
//! instruction) each component's handlers used per request: a figure that does not move with
//! the machine's load, for comparing two builds of a component, with the calls they made into
//! the host, how often their memory grew and the largest it got.
//!
//! `FUNNELHOOKS_MANIFEST=bench/cas-floor/spin.toml` serves another Spin app instead (built
//! beforehand), e.g. the floors of `bench/floors.py` (PATH `/floor` or `/cas`).
//!
//! PATH defaults to `/api/health`, REQUESTS (per concurrency level) to 2000. Two PATHs are
//! scenarios that first create a bot, its fields, a step and a postback link:
//! - `updateDialog`: a Keitaro-style GET postback, each request for its own chat (the first
//!   postback of a chat creates its dialog);
//! - `updateDialog-one-chat`: the same postback, every request for one chat (concurrent
//!   writers contend on one dialog record);
//! - `updateDialog-webhook-step`: as `updateDialog`, into a send-webhook step whose receiver
//!   is a loopback server of the bench: each postback is followed by its chained delivery
//!   (send-webhook's figures are then per delivery).

use anyhow::Result;
use bytes::Bytes;
use funnelhooks_bench::request_path::{Probe, run};
use funnelhooks_testhost::manifest::Manifest;
use funnelhooks_testhost::{Client, HostBuilder, repo_root};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/api/health".into());
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2000);

    let app = match std::env::var_os("FUNNELHOOKS_MANIFEST") {
        Some(other) => HostBuilder::new(std::path::PathBuf::from(other)).build()?,
        None => HostBuilder::new(repo_root().join("spin.toml"))
            .variable("admin_token", "bench-admin-token")
            .variable("allow_loopback_webhooks", "true")
            .build()?,
    };
    let server = app.serve().await?;
    let client = Client::new(server.url());
    let receiver = funnelhooks_testhost::Receiver::start().await?;
    let target = match path.as_str() {
        "updateDialog" => postback_path(&client, "{n}", None).await?,
        "updateDialog-one-chat" => postback_path(&client, "1227280", None).await?,
        "updateDialog-webhook-step" => {
            postback_path(
                &client,
                "{n}",
                Some(&format!("{}/postback", receiver.url())),
            )
            .await?
        }
        _ => path.clone(),
    };
    let probe = Probe {
        method: "GET".into(),
        path: target,
        headers: vec![],
        body: Bytes::new(),
        expect_status: 200,
    };
    // Warm-up: first instantiations and connection set-up are not what we measure.
    run(&client, &probe, 4, 200).await?;
    println!("GET {path} through the test host ({} cores)", num_cpus());
    for concurrency in [1, 8, 32] {
        let before = app.fuel();
        println!("{}", run(&client, &probe, concurrency, total).await?);
        // Counted only with FUNNELHOOKS_FUEL=1: Wasm instructions per request, which unlike
        // time do not move with the machine's load (lost compare-and-swaps add theirs, so
        // the figure at one client is the one to compare builds by).
        app.idle().await;
        for (id, fuel) in app.fuel() {
            let fuel = fuel.since(&before.get(&id).copied().unwrap_or_default());
            if fuel.handlers > 0 {
                println!(
                    "    {id}: {} Wasm fuel and {} host calls per request; memory grown {} \
                     times in {} requests, largest so far {} KiB",
                    fuel.per_handler(),
                    fuel.host_calls_per_handler(),
                    fuel.memory_grows,
                    fuel.handlers,
                    fuel.peak_memory / 1024
                );
            }
        }
    }

    let manifest = Manifest::load(&repo_root().join("spin.toml"))?;
    println!("component sizes (budget 409600 bytes, send-webhook and call-hooks 819200):");
    for (id, c) in &manifest.components {
        let size = std::fs::metadata(manifest.source_path(c))?.len();
        println!("  {id:<24} {size:>8} bytes");
    }
    Ok(())
}

/// Sets up a bot as a user would and returns a Keitaro-style postback path for `chat`, into
/// a message step, or a send-webhook step posting to `webhook`.
async fn postback_path(client: &Client, chat: &str, webhook: Option<&str>) -> Result<String> {
    let auth = [
        ("authorization", "Bearer bench-admin-token"),
        ("content-type", "application/json"),
    ];
    let call = |method: &'static str, path: String, body: String| async move {
        let reply = client.send(method, &path, &auth, body).await?;
        anyhow::ensure!(reply.status < 300, "{method} {path}: {}", reply.text());
        anyhow::Ok(reply.json())
    };
    let bot = call("POST", "/api/bots".into(), r#"{"name":"bench"}"#.into()).await?;
    let bot = bot["id"].as_str().unwrap_or_default().to_string();
    call(
        "PUT",
        format!("/api/bots/{bot}/fields/userBalance"),
        r#"{"type":"number"}"#.into(),
    )
    .await?;
    let step = "046050f6-38f6-4b18-b9fa-e6582f5352d0";
    let step_body = match webhook {
        None => r#"{"key":"deposit","kind":"message"}"#.to_string(),
        Some(url) => serde_json::json!({"key": "deposit", "kind": "send-webhook",
            "webhook": {"url": format!("{url}?clickid={{tracker.clickid}}&payout={{userBalance}}")}})
        .to_string(),
    };
    call("PUT", format!("/api/bots/{bot}/steps/{step}"), step_body).await?;
    let link = call("POST", format!("/api/bots/{bot}/webhooks"), String::new()).await?;
    let link = link["id"].as_str().unwrap_or_default();
    Ok(format!(
        "/api/bots/webhooks/{link}/updateDialog?chatId={chat}&stepId={step}&status=auto&userBalance=5000&tracker.clickid=a1b2c3&sub_id_7=ppc"
    ))
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
