//! The scenarios every store must pass, through the test host with each store's semantics:
//! Spin's SQLite store, Spin's Redis store (swaps report failure even when they applied), a
//! remote store whose swaps fail ambiguously at random, and a host without key-value
//! atomics running the `no-kv-atomics` builds (which is also the only way they load there).

use funnelhooks_testhost::kv::Semantics;
use funnelhooks_testhost::{HostBuilder, repo_root};

use crate::common::{real_app, serve};
use crate::scenarios::{Target, run_all};

async fn run(label: &str, builder: HostBuilder, atomic: bool) {
    let (_app, _server, client) = serve(
        builder
            .variable("allow_loopback_webhooks", "true")
            .variable("allow_test_clock", "true")
            .variable(
                "auto_disable_after_hours",
                crate::failing_targets::AUTO_DISABLE_AFTER_HOURS,
            )
            .variable("retry_sweep_key", ""),
    )
    .await;
    let target = Target {
        label: label.into(),
        client,
        atomic,
    };
    run_all(&target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_passes_on_sqlite_semantics() {
    run(
        "host + SQLite",
        real_app().store_semantics(Semantics::Sqlite),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_passes_on_redis_semantics() {
    run(
        "host + Redis",
        real_app().store_semantics(Semantics::Redis),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_passes_when_swaps_fail_ambiguously() {
    let faulty = real_app().store_semantics(Semantics::Faulty(0xfa17));
    run("host + faulty store", faulty, true).await;
}

/// Where `scripts/build-wasm` puts the builds for hosts without atomics.
fn no_atomics_builds() -> std::path::PathBuf {
    repo_root().join("target/no-kv-atomics/wasm32-wasip2/release")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_no_atomics_builds_pass_every_scenario_on_a_host_without_atomics() {
    let builder = real_app()
        .store_semantics(Semantics::NoAtomics)
        .wasm_dir(no_atomics_builds());
    run("host without atomics", builder, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_builds_do_not_load_on_a_host_without_atomics() {
    let e = real_app()
        .store_semantics(Semantics::NoAtomics)
        .build()
        .err()
        .expect("a component importing wasi:keyvalue/atomics must not load");
    let message = format!("{e:#}");
    assert!(message.contains("wasi:keyvalue/atomics"), "{message}");
}
