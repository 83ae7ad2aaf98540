//! API keys, the rule that decides a route for a key, and the audit trail, on each store's
//! semantics.

use funnelhooks_access::audit::{AUDIT_KEEP, AuditEntry, fields_of};
use funnelhooks_access::keys::{KeySettings, MAX_KEYS};
use funnelhooks_access::{Audit, Caller, Keys, Role, Scope};
use funnelhooks_core::{Kind, Timestamp, new_id};
use funnelhooks_routes::{Access, Found, Target, find};
use funnelhooks_store::{Kv, MemoryKv, Semantics};
use serde_json::json;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn stores() -> Vec<(&'static str, MemoryKv)> {
    vec![
        ("sqlite", MemoryKv::with(Semantics::Sqlite)),
        ("redis", MemoryKv::with(Semantics::Redis)),
        ("no-atomics", MemoryKv::without_atomics()),
    ]
}

fn settings(body: serde_json::Value) -> KeySettings {
    KeySettings::read(&body).unwrap_or_else(|e| panic!("{body}: {e:?}"))
}

#[test]
fn a_key_works_until_rotated_or_revoked_and_its_secret_is_never_stored() {
    for (store, kv) in stores() {
        let keys = Keys::new(&kv);
        let bot = new_id();
        let (key, token) = keys
            .create(
                settings(json!({"name": "client A", "role": "editor", "bots": [bot]})),
                T0,
            )
            .unwrap();
        assert!(token.starts_with("fhk_"), "{store}");
        let caller = keys.verify(&token).unwrap().expect("the new key works");
        assert_eq!(caller.role, Role::Editor);
        assert!(caller.sees_bot(&bot) && !caller.sees_bot(&new_id()));
        assert!(
            !caller.sees_service(&new_id()),
            "{store}: no services named"
        );
        // Nothing stored holds the secret.
        let secret = &token[36..];
        let stored = kv.get(&format!("apikey:{}", key.id)).unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&stored).contains(secret),
            "{store}"
        );
        assert!(!key.view().to_string().contains(secret), "{store}");
        // A wrong secret for a real id is refused.
        let mut wrong = token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert_eq!(keys.verify(&wrong).unwrap(), None, "{store}");

        let (_, rotated) = keys.rotate(&key.id, T0).unwrap();
        assert_eq!(
            keys.verify(&token).unwrap(),
            None,
            "{store}: the old key stops"
        );
        assert!(keys.verify(&rotated).unwrap().is_some(), "{store}");

        assert_eq!(keys.list().unwrap().len(), 1);
        keys.revoke(&key.id).unwrap();
        assert_eq!(
            keys.verify(&rotated).unwrap(),
            None,
            "{store}: revoked stops"
        );
        assert!(keys.list().unwrap().is_empty(), "{store}");
        assert_eq!(keys.get(&key.id).unwrap_err().kind, Kind::NotFound);
    }
}

#[test]
fn settings_are_checked_naming_the_member() {
    let bad = |body: serde_json::Value, field: &str, code: &str| {
        let e = KeySettings::read(&body).unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.code),
            (Some(field), code),
            "{body}: {e:?}"
        );
    };
    bad(
        json!({"role": "viewer", "bots": "all"}),
        "name",
        "missing_field",
    );
    bad(
        json!({"name": " ", "role": "viewer", "bots": "all"}),
        "name",
        "bad_name",
    );
    bad(json!({"name": "a", "bots": "all"}), "role", "missing_field");
    bad(
        json!({"name": "a", "role": "owner", "bots": "all"}),
        "role",
        "bad_role",
    );
    assert_eq!(
        settings(json!({"name": "later", "role": "viewer"})).bots,
        Scope::Only(vec![]),
        "a key may reach nothing yet"
    );
    bad(
        json!({"name": "a", "role": "viewer", "bots": "some"}),
        "bots",
        "bad_scope",
    );
    bad(
        json!({"name": "a", "role": "viewer", "bots": ["nope"]}),
        "bots[0]",
        "bad_scope",
    );
    bad(
        json!({"name": "a", "role": "admin", "bots": [new_id()]}),
        "bots",
        "admin_scope",
    );
    bad(
        json!({"name": "a", "role": "viewer", "secret": "x"}),
        "secret",
        "unknown_field",
    );
    // An admin is scoped to everything without saying so; ids are kept once, lower-case.
    let admin = settings(json!({"name": "ops", "role": "admin"}));
    assert_eq!((admin.bots, admin.services), (Scope::All, Scope::All));
    let id = new_id();
    let twice =
        settings(json!({"name": "a", "role": "viewer", "services": [id.to_uppercase(), id]}));
    assert_eq!(twice.services, Scope::Only(vec![id.clone()]));
    // A change keeps what it does not name; making a key an admin widens its scope.
    let changed = twice.changed(&json!({"name": "b"})).unwrap();
    assert_eq!(
        (changed.name.as_str(), changed.services),
        ("b", Scope::Only(vec![id]))
    );
    let promoted = twice.changed(&json!({"role": "admin"})).unwrap();
    assert_eq!(promoted.bots, Scope::All);
}

