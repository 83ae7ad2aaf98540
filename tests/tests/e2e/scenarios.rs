//! What every runtime and store must do, written once and run against each of them: the test
//! host with each store's semantics (`stores`) and the real `spin up` on SQLite and Redis
//! (`real_spin`). Each scenario drives the app over HTTP like its users do (an admin, a
//! tracker, a call tracker) with receivers on loopback, and names the target in every failure.

use std::time::Duration;

use funnelhooks_testhost::{Answer, Client, Receiver};
use serde_json::{Value, json};

use crate::common::Admin;

/// The app under test and what its store guarantees.
pub struct Target {
    /// Names the runtime and store in failures (`spin 4.1 + Redis`).
    pub label: String,
    /// A client for the app.
    pub client: Client,
    /// Whether the store has atomics: concurrent writers to one record never lose a change,
    /// copies of one postback deliver once. Without them the documented weaker guarantees
    /// apply (defined fields kept, duplicates possible).
    pub atomic: bool,
}

impl Target {
    /// A client of the target with the admin token.
    pub fn admin(&self) -> Admin {
        Admin::new(&self.client)
    }
}

/// Runs every scenario against `target`.
pub async fn run_all(target: &Target) {
    // First: its sweeps keep to the real clock's minute (later scenarios play it ahead).
    crate::failing_targets::run_all(target).await;
    management_and_postbacks(target).await;
    concurrent_postbacks_keep_every_field(target).await;
    step_delivery_retried_by_the_sweep_and_replayed(target).await;
    call_event_fans_out_to_every_hook_once(target).await;
    json_nested_as_deep_as_parsers_go_is_refused_on_every_route(target).await;
    crate::attacks::run_all(target).await;
    crate::auto_actions::run_all(target).await;
    crate::access::run_all(target).await;
    crate::story::run_all(target).await;
}

const STEP: &str = "046050f6-38f6-4b18-b9fa-e6582f5352d0";

