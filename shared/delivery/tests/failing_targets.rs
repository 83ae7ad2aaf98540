//! Failing and busy targets, as an operator and a marketer see them: alerts when a delivery
//! fails for good, steps disabled after failing for days (and resumed), pauses, bulk recover
//! that sends each failed delivery once, rate limits that space a target's deliveries and a
//! `429` that backs it off.

mod support;

use std::time::Duration;

use funnelhooks_core::Timestamp;
use funnelhooks_delivery::alerts::{self, EndpointInput};
use funnelhooks_delivery::engine::{
    Attempts, Clock, Engine, LogScope, NewDelivery, Received, Rules,
};
use funnelhooks_delivery::log::{Delivery, Status};
use funnelhooks_delivery::state::{ATTENTION, StepOrHook};
use funnelhooks_store::{MemoryKv, Records};
use serde_json::Value as Json;
use support::*;

const HOUR: i64 = 3_600_000;

/// The store under test: `FH_SEMANTICS=redis` (or `faulty`, `no-atomics`) runs these on
/// another store's semantics.
fn store() -> MemoryKv {
    use funnelhooks_store::Semantics;
    match std::env::var("FH_SEMANTICS").as_deref() {
        Ok("redis") => MemoryKv::with(Semantics::Redis),
        Ok("faulty") => MemoryKv::with(Semantics::Faulty(7)),
        Ok("no-atomics") => MemoryKv::with(Semantics::NoAtomics),
        _ => MemoryKv::new(),
    }
}
const ALERTS_URL: &str = "https://ops.example.com/alerts";

fn step() -> StepOrHook {
    StepOrHook::Step {
        bot_id: "b1".into(),
        step_id: "s1".into(),
    }
}

/// An alert endpoint for every event.
fn alert_endpoint(kv: &MemoryKv) -> alerts::AlertEndpoint {
    let input = EndpointInput {
        url: ALERTS_URL.into(),
        description: "on call".into(),
        events: Vec::new(),
        secret: None,
    };
    alerts::create(&Records::new(kv), input, Timestamp(START)).unwrap()
}

/// A step delivery that tries once.
fn once() -> NewDelivery {
    NewDelivery {
        max_attempts: 1,
        ..new_delivery("b1")
    }
}

fn alert_log(engine: &Engine<'_, MemoryKv, Receiver, FakeClock>) -> Vec<Delivery> {
    engine
        .list(&LogScope::Alerts, None, 50, |_| true)
        .unwrap()
        .0
}

/// The alerts the receiver got, as `(type, data)`.
fn alerts_received(rx: &Receiver) -> Vec<(String, Json)> {
    rx.got
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r.url == ALERTS_URL)
        .map(|(r, _)| {
            let v: Json = serde_json::from_slice(&r.body).unwrap();
            (v["type"].as_str().unwrap().to_string(), v["data"].clone())
        })
        .collect()
}

fn sweep(engine: &Engine<'_, MemoryKv, Receiver, FakeClock>, clock: &FakeClock) {
    clock.advance(Duration::from_secs(1));
    engine.retry_due(Duration::from_secs(25)).unwrap();
}

#[test]
fn a_delivery_that_fails_for_good_sends_a_signed_delivery_exhausted_alert_with_the_next_sweep() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::answering(vec![status(500)]);
    let endpoint = alert_endpoint(&kv);
    let engine = Engine::new(&kv, &rx, &clock);
    let failed = run_new(&engine, once());
    assert_eq!(failed.status, Status::Failed);
    let queued = alert_log(&engine);
    assert_eq!(queued.len(), 1, "one alert, queued for the sweep");
    assert_eq!(queued[0].status, Status::Pending);
    sweep(&engine, &clock);
    let got = alerts_received(&rx);
    assert_eq!(got.len(), 1);
    let (kind, data) = &got[0];
    assert_eq!(kind, "delivery.exhausted");
    assert_eq!(data["deliveryId"], failed.id.as_str());
    assert_eq!(data["botId"], "b1");
    assert_eq!(data["stepId"], "s1");
    assert_eq!(data["targetHost"], "hooks.example.com");
    assert_eq!(data["lastStatus"], 500);
    // Signed with the endpoint's own secret, the Standard Webhooks way.
    let (request, extra) = rx.got.lock().unwrap().last().unwrap().clone();
    let header = |n: &str| extra.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let secret = funnelhooks_delivery::SigningSecret::parse(&endpoint.secret).unwrap();
    let ts: i64 = header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        header("webhook-signature"),
        secret.sign(&header("webhook-id"), ts, &request.body)
    );
    // Swept again: nothing more.
    sweep(&engine, &clock);
    assert_eq!(alerts_received(&rx).len(), 1);
}

