//! Failing and busy targets, as an operator and a marketer meet them, on every runtime and
//! store (run first among the scenarios, before any sweep plays the clock ahead): an alert
//! endpoint receives `target.gone`, `delivery.exhausted`, `target.disabled` and
//! `target.reenabled`, each verified with the official `standardwebhooks` library; a step
//! that keeps failing is disabled and its next delivery is held; resume, pause; bulk recover
//! sends each failed delivery once, also when called twice at once; a target limited to 5
//! deliveries a second gets a burst of 100 at that rate, all of them.
//!
//! The runtimes run with `auto_disable_after_hours` at 0.01 (36 s) so "failing for the set
//! time" takes seconds; the sweep plays the clock at most 50 s ahead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnelhooks_testhost::{Answer, Receiver};
use serde_json::{Value, json};

use funnelhooks_core::Timestamp;

use crate::common::Admin;
use crate::scenarios::Target;

/// The auto-disable time the scenario's runtimes are given, in hours.
pub const AUTO_DISABLE_AFTER_HOURS: &str = "0.01";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An ISO 8601 time of `ms`, as the app writes it.
fn iso(ms: i64) -> String {
    Timestamp(ms).iso()
}

/// Unix milliseconds of the app's `2026-12-07T11:40:32.107Z`.
fn parse_iso_ms(text: &str) -> i64 {
    Timestamp::parse_iso(text)
        .unwrap_or_else(|| panic!("{text:?} is not the app's ISO time"))
        .0
}

/// Runs every failing-target scenario against `t`.
pub async fn run_all(t: &Target) {
    alerts_disable_resume_and_recover(t).await;
    a_limited_target_gets_a_burst_at_its_rate(t).await;
}

/// A sweep, `ahead` milliseconds ahead of the real clock (a test clock that moves on with
/// the real one, so what one sweep queues is due at the next).
async fn sweep(admin: &Admin, ahead: Option<i64>, l: &str) -> Value {
    let path = match ahead {
        Some(ahead) => format!("/api/deliveries/retry-due?at={}", now_ms() + ahead),
        None => "/api/deliveries/retry-due".to_string(),
    };
    let reply = admin.call("POST", &path, None).await;
    assert_eq!(reply.status, 200, "{l}: {}", reply.text());
    reply.json()
}

/// The path of a postback link's URL.
fn link_path(url: &str) -> String {
    url.split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap()
}

async fn step(admin: &Admin, bot: &str, key: &str, webhook: Value, l: &str) -> String {
    let reply = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": key, "kind": "send-webhook", "webhook": webhook})),
        )
        .await;
    assert_eq!(reply.status, 201, "{l}: {}", reply.text());
    reply.json()["id"].as_str().unwrap().to_string()
}

