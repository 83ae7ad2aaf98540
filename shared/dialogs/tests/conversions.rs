//! Conversions by click id through the repository, on an in-memory store with the semantics
//! of each store funnelhooks runs on: applied to the dialog with the click id, waiting for one
//! that has not started, never applied twice, never lost in a race with the start.

use std::sync::Arc;

use funnelhooks_core::{Kind, Timestamp};
use funnelhooks_dialogs::bots::{FieldDef, StepInput, StepKind};
use funnelhooks_dialogs::conversions::Outcome;
use funnelhooks_dialogs::{FieldType, FieldValue, Param, Repo, Start, from_request};
use funnelhooks_store::{Jobs, Kv, MemoryKv, Semantics};
use serde_json::json;

const NOW: Timestamp = Timestamp(1_710_092_972_806);
const STEP: &str = "9d1c50f6-38f6-4b18-b9fa-e6582f5352d0";

fn stores() -> [(&'static str, MemoryKv); 4] {
    [
        ("SQLite", MemoryKv::with(Semantics::Sqlite)),
        ("Redis", MemoryKv::with(Semantics::Redis)),
        ("faulty", MemoryKv::with(Semantics::Faulty(7))),
        ("without atomics", MemoryKv::without_atomics()),
    ]
}

/// A bot whose `sale` moves the dialog to a step and counts deposits, whose `resale` counts
/// them too; returns the bot and its conversion link.
fn casino(kv: &MemoryKv) -> (String, String) {
    let repo = Repo::new(kv);
    let bot = repo.create_bot("Casino".into(), NOW).unwrap();
    for (key, kind) in [
        ("deposits", FieldType::Number),
        ("revenue", FieldType::Number),
    ] {
        let def = FieldDef {
            kind,
            description: String::new(),
        };
        repo.put_field(&bot.id, key, def, NOW).unwrap();
    }
    let step = StepInput {
        key: "depositor".into(),
        kind: StepKind::Message,
        webhook: None::<()>,
    };
    repo.put_step(&bot.id, STEP, step, NOW).unwrap();
    let auto = json!({"actions": [
        {"type": "sale", "stepId": STEP, "status": "manual",
         "add": {"deposits": 1, "revenue": "{payout}"}},
        {"type": "resale", "add": {"deposits": 1, "revenue": "{payout}"}}
    ]});
    repo.put_auto_actions(&bot.id, &auto, NOW).unwrap();
    let link = repo.create_conversion_link(&bot.id, NOW).unwrap();
    (bot.id, link.id)
}

fn convert(kv: &MemoryKv, link: &str, query: &str) -> Outcome {
    Repo::new(kv)
        .convert(link, from_request(query, None, b"").unwrap(), NOW)
        .unwrap()
        .outcome
}

/// The bot engine starts a chat with a deep link's payload; what the conversions component
/// does after the answer (chained) is done here too. Returns the conversions applied.
fn start(kv: &MemoryKv, bot: &str, chat: i64, payload: &str) -> usize {
    let start = Start {
        start_payload: Some(payload.into()),
        ..Start::default()
    };
    let repo = Repo::new(kv);
    let started = repo.start_dialog_with(bot, chat, &start, NOW).unwrap();
    assert_eq!(started.dialog.tracker["clickid"], payload);
    match started.click_claimed {
        Some(c) => repo.click_claimed(&c, NOW).unwrap().0,
        None => 0,
    }
}

fn number(kv: &MemoryKv, bot: &str, chat: i64, field: &str) -> Option<FieldValue> {
    let repo = Repo::new(kv);
    let bot = repo.bot(bot).unwrap();
    repo.dialog(&bot, chat).unwrap().fields.get(field).cloned()
}

#[test]
fn a_conversion_finds_its_dialog_by_click_id_and_a_repeated_transaction_is_applied_once() {
    for (mode, kv) in stores() {
        let (bot, link) = casino(&kv);
        start(&kv, &bot, 1001, "abc123");
        let sale = "subid=abc123&status=sale&payout=50&tid=t-1";
        assert_eq!(convert(&kv, &link, sale), Outcome::Applied, "{mode}");
        assert_eq!(convert(&kv, &link, sale), Outcome::Repeat, "{mode}");
        // Binom's names; resales without a transaction id each count.
        for _ in 0..2 {
            let resale = "cnv_id=abc123&cnv_status=resale&payout=25.5";
            assert_eq!(convert(&kv, &link, resale), Outcome::Applied, "{mode}");
        }
        let repo = Repo::new(&kv);
        let d = repo.dialog(&repo.bot(&bot).unwrap(), 1001).unwrap();
        assert_eq!(d.step_key.as_deref(), Some("depositor"), "{mode}");
        assert_eq!(d.fields["deposits"], FieldValue::Number(3.into()), "{mode}");
        assert_eq!(
            d.fields["revenue"],
            json!(101.0)
                .as_number()
                .map(|n| FieldValue::Number(n.clone()))
                .unwrap(),
            "{mode}"
        );
        assert_eq!(d.conversions.len(), 3, "{mode}");
        assert_eq!(
            convert(&kv, &link, "subid=abc123&status=rejected"),
            Outcome::Ignored,
            "{mode}: no action for the type"
        );
    }
}

#[test]
fn a_conversion_before_the_dialog_waits_and_is_applied_when_it_starts() {
    for (mode, kv) in stores() {
        let (bot, link) = casino(&kv);
        let sale = "subid=early1&status=sale&payout=10&tid=t-9";
        assert_eq!(convert(&kv, &link, sale), Outcome::Waiting, "{mode}");
        assert_eq!(
            convert(&kv, &link, sale),
            Outcome::Waiting,
            "{mode}: a copy waits too"
        );
        let repo = Repo::new(&kv);
        assert_eq!(
            repo.waiting_conversions(&repo.bot(&bot).unwrap()).unwrap(),
            1,
            "{mode}: the copy takes no place of its own"
        );
        assert_eq!(
            start(&kv, &bot, 77, "early1"),
            1,
            "{mode}: the copy is the same conversion"
        );
        assert_eq!(
            number(&kv, &bot, 77, "deposits"),
            Some(FieldValue::Number(1.into())),
            "{mode}"
        );
        assert_eq!(
            repo.waiting_conversions(&repo.bot(&bot).unwrap()).unwrap(),
            0,
            "{mode}"
        );
        assert_eq!(convert(&kv, &link, sale), Outcome::Repeat, "{mode}");
    }
}

#[test]
fn bad_conversions_are_refused_by_parameter_and_change_nothing() {
    let kv = MemoryKv::with(Semantics::Sqlite);
    let (bot, link) = casino(&kv);
    start(&kv, &bot, 5, "c5");
    let repo = Repo::new(&kv);
    let before = kv.keys();
    let e = repo
        .convert(&link, from_request("status=sale", None, b"").unwrap(), NOW)
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("missing_param", Some("subid"))
    );
    let e = repo
        .convert(
            &link,
            from_request("subid=c5&status=sale&payout=lots", None, b"").unwrap(),
            NOW,
        )
        .unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), ("wrong_type", Some("payout")));
    let e = repo
        .convert("nope-nope-nope-nope", Vec::<(String, Param)>::new(), NOW)
        .unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert_eq!(kv.keys(), before, "a refused conversion wrote something");
    assert_eq!(number(&kv, &bot, 5, "deposits"), None);
}