/// Bots, fields, links, steps and dialogs through the management API; updateDialog by GET,
/// form POST and JSON POST; pre-assigned data merged at start; revoking a link.
pub async fn management_and_postbacks(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Casino funnel").await;
    admin
        .put(
            &format!("/api/bots/{bot}/fields/userBalance"),
            json!({"type": "number"}),
        )
        .await;
    admin
        .put(
            &format!("/api/bots/{bot}/steps/{STEP}"),
            json!({"key": "deposit", "kind": "message"}),
        )
        .await;
    let (link, url) = admin.link(&bot).await;
    let (_, second_url) = admin.link(&bot).await;
    let links = admin.get(&format!("/api/bots/{bot}/webhooks")).await;
    assert_eq!(links["items"].as_array().unwrap().len(), 2, "{l}: {links}");
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    let second = second_url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();

    // A tracker's GET before the chat has started the bot.
    let reply = t
        .client
        .get(&format!(
            "{path}?chatId=1227280&stepId={STEP}&userBalance=5000&tracker.clickid=abc123&addTag=depositor"
        ))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{l}: {}", reply.text());
    assert_eq!(reply.json()["created"], true, "{l}");
    // The answer says its length and is not chunked: head and body are handed to the host
    // together, so a tracker on a kept-alive connection is not held by Nagle's algorithm
    // (`spin-bench` shows the 40 ms it cost per answer).
    let length = reply.body.len().to_string();
    assert_eq!(reply.header("content-length"), Some(length.as_str()), "{l}");
    assert_eq!(reply.header("transfer-encoding"), None, "{l}");
    // A form POST and a JSON POST through the other link.
    let form = t
        .client
        .send(
            "POST",
            &second,
            &[("content-type", "application/x-www-form-urlencoded")],
            "chatId=1227280&status=manual&details.refID=12345".to_string(),
        )
        .await
        .unwrap();
    assert_eq!(form.status, 200, "{l}: {}", form.text());
    let body =
        json!({"chatId": 1227280, "fields": {"note": "hi"}, "tracker": {"utm_source": "tg"}});
    let posted = t.client.post_json(&path, &body).await.unwrap();
    assert_eq!(posted.status, 200, "{l}: {}", posted.text());

    // The bot engine starts the chat: its data wins for the profile, the pre-assigned for
    // fields, step, status and tags.
    let start = json!({"username": "ivan", "name": "Ivan", "tracker": {"clickid": "from-start"}});
    let started = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/dialogs/1227280"),
            Some(start),
        )
        .await;
    assert_eq!(started.status, 200, "{l}: {}", started.text());
    let d = admin.get(&format!("/api/bots/{bot}/dialogs/1227280")).await;
    assert_eq!(d["started"], true, "{l}: {d}");
    assert_eq!(d["username"], "ivan", "{l}: {d}");
    assert_eq!(d["stepKey"], "deposit", "{l}: {d}");
    assert_eq!(d["status"], "manual", "{l}: {d}");
    assert_eq!(d["fields"]["userBalance"], 5000, "{l}: {d}");
    assert_eq!(d["fields"]["refID"], "12345", "{l}: {d}");
    assert_eq!(d["fields"]["note"], "hi", "{l}: {d}");
    assert_eq!(d["tracker"]["clickid"], "from-start", "{l}: {d}");
    assert_eq!(d["tracker"]["utm_source"], "tg", "{l}: {d}");
    assert_eq!(d["tags"], json!(["depositor"]), "{l}: {d}");

    // A bad postback is refused by name and changes nothing.
    let bad = t
        .client
        .get(&format!(
            "{path}?chatId=1227280&userBalance=lots&status=auto"
        ))
        .await
        .unwrap();
    assert_eq!(bad.status, 422, "{l}: {}", bad.text());
    assert_eq!(bad.json()["error"]["field"], "userBalance", "{l}");
    let again = admin.get(&format!("/api/bots/{bot}/dialogs/1227280")).await;
    assert_eq!(again, d, "{l}: a refused postback changed the dialog");
    // ... and the marketer sees it among the bot's refused postbacks, with why and what came;
    // the accepted ones before it left nothing there.
    // (Kept after the answer: it may land a moment later.)
    let mut refused = json!(null);
    for _ in 0..50 {
        refused = admin
            .get(&format!("/api/bots/{bot}/refused-postbacks"))
            .await;
        if refused["items"] != json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let items = refused["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{l}: {refused}");
    assert_eq!(items[0]["field"], "userBalance", "{l}: {refused}");
    assert_eq!(items[0]["status"], 422, "{l}: {refused}");
    assert_eq!(items[0]["method"], "GET", "{l}: {refused}");
    assert!(
        items[0]["sent"]
            .as_str()
            .unwrap()
            .contains("userBalance=lots"),
        "{l}: {refused}"
    );

    // Lists, rename, revoke, erase.
    let list = admin.get(&format!("/api/bots/{bot}/dialogs")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{l}: {list}");
    let renamed = admin
        .call(
            "PATCH",
            &format!("/api/bots/{bot}"),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(renamed.json()["name"], "Renamed", "{l}");
    assert_eq!(renamed.json()["webhooks"], 2, "{l}: {}", renamed.text());
    let revoked = admin
        .status("DELETE", &format!("/api/bots/{bot}/webhooks/{link}"))
        .await;
    assert_eq!(revoked, 204, "{l}");
    let gone = t.client.get(&format!("{path}?chatId=1")).await.unwrap();
    assert_eq!(gone.status, 404, "{l}: a revoked link still works");
    let erased = admin
        .status("DELETE", &format!("/api/bots/{bot}/dialogs/1227280"))
        .await;
    assert_eq!(erased, 204, "{l}");
    let read = admin
        .status("GET", &format!("/api/bots/{bot}/dialogs/1227280"))
        .await;
    assert_eq!(read, 404, "{l}");
    eprintln!("{l}: management and postbacks: ok");
}

/// 200 postbacks in flight at once to one chat that has not started, each writing its own
/// field: all 200 fields are kept, and (with atomics) one dialog is created.
pub async fn concurrent_postbacks_keep_every_field(t: &Target) {
    const N: usize = 200;
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Burst").await;
    // Defined fields: the guarantee hosts without atomics give too.
    for i in 0..N {
        admin
            .put(
                &format!("/api/bots/{bot}/fields/f{i}"),
                json!({"type": "number"}),
            )
            .await;
    }
    let (_, url) = admin.link(&bot).await;
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    let calls = (0..N).map(|i| {
        let client = t.client.clone();
        let path = path.clone();
        tokio::spawn(async move {
            client
                .get(&format!("{path}?chatId=-100500&f{i}={i}"))
                .await
                .unwrap()
        })
    });
    let calls: Vec<_> = calls.collect();
    let mut created = 0;
    for call in calls {
        let reply = call.await.unwrap();
        assert_eq!(reply.status, 200, "{l}: {}", reply.text());
        created += usize::from(reply.json()["created"] == true);
    }
    let d = admin.get(&format!("/api/bots/{bot}/dialogs/-100500")).await;
    let missing: Vec<usize> = (0..N)
        .filter(|i| d["fields"][format!("f{i}")] != json!(*i))
        .collect();
    assert!(missing.is_empty(), "{l}: fields lost: {missing:?}");
    if t.atomic {
        assert_eq!(created, 1, "{l}: exactly one postback creates the dialog");
        let list = admin.get(&format!("/api/bots/{bot}/dialogs")).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{l}: {list}");
    }
    eprintln!("{l}: {N} concurrent postbacks: ok");
}

/// A postback moves a dialog into a send-webhook step: the Keitaro-style postback reaches the
/// receiver, which answers 503 with `Retry-After: 1`; the retry sweep sends it again and it
/// is delivered; replay sends it once more. With atomics, twenty copies of one postback in
/// flight at once deliver the step once.
pub async fn step_delivery_retried_by_the_sweep_and_replayed(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    rx.script([Answer::new(503, "busy").header("retry-after", "1")]);
    let bot = admin.bot("Tracker").await;
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "lead", "kind": "send-webhook", "webhook": {
                "url": format!("{}/postback?subid={{tracker.clickid}}&status=lead&chat={{chatId}}", rx.url()),
                "retry": {"maxAttempts": 3}}})),
        )
        .await;
    assert_eq!(step.status, 201, "{l}: {}", step.text());
    let step = step.json()["id"].as_str().unwrap().to_string();
    let (_, url) = admin.link(&bot).await;
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    let moved = t
        .client
        .get(&format!(
            "{path}?chatId=1227280&stepId={step}&tracker.clickid=a%26b%20c"
        ))
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{l}: {}", moved.text());
    assert_eq!(moved.json()["webhookQueued"], true, "{l}");
    let got = rx.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "{l}: the step's webhook never arrived");
    assert_eq!(
        got[0].path_and_query, "/postback?subid=a%26b%20c&status=lead&chat=1227280",
        "{l}"
    );
    let id = wait_for_delivery(&admin, &bot, "retrying", l).await;

    // The retry is due a second later; a sweep sends it.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let mut delivered = json!(null);
    for _ in 0..20 {
        let sweep = admin.call("POST", "/api/deliveries/retry-due", None).await;
        assert_eq!(sweep.status, 200, "{l}: {}", sweep.text());
        delivered = admin.get(&format!("/api/deliveries/{id}")).await;
        if delivered["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(delivered["status"], "delivered", "{l}: {delivered}");
    assert_eq!(delivered["attempts"].as_array().unwrap().len(), 2, "{l}");
    assert_eq!(delivered["attempts"][0]["status"], 503, "{l}");
    assert_eq!(rx.received().len(), 2, "{l}");

    let replay = admin
        .call("POST", &format!("/api/deliveries/{id}/replay"), None)
        .await;
    assert_eq!(replay.status, 201, "{l}: {}", replay.text());
    assert_eq!(replay.json()["replayOf"], id.as_str(), "{l}");
    assert_eq!(replay.json()["status"], "delivered", "{l}");
    assert_eq!(rx.received().len(), 3, "{l}");

    if t.atomic {
        // Twenty copies of the postback that moves chat 42 into the step, at once.
        admin
            .put(
                &format!("/api/bots/{bot}/dialogs/42"),
                json!({"name": "Copy"}),
            )
            .await;
        let calls = (0..20).map(|_| {
            let client = t.client.clone();
            let url = format!("{path}?chatId=42&stepId={step}");
            tokio::spawn(async move { client.get(&url).await.unwrap() })
        });
        let calls: Vec<_> = calls.collect();
        let mut queued = 0;
        for call in calls {
            queued += usize::from(call.await.unwrap().json()["webhookQueued"] == true);
        }
        assert_eq!(queued, 1, "{l}: the move is decided once");
        let got = rx.wait_for(4, Duration::from_secs(20)).await;
        assert_eq!(got.len(), 4, "{l}");
        let log = admin
            .get(&format!("/api/deliveries?botId={bot}&chatId=42"))
            .await;
        assert_eq!(log["items"].as_array().unwrap().len(), 1, "{l}: {log}");
    }
    eprintln!("{l}: step delivery, retry sweep, replay: ok");
}

/// Waits until the bot's newest delivery has `status`; returns its id.
async fn wait_for_delivery(admin: &Admin, bot: &str, status: &str, l: &str) -> String {
    let mut last = json!(null);
    for _ in 0..100 {
        last = admin.get(&format!("/api/deliveries?botId={bot}")).await;
        if let Some(d) = last["items"].get(0)
            && d["status"] == status
        {
            return d["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{l}: no {status} delivery: {last}");
}

/// A call-tracking service with three hooks (GET query, POST JSON, POST form) gets a call
/// event: each hook's receiver gets its request; a repeat of the event sends nothing more.
pub async fn call_event_fans_out_to_every_hook_once(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let service = admin
        .call(
            "POST",
            "/api/calls/services",
            Some(json!({"name": "shop widget"})),
        )
        .await;
    assert_eq!(service.status, 201, "{l}: {}", service.text());
    let service = service.json();
    let (id, key) = (
        service["id"].as_str().unwrap().to_string(),
        service["ingestKey"].as_str().unwrap().to_string(),
    );
    let hook = |path: &str, method: &str, content_type: &str| {
        json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(), "path": path,
               "method": method, "contentType": content_type, "event": "end",
               "parameters": [{"name": "call", "param": "id"}, {"name": "town", "param": "city"},
                              {"name": "source", "value": "callkeeper"}]})
    };
    for form in [
        hook("/get", "GET", "application/json"),
        hook("/json", "POST", "application/json"),
        hook("/form", "POST", "application/x-www-form-urlencoded"),
    ] {
        let added = admin
            .call(
                "POST",
                &format!("/api/calls/services/{id}/hooks"),
                Some(form),
            )
            .await;
        assert_eq!(added.status, 201, "{l}: {}", added.text());
    }
    let read: Value = admin.get(&format!("/api/calls/services/{id}")).await;
    assert_eq!(read["hooks"].as_array().unwrap().len(), 3, "{l}: {read}");

    let event = |call: u32| json!({"id": call, "hook_event": "Call is over", "city": "Омск", "duration_sec": 95});
    let ingest = format!("/api/calls/services/{id}/events");
    let headers = [
        ("x-ingest-key", key.as_str()),
        ("content-type", "application/json"),
    ];
    let first = t
        .client
        .send("POST", &ingest, &headers, event(88412).to_string())
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{l}: {}", first.text());
    assert_eq!(first.json()["matched"], 3, "{l}: {}", first.text());
    let got = rx.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "{l}: {got:?}");
    let by_path = |p: &str| {
        got.iter()
            .find(|r| r.path_and_query.starts_with(p))
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_path("/get").path_and_query,
        "/get?call=88412&town=%D0%9E%D0%BC%D1%81%D0%BA&source=callkeeper",
        "{l}"
    );
    let json_body: Value = serde_json::from_slice(&by_path("/json").body).unwrap();
    assert_eq!(
        json_body,
        json!({"call": 88412, "town": "Омск", "source": "callkeeper"}),
        "{l}"
    );
    assert_eq!(
        String::from_utf8_lossy(&by_path("/form").body),
        "call=88412&town=%D0%9E%D0%BC%D1%81%D0%BA&source=callkeeper",
        "{l}"
    );
    // The call tracker repeats the event: nothing more is sent. A new call is.
    let repeat = t
        .client
        .send("POST", &ingest, &headers, event(88412).to_string())
        .await
        .unwrap();
    assert_eq!(repeat.json()["duplicate"], true, "{l}: {}", repeat.text());
    let next = t
        .client
        .send("POST", &ingest, &headers, event(88413).to_string())
        .await
        .unwrap();
    assert_eq!(next.json()["duplicate"], false, "{l}");
    let all = rx.wait_for(6, Duration::from_secs(20)).await;
    assert_eq!(all.len(), 6, "{l}");
    let log = admin.get(&format!("/api/deliveries?serviceId={id}")).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 6, "{l}: {log}");
    eprintln!("{l}: call event fan-out: ok");
}

