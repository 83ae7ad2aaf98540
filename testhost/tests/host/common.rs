//! Shared set-up of the host's own tests: the probe fixture, served, and its answers.

use funnelhooks_testhost::{App, Client, HostBuilder, fixture_manifest, server::Server};

/// The host fixture (`testhost/fixtures/spin.toml`) with its required secret set and no
/// environment leaking in.
pub fn fixture() -> HostBuilder {
    HostBuilder::new(fixture_manifest())
        .variable("secret_token", "s3cret")
        .env(|_| None)
        .key_value_store("other")
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