#[test]
fn conversions_racing_the_starts_that_carry_their_click_ids_are_each_applied_once() {
    for (mode, kv) in stores().into_iter().filter(|(_, kv)| kv.atomic()) {
        let kv = Arc::new(kv);
        let (bot, link) = casino(&kv);
        let threads: Vec<_> = (0..50i64)
            .flat_map(|i| {
                let (k1, k2) = (kv.clone(), kv.clone());
                let (bot, link) = (bot.clone(), link.clone());
                [
                    std::thread::spawn(move || {
                        let q = format!("subid=race{i}&status=sale&payout=1&tid=t{i}");
                        Repo::new(&*k1)
                            .convert(&link, from_request(&q, None, b"").unwrap(), NOW)
                            .unwrap();
                    }),
                    std::thread::spawn(move || {
                        start(&k2, &bot, 5000 + i, &format!("race{i}"));
                    }),
                ]
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for i in 0..50 {
            assert_eq!(
                number(&kv, &bot, 5000 + i, "deposits"),
                Some(FieldValue::Number(1.into())),
                "{mode}: chat {i}"
            );
        }
        let repo = Repo::new(&*kv);
        assert_eq!(
            repo.waiting_conversions(&repo.bot(&bot).unwrap()).unwrap(),
            0,
            "{mode}"
        );
    }
}

#[test]
fn deleting_a_bot_with_auto_actions_leaves_no_key_behind_but_the_list_counter() {
    for (mode, kv) in stores() {
        let (bot, link) = casino(&kv);
        start(&kv, &bot, 1, "k1");
        convert(&kv, &link, "subid=k1&status=sale&payout=1");
        convert(&kv, &link, "subid=nobody&status=sale&payout=1");
        let repo = Repo::new(&kv);
        repo.delete_bot(&bot).unwrap();
        assert_eq!(
            repo.convert(
                &link,
                from_request("subid=k1&status=sale", None, b"").unwrap(),
                NOW
            )
            .unwrap_err()
            .kind,
            Kind::NotFound,
            "{mode}: its conversion links stop at once"
        );
        for _ in 0..5 {
            Jobs::new(&kv).run(&mut || true).unwrap();
        }
        assert_eq!(kv.keys(), ["bots:n", "jobs:cursor", "jobs:n"], "{mode}");
    }
}

#[test]
fn a_lost_chained_note_is_applied_by_the_sweep_a_minute_later() {
    for (mode, kv) in stores() {
        let (bot, link) = casino(&kv);
        assert_eq!(
            convert(&kv, &link, "subid=lost1&status=sale&payout=5"),
            Outcome::Waiting,
            "{mode}"
        );
        let repo = Repo::new(&kv);
        let start = Start {
            start_payload: Some("lost1".into()),
            ..Start::default()
        };
        // The start notes the claim; the chained request that would apply it never comes.
        let started = repo.start_dialog_with(&bot, 31, &start, NOW).unwrap();
        assert!(started.click_claimed.is_some(), "{mode}");
        assert!(repo.claims_waiting().unwrap(), "{mode}");
        assert!(
            repo.stale_claims(NOW, 10).unwrap().is_empty(),
            "{mode}: too early"
        );
        let later = Timestamp(NOW.0 + 61_000);
        let stale = repo.stale_claims(later, 10).unwrap();
        assert_eq!(stale.len(), 1, "{mode}");
        assert_eq!(repo.click_claimed(&stale[0], later).unwrap().0, 1, "{mode}");
        assert_eq!(
            number(&kv, &bot, 31, "deposits"),
            Some(FieldValue::Number(1.into())),
            "{mode}"
        );
        assert!(
            repo.stale_claims(later, 10).unwrap().is_empty(),
            "{mode}: cleared"
        );
    }
}

#[test]
fn a_click_id_two_dialogs_had_goes_to_the_one_that_still_carries_it() {
    for (mode, kv) in stores() {
        let (bot, link) = casino(&kv);
        start(&kv, &bot, 41, "shared1");
        start(&kv, &bot, 42, "shared1");
        // The newer dialog moves on to another click id; the older still has this one.
        start(&kv, &bot, 42, "other1");
        assert_eq!(
            convert(&kv, &link, "subid=shared1&status=sale&payout=5"),
            Outcome::Applied,
            "{mode}"
        );
        assert_eq!(
            number(&kv, &bot, 41, "deposits"),
            Some(FieldValue::Number(1.into())),
            "{mode}"
        );
        assert_eq!(number(&kv, &bot, 42, "deposits"), None, "{mode}");
        // Erasing the dialog takes its click id with it.
        let repo = Repo::new(&kv);
        let b = repo.bot(&bot).unwrap();
        repo.erase_dialog(&b, 41).unwrap();
        assert_eq!(
            convert(&kv, &link, "subid=shared1&status=sale&payout=5&tid=2"),
            Outcome::Waiting,
            "{mode}"
        );
    }
}

#[test]
fn a_step_an_action_moves_to_cannot_be_deleted_from_under_it() {
    let kv = MemoryKv::with(Semantics::Sqlite);
    let (bot, _) = casino(&kv);
    let e = Repo::new(&kv).delete_step(&bot, STEP, NOW).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("step_in_auto_actions", Some("stepId"))
    );
    assert!(e.message.contains("actions[0]"), "{}", e.message);
}

#[test]
fn dialogs_getting_one_click_id_at_once_apply_its_waiting_conversions_once_in_all() {
    for (mode, kv) in stores().into_iter().filter(|(_, kv)| kv.atomic()) {
        let kv = Arc::new(kv);
        let (bot, link) = casino(&kv);
        // Twenty rounds: the race is between threads, and one round may miss it.
        for round in 0..20i64 {
            let click = format!("dbl{round}");
            for i in 0..3 {
                let q = format!("subid={click}&status=sale&payout=7&tid=S{i}");
                assert_eq!(convert(&kv, &link, &q), Outcome::Waiting, "{mode}");
            }
            let first = 8_000 + round * 10;
            let starts: Vec<_> = (0..5)
                .map(|i| {
                    let (kv, bot, click) = (kv.clone(), bot.clone(), click.clone());
                    std::thread::spawn(move || start(&kv, &bot, first + i, &click))
                })
                .collect();
            let applied: usize = starts.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(applied, 3, "{mode} round {round}: applied {applied} times");
            let total: i64 = (0..5)
                .filter_map(|i| match number(&kv, &bot, first + i, "deposits") {
                    Some(FieldValue::Number(n)) => n.as_i64(),
                    _ => None,
                })
                .sum();
            assert_eq!(total, 3, "{mode} round {round}");
        }
    }
}

#[test]
fn a_sale_without_a_transaction_id_is_once_per_click_id_not_per_dialog() {
    for (mode, kv) in stores() {
        let (bot, link) = casino(&kv);
        start(&kv, &bot, 12101, "nA");
        assert_eq!(
            convert(&kv, &link, "subid=nA&status=sale"),
            Outcome::Applied,
            "{mode}"
        );
        assert_eq!(
            convert(&kv, &link, "subid=nA&status=sale"),
            Outcome::Repeat,
            "{mode}"
        );
        start(&kv, &bot, 12101, "nB");
        assert_eq!(
            convert(&kv, &link, "subid=nB&status=sale"),
            Outcome::Applied,
            "{mode}"
        );
        assert_eq!(
            number(&kv, &bot, 12101, "deposits"),
            Some(FieldValue::Number(2.into())),
            "{mode}"
        );
    }
}

#[test]
fn amounts_that_cannot_be_added_and_unfilled_macros_are_refused() {
    let kv = MemoryKv::with(Semantics::Sqlite);
    let (bot, link) = casino(&kv);
    let repo = Repo::new(&kv);
    for bad in ["NaN", "inf", "1e400", "1e300"] {
        let body = json!({"actions": [{"type": "sale", "add": {"deposits": bad}}]});
        let e = repo.put_auto_actions(&bot, &body, NOW).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("actions[0].add.deposits"), "{bad}");
    }
    let e = repo
        .convert(
            &link,
            from_request("subid=%7Bsubid%7D&status=sale", None, b"").unwrap(),
            NOW,
        )
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("unfilled_macro", Some("subid"))
    );
    let e = repo
        .convert(
            &link,
            from_request("subid=&status=sale", None, b"").unwrap(),
            NOW,
        )
        .unwrap_err();
    assert_eq!(e.code, "missing_param");
}
