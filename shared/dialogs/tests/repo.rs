//! Bots, links, steps and dialogs through the repository on an in-memory store with the
//! semantics of each store funnelhooks runs on: Spin's SQLite store, Spin's Redis store (whose
//! swap reports failure even when it applied), a remote store whose swaps fail ambiguously at
//! random, and a host without key-value atomics.

use std::sync::Arc;

use funnelhooks_core::refused::{KEEP_REFUSED, MAX_REFUSED_SENT, Refusal, record_refused};
use funnelhooks_core::{Kind, Timestamp};
use funnelhooks_dialogs::bots::{FieldDef, StepInput, StepKind};
use funnelhooks_dialogs::limits::{ADMISSION_CHECK_EVERY, DialogLimits};
use funnelhooks_dialogs::refused::refused_list;
use funnelhooks_dialogs::{FieldType, FieldValue, Repo, Start, Status, from_request};
use funnelhooks_store::{Decide, GetMany, Jobs, Kv, MemoryKv, Semantics, StoreError};

const NOW: Timestamp = Timestamp(1_710_092_972_806);
const STEP: &str = "046050f6-38f6-4b18-b9fa-e6582f5352d0";

struct Bot {
    id: String,
    link: String,
}

fn bot_with_link(kv: &MemoryKv) -> Bot {
    let repo = Repo::new(kv);
    let bot = repo.create_bot("Casino funnel".into(), NOW).unwrap();
    let field = |kind| FieldDef {
        kind,
        description: String::new(),
    };
    repo.put_field(&bot.id, "userBalance", field(FieldType::Number), NOW)
        .unwrap();
    repo.put_field(&bot.id, "reg_status", field(FieldType::Boolean), NOW)
        .unwrap();
    let step = StepInput {
        key: "deposit".into(),
        kind: StepKind::Message,
        webhook: None::<()>,
    };
    repo.put_step(&bot.id, STEP, step, NOW).unwrap();
    let link = repo.create_link(&bot.id, NOW).unwrap();
    Bot {
        id: bot.id,
        link: link.id,
    }
}

fn get(
    kv: &impl GetMany,
    link: &str,
    query: &str,
) -> Result<funnelhooks_dialogs::Postback, funnelhooks_core::Error> {
    Repo::new(kv).postback(
        link,
        from_request(query, None, b"").unwrap(),
        NOW,
        &DialogLimits::default,
    )
}

/// The step entries postbacks handed off, waiting in the delivery outbox
/// (`funnelhooks_dialogs::handoff`), with the Unix minute each is due in.
fn handed_off(kv: &MemoryKv) -> Vec<(i64, funnelhooks_dialogs::handoff::StepEntry)> {
    kv.keys()
        .iter()
        .filter(|k| k.starts_with("due:") && k.split(':').count() == 3 && !k.ends_with(":n"))
        .filter_map(|k| {
            let minute = k.split(':').nth(1)?.parse().ok()?;
            let entry = serde_json::from_slice(&kv.get(k).ok()??).ok()?;
            Some((minute, entry))
        })
        .collect()
}

fn stores() -> [(&'static str, MemoryKv); 4] {
    [
        ("SQLite", MemoryKv::with(Semantics::Sqlite)),
        ("Redis", MemoryKv::with(Semantics::Redis)),
        ("faulty", MemoryKv::with(Semantics::Faulty(42))),
        ("without atomics", MemoryKv::without_atomics()),
    ]
}

/// The stores with atomics, where concurrent writers never lose each other's changes.
fn atomic_stores() -> impl Iterator<Item = (&'static str, MemoryKv)> {
    stores().into_iter().filter(|(_, kv)| kv.atomic())
}

#[test]
fn a_postback_before_the_chat_starts_is_kept_and_merged_at_start() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        let query =
            format!("chatId=1227280&stepId={STEP}&userBalance=5000&tracker.clickid=abc&addTag=vip");
        let first = get(&kv, &bot.link, &query).unwrap();
        assert!(first.created, "{mode}");
        assert!(!first.dialog.as_ref().unwrap().started, "{mode}");
        get(&kv, &bot.link, "chatId=1227280&status=manual").unwrap();

        let repo = Repo::new(&kv);
        let start = Start {
            username: Some("ivan".into()),
            name: Some("Ivan".into()),
            tracker: [("clickid".to_string(), "from-campaign".to_string())].into(),
            start_payload: None,
        };
        let later = Timestamp(NOW.0 + 60_000);
        let (d, created) = repo.start_dialog(&bot.id, 1227280, &start, later).unwrap();
        assert!(!created, "{mode}");
        assert!(d.started, "{mode}");
        assert_eq!(d.created_at, Some(later), "{mode}");
        assert_eq!(d.step_key.as_deref(), Some("deposit"), "{mode}");
        assert_eq!(d.status, Status::Manual, "{mode}");
        assert_eq!(
            d.fields["userBalance"],
            FieldValue::Number(5000.into()),
            "{mode}"
        );
        assert_eq!(d.tracker["clickid"], "from-campaign", "{mode}");
        assert_eq!(d.tags, ["vip"], "{mode}");
        let bot_record = repo.bot(&bot.id).unwrap();
        assert_eq!(repo.dialog(&bot_record, 1227280).unwrap(), d, "{mode}");
    }
}

#[test]
fn a_rejected_postback_leaves_the_store_exactly_as_it_was() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        get(&kv, &bot.link, "chatId=7&userBalance=10").unwrap();
        let before: Vec<_> = kv
            .keys()
            .iter()
            .map(|k| (k.clone(), kv.get(k).unwrap()))
            .collect();
        for (bad, kind) in [
            ("chatId=7&refID=1&userBalance=lots", Kind::Invalid),
            (
                "chatId=8&refID=1&stepId=00000000-0000-4000-8000-000000000000",
                Kind::NotFound,
            ),
            ("chatId=9&status=sleeping&refID=2", Kind::Invalid),
        ] {
            let e = get(&kv, &bot.link, bad).unwrap_err();
            assert_eq!(e.kind, kind, "{mode}: {bad}");
        }
        let after: Vec<_> = kv
            .keys()
            .iter()
            .map(|k| (k.clone(), kv.get(k).unwrap()))
            .collect();
        assert_eq!(before, after, "{mode}");
    }
}

