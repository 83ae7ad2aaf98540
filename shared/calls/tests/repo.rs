//! Services, hooks and events in the store: keys shown once and rotated, hooks edited without
//! losing what PATCH does not name, repeated events recognised.

use funnelhooks_calls::{CallRepo, EVENT_HOLD_MS, Edit, EventClaim, EventKind, EventRecord};
use funnelhooks_core::{Kind, Timestamp};
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_store::{Decide, Interleaved, Jobs, Kv, MemoryKv, Semantics};
use serde_json::json;

const NOW: Timestamp = Timestamp(1_710_092_972_806);
const POLICY: TargetPolicy = TargetPolicy {
    allow_loopback: false,
};

/// Every store semantics with atomics: each test below runs on all of them.
const SEMANTICS: [Semantics; 3] = [Semantics::Sqlite, Semantics::Redis, Semantics::Faulty(9)];

#[test]
fn the_ingest_key_opens_its_service_until_it_is_rotated() {
    for semantics in SEMANTICS {
        the_ingest_key_opens_its_service_until_it_is_rotated_on(MemoryKv::with(semantics));
    }
}

fn the_ingest_key_opens_its_service_until_it_is_rotated_on(kv: MemoryKv) {
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
    for semantics in SEMANTICS {
        patching_a_hook_changes_only_what_it_names_and_keeps_the_secret_on(MemoryKv::with(
            semantics,
        ));
    }
}

fn patching_a_hook_changes_only_what_it_names_and_keeps_the_secret_on(kv: MemoryKv) {
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
            (Edit::Patch, &json!({"enabled": false})),
            POLICY,
            NOW,
        )
        .unwrap();
    let config = &patched.config;
    assert!(!config.enabled);
    assert!(config.post && config.options.signing_secret.is_some());
    // A bad PATCH changes nothing.
    let bad = repo.edit_hook(
        &service.id,
        &hook.id,
        (Edit::Patch, &json!({"port": 0})),
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
            .kind,
        Kind::NotFound
    );
}

#[test]
fn an_event_is_delivered_at_least_once_and_repeats_see_what_it_did() {
    for semantics in SEMANTICS {
        an_event_is_delivered_at_least_once_and_repeats_see_what_it_did_on(MemoryKv::with(
            semantics,
        ));
    }
}

fn an_event_is_delivered_at_least_once_and_repeats_see_what_it_did_on(kv: MemoryKv) {
    let repo = CallRepo::new(&kv);
    let (service, _) = repo.create_service("Site".into(), NOW).unwrap();
    let s = service.id.as_str();
    let later = |ms: i64| Timestamp(NOW.0 + ms);
    for which in [
        (EventKind::Start, "c1"),
        (EventKind::End, "c1"),
        (EventKind::Start, "c2"),
    ] {
        assert_eq!(
            repo.claim_event(s, which, NOW).unwrap(),
            EventClaim::Deliver
        );
    }
    // A repeat while the first copy works on it: come back when its hold ends.
    assert_eq!(
        repo.claim_event(s, (EventKind::Start, "c1"), later(1_000))
            .unwrap(),
        EventClaim::InProgress(later(EVENT_HOLD_MS))
    );
    // The first copy of c1/end finished: repeats get what it did.
    let record = EventRecord {
        matched: 1,
        deliveries: vec![("h1".into(), "d1".into())],
        at: NOW,
        processing_until: None,
    };
    // As the ingest writes it, with the event's deliveries.
    let (key, done) = funnelhooks_calls::repo::event_done(s, (EventKind::End, "c1"), &record);
    kv.set(&key, &done).unwrap();
    assert_eq!(
        repo.claim_event(s, (EventKind::End, "c1"), later(1_000))
            .unwrap(),
        EventClaim::Repeat(record)
    );
    // The first copy of c1/start failed and said so: the next repeat takes over at once.
    repo.release_event(s, (EventKind::Start, "c1"), later(2_000))
        .unwrap();
    assert_eq!(
        repo.claim_event(s, (EventKind::Start, "c1"), later(3_000))
            .unwrap(),
        EventClaim::Deliver
    );
    // The first copy of c2/start died without a word: a repeat after its hold takes over,
    // and holds it in turn.
    let after_hold = later(EVENT_HOLD_MS + 1);
    assert_eq!(
        repo.claim_event(s, (EventKind::Start, "c2"), after_hold)
            .unwrap(),
        EventClaim::Deliver
    );
    assert!(matches!(
        repo.claim_event(s, (EventKind::Start, "c2"), after_hold)
            .unwrap(),
        EventClaim::InProgress(_)
    ));
    // Delivery ids are derived: the same event and hook give the same id, others differ.
    let id = CallRepo::<MemoryKv>::event_delivery_id(s, (EventKind::Start, "c1"), "h1");
    assert!(funnelhooks_core::is_uuid(&id));
    assert_eq!(
        id,
        CallRepo::<MemoryKv>::event_delivery_id(s, (EventKind::Start, "c1"), "h1")
    );
    assert_ne!(
        id,
        CallRepo::<MemoryKv>::event_delivery_id(s, (EventKind::End, "c1"), "h1")
    );
    // Deleting the service: gone at once; its events go with the background cleanup.
    repo.delete_service(s).unwrap();
    assert_eq!(repo.service(s).unwrap_err().kind, Kind::NotFound);
    let run = Jobs::new(&kv).run(&mut || true).unwrap();
    // Two jobs: its events, and its refused events (none here).
    assert_eq!((run.cleaned, run.finished, run.left), (3, 2, 0));
    assert!(kv.keys().iter().all(|k| !k.contains(s)), "{:?}", kv.keys());
}

