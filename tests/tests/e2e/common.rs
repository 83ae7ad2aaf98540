//! Shared set-up: the fixture app, the real app, a client.

use funnelhooks_testhost::{App, Client, HostBuilder, repo_root, server::Server};

/// The admin token the real app gets in tests.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The real application from `spin.toml`.
pub fn real_app() -> HostBuilder {
    HostBuilder::new(repo_root().join("spin.toml"))
        .variable("admin_token", ADMIN_TOKEN)
        .env(|_| None)
}

/// The app under the real `spin up` of `spin` as the README runs it for local testing
/// (`runtime-config/sqlite-loopback.toml`: SQLite, private networks blocked but loopback),
/// with the admin token and loopback webhooks allowed; ready once `/api/health` answers.
pub async fn spin_up_app(spin: std::path::PathBuf) -> funnelhooks_tests::spin_cli::SpinUp {
    use funnelhooks_tests::spin_cli::{SpinUp, Store};
    let env = [
        ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS", "true"),
    ];
    let manifest = repo_root().join("spin.toml");
    tokio::task::spawn_blocking(move || {
        let config = repo_root().join("runtime-config/sqlite-loopback.toml");
        SpinUp::start(&spin, &manifest, Store::Config(config), &env, "/api/health")
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Builds and serves an app; returns it with its server and a client for it.
pub async fn serve(builder: HostBuilder) -> (App, Server, Client) {
    let app = builder.build().expect("app builds");
    let server = app.serve().await.expect("app serves");
    let client = Client::new(server.url());
    (app, server, client)
}

/// The management API of the real app, called as an admin (or not).
pub struct Admin {
    /// The client underneath.
    pub client: Client,
    /// The bearer token it sends.
    pub token: String,
}

impl Admin {
    /// An admin client with the right bearer token.
    pub fn new(client: &Client) -> Self {
        Self::with_key(client, ADMIN_TOKEN)
    }

    /// A client that sends `token` (an API key) instead of the admin token.
    pub fn with_key(client: &Client, token: &str) -> Self {
        Self {
            client: client.clone(),
            token: token.to_string(),
        }
    }

    /// `method path` with the admin token and an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> funnelhooks_testhost::Reply {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.client
            .send(method, path, &headers, body)
            .await
            .expect("request completes")
    }

    /// The status of `method path` (no body).
    pub async fn status(&self, method: &str, path: &str) -> u16 {
        self.call(method, path, None).await.status
    }

    /// Creates a bot and returns its id.
    pub async fn bot(&self, name: &str) -> String {
        let reply = self
            .call(
                "POST",
                "/api/bots",
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Creates a postback link for the bot; returns (id, url).
    pub async fn link(&self, bot: &str) -> (String, String) {
        let reply = self
            .call("POST", &format!("/api/bots/{bot}/webhooks"), None)
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        let body = reply.json();
        (
            body["id"].as_str().unwrap().to_string(),
            body["url"].as_str().unwrap().to_string(),
        )
    }

    /// `PUT` that must succeed (200 or 201).
    pub async fn put(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let reply = self.call("PUT", path, Some(body)).await;
        assert!(
            matches!(reply.status, 200 | 201),
            "{path}: {}",
            reply.text()
        );
        reply.json()
    }

    /// `GET` that must succeed.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        let reply = self.call("GET", path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        reply.json()
    }
}

/// Every key and value in the app's default store, to prove a request changed nothing. The
/// operational counters (`metrics:…`) are left out: counting a refused request is the one
/// trace it leaves, on purpose.
pub fn snapshot(app: &App) -> Vec<(String, Option<Vec<u8>>)> {
    app.kv()
        .keys("default")
        .into_iter()
        .filter(|k| !k.starts_with("metrics:"))
        .map(|k| {
            let v = app.kv().get("default", &k);
            (k, v)
        })
        .collect()
}

/// A query-string value, percent-encoded.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
