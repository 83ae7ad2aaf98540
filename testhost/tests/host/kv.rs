//! Key-value semantics the components can observe, matched to Spin's SQLite store.

use crate::common::{fixture, probe, probe_post, serve};

#[tokio::test(flavor = "multi_thread")]
async fn set_get_exists_delete_and_keys_round_trip() {
    let (app, _server, client) = serve(fixture()).await;
    let r = probe_post(
        &client,
        "/probe?op=kv&store=default&action=set&key=dialog:1",
        "v1",
    )
    .await;
    assert_eq!(r["set"], true);
    assert_eq!(app.kv().get("default", "dialog:1").unwrap(), b"v1");
    assert_eq!(
        probe(
            &client,
            "/probe?op=kv&store=default&action=get&key=dialog:1"
        )
        .await["value"],
        "v1"
    );
    assert_eq!(
        probe(
            &client,
            "/probe?op=kv&store=default&action=exists&key=dialog:1"
        )
        .await["exists"],
        true
    );
    assert_eq!(
        probe(&client, "/probe?op=kv&store=default&action=keys").await["keys"],
        serde_json::json!(["dialog:1"])
    );
    probe(
        &client,
        "/probe?op=kv&store=default&action=delete&key=dialog:1",
    )
    .await;
    assert_eq!(
        probe(
            &client,
            "/probe?op=kv&store=default&action=get&key=dialog:1"
        )
        .await["value"],
        serde_json::Value::Null
    );
    assert!(app.kv().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_not_granted_to_a_component_are_access_denied() {
    let (_app, _server, client) = serve(fixture()).await;
    // `locked` lists no stores; `probe` lists default and other, but not "nope".
    let locked = probe(&client, "/locked?op=kv&store=default&action=open").await;
    assert_eq!(locked["error"], "access-denied");
    let unknown = probe(&client, "/probe?op=kv&store=nope&action=open").await;
    assert_eq!(unknown["error"], "access-denied");
    let wasi = probe(&client, "/locked?op=wasi-kv&store=default&action=get&key=k").await;
    assert_eq!(wasi["error"], "access-denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_are_separate_namespaces() {
    let (app, _server, client) = serve(fixture()).await;
    probe_post(
        &client,
        "/probe?op=kv&store=other&action=set&key=k",
        "in-other",
    )
    .await;
    assert_eq!(app.kv().get("other", "k").unwrap(), b"in-other");
    assert_eq!(
        probe(&client, "/probe?op=kv&store=default&action=get&key=k").await["value"],
        serde_json::Value::Null
    );
}

#[test]
fn a_store_no_runtime_config_defines_stops_the_app() {
    // Without `.key_value_store("other")` the fixture's probe asks for an undefined store.
    let err = funnelhooks_testhost::HostBuilder::new(funnelhooks_testhost::fixture_manifest())
        .variable("secret_token", "x")
        .env(|_| None)
        .build()
        .err()
        .expect("must not start");
    assert!(format!("{err:#}").contains("\"other\""), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn increment_counts_in_eight_little_endian_bytes() {
    let (app, _server, client) = serve(fixture()).await;
    let inc = |d: &'static str| {
        let client = client.clone();
        async move {
            probe_post(
                &client,
                "/probe?op=wasi-kv&store=default&action=increment&key=n",
                d,
            )
            .await["value"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(inc("1").await, 1);
    assert_eq!(inc("2").await, 3);
    assert_eq!(inc("-5").await, -2);
    assert_eq!(app.kv().get("default", "n").unwrap(), (-2i64).to_le_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_increments_lose_nothing() {
    let (app, _server, client) = serve(fixture()).await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let path = "/probe?op=wasi-kv&store=default&action=increment&key=c";
                probe_post(&client, path, "1").await
            })
        })
        .collect();
    for t in tasks {
        let answer = t.await.unwrap();
        assert!(answer["value"].is_i64(), "{answer}");
    }
    assert_eq!(app.kv().get("default", "c").unwrap(), 40i64.to_le_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_succeeds_when_nobody_wrote_in_between() {
    let (app, _server, client) = serve(fixture()).await;
    app.kv().set("default", "k", b"old");
    let r = probe_post(
        &client,
        "/probe?op=wasi-kv&store=default&action=swap&key=k",
        "new",
    )
    .await;
    assert_eq!(r["swapped"], true, "{r}");
    assert_eq!(r["seen"], "old");
    assert_eq!(app.kv().get("default", "k").unwrap(), b"new");
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_fails_after_a_concurrent_write_and_hands_back_the_current_value() {
    let (app, _server, client) = serve(fixture()).await;
    app.kv().set("default", "k", b"old");
    let r = probe_post(
        &client,
        "/probe?op=wasi-kv&store=default&action=swap-after-write&key=k",
        "mine",
    )
    .await;
    assert_eq!(r["swapped"], false, "{r}");
    assert_eq!(r["current"], "interloper");
    assert_eq!(app.kv().get("default", "k").unwrap(), b"interloper");
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_on_a_key_that_was_absent_is_an_upsert_like_spins_sqlite_store() {
    // The trap the updateDialog issue warns about: current() saw nothing, someone else created
    // the key, and the swap still "wins", overwriting their value.
    let (app, _server, client) = serve(fixture()).await;
    let r = probe_post(
        &client,
        "/probe?op=wasi-kv&store=default&action=swap-after-write&key=fresh",
        "mine",
    )
    .await;
    assert_eq!(r["swapped"], true, "{r}");
    assert_eq!(r["seen"], serde_json::Value::Null);
    assert_eq!(app.kv().get("default", "fresh").unwrap(), b"mine");
}
