//! Services, hooks and events in the store: keys shown once and rotated, hooks edited without
//! losing what PATCH does not name, repeated events recognised.

use funnelhooks_calls::{CallRepo, EventClaim, EventKind, EventRecord};
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_dialog::Timestamp;
use funnelhooks_store::MemoryKv;
use serde_json::json;

const NOW: Timestamp = Timestamp(1_710_092_972_806);
const POLICY: TargetPolicy = TargetPolicy {
    allow_loopback: false,
};

#[test]
fn the_ingest_key_opens_its_service_until_it_is_rotated() {
    let kv = MemoryKv::new();
    let repo = CallRepo::new(&kv);
    let (service, key) = repo.create_service("Site".into(), NOW).unwrap();
    assert!(key.starts_with("ik_") && key.len() == 67);
    let stored = repo.service(&service.id).unwrap();
    assert!(stored.key_matches(&key));
    assert!(!stored.key_matches(&key[..66]));
    assert!(
        !serde_json::to_string(&stored).unwrap().contains(&key),
        "only a hash is kept"
    );
    let new_key = repo.rotate_key(&service.id, NOW).unwrap();
    let stored = repo.service(&service.id).unwrap();
    assert!(stored.key_matches(&new_key) && !stored.key_matches(&key));
}

#[test]
fn patching_a_hook_changes_only_what_it_names_and_keeps_the_secret() {
    let kv = MemoryKv::new();
    let repo = CallRepo::new(&kv);
    let (service, _) = repo.create_service("Site".into(), NOW).unwrap();
    let form = json!({"host": "crm.example.com", "event": "end", "method": "POST",
                      "parameters": [{"name": "id", "param": "id"}],
                      "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
    let hook = repo.add_hook(&service.id, &form, POLICY, NOW).unwrap();
    let patched = repo
        .edit_hook(
            &service.id,
            &hook.id,
            &json!({"enabled": false}),
            true,
            POLICY,
            NOW,
        )
        .unwrap();
    let config = patched.hook(POLICY).unwrap();
    assert!(!config.enabled);
    assert!(config.post && config.options.signing_secret.is_some());
    // A bad PATCH changes nothing.
    let bad = repo.edit_hook(
        &service.id,
        &hook.id,
        &json!({"port": 0}),
        true,
        POLICY,
        NOW,
    );
    assert_eq!(bad.unwrap_err().field.as_deref(), Some("port"));
    let still = repo.service(&service.id).unwrap();
    assert_eq!(still.hook(&hook.id).unwrap().config, patched.config);
    repo.delete_hook(&service.id, &hook.id, NOW).unwrap();
    assert!(repo.service(&service.id).unwrap().hooks.is_empty());
    assert_eq!(
        repo.delete_hook(&service.id, &hook.id, NOW)
            .unwrap_err()
            .status,
        404
    );
}

#[test]
fn an_event_is_new_once_per_call_and_type_and_repeats_see_what_it_did() {
    let kv = MemoryKv::new();
    let repo = CallRepo::new(&kv);
    let (service, _) = repo.create_service("Site".into(), NOW).unwrap();
    let s = service.id.as_str();
    assert_eq!(
        repo.claim_event(s, EventKind::Start, "c1").unwrap(),
        EventClaim::First
    );
    assert_eq!(
        repo.claim_event(s, EventKind::End, "c1").unwrap(),
        EventClaim::First
    );
    assert_eq!(
        repo.claim_event(s, EventKind::Start, "c2").unwrap(),
        EventClaim::First
    );
    assert_eq!(
        repo.claim_event(s, EventKind::Start, "c1").unwrap(),
        EventClaim::Repeat(None)
    );
    let record = EventRecord {
        matched: 1,
        deliveries: vec![("h1".into(), "d1".into())],
        at: NOW,
    };
    repo.record_event(s, EventKind::End, "c1", &record).unwrap();
    assert_eq!(
        repo.claim_event(s, EventKind::End, "c1").unwrap(),
        EventClaim::Repeat(Some(record))
    );
    // Deleting the service forgets its events and its hooks.
    repo.delete_service(s).unwrap();
    assert_eq!(repo.service(s).unwrap_err().status, 404);
    assert!(kv.keys().iter().all(|k| !k.contains(s)), "{:?}", kv.keys());
}

#[test]
fn a_service_holds_at_most_fifty_hooks() {
    let kv = MemoryKv::new();
    let repo = CallRepo::new(&kv);
    let (service, _) = repo.create_service("Site".into(), NOW).unwrap();
    let form = json!({"host": "crm.example.com", "event": "end"});
    for _ in 0..50 {
        repo.add_hook(&service.id, &form, POLICY, NOW).unwrap();
    }
    let e = repo.add_hook(&service.id, &form, POLICY, NOW).unwrap_err();
    assert_eq!((e.status, e.code), (409, "too_many_hooks"));
}