#[test]
fn unknown_revoked_and_orphaned_links_get_the_same_404() {
    let kv = MemoryKv::new();
    let bot = bot_with_link(&kv);
    let repo = Repo::new(&kv);
    let never = get(&kv, "55833627-242e-4061-9b0a-30da3e9cf7d4", "chatId=1").unwrap_err();
    let not_uuid = get(&kv, "../../bot", "chatId=1").unwrap_err();
    repo.revoke_link(&bot.id, &bot.link, NOW).unwrap();
    let revoked = get(&kv, &bot.link, "chatId=1").unwrap_err();
    let other = bot_with_link(&kv);
    repo.delete_bot(&other.id).unwrap();
    let orphaned = get(&kv, &other.link, "chatId=1").unwrap_err();
    for e in [&not_uuid, &revoked, &orphaned] {
        assert_eq!(e, &never);
    }
    assert_eq!(never.kind, Kind::NotFound);
}

#[test]
fn two_hundred_concurrent_postbacks_on_a_chat_that_has_not_started_keep_every_field() {
    for (mode, kv) in stores() {
        let kv = Arc::new(kv);
        let bot = bot_with_link(kv.as_ref());
        // Without atomics only fields the bot defines are guaranteed (see split.rs).
        let repo = Repo::new(kv.as_ref());
        for i in 0..200 {
            let def = FieldDef {
                kind: FieldType::Number,
                description: String::new(),
            };
            repo.put_field(&bot.id, &format!("f{i}"), def, NOW).unwrap();
        }
        let threads: Vec<_> = (0..200)
            .map(|i| {
                let (kv, link) = (kv.clone(), bot.link.clone());
                std::thread::spawn(move || {
                    get(kv.as_ref(), &link, &format!("chatId=-100500&f{i}={i}")).map(|p| p.created)
                })
            })
            .collect();
        let created = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .filter(|c| *c)
            .count();
        let bot_record = repo.bot(&bot.id).unwrap();
        let d = repo.dialog(&bot_record, -100500).unwrap();
        let missing: Vec<_> = (0..200)
            .filter(|i| !d.fields.contains_key(&format!("f{i}")))
            .collect();
        assert!(missing.is_empty(), "{mode}: lost fields {missing:?}");
        if kv.atomic() {
            assert_eq!(
                created, 1,
                "{mode}: exactly one postback creates the dialog"
            );
            let page = repo.dialogs(&bot_record, 0, 10).unwrap();
            assert_eq!(page.items.len(), 1, "{mode}");
        }
    }
}

#[test]
fn concurrent_postbacks_with_undefined_keys_and_tags_lose_nothing_with_atomics() {
    for (mode, kv) in atomic_stores() {
        concurrent_undefined_keys_and_tags(mode, kv);
    }
}

