//! Scoped access on every runtime and store: API keys with roles and scopes get, on every
//! route of the route tables, the answer the rule in docs/security.md gives (the routes come
//! from the tables, the expectation from the rule as the docs state it, written here apart
//! from the code); a key scoped to bot A learns nothing of bot B, also through ids in bodies
//! and queries; a viewer changes nothing and sees no link credential; rotation and revocation
//! hold at once; the audit trail records a scripted series of changes exactly.

use std::collections::BTreeMap;

use funnelhooks_routes::{Access, Route};
use funnelhooks_testhost::Receiver;
use serde_json::{Value, json};

use crate::common::Admin;
use crate::scenarios::Target;

/// Runs every access scenario against `t`.
pub async fn run_all(t: &Target) {
    every_route_answers_each_role_and_scope_as_the_rule_says(t).await;
    keys_rotate_and_revoke_at_once_and_the_trail_records_changes(t).await;
}

/// One side of the fixture: a bot with everything a route can name, and a service with a
/// hook, each with a delivery (test sends).
struct Side {
    bot: String,
    step: String,
    chat: &'static str,
    field: &'static str,
    link: String,
    conversion_link: String,
    bot_delivery: String,
    service: String,
    hook: String,
    hook_delivery: String,
}

impl Side {
    /// `template` with this side's ids; `shared` fills ids that belong to no side.
    fn fill(&self, template: &str, shared: &BTreeMap<&str, String>) -> String {
        template
            .replace("{botId}", &self.bot)
            .replace("{stepId}", &self.step)
            .replace("{chatId}", self.chat)
            .replace("{key}", self.field)
            .replace("{postbackId}", &self.link)
            .replace("{conversionId}", &self.conversion_link)
            .replace("{deliveryId}", &self.bot_delivery)
            .replace("{serviceId}", &self.service)
            .replace("{hookId}", &self.hook)
            .replace("{endpointId}", &shared["endpointId"])
            .replace("{keyId}", &shared["keyId"])
    }
}

async fn side(t: &Target, admin: &Admin, name: &str, rx: &Receiver) -> Side {
    let l = &t.label;
    let bot = admin.bot(name).await;
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "lead", "kind": "send-webhook",
                        "webhook": {"url": format!("{}/lead?chat={{chatId}}", rx.url())}})),
        )
        .await;
    assert_eq!(step.status, 201, "{l}: {}", step.text());
    let step = step.json()["id"].as_str().unwrap().to_string();
    admin
        .put(
            &format!("/api/bots/{bot}/fields/deposit"),
            json!({"type": "number"}),
        )
        .await;
    admin
        .put(
            &format!("/api/bots/{bot}/dialogs/1227280"),
            json!({"username": "ivan"}),
        )
        .await;
    let (link, _) = admin.link(&bot).await;
    let conversion_link = admin
        .call("POST", &format!("/api/bots/{bot}/conversion-links"), None)
        .await;
    assert_eq!(
        conversion_link.status,
        201,
        "{l}: {}",
        conversion_link.text()
    );
    let conversion_link = conversion_link.json()["id"].as_str().unwrap().to_string();
    let sent = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps/{step}/test-send"),
            Some(json!({})),
        )
        .await;
    assert_eq!(sent.status, 200, "{l}: {}", sent.text());
    let bot_delivery = sent.json()["id"].as_str().unwrap().to_string();
    let service = admin
        .call(
            "POST",
            "/api/calls/services",
            Some(json!({"name": format!("{name} calls")})),
        )
        .await;
    assert_eq!(service.status, 201, "{l}: {}", service.text());
    let service = service.json()["id"].as_str().unwrap().to_string();
    let hook = admin
        .call(
            "POST",
            &format!("/api/calls/services/{service}/hooks"),
            Some(
                json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                        "path": "/call", "method": "POST", "event": "end",
                        "parameters": [{"name": "call", "param": "id"}]}),
            ),
        )
        .await;
    assert_eq!(hook.status, 201, "{l}: {}", hook.text());
    let hook = hook.json()["id"].as_str().unwrap().to_string();
    let sent = admin
        .call(
            "POST",
            &format!("/api/calls/services/{service}/hooks/{hook}/test-send"),
            None,
        )
        .await;
    assert_eq!(sent.status, 200, "{l}: {}", sent.text());
    let hook_delivery = sent.json()["id"].as_str().unwrap().to_string();
    Side {
        bot,
        step,
        chat: "1227280",
        field: "deposit",
        link,
        conversion_link,
        bot_delivery,
        service,
        hook,
        hook_delivery,
    }
}

