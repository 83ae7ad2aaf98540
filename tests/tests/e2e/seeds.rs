//! Every literal example of the seed documents (`../shared/seeds/`), run against the app with
//! only the origin changed (and, where a seed shows placeholders, the ids), asserting what
//! the seed says happens. Written once as scenarios, run on the test host here and under the
//! real `spin up` with the other scenarios.

use std::time::Duration;

use funnelhooks_testhost::Receiver;
use serde_json::{Value, json};

use crate::common::{Admin, real_app, serve};
use crate::scenarios::Target;

/// Runs every seed's examples against `t`.
pub async fn run_all(t: &Target) {
    seed_000_the_keitaro_postback_example_reaches_keitaro(t).await;
    seed_001_postback_links_move_from_chatterfy_with_only_the_origin_changed(t).await;
    seed_001_template_examples_render_as_the_seed_says(t).await;
    seed_002_callkeeper_hooks_as_the_form_holds_them(t).await;
    seed_002_callkeeper_sends_to_us_as_its_form_is_filled(t).await;
    seed_003_the_bothelp_profile_is_the_seeds_member_for_member(t).await;
}

/// Seed 001's link ids, the first as Chatterfy issues them, the second as its docs print it.
const LINK: &str = "55833627-242e-4061-9b0a-30da3e9cf7d4";
const LINK_DOCS: &str = "8f1el0ed-a1d2-4a9d-bc30-2e19f2062789";
/// Seed 001's step id.
const STEP: &str = "046050f6-38f6-4b18-b9fa-e6582f5352d0";

fn path_of(url: &str) -> String {
    url.split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap()
}

/// `POST /api/templates/preview` for a real dialog: the output and the lint codes.
async fn preview(admin: &Admin, bot: &str, chat: i64, template: &str, target: &str) -> Value {
    let reply = admin
        .call(
            "POST",
            "/api/templates/preview",
            Some(json!({"template": template, "target": target, "botId": bot, "chatId": chat})),
        )
        .await;
    assert_eq!(reply.status, 200, "{template}: {}", reply.text());
    reply.json()
}

/// Seed 000: the Keitaro postback, copied into a send-webhook step with only the origin
/// changed, sends the user's click id, username, chat id and dialog start.
pub async fn seed_000_the_keitaro_postback_example_reaches_keitaro(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("Keitaro seed").await;
    let url = format!(
        "{}/25123a/postback?subid={{tracker.clickid}}&username={{username}}&chatid={{chatId}}&startdialogue={{createdAt}}",
        rx.url()
    );
    let step = "9b2f7c1e-4d3a-4e5f-8a6b-7c8d9e0f1a2b";
    admin
        .put(
            &format!("/api/bots/{bot}/steps/{step}"),
            json!({"key": "lead", "kind": "send-webhook", "webhook": {"url": url}}),
        )
        .await;
    admin
        .put(
            &format!("/api/bots/{bot}/fields/refID"),
            json!({"type": "string"}),
        )
        .await;
    let dialog = admin
        .put(
            &format!("/api/bots/{bot}/dialogs/1227280"),
            json!({"username": "ivan_petrov", "tracker": {"clickid": "3a5f9c2e1b"}}),
        )
        .await;
    let (_, link) = admin.link(&bot).await;
    let moved = t
        .client
        .get(&format!(
            "{}?chatId=1227280&stepId={step}&refID=12345",
            path_of(&link)
        ))
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{l}: {}", moved.text());
    let got = rx.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "{l}");
    let q = got[0].query();
    let created = dialog["createdAt"].as_str().unwrap().to_string();
    assert_eq!(
        q,
        [
            ("subid".to_string(), "3a5f9c2e1b".to_string()),
            ("username".to_string(), "ivan_petrov".to_string()),
            ("chatid".to_string(), "1227280".to_string()),
            ("startdialogue".to_string(), created.clone()),
        ],
        "{l}"
    );
    // `{createdAt}` as the seed shows it: 2024-03-10T17:49:32.806Z.
    assert!(created.len() == 24 && created.ends_with('Z') && created.as_bytes()[19] == b'.');
    // The seed's list of variables: {username} {chatId} {stepKey} {createdAt}
    // {KEYCUSTOMFIELD} {tracker.KEYTRACKERFIELD}.
    let all = preview(
        &admin,
        &bot,
        1227280,
        "{username}|{chatId}|{stepKey}|{createdAt}|{refID}|{tracker.clickid}",
        "text",
    )
    .await;
    assert_eq!(
        all["output"],
        format!("ivan_petrov|1227280|lead|{created}|12345|3a5f9c2e1b"),
        "{l}"
    );
}

