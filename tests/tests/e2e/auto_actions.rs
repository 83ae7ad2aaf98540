//! Auto Actions on every runtime and store: a tracker's conversion by click id moves the dialog
//! with that click id and fires its step's webhook; a conversion before the dialog waits and
//! is applied when the bot engine starts the chat with the deep link's payload; repeats and
//! races apply each conversion once; start payloads of each form fill tracker fields.

use std::time::{Duration, Instant};

use funnelhooks_testhost::Receiver;
use serde_json::{Value, json};

use crate::common::Admin;
use crate::scenarios::Target;

/// Runs every Auto Actions scenario against `t`.
pub async fn run_all(t: &Target) {
    conversions_move_dialogs_and_fire_their_webhooks(t).await;
    start_payload_forms_fill_tracker_fields(t).await;
}

fn path_of(url: &str) -> String {
    url.split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap()
}

/// Reads the dialog until `done` holds (conversions waiting for a click id are applied by a
/// chained request after the start's answer), or fails naming what it last saw.
async fn dialog_until(
    admin: &Admin,
    bot: &str,
    chat: i64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = admin.get(&format!("/api/bots/{bot}/dialogs/{chat}")).await;
        if done(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "{what}: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(t: &Target, admin: &Admin, bot: &str, chat: i64, payload: &str) -> Value {
    let started = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/dialogs/{chat}"),
            Some(json!({"username": format!("u{chat}"), "startPayload": payload})),
        )
        .await;
    assert!(
        matches!(started.status, 200 | 201),
        "{}: {}",
        t.label,
        started.text()
    );
    started.json()
}

