//! The scenarios and the seed examples on the real runtime: the built `.wasm` files under
//! `spin up`, Spin 4.1 and Spin 3.6 (SpinKube's generation), each with its default SQLite
//! store and with Redis (`redis-server` started for the test). In CI a missing `spin`, `spin-3.6` or
//! `redis-server` fails these tests; elsewhere they are skipped, saying so.

use funnelhooks_testhost::{Client, repo_root};
use funnelhooks_tests::spin_cli::{RedisServer, SpinUp, Store, require};

use crate::common::ADMIN_TOKEN;
use crate::scenarios::{Target, run_all};

/// Which store a run uses.
#[derive(Clone, Copy)]
enum Kind {
    Sqlite,
    Redis,
}

/// `spin up` of the app with `binary`, on SQLite or on a Redis started for it (kept with
/// it), with the admin token, loopback webhooks and `extra` in its environment. `None` when
/// Redis is wanted and missing outside CI.
async fn start(
    binary: std::path::PathBuf,
    kind: Kind,
    extra: &[(&'static str, &'static str)],
) -> Option<(SpinUp, Option<RedisServer>)> {
    let redis = match kind {
        Kind::Sqlite => None,
        Kind::Redis => Some(RedisServer::start(&require("redis-server").unwrap()?).unwrap()),
    };
    let store = match &redis {
        Some(server) => Store::Redis(server.url()),
        None => Store::Sqlite,
    };
    let mut env = vec![
        ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS", "true"),
    ];
    env.extend_from_slice(extra);
    let manifest = repo_root().join("spin.toml");
    let up = tokio::task::spawn_blocking(move || {
        SpinUp::start(&binary, &manifest, store, &env, "/api/health")
    })
    .await
    .unwrap();
    Some((up.unwrap_or_else(|e| panic!("{e:#}")), redis))
}

async fn run(spin: &str, version: &str, kind: Kind) {
    let Some(binary) = require(spin).unwrap() else {
        return;
    };
    // The attacks play the sweep minutes ahead (`?at=`); a failing step is disabled after
    // seconds, not days.
    let env = [
        ("SPIN_VARIABLE_ALLOW_TEST_CLOCK", "true"),
        (
            "SPIN_VARIABLE_AUTO_DISABLE_AFTER_HOURS",
            crate::failing_targets::AUTO_DISABLE_AFTER_HOURS,
        ),
    ];
    let Some((up, redis)) = start(binary, kind, &env).await else {
        return;
    };
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
    let outcome = tokio::spawn(async move {
        run_all(&target).await;
        crate::seeds::run_all(&target).await;
    })
    .await;
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

/// The name `scripts/test` maps to 127.0.0.1 in `/etc/hosts`: a public-looking name (our
/// own rules pass it) that resolves to loopback, as a DNS record pointing at an internal
/// address would.
pub const LOOPBACK_NAME: &str = "loopback-check.funnelhooks.example";

/// A host name our target rules allow that resolves to 127.0.0.1 on this machine:
/// [`LOOPBACK_NAME`], or another dotted name `/etc/hosts` maps there.
fn loopback_name() -> Option<String> {
    use std::net::ToSocketAddrs;
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let listed = hosts
        .lines()
        .filter(|l| l.trim_start().starts_with("127.0.0.1"))
        .flat_map(|l| l.split_whitespace().skip(1).map(str::to_string))
        .collect::<Vec<_>>();
    std::iter::once(LOOPBACK_NAME.to_string())
        .chain(listed)
        .filter(|n| !n.starts_with('#') && funnelhooks_delivery::target::refused_name(n).is_none())
        .find(|n| {
            (n.as_str(), 80)
                .to_socket_addrs()
                .is_ok_and(|mut a| a.any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST))
        })
}