fn concurrent_undefined_keys_and_tags(mode: &str, kv: MemoryKv) {
    let kv = Arc::new(kv);
    let bot = bot_with_link(kv.as_ref());
    // 60: under the 64-tag and 64-tracker-field limits.
    let threads: Vec<_> = (0..60)
        .map(|i| {
            let (kv, link) = (kv.clone(), bot.link.clone());
            std::thread::spawn(move || {
                get(
                    kv.as_ref(),
                    &link,
                    &format!("chatId=5&undefined{i}=x&tracker.t{i}=y&addTag=tag{i}"),
                )
                .unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let repo = Repo::new(kv.as_ref());
    let d = repo.dialog(&repo.bot(&bot.id).unwrap(), 5).unwrap();
    for i in 0..60 {
        assert_eq!(
            d.fields[&format!("undefined{i}")],
            FieldValue::Text("x".into()),
            "{mode}"
        );
        assert_eq!(d.tracker[&format!("t{i}")], "y", "{mode}");
        assert!(d.tags.contains(&format!("tag{i}")), "{mode}: tag{i}");
    }
    assert_eq!(d.tags.len(), 60, "{mode}: no tag twice");
}

#[test]
fn links_and_steps_created_one_after_another_are_each_recorded_once() {
    // On Spin's Redis store every swap reports failure: a bot's list of links once filled
    // with one id a hundred times.
    for (mode, kv) in stores() {
        let repo = Repo::new(&kv);
        let bot = repo.create_bot("b".into(), NOW).unwrap();
        let links: Vec<String> = (0..5)
            .map(|_| repo.create_link(&bot.id, NOW).unwrap().id)
            .collect();
        let record = repo.bot(&bot.id).unwrap();
        assert_eq!(record.links, links, "{mode}");
        let step = StepInput {
            key: "s".into(),
            kind: StepKind::Message,
            webhook: None::<()>,
        };
        repo.put_step(&bot.id, STEP, step, NOW).unwrap();
        assert_eq!(repo.bot(&bot.id).unwrap().steps, [STEP], "{mode}");
    }
}

#[test]
fn dialog_list_pages_in_creation_order_and_skips_erased_dialogs() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        for chat in 1..=7 {
            get(&kv, &bot.link, &format!("chatId={chat}&tracker.s=1")).unwrap();
        }
        let repo = Repo::new(&kv);
        let record = repo.bot(&bot.id).unwrap();
        repo.erase_dialog(&record, 3).unwrap();
        assert_eq!(
            repo.dialog(&record, 3).unwrap_err().kind,
            Kind::NotFound,
            "{mode}"
        );
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = repo.dialogs(&record, after, 2).unwrap();
            seen.extend(page.items.iter().map(|d| d.chat_id));
            match page.next {
                Some(n) => after = n,
                None => break,
            }
        }
        assert_eq!(seen, [1, 2, 4, 5, 6, 7], "{mode}");
    }
}

#[test]
fn deleting_a_bot_leaves_no_key_behind_but_the_list_counter() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        for chat in [1, -2, 3] {
            get(
                &kv,
                &bot.link,
                &format!("chatId={chat}&undefinedKey=1&tracker.clickid=x&userBalance=3"),
            )
            .unwrap();
        }
        // Listing none writes nothing (not even a counter).
        let fresh = Repo::new(&kv).bot(&bot.id).unwrap();
        let (none, _) = Repo::new(&kv).refused_postbacks(&fresh, None, 50).unwrap();
        assert!(none.is_empty(), "{mode}");
        assert!(
            kv.keys().iter().all(|k| !k.starts_with("refused:")),
            "{mode}: a list wrote"
        );
        // 105 refused postbacks: the newest 100 are kept, and go with the bot.
        for n in 0..105 {
            let sent = format!("chatId=1&userBalance={n}{}", "x".repeat(2_000));
            let refusal = Refusal {
                at: NOW,
                status: 422,
                code: "wrong_type",
                field: Some("userBalance"),
                message: "the field is a \"number\"; this value is not one",
                method: "GET",
                sent: &sent,
            };
            record_refused(&kv, &refused_list(&bot.id), &refusal).unwrap();
        }
        let repo = Repo::new(&kv);
        let whole = repo.bot(&bot.id).unwrap();
        let (texts, next) = repo.refused_postbacks(&whole, None, 200).unwrap();
        let page: Vec<serde_json::Value> = texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        assert_eq!(page.len(), KEEP_REFUSED as usize, "{mode}");
        assert_eq!(
            page[0]["message"], "the field is a \"number\"; this value is not one",
            "{mode}: written by hand, read as JSON"
        );
        assert_eq!(page[0]["field"], "userBalance", "{mode}");
        assert_eq!(page[0]["position"], 105, "{mode}: newest first");
        assert!(
            page[0]["sent"]
                .as_str()
                .unwrap()
                .starts_with("chatId=1&userBalance=104")
        );
        assert_eq!(
            page[0]["sent"].as_str().unwrap().len(),
            MAX_REFUSED_SENT,
            "{mode}"
        );
        assert_eq!(
            next, None,
            "{mode}: the five oldest are gone, nothing follows"
        );
        repo.delete_bot(&bot.id).unwrap();
        assert_eq!(
            repo.bot(&bot.id).unwrap_err().kind,
            Kind::NotFound,
            "{mode}"
        );
        let link = get(&kv, &bot.link, "chatId=1").unwrap_err();
        assert_eq!(link.kind, Kind::NotFound, "{mode}: its links stop at once");
        let run = Jobs::new(&kv).run(&mut || true).unwrap();
        assert_eq!((run.cleaned, run.finished), (3 + 100, 2), "{mode}");
        assert_eq!(kv.keys(), ["bots:n", "jobs:cursor", "jobs:n"], "{mode}");
    }
}

#[test]
fn a_big_bot_is_deleted_in_bounded_steps_that_resume_where_they_stopped() {
    let kv = MemoryKv::new();
    let bot = bot_with_link(&kv);
    for chat in 0..500 {
        get(&kv, &bot.link, &format!("chatId={chat}&userBalance=3")).unwrap();
    }
    let repo = Repo::new(&kv);
    repo.delete_bot(&bot.id).unwrap();
    assert_eq!(repo.bot(&bot.id).unwrap_err().kind, Kind::NotFound);
    // Each run may do 120 units of work (a request's budget), then stops.
    let mut runs = 0;
    let mut cleaned = 0;
    loop {
        runs += 1;
        let mut budget = 120;
        let run = Jobs::new(&kv)
            .run(&mut || {
                budget -= 1;
                budget > 0
            })
            .unwrap();
        cleaned += run.cleaned;
        if run.left == 0 {
            break;
        }
        assert!(runs < 20, "the cleanup makes progress");
    }
    assert_eq!(cleaned, 500);
    assert!(runs >= 5, "it took {runs} bounded runs");
    assert_eq!(kv.keys(), ["bots:n", "jobs:cursor", "jobs:n"]);
}

/// A store whose writes to dialogs fail (an outage in the middle of a postback): plain
/// writes, and compare-and-swaps too when the flag says so.
struct DialogWritesFail(MemoryKv, bool);

impl Kv for DialogWritesFail {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if key.starts_with("dlg:") {
            return Err(StoreError::Backend("outage".into()));
        }
        self.0.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.0.increment(key, delta)
    }
    fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError> {
        if self.1 && key.starts_with("dlg:") {
            return Err(StoreError::Backend("outage".into()));
        }
        self.0.compare_and_swap(key, decide)
    }
    fn atomic(&self) -> bool {
        true
    }
}

impl GetMany for DialogWritesFail {}