/// Keitaro's GET and Binom's form POST move the dialog to the mapped step, whose webhook
/// reaches the tracker; `resale` twice adds to the counters; a repeated `tid` is ignored; a
/// conversion before the dialog waits and is applied at start; 50 conversions racing the 50
/// starts carrying their click ids are each applied once; bad input is refused by name.
pub async fn conversions_move_dialogs_and_fire_their_webhooks(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("Casino with Auto Actions").await;
    for (key, kind) in [
        ("deposits", "number"),
        ("revenue", "number"),
        ("depositAt", "date"),
    ] {
        admin
            .put(
                &format!("/api/bots/{bot}/fields/{key}"),
                json!({ "type": kind }),
            )
            .await;
    }
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "depositor", "kind": "send-webhook", "webhook": {
                "url": format!("{}/postback?subid={{tracker.clickid}}&status=sale&at={{depositAt|unix}}&payout={{lastPayout}}", rx.url())}})),
        )
        .await;
    assert_eq!(step.status, 201, "{l}: {}", step.text());
    let step = step.json()["id"].as_str().unwrap().to_string();
    let settings = json!({
        "startPayload": {"form": "pattern", "pattern": "CODE-{clickid}"},
        "actions": [
            {"type": "sale", "stepId": step, "status": "manual",
             "set": {"depositAt": "{time}", "lastPayout": "{payout}"},
             "add": {"deposits": 1, "revenue": "{payout}"}},
            {"type": "resale", "add": {"deposits": 1, "revenue": "{payout}"}}
        ]
    });
    let saved = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/auto-actions"),
            Some(settings),
        )
        .await;
    assert_eq!(saved.status, 200, "{l}: {}", saved.text());
    assert_eq!(saved.json()["actions"][1]["repeat"], true, "{l}");
    let link = admin
        .call("POST", &format!("/api/bots/{bot}/conversion-links"), None)
        .await;
    assert_eq!(link.status, 201, "{l}: {}", link.text());
    let conv = path_of(link.json()["url"].as_str().unwrap());

    // The chat starts through the ad's deep link; Keitaro reports the first deposit.
    let d = start(t, &admin, &bot, 1001, "CODE-kt9f8e").await;
    assert_eq!(d["tracker"]["clickid"], "kt9f8e", "{l}: {d}");
    let sale = t
        .client
        .get(&format!(
            "{conv}?subid=kt9f8e&status=sale&payout=50&currency=USD&tid=T-1"
        ))
        .await
        .unwrap();
    assert_eq!(sale.status, 200, "{l}: {}", sale.text());
    assert_eq!(sale.json()["outcome"], "applied", "{l}: {}", sale.text());
    assert_eq!(sale.json()["webhookQueued"], true, "{l}: {}", sale.text());
    assert!(
        sale.json().get("chatId").is_none(),
        "{l}: the answer names the chat"
    );
    let got = rx.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        got.len(),
        1,
        "{l}: the step's webhook never reached the tracker"
    );
    let q = got[0].query();
    assert!(q.contains(&("subid".into(), "kt9f8e".into())), "{l}: {q:?}");
    let at = q
        .iter()
        .find(|(k, _)| k == "at")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        at.parse::<i64>().is_ok(),
        "{l}: {{depositAt|unix}} gave {at:?}"
    );
    // The same transaction again: applied once, nothing sent.
    let again = t
        .client
        .get(&format!(
            "{conv}?subid=kt9f8e&status=sale&payout=50&tid=T-1"
        ))
        .await
        .unwrap();
    assert_eq!(again.json()["outcome"], "repeat", "{l}: {}", again.text());
    // Binom's names by form POST: two resales both count.
    for payout in ["20.5", "9.5"] {
        let resale = t
            .client
            .send(
                "POST",
                &conv,
                &[("content-type", "application/x-www-form-urlencoded")],
                format!("cnv_id=kt9f8e&cnv_status=resale&payout={payout}"),
            )
            .await
            .unwrap();
        assert_eq!(
            resale.json()["outcome"],
            "applied",
            "{l}: {}",
            resale.text()
        );
    }
    let d = admin.get(&format!("/api/bots/{bot}/dialogs/1001")).await;
    assert_eq!(d["stepId"], step.as_str(), "{l}: {d}");
    assert_eq!(d["status"], "manual", "{l}: {d}");
    assert_eq!(d["fields"]["deposits"], 3, "{l}: {d}");
    assert_eq!(d["fields"]["revenue"], 80.0, "{l}: {d}");
    assert_eq!(
        d["conversions"].as_array().map(Vec::len),
        Some(3),
        "{l}: {d}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received().len(),
        1,
        "{l}: resales moved nothing, sent nothing"
    );

    // Before the dialog: two sales wait, and the start applies both; each one's webhook
    // carries its own payout, not the one the other left in the dialog.
    for (payout, tid) in [(10, "T-2"), (20, "T-3")] {
        let early = t
            .client
            .post_json(
                &conv,
                &json!({"clickid": "early77", "type": "sale", "payout": payout, "tid": tid}),
            )
            .await
            .unwrap();
        assert_eq!(early.json()["outcome"], "waiting", "{l}: {}", early.text());
    }
    let waiting = admin.get(&format!("/api/bots/{bot}/auto-actions")).await;
    assert_eq!(waiting["waiting"], 2, "{l}: {waiting}");
    start(t, &admin, &bot, 2002, "CODE-early77").await;
    let d = dialog_until(&admin, &bot, 2002, "the waiting conversions", |d| {
        d["fields"]["deposits"] == 2
    })
    .await;
    assert_eq!(d["stepKey"], "depositor", "{l}: {d}");
    let got = rx.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "{l}");
    let mut payouts: Vec<String> = got[1..]
        .iter()
        .filter_map(|r| {
            r.query()
                .into_iter()
                .find(|(k, _)| k == "payout")
                .map(|(_, v)| v)
        })
        .collect();
    payouts.sort();
    assert_eq!(payouts, ["10", "20"], "{l}: each webhook its own payout");

    // Bad input: named, nothing written; an unknown link is a 404.
    for (query, field) in [
        ("status=sale", "subid"),
        ("subid=kt9f8e&status=sale&payout=lots", "payout"),
    ] {
        let bad = t.client.get(&format!("{conv}?{query}")).await.unwrap();
        assert!(matches!(bad.status, 400 | 422), "{l}: {}", bad.text());
        assert_eq!(bad.json()["error"]["field"], field, "{l}: {}", bad.text());
    }
    let unknown = t
        .client
        .get("/api/bots/conversions/0123456789abcdef0123456789abcdef?subid=a&status=sale")
        .await
        .unwrap();
    assert_eq!(unknown.status, 404, "{l}: {}", unknown.text());
    let d2 = admin.get(&format!("/api/bots/{bot}/dialogs/1001")).await;
    assert_eq!(
        d2["fields"]["deposits"], 3,
        "{l}: a refused conversion changed the dialog"
    );

    // 50 conversions racing the 50 starts that carry their click ids.
    if t.atomic {
        let calls: Vec<_> = (0..50)
            .flat_map(|i| {
                let (c1, c2) = (t.client.clone(), t.client.clone());
                let conv = conv.clone();
                let start_path = format!("/api/bots/{bot}/dialogs/{}", 5000 + i);
                [
                    tokio::spawn(async move {
                        let r = c1
                            .get(&format!("{conv}?subid=race{i}&status=resale&payout=1"))
                            .await
                            .unwrap();
                        assert_eq!(r.status, 200, "{}", r.text());
                    }),
                    tokio::spawn(async move {
                        let r = c2
                            .send(
                                "PUT",
                                &start_path,
                                &[
                                    ("content-type", "application/json"),
                                    (
                                        "authorization",
                                        &format!("Bearer {}", crate::common::ADMIN_TOKEN),
                                    ),
                                ],
                                json!({"startPayload": format!("CODE-race{i}")}).to_string(),
                            )
                            .await
                            .unwrap();
                        assert!(matches!(r.status, 200 | 201), "{}", r.text());
                    }),
                ]
            })
            .collect();
        for c in calls {
            c.await.unwrap();
        }
        for i in 0..50 {
            let d = dialog_until(&admin, &bot, 5000 + i, "a raced conversion", |d| {
                d["fields"]["deposits"] != Value::Null
            })
            .await;
            assert_eq!(d["fields"]["deposits"], 1, "{l}: chat {} {d}", 5000 + i);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..50 {
            let d = admin
                .get(&format!("/api/bots/{bot}/dialogs/{}", 5000 + i))
                .await;
            assert_eq!(d["fields"]["deposits"], 1, "{l}: applied twice: {d}");
        }
        let waiting = admin.get(&format!("/api/bots/{bot}/auto-actions")).await;
        assert_eq!(waiting["waiting"], 0, "{l}: {waiting}");
    }
    eprintln!("{l}: Auto Actions: conversions: ok");
}

