//! The scenarios on the real runtime: the built `.wasm` files under `spin up`, Spin 4.1 and
//! Spin 3.6 (SpinKube's generation), each with its default SQLite store and with Redis
//! (`redis-server` started for the test). In CI a missing `spin`, `spin-3.6` or
//! `redis-server` fails these tests; elsewhere they are skipped, saying so.

use funnelhooks_tests::spin_cli::{RedisServer, SpinUp, Store, require};
use funnelhooks_tests::{Client, repo_root};

use crate::common::ADMIN_TOKEN;
use crate::scenarios::{Target, run_all};

/// Which store a run uses.
#[derive(Clone, Copy)]
enum Kind {
    Sqlite,
    Redis,
}

async fn run(spin: &str, version: &str, kind: Kind) {
    let Some(binary) = require(spin).unwrap() else {
        return;
    };
    let redis = match kind {
        Kind::Sqlite => None,
        Kind::Redis => {
            let Some(server) = require("redis-server").unwrap() else {
                return;
            };
            Some(RedisServer::start(&server).unwrap())
        }
    };
    let store = match &redis {
        Some(server) => Store::Redis(server.url()),
        None => Store::Sqlite,
    };
    let env = [
        ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS", "true"),
    ];
    let manifest = repo_root().join("spin.toml");
    let up = tokio::task::spawn_blocking(move || {
        SpinUp::start(&binary, &manifest, store, &env, "/api/health")
    })
    .await
    .unwrap();
    let up = up.unwrap_or_else(|e| panic!("spin {version}: {e:#}"));
    let label = match kind {
        Kind::Sqlite => format!("spin {version} + SQLite"),
        Kind::Redis => format!("spin {version} + Redis"),
    };
    let target = Target {
        label: label.clone(),
        client: Client::new(up.url()),
        atomic: true,
    };
    // On failure, what Spin and the components printed is the first thing to read.
    let outcome = tokio::spawn(async move { run_all(&target).await }).await;
    if let Err(e) = outcome {
        panic!(
            "{label}: {}\n--- spin log ---\n{}",
            panic_text(e),
            up.log_tail()
        );
    }
    drop(redis);
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_4_1_with_sqlite_passes_every_scenario() {
    run("spin", "4.1", Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_4_1_with_redis_passes_every_scenario() {
    run("spin", "4.1", Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_3_6_with_sqlite_passes_every_scenario() {
    run("spin-3.6", "3.6", Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_3_6_with_redis_passes_every_scenario() {
    run("spin-3.6", "3.6", Kind::Redis).await;
}
