//! What a link holder, a receiver and a slow target can do, tried in the shape of the attack
//! on every runtime and store (part of `scenarios::run_all`): a leaked postback link reads
//! nothing and creates nothing; a delivery past its bounds is skipped, never cut, and lists
//! stay small; a trickling receiver is cut at its deadline while its neighbour is delivered
//! once; a saved secret does not follow a new URL and answers are masked; what can never be
//! sent is refused at save; answers carry security headers and links need a trusted origin.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnelhooks_testhost::{Answer, Receiver};
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Admin};
use crate::scenarios::Target;

/// Runs every attack against `t`.
pub async fn run_all(t: &Target) {
    a_leaked_link_reads_nothing_and_creates_nothing(t).await;
    a_delivery_past_its_bounds_is_skipped_and_lists_stay_small(t).await;
    a_trickling_receiver_is_cut_at_its_deadline_and_its_neighbour_is_delivered_once(t).await;
    a_saved_secret_does_not_follow_a_new_url_and_answers_are_masked(t).await;
    what_can_never_be_sent_is_refused_at_save(t).await;
    answers_carry_security_headers_and_links_need_a_trusted_origin(t).await;
    eprintln!("{}: attacks of round 2: ok", t.label);
}

fn path_of(url: &str) -> String {
    url.split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A send-webhook step of `bot` with `webhook`; its id.
async fn step(admin: &Admin, bot: &str, webhook: Value, l: &str) -> String {
    let reply = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "s", "kind": "send-webhook", "webhook": webhook})),
        )
        .await;
    assert_eq!(reply.status, 201, "{l}: {}", reply.text());
    reply.json()["id"].as_str().unwrap().to_string()
}

