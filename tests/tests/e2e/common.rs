//! Shared set-up: the fixture app, the real app, a client.

use funnelhooks_tests::{App, Client, HostBuilder, repo_root, server::Server};

/// The admin token the real app gets in tests.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The host fixture (`tests/fixtures/spin.toml`) with its required secret set and no
/// environment leaking in.
pub fn fixture() -> HostBuilder {
    HostBuilder::new(repo_root().join("tests/fixtures/spin.toml"))
        .variable("secret_token", "s3cret")
        .env(|_| None)
        .key_value_store("other")
}

/// The real application from `spin.toml`.
pub fn real_app() -> HostBuilder {
    HostBuilder::new(repo_root().join("spin.toml"))
        .variable("admin_token", ADMIN_TOKEN)
        .env(|_| None)
}

/// Builds and serves an app; returns it with its server and a client for it.
pub async fn serve(builder: HostBuilder) -> (App, Server, Client) {
    let app = builder.build().expect("app builds");
    let server = app.serve().await.expect("app serves");
    let client = Client::new(server.url());
    (app, server, client)
}

/// Calls the probe's `op` and returns its JSON answer.
pub async fn probe(client: &Client, path_and_query: &str) -> serde_json::Value {
    probe_with_body(client, "GET", path_and_query, "").await
}

/// Calls the probe's `op` with a body (the value to store, the delta, ...).
pub async fn probe_post(client: &Client, path_and_query: &str, body: &str) -> serde_json::Value {
    probe_with_body(client, "POST", path_and_query, body).await
}

async fn probe_with_body(
    client: &Client,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> serde_json::Value {
    let reply = client
        .send(method, path_and_query, &[], body.to_string())
        .await
        .expect("request");
    assert_eq!(reply.status, 200, "{path_and_query}: {}", reply.text());
    reply.json()
}
