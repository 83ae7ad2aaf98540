//! The delivery soak on the real Spin: `spin up` with SQLite, then with Redis, each driven
//! with postbacks and call events while the receiver fails half the time, then swept on a
//! fast clock until every retry is done. Prints, per store: deliveries created, delivered,
//! failed after all attempts, lost (must be 0) and duplicates sent.
//!
//!   cargo run --release -p funnelhooks-bench --bin delivery-soak -- [POSTBACKS] [EVENTS] [HOOKS]
//!
//! Defaults: 30,000 postbacks and 2,000 events to 10 hooks (50,000 deliveries). Needs the
//! built components (`scripts/build-wasm`), `spin` and `redis-server`.

use anyhow::{Context, Result, ensure};
use funnelhooks_tests::repo_root;
use funnelhooks_tests::soak::{SoakConfig, run};
use funnelhooks_tests::spin_cli::{RedisServer, SpinUp, Store, find};

const TOKEN: &str = "soak-admin-token";

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: usize| -> Result<usize> {
        Ok(args
            .next()
            .map(|n| n.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let config = SoakConfig {
        postbacks: arg(30_000)?,
        events: arg(2_000)?,
        hooks: arg(10)?,
        concurrency: 16,
    };
    let spin = find("spin").context("no `spin` on PATH or in ../shared/tools")?;
    let redis = find("redis-server").context("no `redis-server`")?;
    let mut lost = 0;
    for store in ["SQLite", "Redis"] {
        let server = (store == "Redis")
            .then(|| RedisServer::start(&redis))
            .transpose()?;
        let kv = match &server {
            Some(s) => Store::Redis(s.url()),
            None => Store::Sqlite,
        };
        let env = [
            ("SPIN_VARIABLE_ADMIN_TOKEN", TOKEN),
            ("SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS", "true"),
            ("SPIN_VARIABLE_ALLOW_TEST_CLOCK", "true"),
            ("SPIN_VARIABLE_MAX_NEW_DIALOGS_PER_MINUTE", "0"),
        ];
        let (spin, manifest) = (spin.clone(), repo_root().join("spin.toml"));
        let up = tokio::task::spawn_blocking(move || {
            SpinUp::start(&spin, &manifest, kv, &env, "/api/health")
        })
        .await??;
        let report = run(up.url(), TOKEN, config).await;
        let report = report.with_context(|| up.log_tail())?;
        println!("{store:>6}: {report}");
        lost += report.lost;
    }
    ensure!(lost == 0, "{lost} deliveries were lost");
    Ok(())
}