/// Makes a key as the admin token; returns (id, key).
async fn make_key(t: &Target, body: Value) -> (String, String) {
    let made = t
        .admin()
        .call("POST", "/api/keys", Some(body.clone()))
        .await;
    assert_eq!(made.status, 201, "{}: {body}: {}", t.label, made.text());
    let made = made.json();
    (
        made["id"].as_str().unwrap().to_string(),
        made["key"].as_str().unwrap().to_string(),
    )
}

/// A key under test: how the rule sees it.
struct Holder {
    name: &'static str,
    client: Admin,
    root: bool,
    role: &'static str,
    bots: Option<String>,
    services: Option<String>,
}

impl Holder {
    fn sees_bot(&self, bot: &str) -> bool {
        self.bots.as_deref().is_none_or(|b| b == bot)
    }
    fn sees_service(&self, service: &str) -> bool {
        self.services.as_deref().is_none_or(|s| s == service)
    }
}

/// What the rule in docs/security.md says `h` gets on `route` for `side`: `Err(status)` for
/// a refusal, `Ok(())` for a request that reaches its handler.
fn rule(h: &Holder, access: Access, template: &str, side: &Side) -> Result<(), u16> {
    let admin = h.role == "admin";
    match access {
        Access::AdminOrMetricsToken if !h.root => return Err(401),
        Access::Admin | Access::AdminOrSweepKey if !admin => return Err(403),
        Access::Write if h.role == "viewer" => return Err(403),
        _ => {}
    }
    if template.contains("{botId}") {
        return if h.sees_bot(&side.bot) {
            Ok(())
        } else {
            Err(404)
        };
    }
    if template.contains("{serviceId}") {
        return if h.sees_service(&side.service) {
            Ok(())
        } else {
            Err(404)
        };
    }
    if template.contains("{deliveryId}") {
        // The fixture's deliveries are bot deliveries.
        return if h.sees_bot(&side.bot) {
            Ok(())
        } else {
            Err(404)
        };
    }
    let creates = access == Access::Write;
    if creates && template == "/api/bots" && h.bots.is_some() {
        return Err(403);
    }
    if creates && template == "/api/calls/services" && h.services.is_some() {
        return Err(403);
    }
    Ok(())
}

fn keyed_routes() -> Vec<(&'static str, &'static str, Access)> {
    fn rows<Op>(table: &[Route<Op>]) -> Vec<(&'static str, &'static str, Access)> {
        table
            .iter()
            .filter(|r| r.access.wants_key())
            .map(|r| (r.method, r.path, r.access))
            .collect()
    }
    let mut all = rows(funnelhooks_routes::bots_api::ROUTES);
    all.extend(rows(funnelhooks_routes::conversions::ROUTES));
    all.extend(rows(funnelhooks_routes::send_webhook::ROUTES));
    all.extend(rows(funnelhooks_routes::call_hooks::ROUTES));
    all.extend(rows(funnelhooks_routes::access::ROUTES));
    all.extend(rows(funnelhooks_routes::health::ROUTES));
    all
}

