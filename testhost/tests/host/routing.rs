//! Routing precedence and private routes, as Spin routes.

use funnelhooks_testhost::HostBuilder;

use crate::common::{fixture, probe, serve};

#[test]
fn exact_route_beats_a_wildcard_that_also_matches() {
    let app = fixture().build().unwrap();
    assert_eq!(app.route("/probe/exact").unwrap().component, "exact");
    // Only the exact path: anything below it falls back to the wildcard.
    assert_eq!(app.route("/probe/exact/more").unwrap().component, "probe");
}

#[test]
fn longest_wildcard_prefix_wins() {
    let app = fixture().build().unwrap();
    assert_eq!(app.route("/probe/deeper/x/y").unwrap().component, "deeper");
    assert_eq!(app.route("/probe/deeper").unwrap().component, "deeper");
    assert_eq!(app.route("/probe/deep").unwrap().component, "probe");
    assert_eq!(app.route("/probe").unwrap().component, "probe");
    assert_eq!(
        app.route("/elsewhere/entirely").unwrap().component,
        "fallback"
    );
    assert_eq!(app.route("/").unwrap().component, "fallback");
}

#[test]
fn named_segments_capture_one_segment_each() {
    let app = fixture().build().unwrap();
    let m = app.route("/items/42/parts/wheel/spokes/7").unwrap();
    assert_eq!(m.component, "named");
    assert_eq!(
        m.named,
        vec![
            ("item_id".to_string(), "42".to_string()),
            ("part".to_string(), "wheel".to_string())
        ]
    );
    assert_eq!(m.path_info, "/spokes/7");
    // A missing segment is not a match for the named route.
    assert_eq!(app.route("/items/42/parts").unwrap().component, "fallback");
}

#[test]
fn later_of_two_identical_routes_wins() {
    let app = fixture().build().unwrap();
    assert_eq!(app.route("/dup").unwrap().component, "dup-second");
}

#[test]
fn path_info_keeps_trailing_slashes_as_spin_does() {
    let app = fixture().build().unwrap();
    assert_eq!(app.route("/probe/deeper").unwrap().path_info, "");
    assert_eq!(app.route("/probe/deeper/").unwrap().path_info, "/");
    assert_eq!(app.route("/probe/deeper/a/").unwrap().path_info, "/a/");
    assert_eq!(app.route("/probe/deeper/a").unwrap().path_info, "/a");
}

#[tokio::test(flavor = "multi_thread")]
async fn private_component_is_unroutable_from_outside_but_reachable_by_chaining() {
    let (app, _server, client) = serve(fixture()).await;
    // No public route leads to it: the fallback answers instead.
    assert_eq!(app.route("/hidden").unwrap().component, "fallback");

    let url = "http://hidden.spin.internal/some/path?op=headers";
    let answer = probe(
        &client,
        &format!("/probe/x?op=fetch&url={}", urlencode(url)),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let inner: serde_json::Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let headers = &inner["headers"];
    assert_eq!(headers["spin-matched-route"], "/...");
    assert_eq!(headers["spin-path-info"], "/some/path");
    assert_eq!(headers["spin-client-addr"], "0.0.0.0:0");
    assert_eq!(
        headers["spin-full-url"],
        "http://localhost/some/path?op=headers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_path_is_404_without_running_anything() {
    // The main fixture has a catch-all; this one has a single exact route.
    let manifest = funnelhooks_testhost::fixture_manifest().with_file_name("no-catch-all.toml");
    let (_app, _server, client) = serve(HostBuilder::new(manifest).env(|_| None)).await;
    let reply = client.get("/no/such/route").await.unwrap();
    assert_eq!(reply.status, 404);
    assert_eq!(
        client.get("/probe/exact?op=headers").await.unwrap().status,
        200
    );
}

/// A query-string value, percent-encoded.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
