//! The management API under `/api/bots` on the real app: the token, bots, postback links,
//! custom fields, steps and dialogs.

use serde_json::json;

use crate::common::{ADMIN_TOKEN, Admin, real_app, serve, snapshot};

#[tokio::test(flavor = "multi_thread")]
async fn every_management_route_needs_the_admin_token() {
    let (app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    let before = snapshot(&app);
    let routes = [
        ("GET", "/api/bots".to_string()),
        ("POST", "/api/bots".to_string()),
        ("GET", format!("/api/bots/{bot}")),
        ("PATCH", format!("/api/bots/{bot}")),
        ("DELETE", format!("/api/bots/{bot}")),
        ("POST", format!("/api/bots/{bot}/webhooks")),
        ("GET", format!("/api/bots/{bot}/webhooks")),
        ("PUT", format!("/api/bots/{bot}/fields/refID")),
        (
            "PUT",
            format!("/api/bots/{bot}/steps/046050f6-38f6-4b18-b9fa-e6582f5352d0"),
        ),
        ("PUT", format!("/api/bots/{bot}/dialogs/1")),
        ("GET", format!("/api/bots/{bot}/dialogs")),
        // A route with an id that does not exist: the token is asked for before anything.
        ("GET", "/api/bots/nonexistent/dialogs".to_string()),
    ];
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    let short = format!("Bearer {}", &ADMIN_TOKEN[..5]);
    let basic = format!("Basic {ADMIN_TOKEN}");
    for (method, path) in &routes {
        for auth in [
            None,
            Some(wrong.as_str()),
            Some(short.as_str()),
            Some(basic.as_str()),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let reply = client
                .send(method, path, &headers, r#"{"name":"x","type":"number"}"#)
                .await
                .unwrap();
            assert_eq!(reply.status, 401, "{method} {path} with {auth:?}");
            assert_eq!(reply.json()["error"]["code"], "unauthorized");
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        }
    }
    assert_eq!(
        snapshot(&app),
        before,
        "unauthorised calls changed the store"
    );
    // Scheme and spacing are forgiven, the token is not.
    let ok = client
        .send(
            "GET",
            "/api/bots",
            &[("authorization", &format!("bearer  {ADMIN_TOKEN}"))],
            "",
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bots_are_created_listed_read_renamed_and_deleted_with_everything_they_own() {
    let (app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let a = admin.bot("Casino").await;
    let b = admin.bot("Crypto").await;
    assert_ne!(a, b);
    let list = admin.get("/api/bots").await;
    let names: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert_eq!(names, [json!("Casino"), json!("Crypto")]);
    let renamed = admin
        .call(
            "PATCH",
            &format!("/api/bots/{a}"),
            Some(json!({"name": "Casino 2"})),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.json()["name"], "Casino 2");
    // Give bot a links, fields, steps and dialogs, then delete it.
    let (link, _) = admin.link(&a).await;
    admin
        .put(
            &format!("/api/bots/{a}/fields/refID"),
            json!({"type": "string"}),
        )
        .await;
    admin
        .put(
            &format!("/api/bots/{a}/steps/046050f6-38f6-4b18-b9fa-e6582f5352d0"),
            json!({"key": "s", "kind": "message"}),
        )
        .await;
    for chat in 1..=3 {
        let r = client
            .get(&format!(
                "/api/bots/webhooks/{link}/updateDialog?chatId={chat}&refID=r&tracker.clickid=c"
            ))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let gone = admin.call("DELETE", &format!("/api/bots/{a}"), None).await;
    assert_eq!(gone.status, 204);
    assert_eq!(admin.status("GET", &format!("/api/bots/{a}")).await, 404);
    assert_eq!(admin.status("DELETE", &format!("/api/bots/{a}")).await, 404);
    let r = client
        .get(&format!("/api/bots/webhooks/{link}/updateDialog?chatId=1"))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "its links stop at once");
    // Its dialogs go with the next sweep, in the background.
    let sweep = admin.call("POST", "/api/deliveries/retry-due", None).await;
    assert_eq!(sweep.status, 200);
    assert_eq!(sweep.json()["cleaned"], 3, "{}", sweep.text());
    assert_eq!(sweep.json()["left"]["cleanupJobs"], 0);
    let left: Vec<String> = snapshot(&app).into_iter().map(|(k, _)| k).collect();
    assert!(
        left.iter().all(|k| !k.contains(&a)),
        "keys of the deleted bot remain: {left:?}"
    );
    let list = admin.get("/api/bots").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], b.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bot_bodies_are_422_or_400_naming_the_field() {
    let (app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let before = snapshot(&app);
    for (body, status, code, field) in [
        ("{}", 422, "missing_field", json!("name")),
        (r#"{"name": "  "}"#, 422, "missing_field", json!("name")),
        (r#"{"name": 5}"#, 422, "wrong_type", json!("name")),
        (
            r#"{"name": "a", "colour": "red"}"#,
            422,
            "unknown_field",
            json!("colour"),
        ),
        ("[1]", 400, "bad_json", json!("body")),
        ("{\"name\": ", 400, "bad_json", json!("body")),
    ] {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let reply = client
            .send(
                "POST",
                "/api/bots",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], code, "{body}");
        assert_eq!(reply.json()["error"]["field"], field, "{body}");
    }
    assert_eq!(snapshot(&app), before);
    assert_eq!(admin.status("GET", "/api/bots/not-a-bot").await, 404);
    assert_eq!(admin.status("PUT", "/api/bots").await, 405);
    assert_eq!(admin.status("GET", "/api/bots/x/y/z/w").await, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn postback_links_carry_a_full_url_and_can_be_listed_and_revoked() {
    let (_app, server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    let (first, url) = admin.link(&bot).await;
    let (second, _) = admin.link(&bot).await;
    assert_ne!(first, second);
    assert_eq!(
        url,
        format!("{}/api/bots/webhooks/{first}/updateDialog", server.url())
    );
    // The bot's id, then a random (v4) UUID's 32 hex digits.
    assert_eq!(first.len(), 64, "{first}");
    assert!(first.starts_with(&bot.replace('-', "")), "{first}");
    assert_eq!(
        first.as_bytes()[32 + 12],
        b'4',
        "a random (v4) UUID: {first}"
    );
    assert_ne!(first[32..], second[32..]);
    // The URL works as given.
    let reply = client
        .get(&format!(
            "{}?chatId=1",
            url.trim_start_matches(&server.url())
        ))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let list = admin.get(&format!("/api/bots/{bot}/webhooks")).await;
    let ids: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].clone())
        .collect();
    assert_eq!(ids, [json!(first), json!(second)]);
    let revoked = admin
        .call("DELETE", &format!("/api/bots/{bot}/webhooks/{first}"), None)
        .await;
    assert_eq!(revoked.status, 204);
    let again = admin
        .call("DELETE", &format!("/api/bots/{bot}/webhooks/{first}"), None)
        .await;
    assert_eq!(again.status, 404);
    let list = admin.get(&format!("/api/bots/{bot}/webhooks")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn postback_link_urls_use_public_base_url_when_it_is_set() {
    let (_app, _server, client) =
        serve(real_app().variable("public_base_url", "https://hooks.example.com/")).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    let (id, url) = admin.link(&bot).await;
    assert_eq!(
        url,
        format!("https://hooks.example.com/api/bots/webhooks/{id}/updateDialog")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_fields_are_defined_read_listed_and_removed() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    let put = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/fields/userBalance"),
            Some(json!({"type": "number", "description": "Balance in USD"})),
        )
        .await;
    assert_eq!(put.status, 201);
    let put = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/fields/userBalance"),
            Some(json!({"type": "Number"})),
        )
        .await;
    assert_eq!(put.status, 200, "redefining is not creating");
    let field = admin
        .get(&format!("/api/bots/{bot}/fields/userBalance"))
        .await;
    assert_eq!(
        field,
        json!({"key": "userBalance", "type": "number", "description": ""})
    );
    for (path, body, code, field) in [
        (
            "fields/x",
            json!({"type": "money"}),
            "bad_field_type",
            "type",
        ),
        ("fields/x", json!({}), "missing_field", "type"),
        (
            "fields/bad.key",
            json!({"type": "string"}),
            "bad_key",
            "key",
        ),
        (
            "fields/x",
            json!({"type": "string", "description": "d".repeat(501)}),
            "value_too_long",
            "description",
        ),
    ] {
        let reply = admin
            .call("PUT", &format!("/api/bots/{bot}/{path}"), Some(body))
            .await;
        assert_eq!(reply.status, 422, "{path}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], code);
        assert_eq!(reply.json()["error"]["field"], field);
    }
    let list = admin.get(&format!("/api/bots/{bot}/fields")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        admin
            .status("DELETE", &format!("/api/bots/{bot}/fields/userBalance"))
            .await,
        204
    );
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/fields/userBalance"))
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_keep_a_send_webhook_config_in_its_normal_form() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    let id = "5f0c7a3e-2b1d-4c8e-9a6f-1e2d3c4b5a69";
    let webhook = json!({"url": "https://tracker.example/postback?subid={tracker.clickid}&status=lead", "method": "GET"});
    let step = admin
        .put(
            &format!("/api/bots/{bot}/steps/{id}"),
            json!({"key": "lead", "kind": "send-webhook", "webhook": webhook}),
        )
        .await;
    assert_eq!(step["id"], id);
    // Saved as given, with every default spelled out, so a reader sees what will be sent.
    assert_eq!(
        step["webhook"],
        json!({"url": webhook["url"], "method": "GET", "headers": {}, "body": "none",
               "timeoutMs": 10000, "retry": {"maxAttempts": 8}, "signed": false,
               "skipIfMissing": false})
    );
    let read = admin.get(&format!("/api/bots/{bot}/steps/{id}")).await;
    assert_eq!(read["webhook"], step["webhook"]);
    let created = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "hello", "kind": "message"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let generated = created.json()["id"].as_str().unwrap().to_string();
    let list = admin.get(&format!("/api/bots/{bot}/steps")).await;
    let keys: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].clone())
        .collect();
    assert_eq!(keys, [json!("lead"), json!("hello")]);
    for (path, body, status, code, field) in [
        (
            format!("steps/{id}"),
            json!({"key": "x", "kind": "message", "webhook": {}}),
            422,
            "unexpected_webhook",
            "webhook",
        ),
        (
            "steps/not-a-uuid".into(),
            json!({"key": "x", "kind": "message"}),
            422,
            "bad_step_id",
            "stepId",
        ),
        (
            format!("steps/{id}"),
            json!({"key": "x y", "kind": "message"}),
            422,
            "bad_key",
            "key",
        ),
        (
            format!("steps/{id}"),
            json!({"key": "x", "kind": "Send Webhook"}),
            422,
            "bad_step_kind",
            "kind",
        ),
        (
            format!("steps/{id}"),
            json!({"key": "x", "kind": "send-webhook", "webhook": "https://x"}),
            422,
            "wrong_type",
            "webhook",
        ),
    ] {
        let reply = admin
            .call("PUT", &format!("/api/bots/{bot}/{path}"), Some(body))
            .await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], code);
        assert_eq!(reply.json()["error"]["field"], field);
    }
    assert_eq!(
        admin.get(&format!("/api/bots/{bot}/steps/{id}")).await["key"],
        "lead",
        "rejected PUTs changed nothing"
    );
    assert_eq!(
        admin
            .status("DELETE", &format!("/api/bots/{bot}/steps/{generated}"))
            .await,
        204
    );
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/steps/{generated}"))
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dialogs_are_listed_page_by_page_and_erased() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    for chat in 1..=5 {
        let reply = admin
            .call(
                "PUT",
                &format!("/api/bots/{bot}/dialogs/{chat}"),
                Some(json!({"username": format!("u{chat}")})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    assert_eq!(
        admin
            .status("DELETE", &format!("/api/bots/{bot}/dialogs/2"))
            .await,
        204
    );
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/dialogs/2"))
            .await,
        404
    );
    let mut seen = Vec::new();
    let mut path = format!("/api/bots/{bot}/dialogs?limit=2");
    loop {
        let page = admin.get(&path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["chatId"].clone()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/api/bots/{bot}/dialogs?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [json!(1), json!(3), json!(4), json!(5)]);
    let bad = admin
        .call("GET", &format!("/api/bots/{bot}/dialogs?limit=0"), None)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["field"], "limit");
    let bad = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/dialogs/abc"),
            Some(json!({})),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["error"]["field"], "chatId");
    let bad = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/dialogs/9"),
            Some(json!({"tracker": {"bad key": "x"}})),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["error"]["field"], "tracker.bad key");
}