#[test]
fn an_installation_holds_a_bounded_number_of_keys() {
    let kv = MemoryKv::with(Semantics::Sqlite);
    let keys = Keys::new(&kv);
    for i in 0..MAX_KEYS {
        keys.create(
            settings(json!({"name": format!("k{i}"), "role": "viewer", "bots": "all"})),
            T0,
        )
        .unwrap();
    }
    let e = keys
        .create(
            settings(json!({"name": "one more", "role": "viewer", "bots": "all"})),
            T0,
        )
        .unwrap_err();
    assert_eq!(e.code, "too_many_keys");
    let first = keys.list().unwrap()[0].id.clone();
    keys.revoke(&first).unwrap();
    keys.create(
        settings(json!({"name": "one more", "role": "viewer", "bots": "all"})),
        T0,
    )
    .unwrap();
}

/// Every management route of every table, decided for each role and scope as the rule in
/// docs/security.md states it.
#[test]
fn each_role_and_scope_gets_what_the_rule_says_on_every_route() {
    use funnelhooks_routes::{access, bots_api, call_hooks, conversions, health, send_webhook};
    let (a, b, s) = (new_id(), new_id(), new_id());
    let keys = [
        Caller::root(),
        caller(
            Role::Viewer,
            Scope::Only(vec![a.clone()]),
            Scope::Only(vec![]),
        ),
        caller(
            Role::Editor,
            Scope::Only(vec![a.clone()]),
            Scope::Only(vec![s.clone()]),
        ),
        caller(Role::Editor, Scope::All, Scope::All),
    ];
    let mut routes: Vec<(&str, &str, Access)> = Vec::new();
    routes.extend(
        bots_api::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.access)),
    );
    routes.extend(
        send_webhook::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.access)),
    );
    routes.extend(
        call_hooks::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.access)),
    );
    routes.extend(
        conversions::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.access)),
    );
    routes.extend(access::ROUTES.iter().map(|r| (r.method, r.path, r.access)));
    routes.extend(health::ROUTES.iter().map(|r| (r.method, r.path, r.access)));
    let mut decided = 0;
    for (method, template, access) in routes {
        if !access.wants_key() {
            continue;
        }
        for bot in [&a, &b] {
            let path = template
                .replace("{botId}", bot)
                .replace("{serviceId}", &s)
                .replace(['{', '}'], "");
            let Found::Route(route, params) = find_any(method, &path) else {
                panic!("{method} {path}");
            };
            for k in &keys {
                let got = k.check(access, route.target(), &params).map_err(|e| e.kind);
                let want = rule(k, access, template, bot, &s);
                assert_eq!(got, want, "{method} {path} as {:?}", k.role);
                decided += 1;
            }
        }
    }
    assert!(decided > 500, "{decided}");
}