#[test]
fn a_creation_that_failed_after_taking_its_place_in_the_list_is_listed_once_when_retried() {
    // Only the plain write fails: the creator is elected and takes its place first.
    let failing = DialogWritesFail(MemoryKv::new(), false);
    let bot = bot_with_link(&failing.0);
    get(&failing.0, &bot.link, "chatId=1&tracker.s=1").unwrap();
    // The creator wins the election and takes a place in the list, then its write fails.
    let failed = get(&failing, &bot.link, "chatId=2&tracker.s=1");
    assert_eq!(failed.unwrap_err().kind, Kind::Unavailable);
    // The tracker retries: a new creator takes over (after the wait for the first) and
    // takes a place of its own.
    get(&failing.0, &bot.link, "chatId=2&tracker.s=1").unwrap();
    get(&failing.0, &bot.link, "chatId=3&tracker.s=1").unwrap();
    let repo = Repo::new(&failing.0);
    let record = repo.bot(&bot.id).unwrap();
    let listed = |repo: &Repo<MemoryKv>| -> Vec<i64> {
        let page = repo.dialogs(&record, 0, 50).unwrap();
        page.items.iter().map(|d| d.chat_id).collect()
    };
    assert_eq!(listed(&repo), [1, 2, 3]);
    // Its place is kept in the record, not under a key of its own (nor in the API's view),
    // and erasing frees it.
    assert!(!failing.0.keys().iter().any(|k| k.ends_with(":slot")));
    let dialog = repo.dialog(&record, 2).unwrap();
    assert!(dialog.list_slot.is_some());
    let view = serde_json::to_value(dialog.view()).unwrap();
    assert!(view.get("listSlot").is_none(), "{view}");
    repo.erase_dialog(&record, 2).unwrap();
    assert_eq!(listed(&repo), [1, 3]);
}

#[test]
fn a_move_into_a_webhook_step_is_handed_off_before_the_dialog_changes_and_recorded_with_it() {
    use funnelhooks_dialogs::handoff::HANDOFF_GRACE_MS;
    let kv = MemoryKv::new();
    let bot = bot_with_link(&kv);
    let repo = Repo::new(&kv);
    let webhook_step = "5d9ef3b2-5d0c-4c7e-8a57-0f3b8e8d1a11";
    let input = StepInput {
        key: "lead".into(),
        kind: StepKind::SendWebhook,
        webhook: Some(()),
    };
    repo.put_step(&bot.id, webhook_step, input, NOW).unwrap();
    let query = format!("chatId=5&stepId={webhook_step}");
    let moved = get(&kv, &bot.link, &query).unwrap();
    let entry = moved.step_entry.expect("the move hands off an entry");
    assert_eq!(
        moved.dialog.as_ref().unwrap().step_deliveries,
        std::slice::from_ref(&entry.entry.id)
    );
    let again = get(&kv, &bot.link, &query).unwrap();
    assert!(again.step_entry.is_none(), "already on the step: no entry");
    assert_eq!(
        again.dialog.as_ref().unwrap().step_deliveries,
        std::slice::from_ref(&entry.entry.id)
    );
    // The store fails when the dialog is written: the postback fails, the dialog is as it
    // was, and the handoff written before says an entry that the dialog does not have.
    let failing = DialogWritesFail(MemoryKv::new(), true);
    let bot = bot_with_link(&failing.0);
    Repo::new(&failing)
        .put_step(
            &bot.id,
            webhook_step,
            StepInput {
                key: "lead".into(),
                kind: StepKind::SendWebhook,
                webhook: Some(()),
            },
            NOW,
        )
        .unwrap();
    let update = from_request(&query, None, b"").unwrap();
    let failed = Repo::new(&failing).postback(&bot.link, update, NOW, &DialogLimits::default);
    assert_eq!(failed.unwrap_err().kind, Kind::Unavailable);
    let waiting = handed_off(&failing.0);
    assert_eq!(waiting.len(), 1, "the sweep will look at it");
    let (minute, entry) = &waiting[0];
    assert!(
        minute * 60_000 >= entry.at_ms + HANDOFF_GRACE_MS,
        "not before the chain's grace period is over"
    );
    let record = Repo::new(&failing.0).bot(&bot.id).unwrap();
    assert_eq!(
        Repo::new(&failing.0).dialog(&record, 5).unwrap_err().kind,
        Kind::NotFound,
        "and find that the move never happened"
    );
}

#[test]
fn a_handoff_left_behind_is_found_after_the_grace_period_and_handled_ones_are_passed_over() {
    use funnelhooks_dialogs::handoff::{HANDOFF_GRACE_MS, StepEntry};
    let kv = MemoryKv::new();
    let repo = Repo::new(&kv);
    let entry = |chat, at_ms| StepEntry {
        id: format!("entry-{chat}"),
        bot_id: "b1".into(),
        chat_id: chat,
        step_id: STEP.into(),
        at_ms,
        fields: Default::default(),
    };
    let delivered = repo.handoffs().hand_off(&entry(1, NOW.0)).unwrap();
    let lost = repo.handoffs().hand_off(&entry(2, NOW.0)).unwrap();
    let young = repo
        .handoffs()
        .hand_off(&entry(3, NOW.0 + HANDOFF_GRACE_MS))
        .unwrap();
    // The chain delivered chat 1; chat 2's chain never ran.
    repo.handoffs().handed_over(delivered).unwrap();
    assert!(
        repo.handoffs().stale_handoffs(NOW, 10).unwrap().is_empty(),
        "within grace"
    );
    let later = Timestamp(NOW.0 + HANDOFF_GRACE_MS + 1);
    let stale = repo.handoffs().stale_handoffs(later, 10).unwrap();
    assert_eq!(stale, [(lost, entry(2, NOW.0))], "chat 3's is still young");
    repo.handoffs().handed_over(lost).unwrap();
    assert!(
        repo.handoffs()
            .stale_handoffs(later, 10)
            .unwrap()
            .is_empty()
    );
    let much_later = Timestamp(later.0 + HANDOFF_GRACE_MS);
    let stale = repo.handoffs().stale_handoffs(much_later, 10).unwrap();
    assert_eq!(stale, [(young, entry(3, NOW.0 + HANDOFF_GRACE_MS))]);
}

