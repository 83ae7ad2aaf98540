//! `GET|POST /api/bots/webhooks/{postbackId}/updateDialog` on the real app, called as
//! Keitaro, a PHP script, a form and a JSON client would call it.

use serde_json::{Value, json};

use crate::common::urlencode;
use crate::common::{Admin, real_app, serve, snapshot};

const STEP: &str = "046050f6-38f6-4b18-b9fa-e6582f5352d0";

/// A bot with typed custom fields, a step and a postback link.
struct Funnel {
    bot: String,
    link: String,
}

async fn funnel(admin: &Admin) -> Funnel {
    let bot = admin.bot("Casino funnel").await;
    for (key, kind) in [
        ("userBalance", "number"),
        ("reg_status", "boolean"),
        ("user_id", "string"),
        ("regDate", "date"),
    ] {
        admin
            .put(
                &format!("/api/bots/{bot}/fields/{key}"),
                json!({ "type": kind }),
            )
            .await;
    }
    admin
        .put(
            &format!("/api/bots/{bot}/steps/{STEP}"),
            json!({"key": "deposit", "kind": "message"}),
        )
        .await;
    let (link, _) = admin.link(&bot).await;
    Funnel { bot, link }
}

fn path(link: &str, query: &str) -> String {
    format!("/api/bots/webhooks/{link}/updateDialog?{query}")
}

#[tokio::test(flavor = "multi_thread")]
async fn keitaro_get_moves_the_step_and_writes_typed_fields_tracker_fields_and_tags() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    let query = format!(
        "chatId=1227280&stepId={STEP}&status=manual&userBalance=5000&tracker.clickid={}&addTags=vip,depositor&refID=12345",
        urlencode("abc&d e Кир")
    );
    let reply = client.get(&path(&f.link, &query)).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["ok"], true);
    assert_eq!(body["undefinedFields"], json!(["refID"]));
    let dialog = admin
        .get(&format!("/api/bots/{}/dialogs/1227280", f.bot))
        .await;
    // The answer carries what this postback wrote, as written, and nothing else.
    assert_eq!(
        body["applied"],
        json!({"stepId": STEP, "stepKey": "deposit", "status": "manual",
               "fields": {"userBalance": 5000, "refID": "12345"},
               "tracker": {"clickid": "abc&d e Кир"}, "addTags": ["vip", "depositor"]})
    );
    assert!(body.get("dialog").is_none(), "{body}");
    assert_eq!(dialog["stepId"], STEP);
    assert_eq!(dialog["stepKey"], "deposit");
    assert_eq!(dialog["status"], "manual");
    assert_eq!(dialog["fields"]["userBalance"], json!(5000));
    assert_eq!(dialog["fields"]["refID"], json!("12345"));
    assert_eq!(dialog["tracker"]["clickid"], "abc&d e Кир");
    assert_eq!(dialog["tags"], json!(["vip", "depositor"]));
    assert_eq!(dialog["started"], false);
    assert_eq!(dialog["chatId"], json!(1227280));
}

#[tokio::test(flavor = "multi_thread")]
async fn php_style_unescaped_get_is_read_as_meant() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    // Built by string concatenation: a literal %, a | and raw braces, nothing escaped.
    let query = format!(
        "chatId=-1001227280&fields.reg_status=1&fields.user_id=u|42{{x}}&details.note=100%&stepId={STEP}"
    );
    let reply = client.get(&path(&f.link, &query)).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["chatId"], json!(-1001227280_i64));
    let d = &reply.json()["applied"];
    assert_eq!(d["fields"]["reg_status"], json!(true));
    assert_eq!(d["fields"]["user_id"], "u|42{x}");
    assert_eq!(d["fields"]["note"], "100%");
    assert_eq!(d["stepKey"], "deposit");
}

