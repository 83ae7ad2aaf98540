//! The request paths on the real Spin: `spin up` with its SQLite file store, then with the
//! in-memory store, and each path driven at 1 and at 32 concurrent clients. Prints requests
//! per second and p50/p99 per path; for the paths that send webhooks (a postback into a
//! send-webhook step, a call event to its hooks) also how long until the loopback receiver
//! had every delivery. The paths:
//!
//! - `console` (`GET /`): no store, no work; what Spin costs per request of a component.
//! - `health` (`GET /api/health`): one store read.
//! - `bots-api` (`GET /api/bots/{id}`): the admin check and one store read.
//! - `updateDialog, new chat each` / `one chat`: Keitaro-style postbacks.
//! - `updateDialog into a webhook step`: each postback moves a new chat into a send-webhook
//!   step (update-dialog answers, then chains to send-webhook, which delivers).
//! - `call event`: call-start events to a service with HOOKS hooks.
//!
//!   cargo run --release -p funnelhooks-bench --bin spin-bench -- [REQUESTS] [HOOKS]
//!
//! Defaults: 1,000 requests per run at 32 clients (a quarter of that at 1), 10 hooks. Needs
//! the built components (`scripts/build-wasm`) and `spin` (on `PATH` or in ../shared/tools).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use funnelhooks_bench::request_path::{Probe, run};
use funnelhooks_testhost::Admin;
use funnelhooks_testhost::{Client, Receiver, repo_root};
use funnelhooks_tests::soak::{STEP, bot_with_webhook_step, service_with_hooks};
use funnelhooks_tests::spin_cli::{SpinUp, Store, find};

const TOKEN: &str = "bench-admin-token";

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1_000);
    let hooks: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let spin = find("spin").context("no `spin` on PATH or in ../shared/tools")?;
    let dir = tempfile::tempdir()?;
    let memory = dir.path().join("memory.toml");
    std::fs::write(&memory, "[key_value_store.default]\ntype = \"spin\"\n")?;
    for (name, store) in [
        ("SQLite file", Store::Sqlite),
        ("in memory", Store::Config(memory.clone())),
    ] {
        let env = [
            ("SPIN_VARIABLE_ADMIN_TOKEN", TOKEN),
            ("SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS", "true"),
            ("SPIN_VARIABLE_MAX_NEW_DIALOGS_PER_MINUTE", "0"),
        ];
        let (spin, manifest) = (spin.clone(), repo_root().join("spin.toml"));
        let up = tokio::task::spawn_blocking(move || {
            SpinUp::start(&spin, &manifest, store, &env, "/api/health")
        })
        .await??;
        println!("spin up, store: {name}");
        bench_paths(up.url(), requests, hooks)
            .await
            .with_context(|| up.log_tail())?;
    }
    Ok(())
}

/// What the paths need: a bot with a link and a send-webhook step, a service with hooks.
struct Setup {
    admin: Admin,
    bot: String,
    link: String,
    service: String,
    key: String,
}

async fn setup(base: &str, rx: &Receiver, hooks: usize) -> Result<Setup> {
    let admin = Admin::new(Client::new(base), TOKEN);
    let url = format!("{}/step?c={{chatId}}", rx.url());
    let (bot, link) = bot_with_webhook_step(&admin, "bench", &url, None).await?;
    let (service, key) = service_with_hooks(&admin, "bench", rx.port(), "/call", hooks).await?;
    Ok(Setup {
        admin,
        bot,
        link,
        service,
        key,
    })
}

fn probe(method: &str, path: String, headers: Vec<(String, String)>) -> Probe {
    Probe {
        method: method.into(),
        path,
        headers,
        body: Bytes::new(),
        expect_status: 200,
    }
}

async fn bench_paths(base: &str, requests: usize, hooks: usize) -> Result<()> {
    let rx = Receiver::start().await?;
    let s = setup(base, &rx, hooks).await?;
    let auth = vec![(
        "authorization".to_string(),
        s.admin.authorization().to_string(),
    )];
    let postback = format!("/api/bots/webhooks/{}/updateDialog", s.link);
    let keitaro = "refID=12345&tracker.clickid=abc&tracker.campaign=summer";
    let plain = [
        ("console", probe("GET", "/".into(), vec![])),
        ("health", probe("GET", "/api/health".into(), vec![])),
        (
            "bots-api",
            probe("GET", format!("/api/bots/{}", s.bot), auth),
        ),
        (
            "updateDialog, new chat each",
            probe("GET", format!("{postback}?chatId={{n}}&{keitaro}"), vec![]),
        ),
        (
            "updateDialog, one chat",
            probe("GET", format!("{postback}?chatId=7&{keitaro}"), vec![]),
        ),
    ];
    let client = s.admin.client.clone();
    for (name, p) in &plain {
        for (concurrency, total) in [(1, requests / 4), (32, requests)] {
            let figures = run(&client, p, concurrency, total.max(1)).await?;
            println!("  {name:<36} {figures}");
        }
    }
    let into_step = probe(
        "GET",
        format!("{postback}?chatId={{n}}&stepId={STEP}&{keitaro}"),
        vec![],
    );
    delivering(
        &client,
        &rx,
        "updateDialog into a webhook step",
        &into_step,
        1,
        requests,
    )
    .await?;
    let event = probe(
        "POST",
        format!(
            "/api/calls/services/{}/events?key={}&id={{n}}&hook_event=Call%20is%20processing",
            s.service, s.key
        ),
        vec![],
    );
    let name = format!("call event to {hooks} hooks");
    delivering(&client, &rx, &name, &event, hooks, requests).await
}

/// Runs `p` (each request makes `per_request` deliveries) at 1 and 32 clients, then waits
/// for the receiver to have every delivery and prints how long the deliveries took.
async fn delivering(
    client: &Client,
    rx: &Receiver,
    name: &str,
    p: &Probe,
    per_request: usize,
    requests: usize,
) -> Result<()> {
    for (concurrency, total) in [(1, requests / 4), (32, requests)] {
        let before = rx.received().len();
        let started = Instant::now();
        let figures = run(client, p, concurrency, total.max(1)).await?;
        let expected = before + figures.requests * per_request;
        let got = rx.wait_for(expected, Duration::from_secs(300)).await.len();
        let took = started.elapsed().as_secs_f64();
        println!("  {name:<36} {figures}");
        println!(
            "  {:<36} all {} deliveries received {took:.2} s after the first request ({:.0} deliveries/s)",
            "",
            got - before,
            (got - before) as f64 / took
        );
        ensure!(
            got >= expected,
            "{name}: {got} of {expected} deliveries arrived"
        );
    }
    Ok(())
}