#[test]
fn of_many_identical_postbacks_at_once_exactly_one_moves_the_dialog_into_the_step() {
    // The move decides whether the step's webhook is sent: none would lose it, two would
    // send it twice. A change applied twice (a swap that applied and reported failure)
    // would turn the mover's "entered" into "already there".
    for (mode, kv) in atomic_stores() {
        let kv = Arc::new(kv);
        let bot = bot_with_link(kv.as_ref());
        get(kv.as_ref(), &bot.link, "chatId=77&tracker.s=1").unwrap();
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let (kv, link) = (kv.clone(), bot.link.clone());
                std::thread::spawn(move || {
                    get(kv.as_ref(), &link, &format!("chatId=77&stepId={STEP}"))
                        .unwrap()
                        .entered_step
                        .is_some()
                })
            })
            .collect();
        let entered = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap().then_some(()))
            .count();
        assert_eq!(entered, 1, "{mode}");
    }
}

#[test]
fn the_extreme_chat_ids_and_dates_are_values_like_any_other() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        let repo = Repo::new(&kv);
        for chat in [i64::MIN, i64::MAX, -1, 0] {
            let p = get(&kv, &bot.link, &format!("chatId={chat}&userBalance=1")).unwrap();
            assert_eq!(p.dialog.as_ref().unwrap().chat_id, chat, "{mode}");
            let record = repo.bot(&bot.id).unwrap();
            assert_eq!(repo.dialog(&record, chat).unwrap().chat_id, chat, "{mode}");
        }
        let field = FieldDef {
            kind: FieldType::Date,
            description: String::new(),
        };
        repo.put_field(&bot.id, "regDate", field, NOW).unwrap();
        for date in ["-9223372036854775808", "9223372036854775807"] {
            let e = get(&kv, &bot.link, &format!("chatId=1&regDate={date}"));
            assert!(
                e.is_ok() || e.unwrap_err().code == "wrong_type",
                "{mode}: {date}"
            );
        }
    }
}

#[test]
fn a_flood_of_new_chats_is_stopped_for_the_minute_and_existing_dialogs_keep_working() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        let limits = DialogLimits {
            per_minute: 2 * ADMISSION_CHECK_EVERY,
            total: 0,
        };
        let repo = Repo::new(&kv);
        let post = |chat: i64, at: Timestamp| {
            let params = from_request(&format!("chatId={chat}&userBalance=1"), None, b"").unwrap();
            repo.postback(&bot.link, params, at, &|| limits)
        };
        let mut refused_at = None;
        for chat in 1..=(4 * ADMISSION_CHECK_EVERY as i64) {
            if let Err(e) = post(chat, NOW) {
                assert_eq!(
                    (e.kind, e.code),
                    (Kind::RateLimited, "too_many_new_dialogs"),
                    "{mode}"
                );
                refused_at = Some(chat);
                break;
            }
        }
        let at = refused_at.unwrap_or_else(|| panic!("{mode}: never refused"));
        // Checked every ADMISSION_CHECK_EVERY creations: closed within one check of the limit.
        assert!(
            at as u64 <= 3 * ADMISSION_CHECK_EVERY + 1,
            "{mode}: refused only at {at}"
        );
        // An existing dialog still takes postbacks; new ones are admitted next minute.
        post(1, NOW).unwrap();
        let next_minute = Timestamp(NOW.0 + 60_000);
        assert!(post(1_000_000, next_minute).unwrap().created, "{mode}");
    }
}

#[test]
fn a_dialog_cannot_grow_past_its_size_limit() {
    let kv = MemoryKv::new();
    let bot = bot_with_link(&kv);
    let big = "x".repeat(4000);
    let mut refused = None;
    for i in 0..40 {
        match get(&kv, &bot.link, &format!("chatId=9&note{i}={big}")) {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, e.code));
                break;
            }
        }
    }
    let (i, code) = refused.expect("refused past 64 KiB");
    assert_eq!(code, "dialog_too_large");
    assert!((14..=16).contains(&i), "refused at field {i}");
    let repo = Repo::new(&kv);
    let d = repo.dialog(&repo.bot(&bot.id).unwrap(), 9).unwrap();
    assert_eq!(d.fields.len(), i, "the refused postback changed nothing");
}

#[test]
fn an_imported_link_id_belongs_to_one_bot_even_when_two_import_it_at_once() {
    for (mode, kv) in atomic_stores() {
        let kv = Arc::new(kv);
        let repo = Repo::new(kv.as_ref());
        let bots: Vec<String> = (0..8)
            .map(|i| repo.create_bot(format!("bot {i}"), NOW).unwrap().id)
            .collect();
        let threads: Vec<_> = bots
            .iter()
            .cloned()
            .map(|bot| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    Repo::new(kv.as_ref())
                        .import_link(&bot, "55833627-242e-4061-9b0a-30da3e9cf7d4", NOW)
                        .map(|(link, created)| (link.bot_id, created))
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{mode}: {results:?}");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.code, "postback_id_in_use", "{mode}");
        }
        let owner = &winners[0].0;
        let with_link: Vec<_> = bots
            .iter()
            .filter(|b| !repo.bot(b).unwrap().links.is_empty())
            .collect();
        assert_eq!(with_link, [owner], "{mode}: only the winner lists it");
        // Chatterfy's docs print an id that is not hexadecimal; it is accepted as written.
        let (link, created) = repo
            .import_link(&bots[0], "8f1el0ed-a1d2-4a9d-bc30-2e19f2062789", NOW)
            .unwrap();
        assert!(created && link.id.starts_with("8f1el0ed"), "{mode}");
        let bad = repo.import_link(&bots[0], "short", NOW).unwrap_err();
        assert_eq!(
            (bad.code, bad.field.as_deref()),
            ("bad_postback_id", Some("postbackId"))
        );
    }
}