async fn move_chat(t: &Target, link: &str, chat: i64, step: &str) {
    let reply = t
        .client
        .get(&format!("{link}?chatId={chat}&stepId={step}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}: {}", t.label, reply.text());
    assert_eq!(reply.json()["webhookQueued"], true, "{}", t.label);
}

/// The bot's deliveries for `chat`, newest first.
async fn deliveries_of(admin: &Admin, bot: &str, chat: i64) -> Vec<Value> {
    let page = admin
        .get(&format!("/api/deliveries?botId={bot}&chatId={chat}"))
        .await;
    page["items"].as_array().unwrap().clone()
}

/// Waits until the bot's chat has a delivery with `status`; that delivery.
async fn wait_status(admin: &Admin, bot: &str, chat: i64, status: &str, l: &str) -> Value {
    let mut last = Vec::new();
    for _ in 0..100 {
        last = deliveries_of(admin, bot, chat).await;
        if let Some(d) = last.iter().find(|d| d["status"] == status) {
            return d.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{l}: chat {chat} has no {status} delivery: {last:?}");
}

/// Sweeps (`ahead` of the real clock) until the alert receiver holds `n` alerts; their
/// `(type, data)`, each verified with the official Standard Webhooks library.
async fn alerts(
    admin: &Admin,
    rx: &Receiver,
    secret: &str,
    n: usize,
    ahead: Option<i64>,
    l: &str,
) -> Vec<(String, Value)> {
    for _ in 0..20 {
        if rx.received().len() >= n {
            break;
        }
        sweep(admin, ahead, l).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    let got: Vec<(String, Value)> = rx
        .received()
        .iter()
        .map(|r| {
            verifier
                .verify(&r.body, &r.headers)
                .unwrap_or_else(|e| panic!("{l}: an alert that does not verify: {e:?}"));
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (v["type"].as_str().unwrap().to_string(), v["data"].clone())
        })
        .collect();
    assert_eq!(got.len(), n, "{l}: {got:?}");
    got
}

fn count(got: &[(String, Value)], kind: &str) -> usize {
    got.iter().filter(|(k, _)| k == kind).count()
}

async fn alerts_disable_resume_and_recover(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let started = now_ms();

    // The operator's alert endpoint, signed with a secret shown once.
    let ops = Receiver::start().await.unwrap();
    let endpoint = admin
        .call(
            "POST",
            "/api/alerts/endpoints",
            Some(json!({"url": format!("{}/alerts", ops.url()), "description": "on call"})),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{l}: {}", endpoint.text());
    let endpoint = endpoint.json();
    let secret = endpoint["signingSecret"].as_str().unwrap().to_string();
    let listed = admin.get("/api/alerts/endpoints").await;
    assert!(
        !listed.to_string().contains(&secret),
        "{l}: the secret is shown once"
    );
    let test = admin
        .call(
            "POST",
            &format!(
                "/api/alerts/endpoints/{}/test-send",
                endpoint["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(test.json()["status"], "delivered", "{l}: {}", test.text());
    let got = alerts(&admin, &ops, &secret, 1, None, l).await;
    assert_eq!(got[0].0, "alert.test", "{l}");
    ops.received_clear();

    // A tracker that fails every time, and one that says it is gone.
    let tracker = Receiver::start().await.unwrap();
    tracker.otherwise(Answer::new(500, "down"));
    let gone = Receiver::start().await.unwrap();
    gone.otherwise(Answer::new(410, "gone"));
    let bot = admin.bot("Failing funnel").await;
    let failing = step(
        &admin,
        &bot,
        "lead",
        json!({"url": format!("{}/postback?chat={{chatId}}", tracker.url()), "retry": {"maxAttempts": 2}}),
        l,
    )
    .await;
    let to_gone = step(
        &admin,
        &bot,
        "sale",
        json!({"url": format!("{}/postback?chat={{chatId}}", gone.url())}),
        l,
    )
    .await;
    let (_, url) = admin.link(&bot).await;
    let link = link_path(&url);
    move_chat(t, &link, 1, &failing).await;
    move_chat(t, &link, 2, &failing).await;
    move_chat(t, &link, 3, &to_gone).await;
    for chat in [1, 2] {
        wait_status(&admin, &bot, chat, "retrying", l).await;
    }
    wait_status(&admin, &bot, 3, "failed", l).await;
    // The retries, 5 s later, fail too: both deliveries are exhausted.
    tokio::time::sleep(Duration::from_millis(5_800)).await;
    let got = alerts(&admin, &ops, &secret, 3, None, l).await;
    assert_eq!(count(&got, "target.gone"), 1, "{l}: {got:?}");
    assert_eq!(count(&got, "delivery.exhausted"), 2, "{l}: {got:?}");
    let exhausted: Vec<&Value> = got
        .iter()
        .filter(|(k, _)| k == "delivery.exhausted")
        .map(|(_, d)| d)
        .collect();
    for data in &exhausted {
        assert_eq!(data["stepId"], failing.as_str(), "{l}");
        assert_eq!(data["lastStatus"], 500, "{l}");
        assert_eq!(data["targetHost"], "127.0.0.1", "{l}");
    }
    let step_view = admin.get(&format!("/api/bots/{bot}/steps/{failing}")).await;
    assert_eq!(step_view["deliveryState"]["status"], "failing", "{l}");
    assert_eq!(step_view["deliveryState"]["failures"], 4, "{l}");

    // A fifth failure, more than the set time after the first: the step is disabled.
    move_chat(t, &link, 4, &failing).await;
    wait_status(&admin, &bot, 4, "retrying", l).await;
    // Past the set time since the first failure, and never behind the real clock (a sweep
    // behind it would schedule into minutes already swept).
    let ahead = (started + 40_000 - now_ms()).max(2_000);
    sweep(&admin, Some(ahead), l).await;
    let step_view = admin.get(&format!("/api/bots/{bot}/steps/{failing}")).await;
    assert_eq!(
        step_view["deliveryState"]["status"], "disabled",
        "{l}: {step_view}"
    );
    let got = alerts(&admin, &ops, &secret, 5, Some(ahead), l).await;
    assert_eq!(count(&got, "target.disabled"), 1, "{l}: {got:?}");
    assert_eq!(count(&got, "delivery.exhausted"), 3, "{l}: {got:?}");

    // Disabled: the next dialog's delivery is logged as held, nothing is sent.
    let sent = tracker.received().len();
    move_chat(t, &link, 5, &failing).await;
    let held = wait_status(&admin, &bot, 5, "skipped", l).await;
    assert_eq!(held["held"], true, "{l}: {held}");
    assert!(
        held["error"].as_str().unwrap().contains("disabled"),
        "{l}: {held}"
    );
    assert_eq!(tracker.received().len(), sent, "{l}");
    let attention = admin.get("/api/attention").await;
    let item = attention["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["stepId"] == failing.as_str())
        .unwrap_or_else(|| panic!("{l}: not listed: {attention}"));
    assert_eq!(item["name"], "lead", "{l}");
    assert_eq!(item["deliveryState"]["status"], "disabled", "{l}");
    assert_eq!(item["last24h"]["unrecovered"], 4, "{l}: {item}");
    // The operator sees it in the metrics too.
    let metrics = admin.call("GET", "/api/metrics", None).await.text();
    let disabled = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("funnelhooks_senders_needing_attention{status=\"disabled\"} ")
        })
        .unwrap_or_else(|| panic!("{l}: no gauge of disabled senders:\n{metrics}"));
    assert!(disabled.parse::<i64>().unwrap() >= 1, "{l}: {disabled}");

    // The tracker is fixed; the marketer resumes the step and recovers what failed.
    tracker.otherwise(Answer::new(200, "ok"));
    let resumed = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{failing}/resume"),
            None,
        )
        .await;
    assert_eq!(resumed.status, 200, "{l}: {}", resumed.text());
    assert_eq!(resumed.json()["deliveryState"]["status"], "active", "{l}");
    let got = alerts(&admin, &ops, &secret, 6, Some(ahead), l).await;
    assert_eq!(count(&got, "target.reenabled"), 1, "{l}: {got:?}");

    let recover = json!({"botId": bot, "stepId": failing, "since": iso(started - 1_000)});
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let admin = t.admin();
            let body = recover.clone();
            tokio::spawn(async move {
                admin
                    .call("POST", "/api/deliveries/recover", Some(body))
                    .await
            })
        })
        .collect();
    let mut recovered = Vec::new();
    for call in calls {
        let reply = call.await.unwrap();
        assert_eq!(reply.status, 200, "{l}: {}", reply.text());
        for id in reply.json()["recovered"].as_array().unwrap() {
            recovered.push(id.as_str().unwrap().to_string());
        }
    }
    recovered.sort();
    recovered.dedup();
    if t.atomic {
        assert_eq!(recovered.len(), 4, "{l}: chats 1, 2, 4 failed, 5 was held");
    }
    let before = tracker.received().len();
    let mut chats = Vec::new();
    for _ in 0..20 {
        sweep(&admin, Some(ahead), l).await;
        chats = tracker.received()[before..]
            .iter()
            .map(|r| r.path_and_query.clone())
            .collect();
        if chats.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    chats.sort();
    if t.atomic {
        assert_eq!(
            chats,
            [
                "/postback?chat=1",
                "/postback?chat=2",
                "/postback?chat=4",
                "/postback?chat=5"
            ],
            "{l}: each failed delivery sent again once"
        );
    }
    let again = admin
        .call("POST", "/api/deliveries/recover", Some(recover.clone()))
        .await
        .json();
    assert_eq!(again["count"], 0, "{l}: {again}");

    // Bad input names the field.
    let bad = admin
        .call(
            "POST",
            "/api/deliveries/recover",
            Some(json!({"botId": bot, "since": "yesterday"})),
        )
        .await;
    assert_eq!(bad.status, 422, "{l}: {}", bad.text());
    assert_eq!(bad.json()["error"]["field"], "since", "{l}");

    // Paused by hand: held, and sent again on resume plus recover.
    let paused = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{failing}/pause"),
            None,
        )
        .await;
    assert_eq!(paused.json()["deliveryState"]["status"], "paused", "{l}");
    move_chat(t, &link, 6, &failing).await;
    let held = wait_status(&admin, &bot, 6, "skipped", l).await;
    assert!(
        held["error"].as_str().unwrap().contains("paused"),
        "{l}: {held}"
    );
    admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{failing}/resume"),
            None,
        )
        .await;
    eprintln!("{l}: alerts, disable, resume, pause, recover: ok");
}

async fn a_limited_target_gets_a_burst_at_its_rate(t: &Target) {
    let l = &t.label;
    if !t.atomic {
        // Without atomics two writers can take one turn, and a burst's outbox entries can
        // collide (the overdue walk brings them back minutes later): docs/stores.md.
        eprintln!("{l}: rate limits are best effort without atomics; burst not checked");
        return;
    }
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("Limited funnel").await;
    let limited = step(
        &admin,
        &bot,
        "lead",
        json!({"url": format!("{}/postback?chat={{chatId}}", rx.url()), "rateLimit": 5, "timeoutMs": 2000}),
        l,
    )
    .await;
    let (_, url) = admin.link(&bot).await;
    let link = link_path(&url);
    let burst: Vec<_> = (1..=100)
        .map(|chat| {
            let client = t.client.clone();
            let path = format!("{link}?chatId={chat}&stepId={limited}");
            tokio::spawn(async move { client.get(&path).await.unwrap().status })
        })
        .collect();
    for call in burst {
        assert_eq!(call.await.unwrap(), 200, "{l}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while rx.received().len() < 100 && std::time::Instant::now() < deadline {
        sweep(&admin, None, l).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = rx.received();
    let mut chats: Vec<String> = got.iter().map(|r| r.path_and_query.clone()).collect();
    chats.sort();
    chats.dedup();
    assert_eq!(chats.len(), 100, "{l}: every delivery arrives, once");
    assert_eq!(got.len(), 100, "{l}: none twice");
    // Five a second at most. As sent (each attempt's start, in the log): any six span a
    // second, exactly. As received (the receiver's clock): the same, less what a loaded
    // machine adds between sending and arriving (turns are spaced a tenth wider for it; a
    // 2-core machine running four runtimes at once can add more, hence 150 ms).
    let log = admin
        .get(&format!("/api/deliveries?botId={bot}&limit=200"))
        .await;
    let mut sent: Vec<i64> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let at = d["lastAttempt"]["at"].as_str().unwrap();
            parse_iso_ms(at)
        })
        .collect();
    assert_eq!(sent.len(), 100, "{l}");
    sent.sort();
    for six in sent.windows(6) {
        assert!(
            six[5] - six[0] >= 1_000,
            "{l}: six sent within {} ms",
            six[5] - six[0]
        );
    }
    let mut at: Vec<_> = got.iter().map(|r| r.arrived).collect();
    at.sort();
    for six in at.windows(6) {
        let span = six[5] - six[0];
        assert!(
            span >= Duration::from_millis(850),
            "{l}: six deliveries arrived within {span:?}"
        );
    }
    eprintln!("{l}: 100 deliveries at 5/s in {:?}", at[99] - at[0]);
}