/// JSON nested as deep as serde_json parses (127 levels) and deeper, sent to every route that
/// reads a JSON body: each answers a JSON 4xx, writes nothing, and the app keeps answering.
/// This is the deepest stack any request reaches (about 40 KiB), so it proves the components'
/// 128 KiB stack (`.cargo/config.toml`) on each runtime: an overflow would trap (a 500).
pub async fn json_nested_as_deep_as_parsers_go_is_refused_on_every_route(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Deep JSON").await;
    let (_, url) = admin.link(&bot).await;
    let postback = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}?chatId=5"))
        .unwrap();
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "deep"})))
        .await
        .json();
    let (service, key) = (
        service["id"].as_str().unwrap().to_string(),
        service["ingestKey"].as_str().unwrap().to_string(),
    );
    let arrays = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let bodies = [
        arrays(127),
        arrays(10_000),
        objects(127),
        format!(r#"{{"fields":{}}}"#, objects(126)),
        format!(r#"{{"name":"x","webhook":{}}}"#, objects(126)),
    ];
    let auth = format!("Bearer {}", crate::common::ADMIN_TOKEN);
    let routes = [
        ("POST", postback.clone(), None),
        ("POST", "/api/bots".to_string(), Some(auth.as_str())),
        (
            "PUT",
            format!("/api/bots/{bot}/dialogs/99"),
            Some(auth.as_str()),
        ),
        (
            "POST",
            format!("/api/bots/{bot}/steps"),
            Some(auth.as_str()),
        ),
        (
            "POST",
            "/api/templates/preview".to_string(),
            Some(auth.as_str()),
        ),
        (
            "POST",
            format!("/api/calls/services/{service}/hooks"),
            Some(auth.as_str()),
        ),
        (
            "POST",
            format!("/api/calls/services/{service}/events"),
            None,
        ),
    ];
    for body in &bodies {
        for (method, path, auth) in &routes {
            let mut headers = vec![
                ("content-type", "application/json"),
                ("x-ingest-key", key.as_str()),
            ];
            if let Some(auth) = auth {
                headers.push(("authorization", auth));
            }
            let reply = t
                .client
                .send(method, path, &headers, body.clone())
                .await
                .unwrap();
            let depth = body.matches(['[', '{']).count();
            assert!(
                (400..500).contains(&reply.status),
                "{l}: {method} {path} with JSON {depth} levels deep: {} {}",
                reply.status,
                reply.text()
            );
            assert!(
                reply.json()["error"]["code"].is_string(),
                "{l}: {method} {path}: {}",
                reply.text()
            );
        }
    }
    // Nothing was written by any of them (no bot named "x", which one body names), and
    // every component still answers.
    let mut cursor = String::new();
    loop {
        let page = admin
            .get(&format!("/api/bots?limit=100&cursor={cursor}"))
            .await;
        let names: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["name"].as_str())
            .collect();
        assert!(
            !names.contains(&"x"),
            "{l}: a refused body created a bot: {page}"
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/dialogs/5"))
            .await,
        404,
        "{l}"
    );
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/dialogs/99"))
            .await,
        404,
        "{l}"
    );
    let steps = admin.get(&format!("/api/bots/{bot}/steps")).await;
    assert_eq!(
        steps["items"].as_array().map(Vec::len),
        Some(0),
        "{l}: {steps}"
    );
    let hooks = admin
        .get(&format!("/api/calls/services/{service}/hooks"))
        .await;
    assert_eq!(
        hooks["items"].as_array().map(Vec::len),
        Some(0),
        "{l}: {hooks}"
    );
    let done = t
        .client
        .send("GET", &format!("{postback}&fields.after=1"), &[], "")
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{l}: {}", done.text());
}
