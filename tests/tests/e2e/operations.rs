//! Operating it, on the real Spin 4.1: what an operator collects and probes. The JSON logs
//! of a scenario full of secrets hold none of them; liveness stays up through a Redis outage
//! while readiness follows the store; health shows overdue work and warns until a sweep runs
//! on either of two instances on one Redis; traffic retries a failed delivery without a
//! scheduler, once, even with an instance killed; the metrics move by exactly a scenario's
//! counts and parse as Prometheus text; two instances keep one rate limit, tell each failed
//! delivery once and recover each once, with one of them killed; an API key narrowed or
//! revoked on one instance holds on the other at once.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnelhooks_testhost::{Answer, Client, Receiver, repo_root};
use funnelhooks_tests::spin_cli::{RedisServer, SpinUp, Store, require};
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Admin};

const METRICS_TOKEN: &str = "scraper-token-5e1f";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn path_of(url: &str) -> String {
    url.split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap()
}

/// `spin up` (4.1) of the app on `store`, with the admin token, loopback webhooks and `extra`.
async fn up(binary: &Path, store: Store, extra: &[(&'static str, &'static str)]) -> SpinUp {
    let mut env = vec![
        ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS", "true"),
    ];
    env.extend_from_slice(extra);
    let (binary, manifest) = (binary.to_path_buf(), repo_root().join("spin.toml"));
    tokio::task::spawn_blocking(move || {
        SpinUp::start(&binary, &manifest, store, &env, "/api/health/live")
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn sqlite_loopback() -> Store {
    Store::Config(repo_root().join("runtime-config/sqlite-loopback.toml"))
}

/// A bot with a send-webhook step `webhook` and a postback link: (bot, step, link path).
async fn funnel(admin: &Admin, webhook: Value) -> (String, String, String) {
    let bot = admin.bot("Ops").await;
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "lead", "kind": "send-webhook", "webhook": webhook})),
        )
        .await;
    assert_eq!(step.status, 201, "{}", step.text());
    let step = step.json()["id"].as_str().unwrap().to_string();
    let (_, url) = admin.link(&bot).await;
    (bot, step, path_of(&url))
}