/// What bot B and service B hold, read as the admin token: a refused request must not
/// change it.
async fn contents(admin: &Admin, side: &Side) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/bots/{}", side.bot),
        format!("/api/bots/{}/steps", side.bot),
        format!("/api/bots/{}/fields", side.bot),
        format!("/api/bots/{}/webhooks", side.bot),
        format!("/api/bots/{}/conversion-links", side.bot),
        format!("/api/bots/{}/auto-actions", side.bot),
        format!("/api/bots/{}/dialogs/{}", side.bot, side.chat),
        format!("/api/calls/services/{}", side.service),
        format!("/api/deliveries?botId={}", side.bot),
        format!("/api/deliveries?serviceId={}", side.service),
    ] {
        let mut v = admin.get(&path).await;
        // The step's state counts its deliveries' outcomes, which the sweep may move on; a
        // delivery is compared by its id and request.
        if let Some(items) = v["items"].as_array_mut() {
            for item in items {
                if let Some(o) = item.as_object_mut() {
                    o.retain(|k, _| {
                        !matches!(
                            k.as_str(),
                            "deliveryState"
                                | "status"
                                | "attemptCount"
                                | "lastAttempt"
                                | "updatedAt"
                                | "nextAttemptAt"
                        )
                    });
                }
            }
        }
        out.push(v);
    }
    out
}