/// The rule as docs/security.md states it, written apart from `Caller::check`.
fn rule(k: &Caller, access: Access, template: &str, bot: &str, service: &str) -> Result<(), Kind> {
    let writes = access != Access::Read;
    let role_refuses = (matches!(access, Access::Admin | Access::AdminOrSweepKey)
        && k.role != Role::Admin)
        || (writes && k.role == Role::Viewer);
    if access == Access::AdminOrMetricsToken && k.key_id.is_some() {
        return Err(Kind::Unauthorized);
    }
    if role_refuses {
        return Err(Kind::Forbidden);
    }
    let out_of_scope = if template.contains("{botId}") {
        !k.sees_bot(bot)
    } else {
        template.contains("{serviceId}") && !k.sees_service(service)
    };
    if out_of_scope {
        return Err(Kind::NotFound);
    }
    let creates_beyond_scope = writes
        && ((template == "/api/bots" && k.bots != Scope::All)
            || (template == "/api/calls/services" && k.services != Scope::All));
    if creates_beyond_scope {
        return Err(Kind::Forbidden);
    }
    Ok(())
}

fn find_any(method: &str, path: &str) -> Found<Target> {
    use funnelhooks_routes::{access, bots_api, call_hooks, conversions, health, send_webhook};
    macro_rules! try_table {
        ($t:ident) => {
            if let Found::Route(r, p) = find($t::ROUTES, method, path) {
                let route = funnelhooks_routes::Route {
                    method: r.method,
                    path: r.path,
                    operation_id: r.operation_id,
                    access: r.access,
                    op: r.target(),
                };
                return Found::Route(route, p);
            }
        };
    }
    try_table!(bots_api);
    try_table!(send_webhook);
    try_table!(call_hooks);
    try_table!(conversions);
    try_table!(access);
    try_table!(health);
    Found::NoRoute
}

fn caller(role: Role, bots: Scope, services: Scope) -> Caller {
    Caller {
        key_id: Some(new_id()),
        name: "k".into(),
        role,
        bots,
        services,
    }
}

#[test]
fn the_trail_keeps_the_newest_entries_newest_first() {
    let kv = MemoryKv::with(Semantics::Redis);
    let audit = Audit::new(&kv);
    let entry = |n: u64| AuditEntry {
        at: Timestamp(T0.0 + n as i64),
        key_id: "root".into(),
        key_name: "admin token".into(),
        action: "putStep".into(),
        method: "PUT".into(),
        path: format!("/api/bots/b/steps/{n}"),
        target: [("stepId".to_string(), n.to_string())].into(),
        fields: fields_of(br#"{"webhook": {}, "name": "x"}"#),
        status: 200,
    };
    for n in 1..=AUDIT_KEEP + 5 {
        audit.record(&entry(n)).unwrap();
    }
    let page = audit.page(None, 3, |_| true).unwrap();
    let newest: Vec<u64> = page.items.iter().map(|(slot, _)| *slot).collect();
    assert_eq!(newest, vec![AUDIT_KEEP + 5, AUDIT_KEEP + 4, AUDIT_KEEP + 3]);
    assert_eq!(page.items[0].1, entry(AUDIT_KEEP + 5));
    assert_eq!(page.items[0].1.fields, vec!["name", "webhook"]);
    // The five oldest are gone; the oldest kept is the sixth.
    for n in 1..=5 {
        assert_eq!(kv.get(&format!("audit:{n}")).unwrap(), None);
    }
    assert!(kv.get("audit:6").unwrap().is_some());
}

#[test]
fn an_entry_stays_small_whatever_the_request() {
    use funnelhooks_access::audit::{MAX_AUDIT_FIELDS, MAX_AUDIT_PATH};
    let huge = AuditEntry {
        at: T0,
        key_id: "k".into(),
        key_name: "n".repeat(500),
        action: "pauseStep".into(),
        method: "pAtCh".into(),
        path: format!("/api/bots/b{}/pause", "/".repeat(65_000)),
        target: [("botId".to_string(), "é".repeat(300))].into(),
        fields: (0..4_000)
            .map(|i| format!("m{i:06}_{}", "x".repeat(50)))
            .collect(),
        status: 200,
    }
    .bounded();
    assert!(huge.path.len() <= MAX_AUDIT_PATH + 3, "{}", huge.path.len());
    assert_eq!(huge.method, "PATCH");
    assert_eq!(huge.fields.len(), MAX_AUDIT_FIELDS + 1);
    assert_eq!(
        huge.fields.last().unwrap(),
        &format!("… {} more", 4_000 - MAX_AUDIT_FIELDS)
    );
    let size = serde_json::to_string(&huge).unwrap().len();
    assert!(size < 4_096, "{size} bytes");
}