/// Each start payload form fills the tracker fields it names, through the start API and
/// updateDialog; a payload Telegram could not pass is refused by name.
pub async fn start_payload_forms_fill_tracker_fields(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Deep links").await;
    let (_, url) = admin.link(&bot).await;
    let postback = path_of(&url);
    // {"clickid":"abc","source":"fb"}
    let b64 = "eyJjbGlja2lkIjoiYWJjIiwic291cmNlIjoiZmIifQ";
    for (i, (rule, payload, want)) in [
        (
            json!({"form": "whole"}),
            "xyz789",
            json!({"clickid": "xyz789"}),
        ),
        (
            json!({"form": "pattern", "pattern": "{source}-{clickid}"}),
            "tg-9f8e_7d",
            json!({"source": "tg", "clickid": "9f8e_7d"}),
        ),
        (
            json!({"form": "pairs"}),
            "clickid__k1--sub1__promo",
            json!({"clickid": "k1", "sub1": "promo"}),
        ),
        (
            json!({"form": "base64Json"}),
            b64,
            json!({"clickid": "abc", "source": "fb"}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let saved = admin
            .call(
                "PUT",
                &format!("/api/bots/{bot}/auto-actions"),
                Some(json!({ "startPayload": rule })),
            )
            .await;
        assert_eq!(saved.status, 200, "{l}: {}", saved.text());
        let preview = admin
            .call(
                "POST",
                &format!("/api/bots/{bot}/auto-actions/start-preview"),
                Some(json!({ "payload": payload })),
            )
            .await;
        assert_eq!(preview.status, 200, "{l}: {}", preview.text());
        let chat = 700 + i as i64;
        let d = start(t, &admin, &bot, chat, payload).await;
        let by_postback = t
            .client
            .get(&format!(
                "{postback}?chatId={}&startPayload={payload}",
                chat + 100
            ))
            .await
            .unwrap();
        assert_eq!(by_postback.status, 200, "{l}: {}", by_postback.text());
        let d2 = admin
            .get(&format!("/api/bots/{bot}/dialogs/{}", chat + 100))
            .await;
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&d["tracker"][k], v, "{l}: {rule} {d}");
            assert_eq!(&d2["tracker"][k], v, "{l}: {rule} by updateDialog {d2}");
            assert_eq!(
                &preview.json()["tracker"][k],
                v,
                "{l}: preview {}",
                preview.text()
            );
        }
        assert_eq!(d["tracker"]["start"], payload, "{l}: {d}");
    }
    let bad = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/dialogs/9"),
            Some(json!({"startPayload": "has space"})),
        )
        .await;
    assert_eq!(bad.status, 422, "{l}: {}", bad.text());
    assert_eq!(bad.json()["error"]["field"], "startPayload", "{l}");
    let bad = t
        .client
        .get(&format!("{postback}?chatId=9&startPayload=%D0%BF"))
        .await
        .unwrap();
    assert_eq!(bad.status, 422, "{l}: {}", bad.text());
    assert_eq!(bad.json()["error"]["field"], "startPayload", "{l}");
    eprintln!("{l}: Auto Actions: start payloads: ok");
}