/// Waits until `f` is true, for at most `limit`.
async fn eventually<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn the_logs_of_a_scenario_are_json_lines_with_request_ids_and_hold_no_secret() {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let Some(redis_bin) = require("redis-server").unwrap() else {
        return;
    };
    let redis = RedisServer::start(&redis_bin).unwrap();
    for (label, store) in [
        ("SQLite", sqlite_loopback()),
        ("Redis", Store::Redis(redis.url())),
    ] {
        let app = up(&spin, store, &[]).await;
        let client = Client::new(app.url());
        let admin = Admin::new(&client);
        let rx = Receiver::start().await.unwrap();
        rx.otherwise(
            Answer::new(200, r#"{"token":"resp-secret-3"}"#)
                .header("content-type", "application/json"),
        );
        let signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (bot, step, link) = funnel(
            &admin,
            json!({"url": format!("{}/pb?subid={{tracker.clickid}}&token=url-secret-2", rx.url()),
                   "headers": {"Authorization": "Bearer hdr-secret-1"},
                   "signingSecret": signing}),
        )
        .await;
        let moved = client
            .send(
                "GET",
                &format!("{link}?chatId=77&stepId={step}&tracker.clickid=click-9"),
                &[("x-request-id", "trace-postback-1")],
                "",
            )
            .await
            .unwrap();
        assert_eq!(moved.status, 200, "{label}: {}", moved.text());
        assert_eq!(moved.header("x-request-id"), Some("trace-postback-1"));
        assert_eq!(rx.wait_for(1, Duration::from_secs(20)).await.len(), 1);
        let refused = client.get(&format!("{link}?userBalance=5")).await.unwrap();
        assert_eq!(refused.status, 400, "{label}: {}", refused.text());
        let service = admin
            .call("POST", "/api/calls/services", Some(json!({"name": "s"})))
            .await
            .json();
        let ingest_key = service["ingestKey"].as_str().unwrap().to_string();
        let path_key = service["ingestPath"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let sid = service["id"].as_str().unwrap();
        let event = client
            .get(&format!(
                "/api/calls/services/{sid}/events?key={ingest_key}&id=5&hook_event=Call+is+over"
            ))
            .await
            .unwrap();
        assert_eq!(event.status, 200, "{label}: {}", event.text());
        let wrong = client.get(&format!("/api/bots/{bot}")).await.unwrap();
        assert_eq!(wrong.status, 401);

        // The logs, as Spin keeps them. A request's line is written once its answer has gone
        // (the caller never waits for it), so the last ones may land a moment later.
        let mut lines = app.component_logs();
        for _ in 0..50 {
            if lines.iter().any(|l| l.contains(r#""status":401"#)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            lines = app.component_logs();
        }
        let parsed: Vec<Value> = lines
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{label}: not a JSON line ({e}): {l}"))
            })
            .collect();
        for v in &parsed {
            for member in ["time", "level", "component", "event", "requestId"] {
                assert!(v[member].is_string(), "{label}: no {member}: {v}");
            }
            if v["event"] == "request" {
                for member in ["route", "method"] {
                    assert!(v[member].is_string(), "{label}: no {member}: {v}");
                }
                assert!(v["status"].is_u64() && v["durationMs"].is_u64(), "{v}");
            }
        }
        let postback: Vec<&Value> = parsed
            .iter()
            .filter(|v| v["requestId"] == "trace-postback-1")
            .collect();
        // The postback's line, and the chained delivery's lines under the same id.
        assert!(
            postback.iter().any(|v| v["component"] == "update-dialog"
                && v["route"] == "/api/bots/webhooks/{postbackId}/updateDialog"
                && v["status"] == 200),
            "{label}: {postback:?}"
        );
        assert!(
            postback.iter().any(|v| v["component"] == "send-webhook"
                && v["event"] == "attempt"
                && v["targetHost"] == "127.0.0.1"
                && v["attempt"] == 1
                && v["status"] == 200
                && v["outcome"] == "delivered"
                && v["stepId"] == step.as_str()),
            "{label}: {postback:?}"
        );
        assert!(
            parsed.iter().any(|v| v["component"] == "update-dialog"
                && v["level"] == "warn"
                && v["status"] == 400
                && v["errorCode"] == "missing_chat_id"
                && v["errorField"] == "chatId"),
            "{label}: the refused postback is not logged"
        );
        assert!(
            parsed
                .iter()
                .any(|v| v["errorCode"] == "unauthorized" && v["status"] == 401),
            "{label}"
        );
        // No secret, anywhere.
        let link_id = link.split('/').nth(4).unwrap().to_string();
        for secret in [
            ADMIN_TOKEN,
            &link_id,
            &ingest_key,
            &path_key,
            signing,
            "hdr-secret-1",
            "url-secret-2",
            "resp-secret-3",
        ] {
            for line in &lines {
                assert!(!line.contains(secret), "{label}: {secret} logged: {line}");
            }
        }
        eprintln!("{label}: {} log lines, all JSON, no secret", lines.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn liveness_answers_through_a_redis_outage_while_readiness_follows_the_store() {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let Some(redis_bin) = require("redis-server").unwrap() else {
        return;
    };
    let mut redis = RedisServer::start(&redis_bin).unwrap();
    let config = Store::RedisConfig(repo_root().join("runtime-config/redis.toml"), redis.url());
    let app = up(&spin, config, &[]).await;
    let client = Client::new(app.url());
    let status = |path: &'static str| {
        let client = client.clone();
        async move { client.get(path).await.unwrap().status }
    };
    assert_eq!(status("/api/health/live").await, 200);
    assert_eq!(status("/api/health/ready").await, 200);
    redis.stop();
    assert_eq!(
        status("/api/health/live").await,
        200,
        "a Redis outage restarts no pod"
    );
    // Spin's Redis store waits rather than fails while Redis is down: readiness gives up on
    // it after 2 s and says why.
    let asked = std::time::Instant::now();
    let ready = client.get("/api/health/ready").await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        ready.json()["reasons"][0]
            .as_str()
            .unwrap()
            .contains("key-value store"),
        "{}",
        ready.text()
    );
    assert_eq!(status("/api/health").await, 503);
    assert_eq!(status("/api/health/live").await, 200);
    redis.restart().unwrap();
    // Spin reconnects to Redis with a backoff of its own (75-115 s after Redis came back,
    // on this machine): readiness follows it.
    assert!(
        eventually(Duration::from_secs(240), async || status(
            "/api/health/ready"
        )
        .await
            == 200)
        .await,
        "readiness came back with Redis"
    );
    assert_eq!(status("/api/health/live").await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_shows_overdue_work_and_warns_until_a_sweep_runs_on_either_of_two_instances() {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let Some(redis_bin) = require("redis-server").unwrap() else {
        return;
    };
    let redis = RedisServer::start(&redis_bin).unwrap();
    // No sweep from traffic here: the warning must show while nobody sweeps.
    let extra = [
        ("SPIN_VARIABLE_ALLOW_TEST_CLOCK", "true"),
        ("SPIN_VARIABLE_AUTO_SWEEP", "false"),
    ];
    let a = up(&spin, Store::Redis(redis.url()), &extra).await;
    let b = up(&spin, Store::Redis(redis.url()), &extra).await;
    let (ca, cb) = (Client::new(a.url()), Client::new(b.url()));
    let rx = Receiver::start().await.unwrap();
    rx.otherwise(Answer::new(500, "down"));
    let admin = Admin::new(&ca);
    let (_, step, link) = funnel(
        &admin,
        json!({"url": format!("{}/pb", rx.url()), "retry": {"maxAttempts": 3}}),
    )
    .await;
    let moved = ca
        .get(&format!("{link}?chatId=1&stepId={step}"))
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(rx.wait_for(1, Duration::from_secs(20)).await.len(), 1);
    let later = now_ms() + 10 * 60_000;
    for client in [&ca, &cb] {
        let health = client
            .get(&format!("/api/health?at={later}"))
            .await
            .unwrap()
            .json();
        assert_eq!(health["sweep"]["overdue"], 1, "{health}");
        assert!(health["sweep"]["oldestOverdueSeconds"].as_i64().unwrap() >= 500);
        assert_eq!(health["sweep"]["lastRunAt"], Value::Null, "{health}");
        let warnings = health["warnings"].to_string();
        assert!(
            warnings.contains("overdue") && warnings.contains("retry-due"),
            "{health}"
        );
    }
    // A sweep on B, as a scheduler would call it: both instances see the installation's.
    let sweep = Admin::new(&cb)
        .call(
            "POST",
            &format!("/api/deliveries/retry-due?at={later}"),
            None,
        )
        .await;
    assert_eq!(sweep.status, 200, "{}", sweep.text());
    assert_eq!(rx.received().len(), 2, "the sweep made the overdue attempt");
    let seen: Vec<Value> = {
        let mut seen = Vec::new();
        for client in [&ca, &cb] {
            let health = client
                .get(&format!("/api/health?at={later}"))
                .await
                .unwrap()
                .json();
            assert_eq!(health["sweep"]["overdue"], 0, "{health}");
            assert_eq!(health["sweep"]["lastRunBy"], "scheduler", "{health}");
            assert!(
                !health["warnings"].to_string().contains("overdue"),
                "{health}"
            );
            seen.push(health["sweep"]["lastRunAt"].clone());
        }
        seen
    };
    assert_eq!(
        seen[0], seen[1],
        "either instance reports the installation's sweep"
    );
    api_keys_change_at_once_on_the_other_instance(&ca, &cb).await;
    retry_now_on_both_instances_makes_the_attempt_once(&ca, &cb).await;
    // One instance gone: the other still reports it.
    a.kill();
    let health = cb
        .get(&format!("/api/health?at={later}"))
        .await
        .unwrap()
        .json();
    assert_eq!(health["sweep"]["lastRunAt"], seen[0]);
}

/// "Retry now" pressed on both instances at once (ten times each): the waiting retry is made
/// once, by one of them; the others are told it is not retrying any more or is being made.
/// (Sweeps are left out here: this test watches the installation's last sweep; the engine's
/// test holds Retry now against a sweep's lease.)
async fn retry_now_on_both_instances_makes_the_attempt_once(ca: &Client, cb: &Client) {
    let rx = Receiver::start().await.unwrap();
    rx.script([Answer::new(503, "busy").header("retry-after", "300")]);
    let admin = Admin::new(ca);
    let (_, step, link) = funnel(
        &admin,
        json!({"url": format!("{}/late", rx.url()), "retry": {"maxAttempts": 3}}),
    )
    .await;
    let moved = ca
        .get(&format!("{link}?chatId=2&stepId={step}"))
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(rx.wait_for(1, Duration::from_secs(20)).await.len(), 1);
    let mut id = String::new();
    assert!(
        eventually(Duration::from_secs(10), async || {
            let log = admin.get(&format!("/api/deliveries?stepId={step}")).await;
            let retrying = log["items"][0]["status"] == "retrying";
            id = log["items"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            retrying
        })
        .await,
        "the first attempt was logged"
    );
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let client = if i % 2 == 0 { ca.clone() } else { cb.clone() };
            let path = format!("/api/deliveries/{id}/retry");
            tokio::spawn(async move {
                client
                    .send(
                        "POST",
                        &path,
                        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                        "",
                    )
                    .await
                    .unwrap()
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 409)),
        "{statuses:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received().len(),
        2,
        "the first attempt and one retry, made now"
    );
    let done = admin.get(&format!("/api/deliveries/{id}")).await;
    assert_eq!(done["status"], "delivered", "{done}");
}

/// An API key made, narrowed and revoked through instance A holds on instance B at once: B
/// reads the key's record on every request, nothing is cached.
async fn api_keys_change_at_once_on_the_other_instance(ca: &Client, cb: &Client) {
    let root = Admin::new(ca);
    let bot = root.bot("Shared").await;
    let made = root
        .call(
            "POST",
            "/api/keys",
            Some(json!({"name": "two instances", "role": "editor", "bots": [bot]})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text());
    let (id, key) = (
        made.json()["id"].as_str().unwrap().to_string(),
        made.json()["key"].as_str().unwrap().to_string(),
    );
    let on_b = Admin::with_key(cb, &key);
    let rename = |name: &str| json!({ "name": name });
    let renamed = on_b
        .call("PATCH", &format!("/api/bots/{bot}"), Some(rename("by B")))
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    let narrowed = root
        .call(
            "PATCH",
            &format!("/api/keys/{id}"),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.text());
    let refused = on_b
        .call("PATCH", &format!("/api/bots/{bot}"), Some(rename("again")))
        .await;
    assert_eq!(refused.status, 403, "B still let the narrowed key write");
    assert_eq!(on_b.status("GET", &format!("/api/bots/{bot}")).await, 200);
    assert_eq!(root.status("DELETE", &format!("/api/keys/{id}")).await, 204);
    assert_eq!(
        on_b.status("GET", &format!("/api/bots/{bot}")).await,
        401,
        "B still took the revoked key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_retries_a_failed_delivery_once_without_a_scheduler_even_with_an_instance_killed() {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let Some(redis_bin) = require("redis-server").unwrap() else {
        return;
    };
    let redis = RedisServer::start(&redis_bin).unwrap();
    let a = up(&spin, Store::Redis(redis.url()), &[]).await;
    let b = up(&spin, Store::Redis(redis.url()), &[]).await;
    let (ca, cb) = (Client::new(a.url()), Client::new(b.url()));
    let rx = Receiver::start().await.unwrap();
    rx.script([Answer::new(503, "busy").header("retry-after", "1")]);
    let admin = Admin::new(&ca);
    let (bot, step, link) = funnel(&admin, json!({"url": format!("{}/pb", rx.url())})).await;
    let moved = ca
        .get(&format!("{link}?chatId=1&stepId={step}"))
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(rx.wait_for(1, Duration::from_secs(20)).await.len(), 1);
    // Once the attempt is logged, the instance that made it dies; nobody runs a scheduler.
    // (An instance killed before logging it leaves the delivery to the lease: a minute.)
    let admin_b = Admin::new(&cb);
    let logged = eventually(Duration::from_secs(20), async || {
        admin_b.get(&format!("/api/deliveries?botId={bot}")).await["items"][0]["status"]
            == "retrying"
    })
    .await;
    assert!(logged, "the first attempt was not logged");
    a.kill();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Traffic on the other instance: the console reading the bot, over and over.
    let retried = eventually(Duration::from_secs(60), async || {
        for _ in 0..20 {
            admin_b.get(&format!("/api/bots/{bot}")).await;
        }
        rx.received().len() >= 2
    })
    .await;
    assert!(
        retried,
        "no sweep ran from traffic:\n{}",
        b.component_logs()
            .iter()
            .filter(|l| !l.contains("\"route\":\"/api/bots/{botId}\""))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 2, "the retry was sent once");
    let health = cb.get("/api/health").await.unwrap().json();
    assert_eq!(health["sweep"]["lastRunBy"], "traffic", "{health}");
    let log = admin_b.get(&format!("/api/deliveries?botId={bot}")).await;
    assert_eq!(log["items"][0]["status"], "delivered", "{log}");
    assert_eq!(log["items"][0]["attemptCount"], 2, "{log}");
}

/// The samples of a scrape by name and labels (`name{k="v",...}`), checked as Prometheus
/// reads them.
fn scrape(text: &str) -> std::collections::BTreeMap<String, f64> {
    use prometheus_parse::{Scrape, Value as P};
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");
    assert!(!parsed.samples.is_empty());
    parsed
        .samples
        .into_iter()
        .map(|s| {
            assert!(
                parsed.docs.contains_key(&s.metric),
                "{} has no HELP",
                s.metric
            );
            let value = match s.value {
                P::Counter(v) | P::Gauge(v) => v,
                other => panic!("{}: {other:?} is neither counter nor gauge", s.metric),
            };
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            (format!("{}{{{}}}", s.metric, labels.join(",")), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_move_by_exactly_a_scenarios_counts_and_parse_as_prometheus_text() {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let extra = [
        ("SPIN_VARIABLE_METRICS_TOKEN", METRICS_TOKEN),
        ("SPIN_VARIABLE_AUTO_SWEEP", "false"),
    ];
    let app = up(&spin, sqlite_loopback(), &extra).await;
    let client = Client::new(app.url());
    let read = async || {
        let reply = client
            .send(
                "GET",
                "/api/metrics",
                &[("authorization", &format!("Bearer {METRICS_TOKEN}"))],
                "",
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        scrape(&reply.text())
    };
    assert_eq!(client.get("/api/metrics").await.unwrap().status, 401);
    let before = read().await;

    let admin = Admin::new(&client);
    let (ok, bad) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    bad.otherwise(Answer::new(500, "no"));
    let (bot, good_step, link) = funnel(&admin, json!({"url": format!("{}/ok", ok.url())})).await;
    let bad_step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "bad", "kind": "send-webhook",
                        "webhook": {"url": format!("{}/bad", bad.url()), "retry": {"maxAttempts": 1}}})),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (chat, step) in [(1, &good_step), (2, &good_step), (3, &bad_step)] {
        let r = client
            .get(&format!("{link}?chatId={chat}&stepId={step}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for refused in [
        "userBalance=1",
        "chatId=4&stepId=00000000-0000-4000-8000-000000000000",
    ] {
        let r = client.get(&format!("{link}?{refused}")).await.unwrap();
        assert!(r.status >= 400, "{}", r.text());
    }
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "m"})))
        .await
        .json();
    let (sid, key) = (
        service["id"].as_str().unwrap().to_string(),
        service["ingestKey"].as_str().unwrap().to_string(),
    );
    for _ in 0..2 {
        admin
            .call(
                "POST",
                &format!("/api/calls/services/{sid}/hooks"),
                Some(
                    json!({"protocol": "http", "host": "127.0.0.1", "port": ok.port(),
                            "path": "/call", "event": "end"}),
                ),
            )
            .await;
    }
    for _ in 0..2 {
        // The same event twice: the repeat sends nothing and counts nothing.
        let r = client
            .get(&format!(
                "/api/calls/services/{sid}/events?key={key}&id=9&hook_event=Call+is+over"
            ))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(ok.wait_for(4, Duration::from_secs(20)).await.len(), 4);
    assert_eq!(bad.wait_for(1, Duration::from_secs(20)).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = read().await;
    let moved = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    assert_eq!(moved("funnelhooks_deliveries_created_total{}"), 5.0);
    assert_eq!(
        moved("funnelhooks_delivery_attempts_total{class=2xx,outcome=delivered}"),
        4.0
    );
    assert_eq!(
        moved("funnelhooks_delivery_attempts_total{class=5xx,outcome=failed}"),
        1.0
    );
    assert_eq!(
        moved("funnelhooks_deliveries_ended_total{outcome=delivered}"),
        4.0
    );
    assert_eq!(
        moved("funnelhooks_deliveries_ended_total{outcome=failed}"),
        1.0
    );
    assert_eq!(moved("funnelhooks_delivery_retries_total{}"), 0.0);
    assert_eq!(
        moved("funnelhooks_postbacks_refused_total{code=missing_chat_id}"),
        1.0
    );
    assert_eq!(
        moved("funnelhooks_postbacks_refused_total{code=unknown_step}"),
        1.0
    );
    assert_eq!(moved("funnelhooks_dialogs_created_total{}"), 3.0);
    assert_eq!(moved("funnelhooks_call_events_total{}"), 1.0);
    assert_eq!(after["funnelhooks_outbox_overdue{}"], 0.0);
    // The admin token opens it too; nothing else does.
    let admin_read = Admin::new(&client).call("GET", "/api/metrics", None).await;
    assert_eq!(admin_read.status, 200);
    let wrong = client
        .send(
            "GET",
            "/api/metrics",
            &[("authorization", "Bearer nope")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hosts_opentelemetry_export_carries_our_log_lines() {
    // Spin's own OTLP export (traces, and the components' stderr as log records), pointed at
    // a receiver on loopback, on both generations.
    for spin in ["spin", "spin-3.6"] {
        let Some(binary) = require(spin).unwrap() else {
            continue;
        };
        let collector = Receiver::start().await.unwrap();
        let endpoint: &'static str = Box::leak(collector.url().into_boxed_str());
        let app = up(
            &binary,
            sqlite_loopback(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)],
        )
        .await;
        let client = Client::new(app.url());
        let reply = client
            .send(
                "GET",
                "/api/bots",
                &[
                    ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
                    ("x-request-id", "otel-trace-42"),
                ],
                "",
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        let exported = eventually(Duration::from_secs(30), async || {
            let got = collector.received();
            let has = |path: &str| got.iter().any(|r| r.path_and_query == path);
            has("/v1/traces")
                && got.iter().any(|r| {
                    r.path_and_query == "/v1/logs"
                        && String::from_utf8_lossy(&r.body).contains("otel-trace-42")
                })
        })
        .await;
        assert!(
            exported,
            "{spin}: no traces, or our log line not among the logs"
        );
        for r in collector.received() {
            assert!(
                !String::from_utf8_lossy(&r.body).contains(ADMIN_TOKEN),
                "{spin}: the admin token was exported"
            );
        }
    }
}

/// Any six arrivals at a receiver span at least a second, less what a loaded machine adds
/// between sending and arriving (150 ms; turns are spaced a tenth wider for it): five a
/// second at most, by the receiver's own clock.
fn at_most_five_a_second(got: &[funnelhooks_testhost::receiver::Received], what: &str) {
    let mut at: Vec<_> = got.iter().map(|r| r.arrived).collect();
    at.sort();
    for six in at.windows(6) {
        let span = six[5] - six[0];
        assert!(
            span >= Duration::from_millis(850),
            "{what}: six deliveries within {span:?}"
        );
    }
}

/// Sweeps on both instances at once, `rounds` times or until `done`; an instance that is
/// gone just fails its call.
async fn sweep_both(clients: &[&Client], at: Option<i64>) {
    let path = match at {
        Some(at) => format!("/api/deliveries/retry-due?at={at}"),
        None => "/api/deliveries/retry-due".to_string(),
    };
    let calls: Vec<_> = clients
        .iter()
        .map(|c| {
            let (c, path) = ((*c).clone(), path.clone());
            tokio::spawn(async move {
                let _ = c
                    .send(
                        "POST",
                        &path,
                        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                        "",
                    )
                    .await;
            })
        })
        .collect();
    for call in calls {
        let _ = call.await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_redis_keep_a_rate_limit_cap_alerts_and_recover_once_even_with_one_killed()
 {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let Some(redis_bin) = require("redis-server").unwrap() else {
        return;
    };
    let redis = RedisServer::start(&redis_bin).unwrap();
    let env = [("SPIN_VARIABLE_ALLOW_TEST_CLOCK", "true")];
    let a = up(&spin, Store::Redis(redis.url()), &env).await;
    let b = up(&spin, Store::Redis(redis.url()), &env).await;
    let (ca, cb) = (Client::new(a.url()), Client::new(b.url()));
    let (admin_a, admin_b) = (Admin::new(&ca), Admin::new(&cb));
    let tracker = Receiver::start().await.unwrap();
    tracker.otherwise(Answer::new(500, "down"));
    let ops = Receiver::start().await.unwrap();
    let endpoint = admin_a
        .call(
            "POST",
            "/api/alerts/endpoints",
            Some(json!({"url": format!("{}/alerts", ops.url()), "events": ["delivery.exhausted"]})),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.text());
    let (bot, step, link) = funnel(
        &admin_a,
        json!({"url": format!("{}/pb?chat={{chatId}}", tracker.url()),
               "retry": {"maxAttempts": 1}, "rateLimit": 5, "timeoutMs": 2000}),
    )
    .await;

    // Twenty dialogs reach the step through both instances at once; the tracker is down.
    let moves: Vec<_> = (1..=20)
        .map(|chat| {
            let c = if chat % 2 == 0 {
                ca.clone()
            } else {
                cb.clone()
            };
            let path = format!("{link}?chatId={chat}&stepId={step}");
            tokio::spawn(async move { c.get(&path).await.unwrap().status })
        })
        .collect();
    for m in moves {
        assert_eq!(m.await.unwrap(), 200);
    }
    // One step failing every delivery raises at most ten failure alerts an hour.
    let all_failed = eventually(Duration::from_secs(60), async || {
        sweep_both(&[&ca, &cb], None).await;
        tracker.received().len() >= 20 && ops.received().len() >= 10
    })
    .await;
    assert!(
        all_failed,
        "tracker got {}, alerts {}",
        tracker.received().len(),
        ops.received().len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    sweep_both(&[&ca, &cb], None).await;
    assert_eq!(tracker.received().len(), 20, "each delivery tried once");
    at_most_five_a_second(&tracker.received(), "first attempts");
    let mut told: Vec<String> = ops
        .received()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["data"]["deliveryId"].as_str().unwrap().to_string()
        })
        .collect();
    told.sort();
    told.dedup();
    assert_eq!(
        ops.received().len(),
        10,
        "ten alerts in the hour, not one per delivery"
    );
    assert_eq!(told.len(), 10, "no delivery told twice");

    // The tracker is back. Recover on both instances at once: each delivery once.
    tracker.otherwise(Answer::new(200, "ok"));
    let since = json!({"botId": bot, "since": "2000-01-01T00:00:00Z", "limit": 200});
    let (ra, rb) = tokio::join!(
        admin_a.call("POST", "/api/deliveries/recover", Some(since.clone())),
        admin_b.call("POST", "/api/deliveries/recover", Some(since.clone())),
    );
    let (ra, rb) = (ra.json(), rb.json());
    let count = |r: &Value| r["count"].as_u64().unwrap();
    assert_eq!(count(&ra) + count(&rb), 20, "{ra} {rb}");
    // Both sweep; one is killed while it sends; the other carries on, past its lease.
    let before = tracker.received().len();
    let sweeping = tokio::spawn({
        let (ca, cb) = (ca.clone(), cb.clone());
        async move { sweep_both(&[&ca, &cb], None).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.kill();
    let _ = sweeping.await;
    // From here on the sweep runs a minute ahead (past the killed instance's lease): a limit's
    // turns jump with the clock, so spacing is checked on each side of the jump.
    let switched = tracker.received().len();
    let later = now_ms() + 61_000;
    let resent = eventually(Duration::from_secs(60), async || {
        sweep_both(&[&cb], Some(later)).await;
        tracker.received().len() >= before + 20
    })
    .await;
    assert!(resent, "{} of 20 resent", tracker.received().len() - before);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sweep_both(&[&cb], Some(later)).await;
    let again = &tracker.received()[before..];
    let mut chats: Vec<&str> = again.iter().map(|r| r.path_and_query.as_str()).collect();
    chats.sort();
    chats.dedup();
    // Every recovery arrives; only one that was on the wire when its instance died can
    // arrive twice (sent, not yet logged: at least once, never lost).
    assert_eq!(chats.len(), 20, "{chats:?}");
    assert!(
        again.len() <= 21,
        "{} arrivals for 20 recoveries",
        again.len()
    );
    let all = tracker.received();
    at_most_five_a_second(&all[before..switched], "recoveries, both instances");
    at_most_five_a_second(&all[switched..], "recoveries, the one left");
}