#[tokio::test(flavor = "multi_thread")]
async fn post_form_and_post_json_update_the_same_dialog() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    let form = client
        .send(
            "POST",
            &path(&f.link, "chatId=77"),
            &[("content-type", "application/x-www-form-urlencoded")],
            "userBalance=12.5&tracker.utm_source=fb&regDate=1710092972",
        )
        .await
        .unwrap();
    assert_eq!(form.status, 200, "{}", form.text());
    let json_reply = client
        .post_json(
            &format!("/api/bots/webhooks/{}/updateDialog", f.link),
            &json!({"chatId": 77, "status": "blocked",
                    "fields": {"reg_status": false}, "tracker": {"sub1": 5},
                    "removeTags": ["none"], "addTag": ["lead"]}),
        )
        .await
        .unwrap();
    assert_eq!(json_reply.status, 200, "{}", json_reply.text());
    let d = admin.get(&format!("/api/bots/{}/dialogs/77", f.bot)).await;
    assert_eq!(d["fields"]["userBalance"], json!(12.5));
    assert_eq!(d["fields"]["regDate"], "2024-03-10T17:49:32.000Z");
    assert_eq!(d["fields"]["reg_status"], json!(false));
    assert_eq!(d["tracker"], json!({"utm_source": "fb", "sub1": "5"}));
    assert_eq!(d["status"], "blocked");
    assert_eq!(d["tags"], json!(["lead"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_postback_is_a_json_4xx_naming_the_parameter_and_stores_nothing() {
    let (app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    client
        .get(&path(&f.link, "chatId=5&userBalance=1"))
        .await
        .unwrap();
    let before = snapshot(&app);
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(&str, String, &str, u16, &str, Value)> = vec![
        (
            "GET",
            "refID=1".into(),
            "",
            400,
            "missing_chat_id",
            json!("chatId"),
        ),
        (
            "GET",
            "chatId=12ab&refID=1".into(),
            "",
            422,
            "bad_chat_id",
            json!("chatId"),
        ),
        (
            "GET",
            "chatId=99999999999999999999".into(),
            "",
            422,
            "bad_chat_id",
            json!("chatId"),
        ),
        (
            "GET",
            "chatId=5&refID=2&stepId=00000000-0000-4000-8000-000000000000".into(),
            "",
            404,
            "unknown_step",
            json!("stepId"),
        ),
        (
            "GET",
            "chatId=5&refID=2&status=sleeping".into(),
            "",
            422,
            "bad_status",
            json!("status"),
        ),
        (
            "GET",
            "chatId=5&refID=2&userBalance=lots".into(),
            "",
            422,
            "wrong_type",
            json!("userBalance"),
        ),
        (
            "GET",
            "chatId=5&refID=2&fields.reg_status=maybe".into(),
            "",
            422,
            "wrong_type",
            json!("fields.reg_status"),
        ),
        (
            "GET",
            "chatId=5&refID=2&regDate=yesterday".into(),
            "",
            422,
            "wrong_type",
            json!("regDate"),
        ),
        (
            "GET",
            "chatId=5&bad%20key=1".into(),
            "",
            422,
            "bad_key",
            json!("bad key"),
        ),
        (
            "GET",
            format!("chatId=5&refID=2&note={}", "y".repeat(5000)),
            "",
            422,
            "value_too_long",
            json!("note"),
        ),
        (
            "POST",
            "chatId=5".into(),
            big.as_str(),
            413,
            "body_too_large",
            json!("body"),
        ),
        (
            "POST",
            "chatId=5".into(),
            "{\"chatId\": [1]}",
            422,
            "bad_chat_id",
            json!("chatId"),
        ),
    ];
    // What is kept: every case but the body past the limit (never read), in some order (each
    // is kept just after its answer).
    let mut codes: Vec<&str> = cases.iter().filter(|c| c.3 != 413).map(|c| c.4).collect();
    codes.sort_unstable();
    for (method, query, body, status, code, field) in cases {
        let headers: &[(&str, &str)] = if body.starts_with('{') {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let reply = client
            .send(method, &path(&f.link, &query), headers, body.to_string())
            .await
            .unwrap();
        assert_eq!(reply.status, status, "{query}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let e = &reply.json()["error"];
        assert_eq!(e["code"], code, "{query}");
        assert_eq!(e["field"], field, "{query}");
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    // Nothing but the bot's list of refused postbacks, one entry each, newest first (kept
    // after the answer: the last one may land a moment later).
    let mut listed = Vec::new();
    for _ in 0..50 {
        let page = admin
            .get(&format!("/api/bots/{}/refused-postbacks?limit=200", f.bot))
            .await;
        listed = page["items"].as_array().unwrap().clone();
        if listed.len() >= codes.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    let mut kept_codes: Vec<&str> = listed.iter().map(|r| r["code"].as_str().unwrap()).collect();
    kept_codes.sort_unstable();
    assert_eq!(
        kept_codes, codes,
        "one refused postback kept per readable case"
    );
    let (refused, kept): (Vec<_>, Vec<_>) = snapshot(&app)
        .into_iter()
        .partition(|(k, _)| k.starts_with("refused:"));
    assert_eq!(
        refused.len(),
        listed.len() + 1,
        "the entries and their counter"
    );
    assert_eq!(kept, before, "rejected postbacks stored something");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_revoked_and_deleted_bot_links_are_the_same_404() {
    let (app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    let never = client
        .get(&path("55833627-242e-4061-9b0a-30da3e9cf7d4", "chatId=1"))
        .await
        .unwrap();
    let revoke = admin
        .call(
            "DELETE",
            &format!("/api/bots/{}/webhooks/{}", f.bot, f.link),
            None,
        )
        .await;
    assert_eq!(revoke.status, 204);
    let before = snapshot(&app);
    let revoked = client.get(&path(&f.link, "chatId=1&x=1")).await.unwrap();
    let other = funnel(&admin).await;
    admin
        .call("DELETE", &format!("/api/bots/{}", other.bot), None)
        .await;
    let deleted = client.get(&path(&other.link, "chatId=1")).await.unwrap();
    let garbage = client.get(&path("not-a-uuid", "chatId=1")).await.unwrap();
    for reply in [&never, &revoked, &deleted, &garbage] {
        assert_eq!(reply.status, 404);
        assert_eq!(reply.body, never.body, "the 404 must not tell these apart");
    }
    assert_eq!(never.json()["error"]["code"], "unknown_webhook");
    let after = snapshot(&app);
    assert!(
        after
            .iter()
            .all(|(k, _)| !k.starts_with(&format!("dlg:{}:1", f.bot)))
    );
    assert!(before.len() <= after.len());
    // A body that cannot be read is refused before the link is: kept only for a link that
    // exists, of a bot that exists; a made-up id that holds a bot's id gets nothing kept.
    let made_up = format!("{}{}", f.bot.replace('-', ""), "ab".repeat(16));
    for link in [&f.link, &other.link, &made_up] {
        let reply = client
            .send(
                "POST",
                &path(link, "chatId=1"),
                &[("content-type", "application/json")],
                "{".to_string(),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{}", reply.text());
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let kept: Vec<String> = snapshot(&app)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("refused:"))
        .collect();
    assert_eq!(
        kept,
        Vec::<String>::new(),
        "refusals kept for links that open nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_get_a_json_405() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    let reply = client
        .send("PUT", &path(&f.link, "chatId=1"), &[], "")
        .await
        .unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["error"]["code"], "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_posted_before_the_chat_starts_is_merged_when_the_bot_engine_starts_it() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    let pre = client
        .get(&path(
            &f.link,
            &format!(
                "chatId=555&stepId={STEP}&userBalance=10&tracker.clickid=old&tracker.sub2=kept"
            ),
        ))
        .await
        .unwrap();
    assert_eq!(pre.json()["created"], true);
    let pending = admin.get(&format!("/api/bots/{}/dialogs/555", f.bot)).await;
    assert_eq!(pending["createdAt"], Value::Null);
    let start = admin
        .call(
            "PUT",
            &format!("/api/bots/{}/dialogs/555", f.bot),
            Some(json!({"username": "ivan", "name": "Иван", "tracker": {"clickid": "c-1", "utm_source": "tg"}})),
        )
        .await;
    assert_eq!(start.status, 200, "the dialog existed: {}", start.text());
    let d = start.json();
    assert_eq!(d["started"], true);
    assert_eq!(d["username"], "ivan");
    assert_eq!(d["name"], "Иван");
    assert_eq!(d["stepKey"], "deposit", "pre-assigned step kept");
    assert_eq!(
        d["fields"]["userBalance"],
        json!(10),
        "pre-assigned field kept"
    );
    assert_eq!(
        d["tracker"],
        json!({"clickid": "c-1", "sub2": "kept", "utm_source": "tg"}),
        "the start wins key by key"
    );
    let created_at = d["createdAt"].as_str().unwrap().to_string();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "{created_at}"
    );
    // A second start keeps createdAt.
    let again = admin
        .put(
            &format!("/api/bots/{}/dialogs/555", f.bot),
            json!({"name": "Ivan"}),
        )
        .await;
    assert_eq!(again["createdAt"], created_at.as_str());
    assert_eq!(again["name"], "Ivan");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_postbacks_on_a_chat_that_has_not_started_keep_all_200_fields() {
    let (app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            let url = path(&f.link, &format!("chatId=424242&field{i}=v{i}"));
            tokio::spawn(async move { client.get(&url).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        created += usize::from(reply.json()["created"] == true);
    }
    let d = admin
        .get(&format!("/api/bots/{}/dialogs/424242", f.bot))
        .await;
    let fields = d["fields"].as_object().unwrap();
    let missing: Vec<_> = (0..200)
        .filter(|i| fields.get(&format!("field{i}")) != Some(&json!(format!("v{i}"))))
        .collect();
    assert!(missing.is_empty(), "lost fields: {missing:?}");
    assert_eq!(created, 1, "exactly one postback creates the dialog");
    let list = admin.get(&format!("/api/bots/{}/dialogs", f.bot)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(
        app.kv().keys("default").len() < 40,
        "no per-postback garbage left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_header_posing_as_spins_route_match_does_not_pick_the_link() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let f = funnel(&admin).await;
    // Spin adds its own spin-path-match-* after the client's headers; the link is the
    // path's, never a header the caller wrote.
    let reply = client
        .send(
            "GET",
            &path("00000000-0000-4000-8000-000000000000", "chatId=1"),
            &[("spin-path-match-postback-id", f.link.as_str())],
            "",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text());
    let list = admin.get(&format!("/api/bots/{}/dialogs", f.bot)).await;
    assert_eq!(list["items"], json!([]), "nothing was written");
}