#[test]
fn a_410_raises_target_gone_and_an_alerts_own_failure_raises_nothing() {
    let (kv, clock) = (store(), FakeClock::new());
    // The step's receiver says 410; so does the alert endpoint.
    let rx = Receiver::answering(vec![status(410), status(410)]);
    alert_endpoint(&kv);
    let engine = Engine::new(&kv, &rx, &clock);
    let gone = run_new(&engine, new_delivery("b1"));
    assert!(gone.gone);
    sweep(&engine, &clock);
    sweep(&engine, &clock);
    let got = alerts_received(&rx);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "target.gone");
    let log = alert_log(&engine);
    assert_eq!(log.len(), 1, "no alert about the alert: {log:?}");
    assert_eq!(log[0].status, Status::Failed);
}

#[test]
fn an_endpoint_gets_only_the_events_it_asked_for() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::answering(vec![status(500)]);
    let input = EndpointInput {
        url: ALERTS_URL.into(),
        description: String::new(),
        events: vec!["target.disabled".into()],
        secret: None,
    };
    alerts::create(&Records::new(&kv), input, Timestamp(START)).unwrap();
    let engine = Engine::new(&kv, &rx, &clock);
    run_new(&engine, once());
    assert!(alert_log(&engine).is_empty());
}

#[test]
fn a_step_failing_for_the_set_time_is_disabled_once_and_holds_its_deliveries_until_resumed() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::answering((0..5).map(|_| status(503)).collect()).always_ok(ALERTS_URL);
    alert_endpoint(&kv);
    let rules = Rules {
        disable_after_ms: HOUR,
        per_host: None,
    };
    // Five failures over 80 minutes; the fifth comes more than an hour after the first.
    for i in 0..5 {
        let engine = Engine::new(&kv, &rx, &clock).with_rules(rules);
        run_new(&engine, once());
        let state = engine.state_of(&step()).unwrap();
        assert_eq!(state.status(), if i < 4 { "failing" } else { "disabled" });
        assert_eq!(state.failures, i + 1);
        sweep(&engine, &clock);
        clock.advance(Duration::from_secs(20 * 60));
    }
    let engine = Engine::new(&kv, &rx, &clock).with_rules(rules);
    let state = engine.state_of(&step()).unwrap();
    assert!(
        state
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("HTTP 503"),
        "{state:?}"
    );
    let sent = rx.requests();
    let held = run_new(&engine, new_delivery("b1"));
    assert_eq!(held.status, Status::Skipped);
    assert!(held.held);
    assert!(
        held.error.as_deref().unwrap().contains("disabled"),
        "{held:?}"
    );
    assert_eq!(rx.requests(), sent, "nothing sent while disabled");
    // A test send still goes: it is how the marketer checks the fix.
    let test = NewDelivery {
        test: true,
        ..once()
    };
    assert_eq!(run_new(&engine, test).status, Status::Delivered);
    let attention: Vec<String> = Records::new(&kv).get(ATTENTION).unwrap().unwrap();
    assert_eq!(attention, vec![step().key()]);

    engine.resume(&step()).unwrap();
    let engine = Engine::new(&kv, &rx, &clock).with_rules(rules);
    assert_eq!(engine.state_of(&step()).unwrap().status(), "active");
    assert_eq!(
        run_new(&engine, new_delivery("b1")).status,
        Status::Delivered
    );
    let attention: Vec<String> = Records::new(&kv).get(ATTENTION).unwrap().unwrap();
    assert!(attention.is_empty());
    sweep(&engine, &clock);
    let kinds: Vec<String> = alerts_received(&rx).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "target.disabled").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "target.reenabled").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "delivery.exhausted").count(),
        5,
        "{kinds:?}"
    );
}

