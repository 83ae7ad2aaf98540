//! What an attacker would try, on the real app: management routes without the token (every
//! one, read from the route tables), secrets in views and the log, oversized bodies, extreme
//! values, a flood of new chats through one leaked postback link.

use funnelhooks_routes::{Access, Route};
use funnelhooks_testhost::Receiver;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, Admin, real_app, serve, snapshot};

/// Every route a table says needs a key (the admin token or an API key), with ids filled in.
fn admin_routes() -> Vec<(&'static str, String)> {
    fn rows<Op: Copy>(table: &[Route<Op>]) -> Vec<(&'static str, String)> {
        table
            .iter()
            .filter(|r| r.access.wants_key() && r.access != Access::AdminOrMetricsToken)
            .map(|r| {
                let path: Vec<String> = r
                    .path
                    .split('/')
                    .map(|s| match s {
                        "{chatId}" => "1".to_string(),
                        "{key}" => "userBalance".to_string(),
                        s if s.starts_with('{') => "0b6c3c9e-4c1b-4a57-9a4e-8d1c2b3a4f50".into(),
                        s => s.to_string(),
                    })
                    .collect();
                (r.method, path.join("/"))
            })
            .collect()
    }
    let mut out = rows(funnelhooks_routes::bots_api::ROUTES);
    out.extend(rows(funnelhooks_routes::conversions::ROUTES));
    out.extend(rows(funnelhooks_routes::send_webhook::ROUTES));
    out.extend(rows(funnelhooks_routes::call_hooks::ROUTES));
    out.extend(rows(funnelhooks_routes::access::ROUTES));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_route_refuses_a_missing_or_wrong_token_and_changes_nothing() {
    let (app, _server, client) = serve(real_app()).await;
    Admin::new(&client).bot("There").await;
    let before = snapshot(&app);
    let routes = admin_routes();
    // Preview, test-send and replay among them (once without a test of their own).
    for wanted in ["/api/templates/preview", "/test-send", "/replay"] {
        assert!(routes.iter().any(|(_, p)| p.ends_with(wanted)), "{wanted}");
    }
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    // A key of the right shape that no one made.
    let made_up = format!("Bearer fhk_{}", "ab".repeat(48));
    for (method, path) in &routes {
        for auth in [
            None,
            Some(wrong.as_str()),
            Some("Bearer "),
            Some(made_up.as_str()),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let reply = client
                .send(method, path, &headers, r#"{"name": "x"}"#)
                .await
                .unwrap();
            assert_eq!(reply.status, 401, "{method} {path} with {auth:?}");
            assert_eq!(reply.json()["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(
        snapshot(&app),
        before,
        "unauthorised calls changed the store"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_view_shows_no_secret_and_saving_it_back_keeps_them() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Secrets").await;
    let config = json!({
        "url": "https://api.telegram.org/bot123456:AAE-abcdefghijklmnopqrstuvwxyz/sendMessage?chat_id={chatId}&token=s3cret",
        "method": "POST",
        "headers": {"Authorization": "Bearer live-token-1"},
        "body": {"template": "{\"text\": \"hi\"}", "contentType": "json"},
        "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    });
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "s", "kind": "send-webhook", "webhook": config})),
        )
        .await;
    assert_eq!(step.status, 201, "{}", step.text());
    let id = step.json()["id"].as_str().unwrap().to_string();
    let view = admin.get(&format!("/api/bots/{bot}/steps/{id}")).await;
    let shown = view.to_string();
    for secret in ["live-token-1", "AAE-abcdefghij", "s3cret", "MfKQ9r8G"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    // The console sends the view back as it is: the secrets stay what they were.
    let webhook = view["webhook"].clone();
    admin
        .put(
            &format!("/api/bots/{bot}/steps/{id}"),
            json!({"key": "s", "kind": "send-webhook", "webhook": webhook}),
        )
        .await;
    let again = admin.get(&format!("/api/bots/{bot}/steps/{id}")).await;
    assert_eq!(again["webhook"], view["webhook"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_masks_credentials_in_paths_and_nested_json() {
    let (_app, _server, client) =
        serve(real_app().variable("allow_loopback_webhooks", "true")).await;
    let admin = Admin::new(&client);
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("Log").await;
    let url = format!(
        "{}/bot123456:AAE-abcdefghijklmnopqrstuvwxyz/hooks/55833627-242e-4061-9b0a-30da3e9cf7d4",
        rx.url()
    );
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "s", "kind": "send-webhook", "webhook": {
                "url": url, "method": "POST",
                "body": {"template": "{\"auth\": {\"apiKey\": \"k-9\", \"list\": [{\"password\": \"p-9\"}]}}",
                         "contentType": "json"}}})),
        )
        .await
        .json();
    let id = step["id"].as_str().unwrap();
    let sent = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{id}/test-send"),
            None,
        )
        .await;
    assert_eq!(sent.json()["status"], "delivered", "{}", sent.text());
    // The receiver got the real request; the log shows it masked.
    assert!(rx.received()[0].path_and_query.contains("AAE-abcdef"));
    let shown = sent.text();
    for secret in ["AAE-abcdef", "55833627-242e", "k-9", "p-9"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_past_the_limit_is_refused_before_it_is_read_whole() {
    let (app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Big").await;
    let (_, url) = admin.link(&bot).await;
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    let before = snapshot(&app);
    let big = format!("chatId=1&note={}", "x".repeat(200_000));
    for (method, target, headers) in [
        ("POST", path.clone(), vec![]),
        (
            "POST",
            "/api/bots".to_string(),
            vec![("authorization", format!("Bearer {ADMIN_TOKEN}"))],
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = client
            .send(method, &target, &headers, big.clone())
            .await
            .unwrap();
        assert_eq!(reply.status, 413, "{target}: {}", reply.text());
        assert_eq!(reply.json()["error"]["field"], "body");
    }
    assert_eq!(snapshot(&app), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn extreme_values_are_answered_not_trapped() {
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Edges").await;
    let (_, url) = admin.link(&bot).await;
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    for chat in [i64::MIN, i64::MAX] {
        let reply = client
            .get(&format!("{path}?chatId={chat}&tracker.clickid=x"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{chat}: {}", reply.text());
        let read = admin.get(&format!("/api/bots/{bot}/dialogs/{chat}")).await;
        assert_eq!(read["chatId"], json!(chat));
    }
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "s"})))
        .await
        .json();
    let sid = service["id"].as_str().unwrap();
    for host in ["1.2.3.4.5", "foo.123", "send-webhook.spin.internal"] {
        let reply = admin
            .call(
                "POST",
                &format!("/api/calls/services/{sid}/hooks"),
                Some(json!({"host": host, "event": "end"})),
            )
            .await;
        assert_eq!(reply.status, 422, "{host}: {}", reply.text());
        assert_eq!(reply.json()["error"]["field"], "host", "{host}");
    }
}