/// Seed 001: Chatterfy's postback links imported, every example URL sent with only the
/// origin changed, data assigned before the chat starts and found after.
pub async fn seed_001_postback_links_move_from_chatterfy_with_only_the_origin_changed(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Chatterfy seed").await;
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
    for id in [LINK, LINK_DOCS] {
        let imported = admin
            .call("PUT", &format!("/api/bots/{bot}/webhooks/{id}"), None)
            .await;
        assert_eq!(imported.status, 201, "{l}: {}", imported.text());
        let url = imported.json()["url"].as_str().unwrap().to_string();
        assert!(
            url.ends_with(&format!("/api/bots/webhooks/{id}/updateDialog")),
            "{l}: only the origin differs from Chatterfy's: {url}"
        );
    }
    let again = admin
        .call("PUT", &format!("/api/bots/{bot}/webhooks/{LINK}"), None)
        .await;
    assert_eq!(again.status, 200, "{l}: importing twice changes nothing");
    let other = admin.bot("Another bot").await;
    let taken = admin
        .call("PUT", &format!("/api/bots/{other}/webhooks/{LINK}"), None)
        .await;
    assert_eq!(taken.status, 409, "{l}: {}", taken.text());
    assert_eq!(taken.json()["error"]["code"], "postback_id_in_use");

    let send = |id: &str, query: &str| {
        let path = format!("/api/bots/webhooks/{id}/updateDialog?{query}");
        let client = t.client.clone();
        async move { client.get(&path).await.unwrap() }
    };
    // "Переключения шагов": chatId and stepId, before the chat has started the bot.
    let moved = send(LINK, &format!("chatId=1227280&stepId={STEP}")).await;
    assert_eq!(moved.status, 200, "{l}: {}", moved.text());
    // The answer says what the postback did and wrote, nothing more (the link is shared
    // with a tracker: it reads no dialog).
    assert_eq!(
        moved.json(),
        json!({"ok": true, "chatId": 1227280, "created": true, "changed": true,
               "applied": {"stepId": STEP, "stepKey": "deposit"},
               "undefinedFields": [], "webhookQueued": false}),
        "{l}"
    );
    // Example 1 and 2, through the docs' link id.
    for query in [
        "chatId=1227280&refID=12345",
        "chatId=1227280&userBalance=5000",
    ] {
        let r = send(LINK_DOCS, query).await;
        assert_eq!(r.status, 200, "{l}: {query}: {}", r.text());
    }
    // "status=auto/manual/blocked" and "details.KEYCUSTOMFIELD=params".
    for status in ["manual", "blocked", "auto"] {
        let r = send(LINK, &format!("chatId=1227280&status={status}")).await;
        assert_eq!(r.json()["applied"]["status"], status, "{l}");
    }
    let r = send(LINK, "chatId=1227280&details.source=params").await;
    assert_eq!(r.json()["applied"]["fields"]["source"], "params", "{l}");
    // The chat starts: everything assigned in advance is there.
    let started = admin
        .put(
            &format!("/api/bots/{bot}/dialogs/1227280"),
            json!({"username": "ivan_petrov", "name": "Ivan"}),
        )
        .await;
    assert_eq!(started["started"], true, "{l}");
    assert_eq!(started["stepKey"], "deposit", "{l}");
    assert_eq!(started["fields"]["refID"], "12345", "{l}");
    assert_eq!(
        started["fields"]["userBalance"], 5000,
        "{l}: typed by its definition"
    );
    // The FAQ: `?chatId=123&stepId=[step]&status=auto`.
    let faq = send(LINK, &format!("chatId=123&stepId={STEP}&status=auto")).await;
    assert_eq!(faq.status, 200, "{l}: {}", faq.text());
    // A bare key in another letter case finds the one defined field it matches.
    let r = send(LINK, "chatId=1227280&userbalance=7000").await;
    assert_eq!(r.json()["applied"]["fields"]["userBalance"], 7000, "{l}");
    assert_eq!(r.json()["undefinedFields"], json!([]), "{l}");
    // Revoked here, the imported id is free for another bot.
    admin
        .call("DELETE", &format!("/api/bots/{bot}/webhooks/{LINK}"), None)
        .await;
    assert_eq!(send(LINK, "chatId=1").await.status, 404, "{l}");
    let moved_over = admin
        .call("PUT", &format!("/api/bots/{other}/webhooks/{LINK}"), None)
        .await;
    assert_eq!(moved_over.status, 201, "{l}: {}", moved_over.text());
}