#[test]
fn one_success_ends_a_run_of_failures() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::answering(vec![status(500), status(500), status(200)]);
    let engine = Engine::new(&kv, &rx, &clock);
    run_new(&engine, once());
    run_new(&engine, once());
    assert_eq!(engine.state_of(&step()).unwrap().failures, 2);
    run_new(&engine, once());
    let fresh = Engine::new(&kv, &rx, &clock);
    assert_eq!(fresh.state_of(&step()).unwrap().status(), "active");
}

#[test]
fn a_pause_holds_new_deliveries_and_due_retries_and_is_lifted_by_resume() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::answering(vec![status(500)]);
    let engine = Engine::new(&kv, &rx, &clock);
    let created = engine.create(new_delivery("b1"), None).unwrap();
    let retrying = engine.run(created, Attempts::FirstOnly).unwrap();
    assert_eq!(retrying.status, Status::Retrying);
    engine.pause(&step()).unwrap();
    let engine = Engine::new(&kv, &rx, &clock);
    let held = run_new(&engine, new_delivery("b1"));
    assert_eq!((held.status, held.held), (Status::Skipped, true));
    clock.advance(Duration::from_secs(10));
    engine.retry_due(Duration::from_secs(25)).unwrap();
    let retry = engine.get(&retrying.id).unwrap().unwrap();
    assert_eq!((retry.status, retry.held), (Status::Skipped, true));
    assert_eq!(rx.requests(), 1, "only the first attempt, before the pause");
    engine.resume(&step()).unwrap();
    let engine = Engine::new(&kv, &rx, &clock);
    assert_eq!(
        run_new(&engine, new_delivery("b1")).status,
        Status::Delivered
    );
}

#[test]
fn bulk_recover_sends_each_failed_delivery_once_however_often_it_is_called() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::answering((0..3).map(|_| status(500)).collect());
    let engine = Engine::new(&kv, &rx, &clock);
    let since = clock.now();
    let failed: Vec<String> = (0..3).map(|_| run_new(&engine, once()).id).collect();
    let ok = run_new(&engine, once());
    assert_eq!(ok.status, Status::Delivered);
    // Two at a time: a cursor says where to go on.
    let scope = LogScope::Bot("b1".into());
    let first = engine.recover(&scope, since, None, 2, |_| true).unwrap();
    assert_eq!(first.recovered.len(), 2);
    assert!(first.next.is_some());
    let rest = engine
        .recover(&scope, since, first.next, 2, |_| true)
        .unwrap();
    assert_eq!((rest.recovered.len(), rest.next), (1, None));
    // Again from the start: everything was recovered already.
    let again = engine.recover(&scope, since, None, 50, |_| true).unwrap();
    assert_eq!((again.recovered.len(), again.already), (0, 3));
    let sent = rx.requests();
    sweep(&engine, &clock);
    assert_eq!(rx.requests(), sent + 3);
    for old in &failed {
        let old = engine.get(old).unwrap().unwrap();
        let new = engine.get(old.recovered_by.as_deref().unwrap()).unwrap();
        let new = new.unwrap();
        assert_eq!(new.replay_of.as_deref(), Some(old.id.as_str()));
        assert_eq!(new.status, Status::Delivered);
    }
    // Deliveries from before `since` are left alone.
    let later = engine
        .recover(&scope, clock.now().plus_ms(1), None, 50, |_| true)
        .unwrap();
    assert_eq!((later.recovered.len(), later.already), (0, 0));
}

#[test]
fn a_limited_target_gets_its_deliveries_spaced_at_its_rate_and_none_is_dropped() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::default();
    let engine = Engine::new(&kv, &rx, &clock);
    engine.set_rate_limit(&step(), Some(5.0)).unwrap();
    for _ in 0..20 {
        run_new(&engine, new_delivery("b1"));
    }
    assert!(rx.requests() < 20, "a burst is not sent at once");
    sweep(&engine, &clock);
    assert_eq!(rx.requests(), 20, "the sweep sends the rest at the limit");
    let (log, _) = engine
        .list(&LogScope::Bot("b1".into()), None, 50, |_| true)
        .unwrap();
    let mut sent_at: Vec<i64> = log.iter().map(|d| d.attempts[0].at.0).collect();
    sent_at.sort();
    for pair in sent_at.windows(2) {
        assert!(pair[1] - pair[0] >= 200, "{sent_at:?}");
    }
}