#[test]
fn a_postback_paused_past_what_the_dialog_remembers_is_applied_again_and_enters_its_step_once() {
    use funnelhooks_store::MAX_REMEMBERED_REPEATABLE;
    for others in [3, MAX_REMEMBERED_REPEATABLE + 6] {
        let kv = MemoryKv::new();
        let bot = bot_with_link(&kv);
        let webhook_step = "5d9ef3b2-5d0c-4c7e-8a57-0f3b8e8d1a11";
        let input = StepInput {
            key: "lead".into(),
            kind: StepKind::SendWebhook,
            webhook: Some(()),
        };
        Repo::new(&kv)
            .put_step(&bot.id, webhook_step, input, NOW)
            .unwrap();
        get(&kv, &bot.link, "chatId=5&tracker.s=1").unwrap();
        // The next postback's dialog swap applies, then `others` postbacks to the same chat
        // land before it is reported failed (a postback paused on a busy host, on Spin's
        // Redis store).
        let link = bot.link.clone();
        kv.pause_after_next_swap("dlg:", move |kv| {
            for i in 0..others {
                let query = format!("chatId=5&tracker.t{}={i}", i % 8);
                get(kv, &link, &query).unwrap();
            }
        });
        let query = format!("chatId=5&userBalance=70&stepId={webhook_step}");
        let moved = get(&kv, &bot.link, &query).unwrap();
        let entry = moved.step_entry.expect("the move is this postback's");
        let record = Repo::new(&kv).bot(&bot.id).unwrap();
        let dialog = Repo::new(&kv).dialog(&record, 5).unwrap();
        assert_eq!(dialog.step_id.as_deref(), Some(webhook_step), "{others}");
        assert_eq!(
            dialog.step_deliveries,
            std::slice::from_ref(&entry.entry.id),
            "{others}"
        );
        // No other postback lost: each of the 8 keys holds the last value written to it.
        for k in 0..others.min(8) {
            let last = (0..others).filter(|i| i % 8 == k).max().unwrap();
            assert_eq!(
                dialog.tracker[&format!("t{k}")],
                last.to_string(),
                "{others}"
            );
        }
        assert_eq!(
            dialog.fields.get("userBalance"),
            Some(&FieldValue::Number(70.into()))
        );
    }
}

#[test]
fn a_link_id_names_its_bot_but_the_link_record_decides_which_bot_a_postback_updates() {
    let kv = MemoryKv::new();
    let a = bot_with_link(&kv);
    let b = bot_with_link(&kv);
    assert_eq!(
        funnelhooks_dialogs::bots::bot_of_link_id(&a.link).as_deref(),
        Some(a.id.as_str())
    );
    // An imported id that looks like it names bot A, imported into bot B.
    let lookalike = format!(
        "{}{}",
        a.id.replace('-', ""),
        funnelhooks_core::new_id().replace('-', "")
    );
    Repo::new(&kv).import_link(&b.id, &lookalike, NOW).unwrap();
    let done = get(&kv, &lookalike, "chatId=9&userBalance=3").unwrap();
    assert_eq!(done.dialog.as_ref().unwrap().bot_id, b.id);
    let bot_a = Repo::new(&kv).bot(&a.id).unwrap();
    assert_eq!(
        Repo::new(&kv).dialog(&bot_a, 9).unwrap_err().kind,
        Kind::NotFound
    );
    // Revoked, a link that names its bot is as unknown as any other.
    Repo::new(&kv).revoke_link(&a.id, &a.link, NOW).unwrap();
    assert_eq!(
        get(&kv, &a.link, "chatId=9").unwrap_err().kind,
        Kind::NotFound
    );
}

#[test]
fn a_postback_that_asks_for_no_change_writes_nothing_and_creates_no_dialog() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        let snapshot = |kv: &MemoryKv| -> Vec<_> {
            kv.keys()
                .iter()
                .map(|k| (k.clone(), kv.get(k).unwrap()))
                .collect()
        };
        let before = snapshot(&kv);
        let done = get(&kv, &bot.link, "chatId=3003").unwrap();
        assert!(done.dialog.is_none() && !done.created, "{mode}");
        assert_eq!(snapshot(&kv), before, "{mode}: the store changed");
        // With something to write, it is written (and the dialog made).
        let done = get(&kv, &bot.link, "chatId=3003&tracker.clickid=x").unwrap();
        assert!(done.created, "{mode}");
    }
}

#[test]
fn an_imported_postback_id_must_be_random_enough_to_be_a_secret() {
    let kv = MemoryKv::new();
    let repo = Repo::new(&kv);
    let bot = repo.create_bot("b".into(), NOW).unwrap();
    let plain_bot_id: String = bot.id.chars().filter(|c| *c != '-').collect();
    for guessable in [
        "00000000-0000-0000-0000-000000000000".to_string(),
        "11111111-2222-3333-4444-555555555555".to_string(),
        "0123456789abcdef0123456789abcdef".to_string(),
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab".to_string(),
        bot.id.clone(),
        format!("{plain_bot_id}ffff"),
    ] {
        let e = repo.import_link(&bot.id, &guessable, NOW).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("guessable_postback_id", Some("postbackId")),
            "{guessable}"
        );
    }
    // Chatterfy's ids (random UUIDs, as in its documentation) are imported.
    for chatterfy in [
        "55833627-242e-4061-9b0a-30da3e9cf7d4",
        "046050f6-38f6-4b18-b9fa-e6582f5352d0",
    ] {
        assert!(
            repo.import_link(&bot.id, chatterfy, NOW).is_ok(),
            "{chatterfy}"
        );
    }
    // Every id this app makes would pass too.
    for _ in 0..2_000 {
        let id = funnelhooks_core::new_id();
        assert_eq!(
            funnelhooks_dialogs::bots::guessable_link_id(&id, &bot.id),
            None,
            "{id}"
        );
    }
}