/// Seed 001's templates: `{{…}}` variables, a custom field read in another letter case, tracker
/// fields, the FAQ's `{fields.chatId}`, a lead without tracker data.
pub async fn seed_001_template_examples_render_as_the_seed_says(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Templates seed").await;
    let (_, link) = admin.link(&bot).await;
    let link = path_of(&link);
    for query in [
        "chatId=1227280&refID=12345",
        "chatId=1227280&tracker.ad_name=test&tracker.clickid=test123",
    ] {
        let r = t.client.get(&format!("{link}?{query}")).await.unwrap();
        assert_eq!(r.status, 200, "{l}: {}", r.text());
    }
    let dialog = admin
        .put(
            &format!("/api/bots/{bot}/dialogs/1227280"),
            json!({"username": "ivan_petrov", "name": "Ivan"}),
        )
        .await;
    let created = dialog["createdAt"].as_str().unwrap();
    let cases = [
        (
            "https://some.service.com/signup?refId={{fields.refId}}",
            "url",
            "https://some.service.com/signup?refId=12345".to_string(),
        ),
        (
            "https://some.service.com/signup?ad_name={{tracker.ad_name}}",
            "url",
            "https://some.service.com/signup?ad_name=test".to_string(),
        ),
        (
            "https://partner.com/signup?sub1={{tracker.clickid}}",
            "url",
            "https://partner.com/signup?sub1=test123".to_string(),
        ),
        ("Hello, {{name}}", "text", "Hello, Ivan".to_string()),
        (
            "{{chatId}} {{username}} {{name}} {{createdAt}}",
            "text",
            format!("1227280 ivan_petrov Ivan {created}"),
        ),
        (
            "https://test.com?chatId={fields.chatId}",
            "url",
            "https://test.com?chatId=1227280".to_string(),
        ),
    ];
    for (template, target, expected) in cases {
        let out = preview(&admin, &bot, 1227280, template, target).await;
        assert_eq!(out["output"], expected, "{l}: {template}: {out}");
    }
    // `refId` matches the stored `refID` only by letter case: used, and the lint says so.
    let out = preview(&admin, &bot, 1227280, "{{fields.refId}}", "text").await;
    let kinds: Vec<&str> = out["lints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["field_case"], "{l}: {out}");
    // The exception: a lead that came outside a campaign has no tracker data.
    let r = t
        .client
        .get(&format!("{link}?chatId=555&status=auto"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{l}");
    let out = preview(
        &admin,
        &bot,
        555,
        "https://partner.com/signup?sub1={{tracker.clickid}}",
        "url",
    )
    .await;
    assert_eq!(out["output"], "https://partner.com/signup?sub1=", "{l}");
    assert_eq!(out["missing"], json!(["tracker.clickid"]), "{l}");
}

/// Seed 002's call parameters, as its list writes them.
const SEED_PARAMETERS: [&str; 40] = [
    "id",
    "visit_info",
    "current",
    "first",
    "session pgs",
    "cpg",
    "udata vst",
    "uag",
    "status_code",
    "status_reason",
    "status2_code",
    "status2_reason",
    "ip",
    "country",
    "city",
    "region",
    "district",
    "site",
    "ga_clientid",
    "phone1",
    "phone2",
    "widget_hash",
    "date",
    "duration_sec",
    "a_type",
    "asr_attempts",
    "attempt",
    "date_timestamp",
    "duration_min",
    "event_source",
    "hook_event",
    "order_date",
    "playback_tick",
    "record_url",
    "roistat_visit",
    "tags",
    "ga_clid",
    "widget_name",
    "ya_clientid",
    "uip",
];

/// Seed 002/004: a hook filled in as CallKeeper's form holds it (host, port, protocol, path,
/// parameter rows, method, event type, content type), edited with the pencil, deleted with
/// the trash can; every parameter of the seed's list can be chosen.
pub async fn seed_002_callkeeper_hooks_as_the_form_holds_them(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let listed = admin.get("/api/calls/parameters").await;
    let names: Vec<&str> = listed["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, SEED_PARAMETERS, "{l}: the seed's list, in its order");
    let rx = Receiver::start().await.unwrap();
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "ckct"})))
        .await
        .json();
    let id = service["id"].as_str().unwrap().to_string();
    let key = service["ingestKey"].as_str().unwrap().to_string();
    // "+ Адрес": host, port, protocol; path (up to the "?"); rows name → value; GET; end.
    let form = json!({
        "protocol": "http", "host": "127.0.0.1", "port": rx.port(), "path": "/crm/calls",
        "parameters": SEED_PARAMETERS.iter().map(|p| json!({"name": p.replace(' ', "_"), "param": p})).collect::<Vec<_>>(),
        "method": "GET", "event": "Call is over", "contentType": "application/json",
    });
    let hook = admin
        .call(
            "POST",
            &format!("/api/calls/services/{id}/hooks"),
            Some(form),
        )
        .await;
    assert_eq!(hook.status, 201, "{l}: {}", hook.text());
    let hook = hook.json()["id"].as_str().unwrap().to_string();
    // A start hook: data known only after the call goes empty.
    let start = json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                       "path": "/crm/start", "event": "Call is processing",
                       "parameters": [{"name": "call", "param": "id"},
                                      {"name": "secs", "param": "duration_sec"}]});
    let added = admin
        .call(
            "POST",
            &format!("/api/calls/services/{id}/hooks"),
            Some(start),
        )
        .await;
    assert_eq!(added.status, 201, "{l}: {}", added.text());
    let call = |event: &str| {
        json!({"id": 88412, "hook_event": event,
               "visit_info": {"utm_source": "google"}, "city": "Москва", "duration_sec": 95,
               "date": "2018-12-04 12:14:54", "record_url": "", "roistat_visit": null,
               "tags": " ", "widget_name": "custom css"})
    };
    let ingest = format!("/api/calls/services/{id}/events?key={key}");
    for event in [" Call is processing", "Call is over"] {
        let r = t.client.post_json(&ingest, &call(event)).await.unwrap();
        assert_eq!(r.status, 200, "{l}: {}", r.text());
    }
    let got = rx.wait_for(2, Duration::from_secs(20)).await;
    let start_got = got
        .iter()
        .find(|r| r.path_and_query.starts_with("/crm/start"))
        .unwrap();
    assert_eq!(
        start_got.path_and_query, "/crm/start?call=88412&secs=",
        "{l}"
    );
    let end_got = got
        .iter()
        .find(|r| r.path_and_query.starts_with("/crm/calls"))
        .unwrap();
    let q: Vec<(String, String)> = end_got.query();
    let value = |n: &str| q.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(value("id").as_deref(), Some("88412"), "{l}");
    assert_eq!(value("city").as_deref(), Some("Москва"), "{l}");
    assert_eq!(value("duration_sec").as_deref(), Some("95"), "{l}");
    assert_eq!(
        value("visit_info").as_deref(),
        Some(r#"{"utm_source":"google"}"#),
        "{l}"
    );
    assert_eq!(q.len(), 40, "{l}: every row is sent");
    // The pencil: edit; the trash can: delete.
    let hook_path = format!("/api/calls/services/{id}/hooks/{hook}");
    let edited = admin
        .call("PATCH", &hook_path, Some(json!({"method": "POST"})))
        .await;
    assert_eq!(edited.status, 200, "{l}: {}", edited.text());
    assert_eq!(admin.status("DELETE", &hook_path).await, 204, "{l}");
}