#[test]
fn a_429_backs_the_target_off_for_its_other_deliveries_too() {
    let (kv, clock) = (store(), FakeClock::new());
    let too_many = Ok(Received {
        status: 429,
        headers: vec![("retry-after".into(), "30".into())],
        ..Received::default()
    });
    let rx = Receiver::answering(vec![too_many]);
    let engine = Engine::new(&kv, &rx, &clock);
    let first = run_new(&engine, new_delivery("b1"));
    assert_eq!(first.status, Status::Retrying);
    let engine = Engine::new(&kv, &rx, &clock);
    let second = run_new(&engine, new_delivery("b1"));
    assert_eq!(rx.requests(), 1, "the second waits for the back-off");
    assert_eq!(second.status, Status::Pending);
    let wait = second.next_attempt_at.unwrap().0 - clock.now().0;
    assert!((29_000..=31_000).contains(&wait), "{wait}");
    clock.advance(Duration::from_secs(31));
    engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!(rx.requests(), 3, "both go once the back-off is over");
}

fn run_new(engine: &Engine<'_, MemoryKv, Receiver, FakeClock>, new: NewDelivery) -> Delivery {
    let created = engine.create(new, None).unwrap();
    if created.status != Status::Pending {
        return created;
    }
    engine.run(created, Attempts::WithQuickRetries).unwrap()
}

#[test]
fn a_target_failing_every_delivery_raises_at_most_ten_failure_alerts_an_hour() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::answering((0..15).map(|_| status(400)).collect()).always_ok(ALERTS_URL);
    alert_endpoint(&kv);
    let engine = Engine::new(&kv, &rx, &clock);
    for _ in 0..15 {
        assert_eq!(run_new(&engine, new_delivery("b1")).status, Status::Failed);
    }
    assert_eq!(alert_log(&engine).len(), 10, "the rest are in the log");
    // The next hour tells again.
    clock.advance(Duration::from_secs(3600));
    let rx2 = Receiver::answering(vec![status(400)]);
    let engine = Engine::new(&kv, &rx2, &clock);
    run_new(&engine, new_delivery("b1"));
    assert_eq!(alert_log(&engine).len(), 11);
}

#[test]
fn a_429_without_retry_after_backs_off_a_minute_not_the_schedules_wait() {
    let (kv, clock) = (store(), FakeClock::new());
    let too_many = Ok(Received {
        status: 429,
        ..Received::default()
    });
    let rx = Receiver::answering(vec![too_many]);
    let engine = Engine::new(&kv, &rx, &clock);
    let created = engine.create(new_delivery("b1"), None).unwrap();
    engine.run(created, Attempts::FirstOnly).unwrap();
    let state = engine.state_of(&step()).unwrap();
    let wait = state.backoff_until.unwrap().0 - clock.now().0;
    assert!((59_000..=61_000).contains(&wait), "{wait}");
}

#[test]
fn a_limit_set_after_deliveries_were_queued_applies_to_them() {
    let (kv, clock) = (store(), FakeClock::new());
    let rx = Receiver::default();
    let engine = Engine::new(&kv, &rx, &clock);
    for _ in 0..6 {
        let queued = NewDelivery {
            first_attempt_after: Some(Duration::ZERO),
            ..new_delivery("b1")
        };
        engine.create(queued, None).unwrap();
    }
    // The receiver asks for mercy: the operator sets a limit, then the sweep runs.
    engine.set_rate_limit(&step(), Some(5.0)).unwrap();
    sweep(&engine, &clock);
    assert_eq!(rx.requests(), 6);
    let (log, _) = engine
        .list(&LogScope::Bot("b1".into()), None, 50, |_| true)
        .unwrap();
    let mut sent_at: Vec<i64> = log.iter().map(|d| d.attempts[0].at.0).collect();
    sent_at.sort();
    assert!(sent_at[5] - sent_at[0] >= 1_000, "{sent_at:?}");
}