#[test]
fn a_dialog_remembers_who_changed_what_newest_last_and_only_the_latest_twelve() {
    use funnelhooks_dialogs::update::MAX_HISTORY;
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        let first = get(
            &kv,
            &bot.link,
            &format!(
                "chatId=7&stepId={STEP}&status=manual&userBalance=5&tracker.clickid=k1&addTag=vip"
            ),
        )
        .unwrap();
        let d = first.dialog.unwrap();
        assert_eq!(d.history.len(), 1, "{mode}");
        let h = &d.history[0];
        assert_eq!(h["by"], "postback", "{mode}");
        // The link is named by its start only: the whole id is a credential.
        assert_eq!(h["link"], format!("{}…", &bot.link[..8]), "{mode}");
        assert_eq!(
            (h["stepId"].as_str(), h["stepKey"].as_str()),
            (Some(STEP), Some("deposit")),
            "{mode}"
        );
        assert_eq!(h["status"], "manual", "{mode}");
        assert_eq!(
            h["changed"],
            serde_json::json!(["fields.userBalance", "tracker.clickid", "+vip"]),
            "{mode}"
        );
        assert_eq!(h["at"], NOW.iso(), "{mode}");
        // A postback with many fields is named by its first eight and a count.
        let many: String = (0..11).map(|i| format!("&f{i}=x")).collect();
        get(&kv, &bot.link, &format!("chatId=7{many}")).unwrap();
        for i in 0..MAX_HISTORY {
            get(&kv, &bot.link, &format!("chatId=7&addTag=t{i}")).unwrap();
        }
        // The same postback again (a tracker's retry) changes nothing: no entry.
        get(&kv, &bot.link, "chatId=7&addTag=t11&userBalance=5").unwrap();
        let record = Repo::new(&kv).bot(&bot.id).unwrap();
        let d = Repo::new(&kv).dialog(&record, 7).unwrap();
        assert_eq!(d.history.len(), MAX_HISTORY, "{mode}: bounded");
        assert_eq!(
            d.history[MAX_HISTORY - 1]["changed"],
            serde_json::json!(["+t11"]),
            "{mode}: newest last"
        );
        // Twelve newer changes pushed out the first two.
        assert!(d.history.iter().all(|h| h["more"].is_null()), "{mode}");
        let d = get(&kv, &bot.link, &format!("chatId=8{many}"))
            .unwrap()
            .dialog
            .unwrap();
        assert_eq!(
            d.history[0]["changed"].as_array().unwrap().len(),
            8,
            "{mode}"
        );
        assert_eq!(d.history[0]["more"], 3, "{mode}");
        // An empty postback changes nothing, and so leaves no trace.
        get(&kv, &bot.link, "chatId=8").unwrap();
        let d = Repo::new(&kv).dialog(&record, 8).unwrap();
        assert_eq!(d.history.len(), 1, "{mode}");
    }
}

#[test]
fn moving_a_dialog_from_the_api_hands_off_a_webhook_step_and_says_so_in_its_history() {
    for (mode, kv) in stores() {
        let bot = bot_with_link(&kv);
        let repo = Repo::new(&kv);
        let webhook_step = "5d9ef3b2-5d0c-4c7e-8a57-0f3b8e8d1a11";
        let input = StepInput {
            key: "lead".into(),
            kind: StepKind::SendWebhook,
            webhook: Some(()),
        };
        repo.put_step(&bot.id, webhook_step, input, NOW).unwrap();
        let record = repo.bot(&bot.id).unwrap();
        // Only a dialog that exists moves: nothing is created for a chat nobody knows.
        let step = repo.step_ref(&record, webhook_step).unwrap();
        let unknown = repo.move_dialog(&record, 99, step.clone(), None, NOW);
        assert_eq!(unknown.unwrap_err().kind, Kind::NotFound, "{mode}");
        assert_eq!(
            repo.dialog(&record, 99).unwrap_err().kind,
            Kind::NotFound,
            "{mode}"
        );
        get(&kv, &bot.link, "chatId=5&userBalance=1").unwrap();
        let moved = repo
            .move_dialog(&record, 5, step.clone(), Some(Status::Manual), NOW)
            .unwrap();
        let entry = moved
            .step_entry
            .expect("entering a webhook step hands it off");
        let d = moved.dialog.unwrap();
        assert_eq!(d.step_key.as_deref(), Some("lead"), "{mode}");
        assert_eq!(d.status, Status::Manual, "{mode}");
        assert_eq!(d.step_deliveries, vec![entry.entry.id.clone()], "{mode}");
        let last = d.history.last().unwrap();
        assert_eq!(
            (last["by"].as_str(), last["link"].as_str()),
            (Some("api"), None),
            "{mode}"
        );
        assert_eq!(last["stepKey"], "lead", "{mode}");
        // Moving it to the step it is on sends nothing again; a status alone is a move too.
        let again = repo.move_dialog(&record, 5, step, None, NOW).unwrap();
        assert!(again.step_entry.is_none(), "{mode}");
        let status = repo
            .move_dialog(&record, 5, None, Some(Status::Auto), NOW)
            .unwrap();
        assert_eq!(status.dialog.unwrap().status, Status::Auto, "{mode}");
        assert!(
            repo.step_ref(&record, "not-a-step").unwrap().is_none(),
            "{mode}"
        );
    }
}