/// Seed 002/004 the other way round: CallKeeper, configured field by field (host, port,
/// protocol, path; rows named after its parameters; GET, or POST as JSON or a form), sends
/// its calls to us, and they fan out to our hooks. The key travels in the path, since the
/// form has no header and its path stops before `?`.
pub async fn seed_002_callkeeper_sends_to_us_as_its_form_is_filled(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let service = admin
        .call(
            "POST",
            "/api/calls/services",
            Some(json!({"name": "from ckct"})),
        )
        .await
        .json();
    let id = service["id"].as_str().unwrap().to_string();
    let our_hook = json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                          "path": "/crm", "event": "end",
                          "parameters": [{"name": "call", "param": "id"},
                                         {"name": "town", "param": "city"}]});
    let added = admin
        .call(
            "POST",
            &format!("/api/calls/services/{id}/hooks"),
            Some(our_hook),
        )
        .await;
    assert_eq!(added.status, 201, "{l}: {}", added.text());
    // What CallKeeper's form gets: the path of the ingest URL shown with the new key.
    let path = service["ingestPath"].as_str().unwrap().to_string();
    assert!(!path.contains('?'), "{l}: {path}");
    assert_eq!(
        service["ingestUrlWithKey"].as_str().unwrap(),
        format!("{}{path}", t.client.base()),
        "{l}"
    );
    // Rows named after the parameters they carry.
    let rows = [
        ("id", "1001"),
        ("hook_event", "Call is over"),
        ("city", "Омск"),
    ];
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rows)
        .finish();
    let get = t.client.get(&format!("{path}?{query}")).await.unwrap();
    assert_eq!(get.status, 200, "{l}: GET: {}", get.text());
    let json_rows = json!({"id": "1002", "hook_event": "Call is over", "city": "Омск"});
    let post = t.client.post_json(&path, &json_rows).await.unwrap();
    assert_eq!(post.status, 200, "{l}: POST JSON: {}", post.text());
    let form_rows = query.replace("1001", "1003");
    let form = t
        .client
        .send(
            "POST",
            &path,
            &[("content-type", "application/x-www-form-urlencoded")],
            form_rows,
        )
        .await
        .unwrap();
    assert_eq!(form.status, 200, "{l}: POST form: {}", form.text());
    let got = rx.wait_for(3, Duration::from_secs(20)).await;
    let mut calls: Vec<String> = got.iter().map(|r| r.path_and_query.clone()).collect();
    calls.sort();
    let town = "town=%D0%9E%D0%BC%D1%81%D0%BA";
    assert_eq!(
        calls,
        [
            format!("/crm?call=1001&{town}"),
            format!("/crm?call=1002&{town}"),
            format!("/crm?call=1003&{town}"),
        ],
        "{l}"
    );
    // Rotating the key retires the URL.
    let rotated = admin
        .call(
            "POST",
            &format!("/api/calls/services/{id}/ingest-key"),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{l}");
    let old = t
        .client
        .get(&format!("{path}?id=1004&hook_event=Call%20is%20over"))
        .await
        .unwrap();
    assert_eq!(old.status, 401, "{l}: {}", old.text());
    let new_path = path_of(rotated.json()["ingestUrlWithKey"].as_str().unwrap());
    assert_ne!(new_path, path, "{l}");
    let new = t
        .client
        .get(&format!("{new_path}?id=1004&hook_event=Call%20is%20over"))
        .await
        .unwrap();
    assert_eq!(new.status, 200, "{l}: {}", new.text());
}

