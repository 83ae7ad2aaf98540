//! The request headers a component sees.

use crate::common::{fixture, probe, serve};

#[tokio::test(flavor = "multi_thread")]
async fn component_sees_every_spin_header_and_the_clients_own() {
    let (_app, server, client) = serve(fixture()).await;
    let reply = client
        .send(
            "GET",
            "/probe/a/b?op=headers&x=1",
            &[("x-tracker", "keitaro"), ("connection", "keep-alive")],
            "",
        )
        .await
        .unwrap();
    let h = &reply.json()["headers"];
    let port = server.addr().port();
    assert_eq!(
        h["spin-full-url"],
        format!("http://127.0.0.1:{port}/probe/a/b?op=headers&x=1")
    );
    assert_eq!(h["spin-path-info"], "/a/b");
    assert_eq!(h["spin-matched-route"], "/probe/...");
    assert_eq!(h["spin-component-route"], "/probe");
    assert_eq!(h["spin-raw-component-route"], "/probe/...");
    assert_eq!(h["spin-base-path"], "/");
    let client_addr = h["spin-client-addr"].as_str().unwrap();
    assert!(client_addr.starts_with("127.0.0.1:"), "{client_addr}");
    assert_eq!(h["x-tracker"], "keitaro");
    // wasi:http hides hop-by-hop and `host` headers from the guest, in Spin as here; the host
    // survives only inside spin-full-url.
    assert!(h.get("host").is_none(), "{h}");
    assert!(h.get("connection").is_none(), "{h}");
}

#[tokio::test(flavor = "multi_thread")]
async fn named_segments_arrive_as_path_match_headers_with_dashes() {
    let (_app, _server, client) = serve(fixture()).await;
    let answer = probe(&client, "/items/42/parts/wheel/x?op=headers").await;
    let h = &answer["headers"];
    assert_eq!(h["spin-path-match-item-id"], "42");
    assert_eq!(h["spin-path-match-part"], "wheel");
    assert_eq!(h["spin-matched-route"], "/items/:item_id/parts/:part/...");
    assert_eq!(h["spin-component-route"], "/items/:item_id/parts/:part");
    assert_eq!(h["spin-path-info"], "/x");
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_route_has_empty_path_info() {
    let (_app, _server, client) = serve(fixture()).await;
    let h = probe(&client, "/probe/exact?op=headers").await["headers"].clone();
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-matched-route"], "/probe/exact");
    assert_eq!(h["spin-component-route"], "/probe/exact");
}