/// Waits until every delivery of `scope` (`botId=…` or `serviceId=…`) has ended and there are
/// `n` of them; returns their summaries.
async fn ended(admin: &Admin, scope: &str, n: usize, l: &str) -> Vec<Value> {
    let mut last = json!(null);
    for _ in 0..150 {
        last = admin.get(&format!("/api/deliveries?{scope}")).await;
        let items = last["items"].as_array().unwrap().clone();
        let done = items
            .iter()
            .all(|d| !matches!(d["status"].as_str(), Some("pending")));
        if items.len() == n && done {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{l}: deliveries of {scope} did not end: {last}");
}

async fn a_leaked_link_reads_nothing_and_creates_nothing(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Leak").await;
    let (_, url) = admin.link(&bot).await;
    let path = path_of(&url);
    // The bot engine starts chat 3003 with what the person is.
    admin
        .put(
            &format!("/api/bots/{bot}/dialogs/3003"),
            json!({"username": "ivan_secret_user", "name": "Ivan Secretname",
                   "tracker": {"clickid": "click-secret-77"}}),
        )
        .await;
    let secrets = ["ivan_secret_user", "Secretname", "click-secret-77"];
    // Who holds the link asks about the chat, by GET and by JSON POST.
    let read = t.client.get(&format!("{path}?chatId=3003")).await.unwrap();
    assert_eq!(read.status, 200, "{l}: {}", read.text());
    assert_eq!(
        read.json(),
        json!({"ok": true, "chatId": 3003, "created": false, "changed": false,
               "applied": {}, "undefinedFields": [], "webhookQueued": false}),
        "{l}"
    );
    let posted = t
        .client
        .post_json(&path, &json!({"chatId": 3003}))
        .await
        .unwrap();
    let written = t
        .client
        .get(&format!("{path}?chatId=3003&tracker.sub=1"))
        .await
        .unwrap();
    assert_eq!(
        written.json()["applied"],
        json!({"tracker": {"sub": "1"}}),
        "{l}"
    );
    for answer in [&read, &posted, &written] {
        for secret in secrets {
            assert!(!answer.text().contains(secret), "{l}: {}", answer.text());
        }
    }
    // A chat nobody started: asking creates nothing.
    let probe = t.client.get(&format!("{path}?chatId=4004")).await.unwrap();
    assert_eq!(probe.json()["created"], false, "{l}");
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/dialogs/4004"))
            .await,
        404,
        "{l}: a postback that changed nothing made a dialog"
    );
}

async fn a_delivery_past_its_bounds_is_skipped_and_lists_stay_small(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("Bounds").await;
    // 1,480 copies of a tracker field in a JSON body, and one long public postback.
    let template = format!("{{\"x\": \"{}\"}}", "{tracker.x}".repeat(1_480));
    let big = step(
        &admin,
        &bot,
        json!({"url": format!("{}/big", rx.url()), "method": "POST",
               "body": {"template": template, "contentType": "json"}}),
        l,
    )
    .await;
    let (_, url) = admin.link(&bot).await;
    let moved = t
        .client
        .post_json(
            &path_of(&url),
            &json!({"chatId": 5, "stepId": big, "tracker": {"x": "y".repeat(4_000)}}),
        )
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{l}: {}", moved.text());
    let items = ended(&admin, &format!("botId={bot}"), 1, l).await;
    assert_eq!(items[0]["status"], "skipped", "{l}: {}", items[0]);
    let why = items[0]["error"].as_str().unwrap();
    assert!(why.contains("65536 bytes"), "{l}: {why}");
    assert!(rx.received().is_empty(), "{l}: a cut request was sent");
    let detail = admin
        .call(
            "GET",
            &format!("/api/deliveries/{}", items[0]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(detail.text().len() < 20_000, "{l}: {}", detail.text().len());

    // A receiver that answers with 60 long headers: the attempt keeps a bounded part.
    let noisy = Receiver::start().await.unwrap();
    let mut answer = Answer::new(200, "ok");
    for i in 0..60 {
        answer = answer.header(&format!("x-noise-{i}"), &"n".repeat(1_000));
    }
    noisy.otherwise(answer);
    let loud = step(
        &admin,
        &bot,
        json!({"url": format!("{}/h", noisy.url())}),
        l,
    )
    .await;
    let sent = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{loud}/test-send"),
            None,
        )
        .await;
    assert_eq!(sent.status, 200, "{l}: {}", sent.text());
    let attempt = &sent.json()["attempts"][0];
    assert_eq!(attempt["status"], 200, "{l}: {attempt}");
    assert!(attempt["headers"].as_array().unwrap().len() <= 32, "{l}");
    assert_eq!(attempt["truncated"], true, "{l}");
    assert!(sent.text().len() < 10_000, "{l}: {}", sent.text().len());

    // A hook with 50 parameters reading one call parameter, and a 63 KB event.
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "big"})))
        .await
        .json();
    let (sid, key) = (
        service["id"].as_str().unwrap().to_string(),
        service["ingestKey"].as_str().unwrap().to_string(),
    );
    let parameters: Vec<Value> = (0..50)
        .map(|i| json!({"name": format!("p{i}"), "param": "city"}))
        .collect();
    let hook = admin
        .call(
            "POST",
            &format!("/api/calls/services/{sid}/hooks"),
            Some(
                json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                        "path": "/calls", "event": "end", "method": "POST",
                        "contentType": "json", "parameters": parameters}),
            ),
        )
        .await;
    assert_eq!(hook.status, 201, "{l}: {}", hook.text());
    let event = json!({"id": 1, "hook_event": "Call is over", "city": "c".repeat(63_000)});
    let ingested = t
        .client
        .send(
            "POST",
            &format!("/api/calls/services/{sid}/events?key={key}"),
            &[("content-type", "application/json")],
            event.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(ingested.status, 200, "{l}: {}", ingested.text());
    let items = ended(&admin, &format!("serviceId={sid}"), 1, l).await;
    assert_eq!(items[0]["status"], "skipped", "{l}: {}", items[0]);
    assert!(
        items[0]["error"]
            .as_str()
            .unwrap()
            .contains("65536-byte bound"),
        "{l}: {}",
        items[0]
    );
    assert!(rx.received().is_empty(), "{l}");
    // The log's list: summaries, small whatever the deliveries hold.
    let list = admin.call("GET", "/api/deliveries?limit=50", None).await;
    assert_eq!(list.status, 200, "{l}");
    assert!(
        list.text().len() < 50 * 2_000,
        "{l}: {} bytes",
        list.text().len()
    );
    assert!(list.json()["items"][0].get("attempts").is_none(), "{l}");
}