/// What a webhook and a call hook to `name` do on `binary` with `store`: (the health
/// report's privateNetworks, whether the receiver got the step's test send, whether it got
/// the hook's).
async fn send_to_name(
    binary: std::path::PathBuf,
    store: Store,
    allow_loopback: bool,
    name: &str,
) -> (String, bool, bool) {
    let env = [
        ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN),
        (
            "SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS",
            if allow_loopback { "true" } else { "false" },
        ),
    ];
    let manifest = repo_root().join("spin.toml");
    let up = tokio::task::spawn_blocking(move || {
        SpinUp::start(&binary, &manifest, store, &env, "/api/health")
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let client = Client::new(up.url());
    let admin = crate::common::Admin::new(&client);
    let health = client.get("/api/health").await.unwrap().json();
    let rx = funnelhooks_testhost::Receiver::start().await.unwrap();
    let bot = admin.bot("SSRF").await;
    let url = format!("http://{name}:{}/hook?c={{chatId}}", rx.port());
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(serde_json::json!({"key": "s", "kind": "send-webhook", "webhook": {"url": url}})),
        )
        .await;
    assert_eq!(step.status, 201, "{}", step.text());
    let step = step.json()["id"].as_str().unwrap().to_string();
    let sent = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{step}/test-send"),
            None,
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let step_got = !rx.received().is_empty();
    let service = admin
        .call(
            "POST",
            "/api/calls/services",
            Some(serde_json::json!({"name": "s"})),
        )
        .await
        .json();
    let sid = service["id"].as_str().unwrap().to_string();
    let hook = admin
        .call(
            "POST",
            &format!("/api/calls/services/{sid}/hooks"),
            Some(
                serde_json::json!({"protocol": "http", "host": name, "port": rx.port(),
                                    "path": "/call", "event": "end"}),
            ),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.text());
    let hid = hook.json()["id"].as_str().unwrap().to_string();
    let before = rx.received().len();
    let sent = admin
        .call(
            "POST",
            &format!("/api/calls/services/{sid}/hooks/{hid}/test-send"),
            None,
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let hook_got = rx.received().len() > before;
    if !step_got || !hook_got {
        // Refused: said so in the delivery, before any connection.
        let error = sent.json()["attempts"][0]["error"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            error.contains("block") || error.contains("not sent"),
            "refused without saying why: {}",
            sent.text()
        );
    }
    let private = health["outbound"]["privateNetworks"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    drop(up);
    (private, step_got, hook_got)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_to_a_host_name_that_resolves_to_loopback_reaches_it_only_when_loopback_is_allowed()
 {
    let Some(name) = loopback_name() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no dotted host name resolves to 127.0.0.1 here (scripts/test adds {LOOPBACK_NAME} to /etc/hosts)"
        );
        eprintln!(
            "SKIPPED: no dotted host name resolves to 127.0.0.1 here (run scripts/test once)"
        );
        return;
    };
    let strict = repo_root().join("runtime-config/sqlite.toml");
    let loopback = repo_root().join("runtime-config/sqlite-loopback.toml");
    for (spin, version) in [("spin", "4.1"), ("spin-3.6", "3.6")] {
        let Some(binary) = require(spin).unwrap() else {
            continue;
        };
        // The documented production and local runs: blocked, before any connection.
        let got = send_to_name(binary.clone(), Store::Config(strict.clone()), false, &name).await;
        assert_eq!(
            got,
            ("blocked".into(), false, false),
            "spin {version}, sqlite.toml"
        );
        // Loopback explicitly allowed for local testing: delivered.
        let got = send_to_name(binary.clone(), Store::Config(loopback.clone()), true, &name).await;
        assert_eq!(
            got,
            ("blocked-except-loopback".into(), true, true),
            "spin {version}, sqlite-loopback.toml"
        );
        // No runtime config at all (a bare `spin up`): the host blocks nothing, health says
        // so, and the senders refuse host names rather than trust them.
        let got = send_to_name(binary, Store::Sqlite, false, &name).await;
        assert_eq!(
            got,
            ("open".into(), false, false),
            "spin {version}, no runtime config"
        );
    }
}

/// The soak, small: postbacks and call events while the receiver fails half the time, then
/// the sweep on a fast clock; on Spin 4.1 with SQLite and with Redis nothing is lost and
/// nothing is sent twice. (`delivery-soak` runs the 50,000-delivery version.)
#[tokio::test(flavor = "multi_thread")]
async fn the_delivery_soak_loses_nothing_and_duplicates_nothing_on_sqlite_and_redis() {
    use funnelhooks_tests::soak::{SoakConfig, run as soak};
    let Some(binary) = require("spin").unwrap() else {
        return;
    };
    let config = SoakConfig {
        postbacks: 300,
        events: 40,
        hooks: 5,
        concurrency: 8,
    };
    for kind in [Kind::Sqlite, Kind::Redis] {
        let test_clock = [("SPIN_VARIABLE_ALLOW_TEST_CLOCK", "true")];
        let Some((up, _redis)) = start(binary.clone(), kind, &test_clock).await else {
            return;
        };
        let report = soak(up.url(), ADMIN_TOKEN, config)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n--- spin log ---\n{}", up.log_tail()));
        eprintln!("soak: {report}");
        assert_eq!(report.created, 500);
        assert_eq!(
            (report.lost, report.duplicates),
            (0, 0),
            "{report}\n--- spin log ---\n{}",
            up.log_tail()
        );
        assert_eq!(report.delivered + report.failed, report.created, "{report}");
        assert!(
            report.attempts > report.created,
            "the receiver failed some: {report}"
        );
    }
}
