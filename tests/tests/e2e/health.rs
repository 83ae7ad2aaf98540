//! `GET /api/health` on the real app.

use crate::common::{real_app, serve};

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_ok_when_the_store_answers() {
    let (_app, _server, client) = serve(real_app()).await;
    let reply = client.get("/api/health").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["keyValue"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_refuses_writes_with_a_json_405() {
    let (app, _server, client) = serve(real_app()).await;
    let reply = client
        .post_json("/api/health", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["error"]["code"], "method_not_allowed");
    assert!(app.kv().is_empty(), "a health check writes nothing");
}