async fn every_route_answers_each_role_and_scope_as_the_rule_says(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let a = side(t, &admin, "Client A", &rx).await;
    let b = side(t, &admin, "Client B", &rx).await;
    let endpoint = admin
        .call(
            "POST",
            "/api/alerts/endpoints",
            Some(json!({"url": format!("{}/alerts", rx.url())})),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{l}: {}", endpoint.text());
    let (victim, _) = make_key(
        t,
        json!({"name": "victim", "role": "viewer", "bots": "all"}),
    )
    .await;
    let shared: BTreeMap<&str, String> = [
        (
            "endpointId",
            endpoint.json()["id"].as_str().unwrap().to_string(),
        ),
        ("keyId", victim),
    ]
    .into();

    let (_, viewer) = make_key(
        t,
        json!({"name": "viewer of A", "role": "viewer", "bots": [a.bot], "services": [a.service]}),
    )
    .await;
    let (_, editor) = make_key(
        t,
        json!({"name": "editor of A", "role": "editor", "bots": [a.bot], "services": [a.service]}),
    )
    .await;
    let (_, editor_all) = make_key(
        t,
        json!({"name": "editor of all", "role": "editor", "bots": "all", "services": "all"}),
    )
    .await;
    let (_, admin_key) = make_key(t, json!({"name": "ops", "role": "admin"})).await;
    let holder = |name, key: &str, root, role, scoped: bool| Holder {
        name,
        client: Admin::with_key(&t.client, key),
        root,
        role,
        bots: scoped.then(|| a.bot.clone()),
        services: scoped.then(|| a.service.clone()),
    };
    let holders = [
        holder("viewer of A", &viewer, false, "viewer", true),
        holder("editor of A", &editor, false, "editor", true),
        holder("editor of all", &editor_all, false, "editor", false),
        holder("admin key", &admin_key, false, "admin", false),
        holder(
            "admin token",
            crate::common::ADMIN_TOKEN,
            true,
            "admin",
            false,
        ),
    ];

    // The scope: lists show what is in scope; what is not answers as what does not exist.
    let viewer_client = &holders[0].client;
    let bots = viewer_client.get("/api/bots").await;
    assert_eq!(bots["items"].as_array().unwrap().len(), 1, "{l}: {bots}");
    assert_eq!(bots["items"][0]["id"], a.bot.as_str(), "{l}");
    let services = viewer_client.get("/api/calls/services").await;
    assert_eq!(
        services["items"].as_array().unwrap().len(),
        1,
        "{l}: {services}"
    );
    let deliveries = viewer_client.get("/api/deliveries").await;
    let items = deliveries["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "{l}: A's step and hook deliveries: {deliveries}"
    );
    assert!(
        items
            .iter()
            .all(|d| d["botId"] == a.bot.as_str() || d["serviceId"] == a.service.as_str()),
        "{l}: {deliveries}"
    );
    let of_b = viewer_client
        .get(&format!("/api/deliveries?botId={}", b.bot))
        .await;
    assert_eq!(of_b["items"], json!([]), "{l}: {of_b}");
    for (hidden, missing) in [
        (
            format!("/api/bots/{}", b.bot),
            "/api/bots/0b6c3c9e-4c1b-4a57-9a4e-8d1c2b3a4f50".to_string(),
        ),
        (
            format!("/api/calls/services/{}", b.service),
            "/api/calls/services/0b6c3c9e-4c1b-4a57-9a4e-8d1c2b3a4f50".to_string(),
        ),
        (
            format!("/api/deliveries/{}", b.bot_delivery),
            "/api/deliveries/0b6c3c9e-4c1b-4a57-9a4e-8d1c2b3a4f50".to_string(),
        ),
    ] {
        let hidden_reply = viewer_client.call("GET", &hidden, None).await;
        let missing_reply = viewer_client.call("GET", &missing, None).await;
        assert_eq!(hidden_reply.status, 404, "{l}: {hidden}");
        assert_eq!(
            hidden_reply.body, missing_reply.body,
            "{l}: {hidden} tells itself from an id that does not exist"
        );
    }
    // Ids in bodies and queries are held to the scope too.
    let preview = |bot: &str| {
        json!({"template": "{username} {fields.deposit}", "target": "text", "botId": bot,
               "chatId": 1227280})
    };
    let hidden_preview = viewer_client
        .call("POST", "/api/templates/preview", Some(preview(&b.bot)))
        .await;
    let missing_preview = viewer_client
        .call(
            "POST",
            "/api/templates/preview",
            Some(preview("0b6c3c9e-4c1b-4a57-9a4e-8d1c2b3a4f50")),
        )
        .await;
    assert_eq!(hidden_preview.status, 404, "{l}: {}", hidden_preview.text());
    assert_eq!(
        hidden_preview.body, missing_preview.body,
        "{l}: preview of B"
    );
    let own_preview = viewer_client
        .call("POST", "/api/templates/preview", Some(preview(&a.bot)))
        .await;
    assert_eq!(own_preview.status, 200, "{l}: {}", own_preview.text());
    for (path, what) in [
        (
            format!("/api/deliveries/{}", b.hook_delivery),
            "B's hook delivery",
        ),
        (
            format!("/api/deliveries?serviceId={}", b.service),
            "B's service log",
        ),
        (format!("/api/deliveries?hookId={}", b.hook), "B's hook log"),
        (format!("/api/deliveries?stepId={}", b.step), "B's step log"),
    ] {
        let reply = viewer_client.call("GET", &path, None).await;
        let shown = reply.status == 200 && reply.json()["items"] != json!([]);
        assert!(
            reply.status == 404 || (reply.status == 200 && !shown),
            "{l}: {what} shown to A's viewer: {}",
            reply.text()
        );
    }
    let own = viewer_client
        .get(&format!("/api/deliveries/{}", a.hook_delivery))
        .await;
    assert_eq!(own["serviceId"], a.service.as_str(), "{l}");
    // An alert's deliveries are an admin's.
    let alert = admin
        .call(
            "POST",
            &format!("/api/alerts/endpoints/{}/test-send", shared["endpointId"]),
            None,
        )
        .await;
    assert_eq!(alert.status, 200, "{l}: {}", alert.text());
    let alert_delivery = alert.json()["id"].as_str().unwrap().to_string();
    let alert_seen = holders[2]
        .client
        .call("GET", &format!("/api/deliveries/{alert_delivery}"), None)
        .await;
    assert_eq!(
        alert_seen.status, 404,
        "{l}: an editor saw an alert delivery"
    );
    // A viewer sees that a link exists, never its id or URL (they change dialogs).
    let links = viewer_client
        .get(&format!("/api/bots/{}/webhooks", a.bot))
        .await;
    let link = &links["items"][0];
    assert_eq!(link["hidden"], true, "{l}: {links}");
    assert!(link["url"].is_null(), "{l}: {links}");
    assert!(!links.to_string().contains(&a.link), "{l}: {links}");
    let editor_links = holders[1]
        .client
        .get(&format!("/api/bots/{}/webhooks", a.bot))
        .await;
    assert!(editor_links.to_string().contains(&a.link), "{l}");

    let me = viewer_client.get("/api/me").await;
    assert_eq!(
        (me["role"].as_str(), me["name"].as_str()),
        (Some("viewer"), Some("viewer of A")),
        "{l}: {me}"
    );

    // Every keyed route, for both sides, for every holder: refusals first, then what is
    // allowed (with an empty body: it reaches the handler, which refuses it or does it).
    let before = contents(&admin, &b).await;
    let routes = keyed_routes();
    let mut allowed = Vec::new();
    let mut refused = 0;
    for (method, template, access) in &routes {
        for side in [&a, &b] {
            let path = side.fill(template, &shared);
            for h in &holders {
                match rule(h, *access, template, side) {
                    Err(status) => {
                        let reply = h.client.call(method, &path, Some(json!({}))).await;
                        assert_eq!(
                            reply.status,
                            status,
                            "{l}: {method} {path} as {}: {}",
                            h.name,
                            reply.text()
                        );
                        refused += 1;
                    }
                    Ok(()) => allowed.push((method, path.clone(), h)),
                }
            }
        }
    }
    assert_eq!(
        contents(&admin, &b).await,
        before,
        "{l}: refused requests changed bot B"
    );
    let trail = admin.get("/api/audit?limit=200").await;
    let refusals_recorded = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ["viewer of A", "editor of A"].contains(&e["keyName"].as_str().unwrap_or("")))
        .count();
    assert_eq!(
        refusals_recorded, 0,
        "{l}: refusals in the audit trail: {trail}"
    );
    // Allowed requests reach their handler; deletions are left to the end, as they would
    // take the fixture away.
    for (method, path, h) in &allowed {
        if **method == "DELETE" {
            continue;
        }
        let reply = h.client.call(method, path, Some(json!({}))).await;
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let code = body["error"]["code"].as_str().map(str::to_string);
        assert!(
            !matches!(reply.status, 401 | 403)
                && !matches!(
                    code.as_deref(),
                    Some("unknown_bot" | "unknown_service" | "unknown_delivery")
                ),
            "{l}: {method} {path} as {}: {} {}",
            h.name,
            reply.status,
            reply.text()
        );
    }
    assert!(
        refused > 200 && allowed.len() > 200,
        "{l}: {refused} refused, {} allowed",
        allowed.len()
    );

    // The editor of A deletes what A holds, child first; then A itself.
    let editor_client = &holders[1].client;
    for path in [
        format!("/api/bots/{}/dialogs/{}", a.bot, a.chat),
        format!("/api/bots/{}/fields/{}", a.bot, a.field),
        format!("/api/bots/{}/webhooks/{}", a.bot, a.link),
        format!("/api/bots/{}/conversion-links/{}", a.bot, a.conversion_link),
        format!("/api/bots/{}/steps/{}", a.bot, a.step),
        format!("/api/calls/services/{}/hooks/{}", a.service, a.hook),
        format!("/api/calls/services/{}", a.service),
        format!("/api/bots/{}", a.bot),
    ] {
        let reply = editor_client.call("DELETE", &path, None).await;
        assert!(
            matches!(reply.status, 200 | 204),
            "{l}: DELETE {path}: {} {}",
            reply.status,
            reply.text()
        );
    }
    // Keys scoped to the deleted bot can still be renamed and narrowed.
    let keys = admin.get("/api/keys").await;
    let viewer_id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "viewer of A")
        .map(|k| k["id"].as_str().unwrap().to_string())
        .unwrap();
    let renamed = admin
        .call(
            "PATCH",
            &format!("/api/keys/{viewer_id}"),
            Some(json!({"name": "viewer of a bot gone"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{l}: {}", renamed.text());
}

async fn keys_rotate_and_revoke_at_once_and_the_trail_records_changes(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let bot = admin.bot("Audited").await;
    let (id, key) = make_key(
        t,
        json!({"name": "scripted", "role": "editor", "bots": [bot.clone()]}),
    )
    .await;
    let scripted = Admin::with_key(&t.client, &key);

    // A scripted series of changes, then the trail of this key, newest first.
    let step = "8a7f3c1e-2b4d-4e6f-9a0b-1c2d3e4f5a6b";
    let series: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "PATCH",
            format!("/api/bots/{bot}"),
            Some(json!({"name": "Audited again"})),
            "renameBot",
        ),
        (
            "PUT",
            format!("/api/bots/{bot}/fields/deposit"),
            Some(json!({"type": "number"})),
            "putField",
        ),
        (
            "PUT",
            format!("/api/bots/{bot}/steps/{step}"),
            Some(json!({"key": "sale", "kind": "message"})),
            "putStep",
        ),
        (
            "POST",
            format!("/api/bots/{bot}/webhooks"),
            None,
            "createPostbackLink",
        ),
        (
            "DELETE",
            format!("/api/bots/{bot}/fields/deposit"),
            None,
            "deleteField",
        ),
    ];
    for (method, path, body, _) in &series {
        let reply = scripted.call(method, path, body.clone()).await;
        assert!(reply.status < 300, "{l}: {method} {path}: {}", reply.text());
    }
    // A read and a refused write are not changes.
    scripted.get(&format!("/api/bots/{bot}")).await;
    assert_eq!(scripted.status("POST", "/api/bots").await, 403, "{l}");
    let trail = admin.get(&format!("/api/audit?keyId={id}")).await;
    let entries = trail["items"].as_array().unwrap();
    let got: Vec<(String, String, Value, Value)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["fields"].clone(),
                e["target"]["botId"].clone(),
            )
        })
        .collect();
    let want: Vec<(String, String, Value, Value)> = series
        .iter()
        .rev()
        .map(|(_, path, body, action)| {
            let fields: Vec<String> = body
                .as_ref()
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            (
                action.to_string(),
                path.clone(),
                if fields.is_empty() {
                    Value::Null
                } else {
                    json!(fields)
                },
                json!(bot),
            )
        })
        .collect();
    assert_eq!(got, want, "{l}: {trail}");
    assert!(
        entries.iter().all(|e| e["keyName"] == "scripted"),
        "{l}: {trail}"
    );

    // Rotation: the old key stops, the new one works; revocation: it stops at once.
    let rotated = admin
        .call("POST", &format!("/api/keys/{id}/rotate"), None)
        .await;
    assert_eq!(rotated.status, 200, "{l}: {}", rotated.text());
    let new_key = rotated.json()["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(scripted.status("GET", "/api/me").await, 401, "{l}: rotated");
    let renewed = Admin::with_key(&t.client, &new_key);
    assert_eq!(renewed.status("GET", "/api/me").await, 200, "{l}");
    assert_eq!(
        admin.status("DELETE", &format!("/api/keys/{id}")).await,
        204,
        "{l}"
    );
    assert_eq!(renewed.status("GET", "/api/me").await, 401, "{l}: revoked");
    // Rotation and revocation are changes too, by the admin token; no key is in the trail.
    let root_trail = admin.get("/api/audit?keyId=root&limit=5").await;
    let actions: Vec<&str> = root_trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions[..2],
        ["revokeApiKey", "rotateApiKey"],
        "{l}: {root_trail}"
    );
    let whole = admin.get("/api/audit?limit=200").await.to_string();
    assert!(
        !whole.contains(&key[36..]) && !whole.contains(&new_key[36..]),
        "{l}: a key's secret in the audit trail"
    );
    let listed = admin.get("/api/keys").await.to_string();
    assert!(
        !listed.contains(&new_key[36..]),
        "{l}: a secret in the key list"
    );
}