/// Seed 003: a "Send subscriber data via webhook" step POSTs JSON with BotHelp's members, of
/// BotHelp's types (custom fields as text), without being told to POST.
pub async fn seed_003_the_bothelp_profile_is_the_seeds_member_for_member(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("BotHelp seed").await;
    admin
        .put(
            &format!("/api/bots/{bot}/fields/age"),
            json!({"type": "number"}),
        )
        .await;
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "crm", "kind": "send-webhook",
                        "webhook": {"url": format!("{}/bothelp", rx.url()), "body": "profile"}})),
        )
        .await;
    assert_eq!(step.status, 201, "{l}: {}", step.text());
    assert_eq!(
        step.json()["webhook"]["method"],
        "POST",
        "{l}: a profile is POSTed"
    );
    let step = step.json()["id"].as_str().unwrap().to_string();
    admin
        .put(
            &format!("/api/bots/{bot}/dialogs/1941325716"),
            json!({"username": "john_wick", "name": "John Wick",
                   "tracker": {"utm_source": "VK", "utm_campaign": "messenger",
                               "utm_medium": "social_cpc", "utm_content": "123"}}),
        )
        .await;
    let (_, link) = admin.link(&bot).await;
    let query = format!(
        "chatId=1941325716&age=21&position=CEO%20at%20Pinapple&email=john@gmail.com&phone=%2B14123456789&stepId={step}"
    );
    let moved = t
        .client
        .get(&format!("{}?{query}", path_of(&link)))
        .await
        .unwrap();
    assert_eq!(moved.status, 200, "{l}: {}", moved.text());
    let got = rx.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].method, "POST", "{l}");
    assert_eq!(
        got[0].header("content-type"),
        Some("application/json"),
        "{l}"
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    let seed = json!({
        "created_at": 1499947711, "name": "John Wick", "first_name": "John", "last_name": "Wick",
        "profile_link": "https://fb.com/1941325716136721", "email": "john@gmail.com",
        "phone": "+14123456789", "conversations_count": 10, "first_contact_at": 1499944111,
        "last_contact_at": 1499944111, "user_id": "1234567890", "bothelp_user_id": "47659",
        "created_at_show": "14/07/2017 07:56:32 UTC", "cuid": "1et0.301",
        "utm_source": "VK", "utm_campaign": "messenger", "utm_medium": "social_cpc",
        "utm_content": "123", "age": "21", "position": "CEO at Pinapple",
    });
    let kind = |v: &Value| match v {
        Value::Number(_) => "number",
        Value::String(_) => "string",
        other => panic!("{l}: unexpected {other}"),
    };
    let (ours, theirs) = (body.as_object().unwrap(), seed.as_object().unwrap());
    let mut our_keys: Vec<&String> = ours.keys().collect();
    let mut seed_keys: Vec<&String> = theirs.keys().collect();
    our_keys.sort();
    seed_keys.sort();
    assert_eq!(our_keys, seed_keys, "{l}: member for member");
    for (k, v) in theirs {
        assert_eq!(kind(&ours[k]), kind(v), "{l}: {k} is a {}", kind(v));
    }
    assert_eq!(body["name"], "John Wick", "{l}");
    assert_eq!(
        (body["first_name"].clone(), body["last_name"].clone()),
        (json!("John"), json!("Wick"))
    );
    assert_eq!(body["user_id"], "1941325716", "{l}");
    assert_eq!(
        body["age"], "21",
        "{l}: custom fields as text, as BotHelp sends them"
    );
    assert_eq!(body["utm_source"], "VK", "{l}");
    assert_eq!(body["profile_link"], "https://t.me/john_wick", "{l}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_seed_example_works_on_the_test_host() {
    let (_app, _server, client) =
        serve(real_app().variable("allow_loopback_webhooks", "true")).await;
    let target = Target {
        label: "test host".into(),
        client,
        atomic: true,
    };
    run_all(&target).await;
}