#[test]
fn a_search_finds_dialogs_by_chat_username_name_part_or_click_id_and_stops_after_a_bounded_look() {
    use funnelhooks_dialogs::repo::MAX_SEARCHED;
    let kv = MemoryKv::new();
    let bot = bot_with_link(&kv);
    let repo = Repo::new(&kv);
    let start = |chat: i64, username: &str, name: &str, click: &str| {
        let body =
            serde_json::json!({"username": username, "name": name, "tracker": {"clickid": click}});
        repo.start_dialog(&bot.id, chat, &Start::from_json(&body).unwrap(), NOW)
            .unwrap();
    };
    start(1, "ivan_petrov", "Иван Петров", "3k2h5f1a2b");
    start(2, "maria", "Мария", "zz9");
    let record = repo.bot(&bot.id).unwrap();
    let found = |q: &str| -> Vec<i64> {
        let page = repo.search_dialogs(&record, 0, 50, q).unwrap();
        page.items.iter().map(|d| d.chat_id).collect()
    };
    assert_eq!(
        found("@Ivan_Petrov"),
        vec![1],
        "a username, with @ and another letter case"
    );
    assert_eq!(
        found("петров"),
        vec![1],
        "a part of the name, any letter case"
    );
    assert_eq!(found("3k2h5f1a2b"), vec![1], "a click id");
    assert_eq!(found("2"), vec![2], "a chat id, exactly");
    assert!(found("3k2h").is_empty(), "a click id is matched whole");
    assert!(found("  ").is_empty());
    // Past what one call looks at, the page says where to go on from.
    for chat in 3..(MAX_SEARCHED as i64 + 10) {
        get(&kv, &bot.link, &format!("chatId={chat}&userBalance=1")).unwrap();
    }
    let page = repo.search_dialogs(&record, 0, 200, "nobody").unwrap();
    assert!(page.items.is_empty());
    let next = page.next.expect("more to look at");
    assert!(
        next >= MAX_SEARCHED as u64 && next < MAX_SEARCHED as u64 + 200,
        "{next}"
    );
    let rest = repo
        .search_dialogs(&record, next, 200, &(MAX_SEARCHED as i64 + 5).to_string())
        .unwrap();
    assert_eq!(rest.items.len(), 1);
}

#[test]
fn search_pages_together_hold_every_match_once_and_none_holds_more_than_its_limit() {
    let kv = MemoryKv::new();
    let bot = bot_with_link(&kv);
    let repo = Repo::new(&kv);
    // Every third chat has the click id looked for; one dialog erased in between.
    for chat in 1..=250i64 {
        let click = if chat % 3 == 0 { "wanted" } else { "other" };
        get(
            &kv,
            &bot.link,
            &format!("chatId={chat}&tracker.clickid={click}"),
        )
        .unwrap();
    }
    let record = repo.bot(&bot.id).unwrap();
    repo.erase_dialog(&record, 99).unwrap();
    let expected: Vec<i64> = (1..=250).filter(|c| c % 3 == 0 && *c != 99).collect();
    for limit in [1, 7, 200] {
        let (mut seen, mut cursor) = (Vec::new(), Some(0));
        while let Some(after) = cursor {
            let page = repo
                .search_dialogs(&record, after, limit, "wanted")
                .unwrap();
            assert!(
                page.items.len() <= limit,
                "limit {limit}: {}",
                page.items.len()
            );
            seen.extend(page.items.iter().map(|d| d.chat_id));
            cursor = page.next;
        }
        assert_eq!(seen, expected, "limit {limit}");
    }
}

/// A store whose batched read shows the dialog records as they were at `stale` (a postback's
/// read just before another postback moved the dialog), while everything else is current.
struct StaleDialogRead<'a>(&'a MemoryKv, std::collections::HashMap<String, Vec<u8>>);

impl Kv for StaleDialogRead<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.0.increment(key, delta)
    }
    fn compare_and_swap(&self, key: &str, decide: &mut Decide<'_>) -> Result<(), StoreError> {
        self.0.compare_and_swap(key, decide)
    }
    fn atomic(&self) -> bool {
        true
    }
}

impl GetMany for StaleDialogRead<'_> {
    fn get_many_and(
        &self,
        keys: &[&str],
        extra: &[&str],
    ) -> Result<(funnelhooks_store::Values, Option<funnelhooks_store::Values>), StoreError> {
        let extras = extra
            .iter()
            .map(|k| match self.1.get(*k) {
                Some(v) => Ok(Some(v.clone())),
                None => self.0.get(k),
            })
            .collect::<Result<_, _>>()?;
        Ok((self.0.get_many(keys)?, Some(extras)))
    }
}

#[test]
fn a_repeat_postback_into_the_current_webhook_step_writes_no_handoff_and_a_move_never_goes_without_one()
 {
    let kv = MemoryKv::new();
    let bot = bot_with_link(&kv);
    let repo = Repo::new(&kv);
    let webhook_step = "5d9ef3b2-5d0c-4c7e-8a57-0f3b8e8d1a11";
    let input = StepInput {
        key: "lead".into(),
        kind: StepKind::SendWebhook,
        webhook: Some(()),
    };
    repo.put_step(&bot.id, webhook_step, input, NOW).unwrap();
    let into = format!("chatId=5&stepId={webhook_step}");
    assert!(get(&kv, &bot.link, &into).unwrap().step_entry.is_some());
    let handoffs = |kv: &MemoryKv| handed_off(kv).len();
    let before = handoffs(&kv);
    // The tracker sends the same postback again, and again with a field: nothing entered,
    // no handoff written.
    assert!(get(&kv, &bot.link, &into).unwrap().step_entry.is_none());
    let with_field = get(&kv, &bot.link, &format!("{into}&userBalance=7")).unwrap();
    assert!(with_field.step_entry.is_none());
    assert_eq!(handoffs(&kv), before, "a repeat writes no handoff");
    // The dialog was read on the step, then another postback moved it away before the swap:
    // the move back into the step is an entry, made with its handoff.
    let record = repo.bot(&bot.id).unwrap();
    let key = format!("dlg:{}:5", bot.id);
    let on_step = kv.get(&key).unwrap().unwrap();
    get(&kv, &bot.link, &format!("chatId=5&stepId={STEP}")).unwrap();
    let stale = StaleDialogRead(&kv, [(key, on_step)].into_iter().collect());
    let back = get(&stale, &bot.link, &into).unwrap();
    let entry = back
        .step_entry
        .expect("moving back into the step is an entry");
    assert_eq!(handoffs(&kv), before + 1, "{:?}", kv.keys());
    let dialog = repo.dialog(&record, 5).unwrap();
    assert_eq!(dialog.step_id.as_deref(), Some(webhook_step));
    assert!(dialog.step_deliveries.contains(&entry.entry.id));
}
