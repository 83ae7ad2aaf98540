//! `openapi.yaml` against what the app serves: every route in `spin.toml` and every route a
//! component's router answers is documented, and every documented operation is served.

use std::collections::BTreeSet;

use funnelhooks_tests::manifest::{Manifest, Route};
use funnelhooks_tests::repo_root;
use yaml_rust2::{Yaml, YamlLoader};

use crate::common::{Admin, real_app, serve};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// A route with its parameters blanked: `/api/bots/{}/steps`.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with(':') || (s.starts_with('{') && s.ends_with('}')) {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Documented operations: (METHOD, path as written).
fn documented() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("openapi.yaml")).unwrap();
    let doc = YamlLoader::load_from_str(&text).expect("openapi.yaml is YAML");
    let doc = &doc[0];
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_hash().expect("paths") {
        let path = path.as_str().unwrap();
        for m in METHODS {
            if !matches!(item[m], Yaml::BadValue) {
                let op = &item[m];
                assert!(op["summary"].as_str().is_some(), "{m} {path} has a summary");
                assert!(
                    op["responses"].as_hash().is_some(),
                    "{m} {path} lists responses"
                );
                out.push((m.to_ascii_uppercase(), path.to_string()));
            }
        }
    }
    out
}

/// Operations a component's router matches: `(["api", "bots", bot, "steps"], Get | Post) =>`
/// arms, read from its source, with the prefix the router strips.
fn routed() -> BTreeSet<(String, String)> {
    let components = [
        ("bots-api", "/api/bots"),
        ("send-webhook", ""),
        ("call-hooks", "/api/calls"),
    ];
    let mut out = BTreeSet::new();
    for (component, prefix) in components {
        let source =
            std::fs::read_to_string(repo_root().join(format!("components/{component}/src/lib.rs")))
                .unwrap();
        let mut rest = source.as_str();
        while let Some(i) = rest.find("([") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find("],") else { break };
            let segments = &rest[..end];
            let after = &rest[end + 2..];
            let Some(close) = after.find(')') else { break };
            let methods = after[..close].trim();
            if !after[close + 1..].trim_start().starts_with("=>") {
                continue;
            }
            let parts: Vec<&str> = segments
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            // Arms with wildcards are the 405/404 answers, not routes.
            if methods.contains('_') || parts.iter().any(|p| *p == "_" || p.starts_with("..")) {
                continue;
            }
            let path: String = parts
                .iter()
                .map(
                    |p| match p.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                        Some(literal) => format!("/{literal}"),
                        None => "/{}".to_string(),
                    },
                )
                .collect();
            let path = format!("{prefix}{path}");
            // Reached only through local chaining; not part of the public API.
            if path.starts_with("/internal/") {
                continue;
            }
            for m in methods.split('|') {
                out.insert((m.trim().to_ascii_uppercase(), shape(&path)));
            }
        }
    }
    assert!(out.len() > 30, "the router scan found the routes: {out:?}");
    out
}

/// The documented path with real-looking ids: an operation must reach its handler, which may
/// then say 404 for the id.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| match s {
            "{chatId}" => "1227280",
            "{key}" => "userBalance",
            s if s.starts_with('{') => "0b6c3c9e-4c1b-4a57-9a4e-8d1c2b3a4f50",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A client of the real app with the admin token.
async fn admin_app() -> (
    funnelhooks_tests::App,
    funnelhooks_tests::server::Server,
    Admin,
) {
    let (app, server, client) = serve(real_app()).await;
    (app, server, Admin::new(&client))
}

#[test]
fn every_route_in_spin_toml_is_documented() {
    let manifest = Manifest::load(&repo_root().join("spin.toml")).unwrap();
    let shapes: BTreeSet<String> = documented().iter().map(|(_, p)| shape(p)).collect();
    for trigger in &manifest.triggers["http"] {
        let Route::Path(route) = &trigger.route else {
            continue;
        };
        let covered = match route.strip_suffix("/...") {
            Some(prefix) => shapes
                .iter()
                .any(|s| s.starts_with(&format!("{}/", shape(prefix)))),
            None => shapes.contains(&shape(route)),
        };
        assert!(
            covered,
            "spin.toml routes {route} to {} but openapi.yaml does not document it",
            trigger.component
        );
    }
}

#[test]
fn every_route_a_component_router_answers_is_documented() {
    let documented: BTreeSet<(String, String)> = documented()
        .into_iter()
        .map(|(m, p)| (m, shape(&p)))
        .collect();
    let missing: Vec<_> = routed().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "routed but not in openapi.yaml: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_is_served() {
    let (_app, _server, admin) = admin_app().await;
    for (method, path) in documented() {
        let reply = admin
            .call(&method, &concrete(&path), Some(serde_json::json!({})))
            .await;
        let code = serde_json::from_str::<serde_json::Value>(&reply.text())
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        assert!(
            reply.status != 405 && code != "not_found" && !(reply.status == 404 && code.is_empty()),
            "{method} {path} is documented but not served: {} {}",
            reply.status,
            reply.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_other_methods_with_405_and_allow_naming_the_documented_ones() {
    let (_app, _server, admin) = admin_app().await;
    let mut by_path: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for (method, path) in documented() {
        by_path.entry(path).or_default().insert(method);
    }
    for (path, methods) in by_path {
        for other in METHODS.map(str::to_ascii_uppercase) {
            if methods.contains(&other) {
                continue;
            }
            let reply = admin
                .call(&other, &concrete(&path), Some(serde_json::json!({})))
                .await;
            assert_eq!(reply.status, 405, "{other} {path}: {}", reply.text());
            let allow: BTreeSet<String> = reply
                .header("allow")
                .unwrap_or_else(|| panic!("{other} {path}: 405 without Allow"))
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| m != "HEAD")
                .collect();
            assert_eq!(
                allow, methods,
                "{other} {path}: Allow names what openapi.yaml documents"
            );
        }
    }
}
