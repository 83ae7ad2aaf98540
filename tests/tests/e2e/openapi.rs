//! `openapi.yaml` against what the app serves: every route in `spin.toml` and every route a
//! component's router answers is documented, and every documented operation is served.

use std::collections::BTreeSet;

use funnelhooks_testhost::manifest::{Manifest, Route};
use funnelhooks_testhost::repo_root;
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

/// Every route of every component's table (`funnelhooks_routes`), except those reached only
/// through local chaining: (METHOD, path template, operation id).
fn tabled() -> Vec<(String, String, String)> {
    use funnelhooks_routes::{Access, Route};
    fn rows<Op: Copy>(table: &[Route<Op>]) -> Vec<(String, String, String)> {
        table
            .iter()
            .filter(|r| r.access != Access::Chained && r.method != "HEAD")
            .map(|r| {
                (
                    r.method.to_string(),
                    r.path.to_string(),
                    r.operation_id.to_string(),
                )
            })
            .collect()
    }
    let mut out = rows(funnelhooks_routes::health::ROUTES);
    out.extend(rows(funnelhooks_routes::update_dialog::ROUTES));
    out.extend(rows(funnelhooks_routes::conversions::ROUTES));
    out.extend(rows(funnelhooks_routes::bots_api::ROUTES));
    out.extend(rows(funnelhooks_routes::send_webhook::ROUTES));
    out.extend(rows(funnelhooks_routes::call_hooks::ROUTES));
    out.extend(rows(funnelhooks_routes::access::ROUTES));
    out
}

/// Documented operation ids by (METHOD, path).
fn operation_ids() -> std::collections::BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(repo_root().join("openapi.yaml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).expect("openapi.yaml is YAML")[0];
    let mut out = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_hash().expect("paths") {
        for m in METHODS {
            if let Some(id) = item[m]["operationId"].as_str() {
                let key = (m.to_ascii_uppercase(), path.as_str().unwrap().to_string());
                out.insert(key, id.to_string());
            }
        }
    }
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
    funnelhooks_testhost::App,
    funnelhooks_testhost::server::Server,
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
        // The console's pages are not API (README: HTTP API); its catch-all would otherwise
        // count as documented by any path at all.
        if trigger.component == "console" {
            assert_eq!(
                route, "/...",
                "the console takes only what no API route takes"
            );
            continue;
        }
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
fn the_route_tables_and_the_document_name_the_same_operations() {
    let documented = operation_ids();
    let tabled = tabled();
    for (method, path, id) in &tabled {
        let key = (method.clone(), path.clone());
        assert_eq!(
            documented.get(&key),
            Some(id),
            "{method} {path} ({id}) is served but openapi.yaml does not document it so"
        );
    }
    let served: BTreeSet<(String, String)> = tabled.into_iter().map(|(m, p, _)| (m, p)).collect();
    for key in documented.keys() {
        assert!(
            served.contains(key),
            "{} {} is documented but no component's route table serves it",
            key.0,
            key.1
        );
    }
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