#[test]
fn a_service_holds_at_most_fifty_hooks() {
    for semantics in SEMANTICS {
        a_service_holds_at_most_fifty_hooks_on(MemoryKv::with(semantics));
    }
}

fn a_service_holds_at_most_fifty_hooks_on(kv: MemoryKv) {
    let repo = CallRepo::new(&kv);
    let (service, _) = repo.create_service("Site".into(), NOW).unwrap();
    let form = json!({"host": "crm.example.com", "event": "end"});
    for _ in 0..50 {
        repo.add_hook(&service.id, &form, POLICY, NOW).unwrap();
    }
    let e = repo.add_hook(&service.id, &form, POLICY, NOW).unwrap_err();
    assert_eq!((e.kind, e.code), (Kind::Conflict, "too_many_hooks"));
}

#[test]
fn a_patch_racing_another_patch_keeps_both_changes() {
    let kv = MemoryKv::new();
    let repo = CallRepo::new(&kv);
    let (service, _) = repo.create_service("Site".into(), NOW).unwrap();
    let form = json!({"host": "crm.example.com", "event": "end"});
    let hook = repo.add_hook(&service.id, &form, POLICY, NOW).unwrap();
    let (sid, hid) = (service.id.clone(), hook.id.clone());
    // The other writer's patch lands between this one's read and its first swap.
    let interlude = std::cell::Cell::new(Some(move |inner: &MemoryKv| {
        CallRepo::new(inner)
            .edit_hook(
                &sid,
                &hid,
                (Edit::Patch, &json!({"timeoutMs": 5000})),
                POLICY,
                NOW,
            )
            .unwrap();
    }));
    let racing = Interleaved {
        inner: &kv,
        around: |inner: &MemoryKv, _: &str, current: Option<&[u8]>, decide: &mut Decide<'_>| {
            let new = decide(current)?;
            if let Some(other) = interlude.take() {
                other(inner);
            }
            Some(new)
        },
    };
    CallRepo::new(&racing)
        .edit_hook(
            &service.id,
            &hook.id,
            (Edit::Patch, &json!({"name": "CRM"})),
            POLICY,
            NOW,
        )
        .unwrap();
    let config = repo.service(&service.id).unwrap().hooks[0].config.clone();
    assert_eq!(config.name.as_deref(), Some("CRM"));
    assert_eq!(
        config.options.timeout_ms, 5000,
        "the other writer's change survives"
    );
}