async fn a_trickling_receiver_is_cut_at_its_deadline_and_its_neighbour_is_delivered_once(
    t: &Target,
) {
    let l = &t.label;
    let admin = t.admin();
    let (fast, slow) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    // One byte every half second: without a deadline, 20 s for this body.
    slow.otherwise(Answer::new(200, &"z".repeat(40)).trickling(Duration::from_millis(500)));
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "fan"})))
        .await
        .json();
    let (sid, key) = (
        service["id"].as_str().unwrap().to_string(),
        service["ingestKey"].as_str().unwrap().to_string(),
    );
    for (rx, timeout) in [(&fast, 10_000), (&slow, 1_500)] {
        let hook = admin
            .call(
                "POST",
                &format!("/api/calls/services/{sid}/hooks"),
                Some(
                    json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                            "path": "/c", "event": "end", "timeoutMs": timeout}),
                ),
            )
            .await;
        assert_eq!(hook.status, 201, "{l}: {}", hook.text());
    }
    let started = std::time::Instant::now();
    let ingested = t
        .client
        .get(&format!(
            "/api/calls/services/{sid}/events?key={key}&id=77&hook_event=Call+is+over"
        ))
        .await
        .unwrap();
    assert_eq!(ingested.status, 200, "{l}: {}", ingested.text());
    let items = ended(&admin, &format!("serviceId={sid}"), 2, l).await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{l}: the batch took {:?}",
        started.elapsed()
    );
    for d in &items {
        let detail = admin
            .get(&format!("/api/deliveries/{}", d["id"].as_str().unwrap()))
            .await;
        let attempt = &detail["attempts"][0];
        assert_eq!(detail["attempts"].as_array().unwrap().len(), 1, "{l}");
        assert_eq!(attempt["status"], 200, "{l}: {attempt}");
        if detail["timeoutMs"] == 1_500 {
            // Cut at its deadline, not held until the last byte.
            assert!(
                attempt["durationMs"].as_u64().unwrap() < 5_000,
                "{l}: {attempt}"
            );
            assert!(
                attempt["error"].as_str().unwrap().contains("deadline"),
                "{l}: {attempt}"
            );
            assert_eq!(attempt["truncated"], true, "{l}");
        }
    }
    // Later sweeps send nothing again: each hook was recorded as it finished.
    let at = now_ms() + 180_000;
    let sweep = admin
        .call("POST", &format!("/api/deliveries/retry-due?at={at}"), None)
        .await;
    assert_eq!(sweep.status, 200, "{l}: {}", sweep.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fast.received().len(),
        1,
        "{l}: the fast hook was sent again"
    );
    assert_eq!(
        slow.received().len(),
        1,
        "{l}: the slow hook was sent again"
    );
}

async fn a_saved_secret_does_not_follow_a_new_url_and_answers_are_masked(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let (home, elsewhere) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    home.otherwise(
        Answer::new(
            200,
            r#"{"user":"u","password":"hunter2","token":"t0k3n-answer","n":1}"#,
        )
        .header("content-type", "application/json")
        .header("set-cookie", "session=cookie-secret"),
    );
    let bot = admin.bot("Secrets").await;
    let id = step(
        &admin,
        &bot,
        json!({"url": format!("{}/in", home.url()),
               "headers": {"Authorization": "Bearer live-secret-1", "X-Auth": "xauth-secret",
                           "Api-Auth": "apiauth-secret", "X-Session-Id": "sess-secret"}}),
        l,
    )
    .await;
    let view = admin.get(&format!("/api/bots/{bot}/steps/{id}")).await;
    for secret in [
        "live-secret-1",
        "xauth-secret",
        "apiauth-secret",
        "sess-secret",
    ] {
        assert!(!view.to_string().contains(secret), "{l}: {view}");
    }
    // The view saved back with a URL to another receiver: the secrets must be entered again.
    let mut webhook = view["webhook"].clone();
    webhook.as_object_mut().unwrap().remove("signed");
    webhook["url"] = json!(format!("{}/in", elsewhere.url()));
    let moved = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/steps/{id}"),
            Some(json!({"key": "s", "kind": "send-webhook", "webhook": webhook})),
        )
        .await;
    assert_eq!(moved.status, 422, "{l}: {}", moved.text());
    assert_eq!(moved.json()["error"]["code"], "secret_not_carried", "{l}");
    let sent = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{id}/test-send"),
            None,
        )
        .await;
    assert_eq!(sent.status, 200, "{l}: {}", sent.text());
    assert!(
        elsewhere.received().is_empty(),
        "{l}: the secret went elsewhere"
    );
    let got = home.received();
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer live-secret-1"),
        "{l}"
    );
    // The receiver's answer is logged masked.
    for secret in ["hunter2", "t0k3n-answer", "cookie-secret"] {
        assert!(!sent.text().contains(secret), "{l}: {}", sent.text());
    }
    assert!(sent.text().contains(r#"\"n\":1"#), "{l}: {}", sent.text());
}

async fn what_can_never_be_sent_is_refused_at_save(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("Refusals").await;
    let save = |webhook: Value| {
        let admin = Admin::new(&t.client);
        let bot = bot.clone();
        async move {
            admin
                .call(
                    "POST",
                    &format!("/api/bots/{bot}/steps"),
                    Some(json!({"key": "r", "kind": "send-webhook", "webhook": webhook})),
                )
                .await
        }
    };
    for url in [
        "http://self/api/bots",
        "http://kubernetes.default.svc/",
        "http://[::ffff:0:7f00:1]/",
        "http://[64:ff9b:1::7f00:1]/",
        "http://[2001:0::1]/",
        "http://[fec0::1]/",
        "http://198.18.0.1/",
        "http://192.0.0.1/",
        "http://203.0.113.7/",
    ] {
        let reply = save(json!({ "url": url })).await;
        assert_eq!(reply.status, 422, "{l}: {url}: {}", reply.text());
        assert_eq!(
            reply.json()["error"]["code"],
            "refused_target",
            "{l}: {url}"
        );
    }
    for header in ["Proxy-Authorization", "Keep-Alive", "Expect"] {
        let reply = save(json!({"url": rx.url(), "headers": {header: "x"}})).await;
        assert_eq!(
            reply.json()["error"]["code"],
            "reserved_header",
            "{l}: {header}"
        );
    }
    let control = save(json!({"url": rx.url(), "headers": {"X-Tag": "a\u{1}b"}})).await;
    assert_eq!(control.status, 422, "{l}: {}", control.text());
    let broken = save(json!({"url": rx.url(), "method": "POST",
                             "body": {"template": "{\"a\": 1", "contentType": "json"}}))
    .await;
    assert_eq!(
        broken.json()["error"]["code"],
        "bad_json_template",
        "{l}: {}",
        broken.text()
    );
    // `|raw` in a JSON body writes JSON values; anything else stays one string.
    let raw = save(json!({"url": format!("{}/raw", rx.url()), "method": "POST",
                          "body": {"template": "{\"amount\": {tracker.amount|raw}, \"ok\": true}",
                                   "contentType": "json"}}))
    .await;
    assert_eq!(raw.status, 201, "{l}: {}", raw.text());
    let raw = raw.json()["id"].as_str().unwrap().to_string();
    let (_, url) = admin.link(&bot).await;
    let moved = t
        .client
        .post_json(
            &path_of(&url),
            &json!({"chatId": 9, "stepId": raw, "tracker": {"amount": "1,\"admin\":true"}}),
        )
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{l}: {}", moved.text());
    let got = rx.wait_for(1, Duration::from_secs(20)).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({"amount": "1,\"admin\":true", "ok": true}),
        "{l}"
    );
    // An imported postback id must be random enough to be a secret.
    for guessable in ["00000000-0000-0000-0000-000000000000", bot.as_str()] {
        let reply = admin
            .call(
                "PUT",
                &format!("/api/bots/{bot}/webhooks/{guessable}"),
                None,
            )
            .await;
        assert_eq!(
            reply.json()["error"]["code"],
            "guessable_postback_id",
            "{l}: {guessable}"
        );
    }
}

async fn answers_carry_security_headers_and_links_need_a_trusted_origin(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Headers").await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let reply = t
        .client
        .send(
            "GET",
            &format!("/api/bots/{bot}"),
            &[
                ("authorization", auth.as_str()),
                ("x-request-id", "trace-abc-123"),
            ],
            "",
        )
        .await
        .unwrap();
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{l}"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{l}");
    assert_eq!(reply.header("x-request-id"), Some("trace-abc-123"), "{l}");
    // Without public_base_url, a link is built from the request's origin only when that is
    // this machine; a Host set by anyone else gives a path and says why.
    let forged = t
        .client
        .send(
            "POST",
            &format!("/api/bots/{bot}/webhooks"),
            &[
                ("authorization", auth.as_str()),
                ("host", "hooks.attacker.example"),
            ],
            "",
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 201, "{l}: {}", forged.text());
    let link = forged.json();
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with("/api/bots/webhooks/"),
        "{l}: {link}"
    );
    assert!(link["urlWarning"].is_string(), "{l}: {link}");
    assert!(!forged.text().contains("attacker"), "{l}");
    // The ingest path key is shown with the key only, and the old derivation from the
    // stored hash opens nothing.
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "keys"})))
        .await
        .json();
    let sid = service["id"].as_str().unwrap().to_string();
    let key = service["ingestKey"].as_str().unwrap();
    let with_key = path_of(service["ingestUrlWithKey"].as_str().unwrap());
    let read = admin.get(&format!("/api/calls/services/{sid}")).await;
    assert!(!read.to_string().contains("pk_"), "{l}: {read}");
    let hash = hex(&hmac_sha256::Hash::hash(key.as_bytes()));
    let derived = hex(&hmac_sha256::Hash::hash(
        format!("ingest-path:{hash}").as_bytes(),
    ));
    let legacy = format!("/api/calls/services/{sid}/events/pk_{}", &derived[..48]);
    let event = "?id=5&hook_event=Call+is+over";
    let refused = t.client.get(&format!("{legacy}{event}")).await.unwrap();
    assert_eq!(refused.status, 401, "{l}: {}", refused.text());
    let opened = t.client.get(&format!("{with_key}{event}")).await.unwrap();
    assert_eq!(opened.status, 200, "{l}: {}", opened.text());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
