//! The delivery engine with a scripted receiver and a clock the test moves: attempts,
//! retries, the outbox sweep, signatures and the log, as a receiver and a user see them.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use funnelhooks_core::Timestamp;
use funnelhooks_delivery::SigningSecret;
use funnelhooks_delivery::engine::{
    Attempts, Clock, Engine, LogScope, NewDelivery, Received, SendFailure, Sender,
};
use funnelhooks_delivery::log::{Delivery, Owner, Status};
use funnelhooks_delivery::outbox::RetryNow;
use funnelhooks_delivery::request::OutboundRequest;
use funnelhooks_store::{Kv, MemoryKv};

mod support;

use support::*;

#[test]
fn a_500_then_a_200_is_one_delivery_with_two_attempts() {
    let (kv, clock, rx) = (
        MemoryKv::new(),
        FakeClock::new(),
        Receiver::answering(vec![status(500), status(200)]),
    );
    let engine = Engine::new(&kv, &rx, &clock);
    let d = run(&engine, "b1", Attempts::WithQuickRetries);
    assert_eq!(d.status, Status::Delivered);
    assert_eq!(d.attempts.len(), 2);
    assert_eq!(d.attempts[0].status, Some(500));
    assert_eq!(d.attempts[1].status, Some(200));
    assert_eq!(d.attempts[1].body, "answer 200");
    let wait = d.attempts[1].at.0 - d.attempts[0].at.0;
    assert!(
        (4_500..=5_500).contains(&wait),
        "the schedule's 5 s ± 10 %: {wait} ms"
    );
    assert_eq!(rx.requests(), 2);
    let (items, _) = engine.list(&LogScope::All, None, 10, |_| true).unwrap();
    assert_eq!(items.len(), 1, "one delivery in the log");
    assert_eq!(engine.get(&d.id).unwrap().unwrap(), d);
}

#[test]
fn a_404_fails_at_once_and_a_410_marks_the_webhook_gone() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(404), status(410)]);
    let engine = Engine::new(&kv, &rx, &clock);
    let d = run(&engine, "b1", Attempts::WithQuickRetries);
    assert_eq!(
        (d.status, d.attempts.len(), d.gone),
        (Status::Failed, 1, false)
    );
    assert!(d.error.as_deref().unwrap().contains("404"));
    let d = run(&engine, "b1", Attempts::WithQuickRetries);
    assert_eq!(
        (d.status, d.attempts.len(), d.gone),
        (Status::Failed, 1, true)
    );
    assert_eq!(rx.requests(), 2, "neither was retried");
}

#[test]
fn a_timeout_is_retried_from_the_outbox_and_retry_due_sends_only_what_is_due() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![
        Err(SendFailure::Timeout("timed out".into())),
        status(503),
        Err(SendFailure::Network("connection refused".into())),
    ]);
    let engine = Engine::new(&kv, &rx, &clock);
    // No inline retries (the postback path): the 5 s retry waits in the outbox.
    let slow = run(&engine, "b1", Attempts::FirstOnly);
    assert_eq!(slow.status, Status::Retrying);
    assert_eq!(slow.attempts[0].error.as_deref(), Some("timed out"));
    let due = slow.next_attempt_at.unwrap();
    // Nothing is due yet: the sweep sends nothing.
    assert_eq!(
        engine.retry_due(Duration::from_secs(20)).unwrap().attempted,
        0
    );
    assert_eq!(rx.requests(), 1);
    // After a minute the 503 comes back: retried again later (5 min).
    clock.advance(Duration::from_millis(
        (due.0 - clock.now().0) as u64 + 60_000,
    ));
    let sweep = engine.retry_due(Duration::from_secs(20)).unwrap();
    assert_eq!((sweep.attempted, sweep.rescheduled), (1, 1));
    let d = engine.get(&slow.id).unwrap().unwrap();
    assert_eq!(d.attempts.len(), 2);
    assert_eq!(d.attempts[1].status, Some(503));
    let next = d.next_attempt_at.unwrap().0 - d.attempts[1].at.0;
    assert!((270_000..=330_000).contains(&next), "5 min ± 10 %: {next}");
    // A second sweep right away sends nothing twice.
    assert_eq!(
        engine.retry_due(Duration::from_secs(20)).unwrap().attempted,
        0
    );
    clock.advance(Duration::from_secs(6 * 60));
    let sweep = engine.retry_due(Duration::from_secs(20)).unwrap();
    assert_eq!(sweep.attempted, 1);
    // 30 min ± 10 %.
    clock.advance(Duration::from_secs(34 * 60));
    let sweep = engine.retry_due(Duration::from_secs(20)).unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
    let d = engine.get(&slow.id).unwrap().unwrap();
    assert_eq!(d.status, Status::Delivered);
    assert_eq!(d.attempts.len(), 4);
    assert_eq!(rx.requests(), 4);
}

#[test]
fn max_attempts_bounds_the_retries() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(500), status(500), status(500)]);
    let engine = Engine::new(&kv, &rx, &clock);
    let mut new = new_delivery("b1");
    new.max_attempts = 2;
    let d = engine
        .run(
            engine.create(new, None).unwrap(),
            Attempts::WithQuickRetries,
        )
        .unwrap();
    assert_eq!((d.status, d.attempts.len()), (Status::Failed, 2));
    assert_eq!(d.error.as_deref(), Some("gave up after 2 attempts"));
}

#[test]
fn retry_after_is_honoured_within_bounds() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let throttled = Ok(Received {
        status: 429,
        headers: vec![("retry-after".into(), "120".into())],
        ..Received::default()
    });
    let rx = Receiver::answering(vec![throttled]);
    let engine = Engine::new(&kv, &rx, &clock);
    let d = run(&engine, "b1", Attempts::WithQuickRetries);
    assert_eq!(
        d.status,
        Status::Retrying,
        "120 s is too long to wait inside a request"
    );
    assert_eq!(d.next_attempt_at.unwrap().0 - d.attempts[0].at.0, 120_000);
}

#[test]
fn requests_say_they_come_from_funnelhooks_unless_the_config_names_a_user_agent() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    engine
        .run(
            engine.create(new_delivery("b1"), None).unwrap(),
            Attempts::FirstOnly,
        )
        .unwrap();
    let mut own = new_delivery("b1");
    if let Some(r) = own.request.as_mut() {
        r.headers.push(("user-agent".into(), "Keitaro-S2S".into()));
    }
    engine
        .run(engine.create(own, None).unwrap(), Attempts::FirstOnly)
        .unwrap();
    let got = rx.got.lock().unwrap();
    let agents = |i: usize| -> Vec<String> {
        let (request, extra) = &got[i];
        request
            .headers
            .iter()
            .chain(extra)
            .filter(|(k, _)| k == "user-agent")
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(
        agents(0),
        [format!("funnelhooks/{}", env!("CARGO_PKG_VERSION"))]
    );
    assert_eq!(agents(1), ["Keitaro-S2S"], "the config's own, and only it");
}

#[test]
fn signed_requests_verify_with_an_independent_hmac_and_keep_their_id_across_retries() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(502), status(200)]);
    let secrets = |_: &Owner| Ok(Some(SigningSecret::parse(secret).unwrap()));
    let engine = Engine::new(&kv, &rx, &clock).with_secrets(&secrets);
    let mut new = new_delivery("b1");
    new.signed = true;
    let d = engine
        .run(
            engine.create(new, None).unwrap(),
            Attempts::WithQuickRetries,
        )
        .unwrap();
    assert_eq!(d.status, Status::Delivered);
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let got = rx.got.lock().unwrap();
    let mut ids = Vec::new();
    for (request, extra) in got.iter() {
        let header = |name: &str| {
            extra
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let (id, ts, sig) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        );
        let mut signed = format!("{id}.{ts}.").into_bytes();
        signed.extend_from_slice(&request.body);
        let mac = hmac_sha256::HMAC::mac(&signed, &key);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        assert_eq!(sig, expected);
        ids.push(id);
    }
    assert_eq!(
        ids,
        [d.id.clone(), d.id.clone()],
        "webhook-id is the delivery id on every attempt"
    );
    assert!(
        !d.view().to_string().contains("MfKQ9r8G"),
        "the secret is never shown"
    );
    assert_eq!(d.view()["signed"], true);
    let stored = kv.get(&format!("dlv:{}", d.id)).unwrap().unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains("MfKQ9r8G"),
        "nor stored with the delivery"
    );
}

#[test]
fn each_attempt_signs_with_the_owners_secret_of_the_moment_and_never_unsigned() {
    let (old, new) = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    let current = Mutex::new(Some(old));
    let secrets =
        |_: &Owner| Ok((*current.lock().unwrap()).map(|s| SigningSecret::parse(s).unwrap()));
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(503), status(503)]);
    let engine = Engine::new(&kv, &rx, &clock).with_secrets(&secrets);
    let mut signed = new_delivery("b1");
    signed.signed = true;
    let d = engine
        .run(engine.create(signed, None).unwrap(), Attempts::FirstOnly)
        .unwrap();
    assert_eq!(d.status, Status::Retrying);
    // The secret is rotated: the retry is signed with the new one.
    *current.lock().unwrap() = Some(new);
    clock.advance(Duration::from_secs(6));
    engine.retry_due(Duration::from_secs(25)).unwrap();
    let signatures: Vec<String> = rx
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, extra)| {
            extra
                .iter()
                .find(|(k, _)| k == "webhook-signature")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    assert_eq!(signatures.len(), 2);
    assert_ne!(signatures[0], signatures[1]);
    let ts = |i: usize| {
        rx.got.lock().unwrap()[i]
            .1
            .iter()
            .find(|(k, _)| k == "webhook-timestamp")
            .unwrap()
            .1
            .clone()
    };
    let expected = SigningSecret::parse(new).unwrap().sign(
        &d.id,
        ts(1).parse().unwrap(),
        br#"{"chatId":1227280}"#,
    );
    assert_eq!(signatures[1], expected);
    // The step is deleted with its secret: the next retry is not sent unsigned.
    *current.lock().unwrap() = None;
    clock.advance(Duration::from_secs(400));
    engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!(rx.requests(), 2, "nothing sent without its signature");
    let d = engine.get(&d.id).unwrap().unwrap();
    assert_eq!(d.status, Status::Failed);
    assert!(d.error.unwrap().contains("not sent unsigned"));
}

#[test]
fn the_log_masks_secrets_and_lists_newest_first_with_filters() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let first = run(&engine, "b1", Attempts::WithQuickRetries);
    clock.advance(Duration::from_secs(1));
    let second = run(&engine, "b2", Attempts::WithQuickRetries);
    let view = first.view();
    let text = view.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(
        view["request"]["url"],
        "https://hooks.example.com/in?token=***&sub1=abc"
    );
    assert_eq!(view["botId"], "b1");
    assert_eq!(view["attempts"][0]["status"], 200);
    let (all, _) = engine.list(&LogScope::All, None, 10, |_| true).unwrap();
    let ids: Vec<_> = all.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, [second.id.clone(), first.id.clone()], "newest first");
    let b1 = LogScope::Bot("b1".into());
    let (only_b1, _) = engine.list(&b1, None, 10, |_| true).unwrap();
    assert_eq!(only_b1.len(), 1);
    assert_eq!(only_b1[0].id, first.id);
    let (delivered, _) = engine
        .list(&LogScope::All, None, 10, |d| d.status == Status::Failed)
        .unwrap();
    assert!(delivered.is_empty());
    // Paging: one per page, newest first, then nothing.
    let (page1, next) = engine.list(&LogScope::All, None, 1, |_| true).unwrap();
    let (page2, _) = engine.list(&LogScope::All, next, 1, |_| true).unwrap();
    assert_eq!(
        (page1[0].id.clone(), page2[0].id.clone()),
        (second.id, first.id)
    );
}

#[test]
fn a_skipped_delivery_is_logged_with_its_reason_and_never_sent() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let d = engine
        .create(
            new_delivery("b1"),
            Some("no value for tracker.clickid".into()),
        )
        .unwrap();
    assert_eq!(d.status, Status::Skipped);
    assert_eq!(d.error.as_deref(), Some("no value for tracker.clickid"));
    assert_eq!(rx.requests(), 0);
    assert_eq!(
        engine.retry_due(Duration::from_secs(1)).unwrap().attempted,
        0
    );
}

#[test]
fn each_bot_keeps_its_newest_ten_thousand_deliveries_whatever_other_bots_send() {
    use funnelhooks_delivery::log::MAX_DELIVERIES_PER_OWNER;
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let quiet = engine
        .create(new_delivery("quiet"), Some("skip".into()))
        .unwrap();
    let first = engine
        .create(new_delivery("b1"), Some("skip".into()))
        .unwrap();
    let mut last = first.clone();
    for _ in 0..MAX_DELIVERIES_PER_OWNER {
        last = engine
            .create(new_delivery("b1"), Some("skip".into()))
            .unwrap();
    }
    assert!(
        engine.get(&first.id).unwrap().is_none(),
        "b1's oldest is gone"
    );
    assert!(engine.get(&last.id).unwrap().is_some());
    assert!(
        engine.get(&quiet.id).unwrap().is_some(),
        "another bot's delivery stays, however much b1 sends"
    );
    let b1 = LogScope::Bot("b1".into());
    let (page, _) = engine.list(&b1, None, 1, |_| true).unwrap();
    assert_eq!(page[0].id, last.id);
    let records = kv.keys().iter().filter(|k| k.starts_with("dlv:")).count();
    assert_eq!(records as u64, MAX_DELIVERIES_PER_OWNER + 1);
}

#[test]
fn deliveries_made_together_keep_their_owners_newest_ten_thousand_and_spare_the_waiting() {
    use funnelhooks_delivery::log::MAX_DELIVERIES_PER_OWNER;
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    // The oldest is still waiting for its attempt; the next two ended.
    let waiting = engine.create(new_delivery("b1"), None).unwrap();
    // The second ended one was a postback's step entry: its entry goes with it (the sweep
    // must not find an entry whose delivery is gone, and make it again).
    let entry = hand_off(&kv, &clock, "6b3c4d58-4f6e-4b4e-9d9b-7f8091a2b3c4", 2);
    let ended: Vec<Delivery> = [None, Some(entry.clone())]
        .into_iter()
        .map(|in_outbox| {
            let new = NewDelivery {
                in_outbox,
                ..new_delivery("b1")
            };
            engine.create(new, Some("skip".into())).unwrap()
        })
        .collect();
    assert!(kv.get(&entry).unwrap().is_some());
    let batch = || {
        (0..10)
            .map(|_| (new_delivery("b1"), Some("skip".to_string())))
            .collect::<Vec<_>>()
    };
    let mut made = 3;
    while made < MAX_DELIVERIES_PER_OWNER + 2 {
        made += engine.create_many(batch(), Vec::new()).unwrap().len() as u64;
    }
    assert!(engine.get(&waiting.id).unwrap().is_some(), "waiting: kept");
    assert!(
        engine.get(&ended[0].id).unwrap().is_none(),
        "ended: dropped"
    );
    assert!(engine.get(&ended[1].id).unwrap().is_none());
    assert!(
        kv.get(&entry).unwrap().is_none(),
        "its step entry went with it"
    );
    let records = kv.keys().iter().filter(|k| k.starts_with("dlv:")).count() as u64;
    assert_eq!(
        records,
        MAX_DELIVERIES_PER_OWNER + 1,
        "the newest and the waiting one"
    );
    let log_entries = kv
        .keys()
        .iter()
        .filter(|k| k.starts_with("dlvs:bot:b1:") && !k.ends_with(":n"))
        .count() as u64;
    assert_eq!(
        log_entries,
        MAX_DELIVERIES_PER_OWNER + 1,
        "their places went with them"
    );
}

#[test]
fn a_retrying_delivery_outlives_ten_thousand_newer_ones_and_is_retried() {
    use funnelhooks_delivery::log::MAX_DELIVERIES_PER_OWNER;
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let mut busy = status(503);
    if let Ok(r) = &mut busy {
        r.headers.push(("retry-after".into(), "30".into()));
    }
    let rx = Receiver::answering(vec![busy]);
    let engine = Engine::new(&kv, &rx, &clock);
    let waiting = engine
        .run(
            engine.create(new_delivery("b1"), None).unwrap(),
            Attempts::FirstOnly,
        )
        .unwrap();
    assert_eq!(waiting.status, Status::Retrying);
    // 10,100 newer deliveries of the same bot, as in the report.
    for _ in 0..MAX_DELIVERIES_PER_OWNER + 100 {
        run(&engine, "b1", Attempts::FirstOnly);
    }
    assert!(engine.get(&waiting.id).unwrap().is_some(), "still logged");
    clock.advance(Duration::from_secs(31));
    let mut delivered = 0;
    loop {
        let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
        delivered += sweep.delivered;
        if !sweep.more {
            break;
        }
    }
    assert_eq!(delivered, 1, "the retry was sent");
    assert_eq!(rx.requests() as u64, MAX_DELIVERIES_PER_OWNER + 100 + 2);
    // It ended: now retention lets it go, as it would have when it was due to.
    assert!(engine.get(&waiting.id).unwrap().is_none());
}

/// Times out every request, taking the whole timeout on the test's clock.
struct SlowReceiver<'a>(&'a FakeClock, Mutex<usize>);

impl Sender for SlowReceiver<'_> {
    fn send(
        &self,
        _request: &OutboundRequest,
        _extra: &[(String, String)],
        timeout: Duration,
    ) -> Result<Received, SendFailure> {
        *self.1.lock().unwrap() += 1;
        self.0.advance(timeout);
        Err(SendFailure::Timeout("timed out".into()))
    }
}

#[test]
fn a_sweep_starts_only_attempts_that_can_end_within_its_budget() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = SlowReceiver(&clock, Mutex::new(0));
    let engine = Engine::new(&kv, &rx, &clock);
    // Three deliveries whose first attempt timed out (10 s each) wait in the outbox.
    for bot in ["b1", "b2", "b3"] {
        let created = engine.create(new_delivery(bot), None).unwrap();
        assert_eq!(
            engine.run(created, Attempts::FirstOnly).unwrap().status,
            Status::Retrying
        );
    }
    clock.advance(Duration::from_secs(120));
    // 25 s: two 10 s attempts fit, a third would end past the budget and waits.
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.more), (2, true));
    assert_eq!(*rx.1.lock().unwrap(), 5);
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.more), (1, false));
    assert_eq!(*rx.1.lock().unwrap(), 6, "each due attempt was sent once");
}

#[test]
fn a_filtered_page_fills_up_past_entries_that_do_not_match() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    // Chat 1 first, then 30 deliveries for chat 2 on top of it.
    let mut wanted = new_delivery("b1");
    wanted.owner = owner("b1", 1);
    let wanted = engine.create(wanted, None).unwrap();
    for _ in 0..30 {
        run(&engine, "b1", Attempts::WithQuickRetries);
    }
    let b1 = LogScope::Bot("b1".into());
    let (page, next) = engine
        .list(&b1, None, 10, |d| chat_of(d) == Some(1))
        .unwrap();
    assert_eq!(
        page.len(),
        1,
        "found under 30 newer entries of another chat"
    );
    assert_eq!(page[0].id, wanted.id);
    assert_eq!(next, None, "and the log ends there");
}

#[test]
fn a_delivery_created_for_the_outbox_is_sent_by_the_next_sweep_once() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let new = NewDelivery {
        first_attempt_after: Some(Duration::ZERO),
        ..new_delivery("b1")
    };
    let queued = engine.create(new, None).unwrap();
    assert_eq!((queued.status, rx.requests()), (Status::Pending, 0));
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
    let d = engine.get(&queued.id).unwrap().unwrap();
    assert_eq!((d.status, d.attempts.len()), (Status::Delivered, 1));
    assert_eq!(
        engine.retry_due(Duration::from_secs(25)).unwrap().attempted,
        0
    );
    assert_eq!(rx.requests(), 1);
}

#[test]
fn deliveries_made_together_are_logged_in_order_sent_once_and_made_once() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let ids = [
        "3e0f1d85-1c3b-4e1b-8a68-4c5d6e7f8091",
        "4f1a2e96-2d4c-4f2c-9b79-5d6e7f8091a2",
        "5a2b3fa7-3e5d-4a3d-8c8a-6e7f8091a2b3",
    ];
    let news = || {
        ids.iter()
            .enumerate()
            .map(|(n, id)| {
                let new = NewDelivery {
                    id: Some(id.to_string()),
                    ..new_delivery("b1")
                };
                // The second cannot be sent: logged as skipped.
                (new, (n == 1).then(|| "no URL".to_string()))
            })
            .collect::<Vec<_>>()
    };
    let made = engine
        .create_many(news(), vec![("done".into(), b"1".to_vec())])
        .unwrap();
    let got: Vec<(&str, bool, Status)> = made
        .iter()
        .map(|c| (c.delivery.id.as_str(), c.fresh, c.delivery.status))
        .collect();
    assert_eq!(
        got,
        [
            (ids[0], true, Status::Pending),
            (ids[1], true, Status::Skipped),
            (ids[2], true, Status::Pending)
        ]
    );
    assert_eq!(kv.get("done").unwrap().as_deref(), Some(&b"1"[..]));
    let (log, _) = engine.list(&LogScope::All, None, 10, |_| true).unwrap();
    let listed: Vec<&str> = log.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(listed, [ids[2], ids[1], ids[0]], "newest first");
    // Made again (a retried event): found, nothing new.
    let again = engine.create_many(news(), Vec::new()).unwrap();
    assert!(again.iter().all(|c| !c.fresh));
    assert_eq!(
        engine
            .list(&LogScope::All, None, 10, |_| true)
            .unwrap()
            .0
            .len(),
        3
    );
    // Their request died before sending them: the sweep sends the two pending, once.
    clock.advance(Duration::from_secs(120));
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (2, 2));
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        engine.retry_due(Duration::from_secs(25)).unwrap().attempted,
        0
    );
    assert_eq!(rx.requests(), 2);
}

/// A postback's step entry put in the outbox (as `funnelhooks_dialogs::handoff` does), for
/// delivery `id`, in the minute `minutes` from now: its key.
fn hand_off(kv: &MemoryKv, clock: &FakeClock, id: &str, minutes: i64) -> String {
    let minute = clock.now().0.div_euclid(60_000) + minutes;
    let entry = format!(r#"{{"id":"{id}","botId":"b1","chatId":1227280,"stepId":"s1"}}"#);
    let due = funnelhooks_store::due_in_minute(kv, minute);
    due.slot_key(due.add(&entry).unwrap())
}

#[test]
fn a_delivery_whose_step_entry_waits_in_the_outbox_writes_no_entry_of_its_own_and_is_sent_once() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let made = |id: &str, entry: String| NewDelivery {
        id: Some(id.to_string()),
        in_outbox: Some(entry),
        ..new_delivery("b1")
    };
    let (sent_id, died_id) = (
        "0b7c8a52-8f0e-4b8e-9d35-1f2a3b4c5d6e",
        "1c8d9b63-9a1f-4c9f-8e46-2a3b4c5d6e7f",
    );
    // Created by the chain and attempted at once; created, and the host died before its
    // attempt.
    let sent_entry = hand_off(&kv, &clock, sent_id, 2);
    let died_entry = hand_off(&kv, &clock, died_id, 2);
    let sent = engine.create(made(sent_id, sent_entry), None).unwrap();
    engine.run(sent, Attempts::FirstOnly).unwrap();
    engine.create(made(died_id, died_entry), None).unwrap();
    let entries = |kv: &MemoryKv| kv.keys().iter().filter(|k| k.starts_with("due:")).count();
    // Two entries and their minute's counter: none of the deliveries' own.
    assert_eq!(entries(&kv), 3, "{:?}", kv.keys());
    assert_eq!(rx.requests(), 1);
    // The sweep takes the entries for their deliveries once their minute has come: the one
    // attempted is left alone, the other sent; a later sweep sends nothing more.
    // Both deliveries exist: the sweep finds them by the id the entries carry, and never
    // asks for one to be made.
    let mut resolve = |entry: &str| -> Result<Option<String>, funnelhooks_store::StoreError> {
        panic!("asked to make the delivery of {entry}")
    };
    let early = engine
        .retry_due_resolving(Duration::from_secs(25), "scheduler", &mut resolve)
        .unwrap();
    assert_eq!(
        (early.attempted, rx.requests()),
        (0, 1),
        "not before its minute"
    );
    clock.advance(Duration::from_secs(180));
    let sweep = engine
        .retry_due_resolving(Duration::from_secs(25), "scheduler", &mut resolve)
        .unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
    assert_eq!(rx.requests(), 2);
    let died = engine.get(died_id).unwrap().unwrap();
    assert_eq!((died.status, died.attempts.len()), (Status::Delivered, 1));
    clock.advance(Duration::from_secs(600));
    let again = engine
        .retry_due_resolving(Duration::from_secs(25), "scheduler", &mut resolve)
        .unwrap();
    assert_eq!((again.attempted, rx.requests()), (0, 2), "sent once");
}

#[test]
fn a_step_entry_whose_move_never_landed_is_dropped_by_the_sweep() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    hand_off(&kv, &clock, "2d9e0c74-0b2a-4d0a-9f57-3b4c5d6e7f80", 1);
    clock.advance(Duration::from_secs(180));
    let sweep = engine
        .retry_due_resolving(Duration::from_secs(25), "scheduler", &mut |_| Ok(None))
        .unwrap();
    assert_eq!((sweep.attempted, rx.requests()), (0, 0));
    let left: Vec<String> = kv
        .keys()
        .into_iter()
        .filter(|k| k.split(':').count() == 3 && !k.ends_with(":n"))
        .filter(|k| k.starts_with("due:"))
        .collect();
    assert!(left.is_empty(), "the entry is gone: {left:?}");
}

#[test]
fn a_held_delivery_whose_request_died_is_sent_by_a_sweep_after_the_hold() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let new = NewDelivery {
        first_attempt_after: Some(Duration::from_secs(60)),
        ..new_delivery("b1")
    };
    let held = engine.create(new, None).unwrap();
    // The request that created it never sends it. Within the hold, no sweep touches it.
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        engine.retry_due(Duration::from_secs(25)).unwrap().attempted,
        0
    );
    clock.advance(Duration::from_secs(31));
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
    assert_eq!(
        engine.get(&held.id).unwrap().unwrap().status,
        Status::Delivered
    );
    assert_eq!(rx.requests(), 1);
}

#[test]
fn a_held_delivery_sent_by_its_request_is_not_sent_again_by_the_sweep() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let hold = || NewDelivery {
        first_attempt_after: Some(Duration::from_secs(60)),
        ..new_delivery("b1")
    };
    let batch = vec![
        engine.create(hold(), None).unwrap(),
        engine.create(hold(), None).unwrap(),
    ];
    let done = engine.run_all(batch).unwrap();
    assert!(done.iter().all(|d| d.status == Status::Delivered));
    clock.advance(Duration::from_secs(120));
    assert_eq!(
        engine.retry_due(Duration::from_secs(25)).unwrap().attempted,
        0
    );
    assert_eq!(rx.requests(), 2, "each sent exactly once");
}

#[test]
fn a_batch_logs_each_answer_and_sends_failures_to_the_outbox() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(200), status(503), status(400)]);
    let engine = Engine::new(&kv, &rx, &clock);
    let skipped = engine
        .create(new_delivery("b1"), Some("no value for id".into()))
        .unwrap();
    let mut batch = vec![skipped];
    for _ in 0..3 {
        batch.push(engine.create(new_delivery("b1"), None).unwrap());
    }
    let done = engine.run_all(batch).unwrap();
    let statuses: Vec<Status> = done.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Skipped,
            Status::Delivered,
            Status::Retrying,
            Status::Failed
        ]
    );
    assert_eq!(rx.requests(), 3, "a skipped delivery is not sent");
    for d in &done {
        assert_eq!(
            engine.get(&d.id).unwrap().unwrap(),
            *d,
            "the log has what was returned"
        );
    }
    // The 503 is retried by the sweep once its time comes.
    rx.script.lock().unwrap().push_back(status(200));
    clock.advance(Duration::from_secs(6));
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
}

#[test]
fn a_delivery_whose_request_died_before_its_first_attempt_is_sent_by_the_sweep() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    // Created to be sent at once (a step entry, a send now), then the instance died.
    let orphan = engine.create(new_delivery("b1"), None).unwrap();
    assert_eq!(orphan.status, Status::Pending);
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        engine.retry_due(Duration::from_secs(25)).unwrap().attempted,
        0,
        "not while its request may still be sending it"
    );
    clock.advance(Duration::from_secs(31));
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
    assert_eq!(rx.requests(), 1);
}

#[test]
fn the_outbox_keeps_every_record_small_however_many_deliveries_fall_due_in_a_minute() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    for _ in 0..500 {
        let queued = NewDelivery {
            first_attempt_after: Some(Duration::from_secs(5)),
            ..new_delivery("b1")
        };
        engine.create(queued, None).unwrap();
    }
    let largest = kv
        .keys()
        .iter()
        .filter(|k| k.starts_with("due:"))
        .map(|k| kv.get(k).unwrap().unwrap().len())
        .max()
        .unwrap();
    assert!(largest <= 64, "an outbox record holds {largest} bytes");
    clock.advance(Duration::from_secs(6));
    let mut sent = 0;
    loop {
        let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
        sent += sweep.delivered;
        if !sweep.more {
            break;
        }
    }
    assert_eq!((sent, rx.requests()), (500, 500));
    // Swept minutes leave nothing behind once closed.
    clock.advance(Duration::from_secs(180));
    engine.retry_due(Duration::from_secs(25)).unwrap();
    let left: Vec<String> = kv
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("due:") && k != "due:cursor")
        .collect();
    assert!(left.len() <= 2, "{left:?}");
}

#[test]
fn an_overdue_delivery_missing_from_the_outbox_is_found_and_sent() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(503)]);
    let engine = Engine::new(&kv, &rx, &clock);
    let retrying = engine
        .run(
            engine.create(new_delivery("b1"), None).unwrap(),
            Attempts::FirstOnly,
        )
        .unwrap();
    assert_eq!(retrying.status, Status::Retrying);
    // Its outbox entries are lost (a store failure, two appends colliding without atomics).
    for k in kv.keys().into_iter().filter(|k| k.starts_with("due:")) {
        kv.delete(&k).unwrap();
    }
    clock.advance(Duration::from_secs(300));
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.rescued), (0, 1));
    let sweep = engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
    assert_eq!(
        engine.get(&retrying.id).unwrap().unwrap().status,
        Status::Delivered
    );
}

#[test]
fn creating_a_delivery_twice_under_one_id_creates_and_sends_it_once() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let id = "0b4cbb6e-5b1a-4d7e-9d55-6f1b2b1e6c01".to_string();
    let once = || NewDelivery {
        id: Some(id.clone()),
        ..new_delivery("b1")
    };
    let first = engine.create_once(once(), None).unwrap();
    assert!(first.fresh);
    let again = engine.create_once(once(), None).unwrap();
    assert!(!again.fresh);
    assert_eq!(again.delivery.id, id);
    engine.run(first.delivery, Attempts::FirstOnly).unwrap();
    clock.advance(Duration::from_secs(120));
    engine.retry_due(Duration::from_secs(25)).unwrap();
    assert_eq!(rx.requests(), 1);
    let (page, _) = engine
        .list(&LogScope::Bot("b1".into()), None, 10, |_| true)
        .unwrap();
    assert_eq!(page.len(), 1, "logged once");
}

#[test]
fn an_attempt_to_a_target_the_rules_refuse_now_fails_without_a_request() {
    // A replay or a retry goes out again long after its step was saved: it is checked again.
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    for (url, why) in [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://169.254.169.254/latest", "metadata"),
        ("http://self/api/bots", "without a dot"),
    ] {
        let mut new = new_delivery("b1");
        new.request.as_mut().unwrap().url = url.into();
        let d = engine.create(new, None).unwrap();
        let d = engine.run(d, Attempts::WithQuickRetries).unwrap();
        assert_eq!(d.status, Status::Failed, "{url}");
        assert!(d.attempts.is_empty(), "{url}");
        assert!(
            d.error.as_deref().unwrap().contains(why),
            "{url}: {:?}",
            d.error
        );
    }
    assert_eq!(rx.requests(), 0);
    // A header the host refuses, or a value with a line break, is never sent (and never
    // retried forever).
    for header in [
        ("proxy-authorization", "Basic x"),
        ("x-ok", "a\r\nInjected: 1"),
    ] {
        let mut new = new_delivery("b1");
        new.request
            .as_mut()
            .unwrap()
            .headers
            .push((header.0.into(), header.1.into()));
        let d = engine.run(
            engine.create(new, None).unwrap(),
            Attempts::WithQuickRetries,
        );
        let d = d.unwrap();
        assert_eq!(
            (d.status, d.attempts.len()),
            (Status::Failed, 0),
            "{header:?}"
        );
    }
    assert_eq!(rx.requests(), 0);
}

#[test]
fn a_request_past_a_bound_is_failed_with_the_bound_never_cut() {
    let (kv, clock, rx) = (MemoryKv::new(), FakeClock::new(), Receiver::default());
    let engine = Engine::new(&kv, &rx, &clock);
    let mut new = new_delivery("b1");
    new.request.as_mut().unwrap().body = vec![b'x'; 64 * 1024 + 1];
    let d = engine.run(engine.create(new, None).unwrap(), Attempts::FirstOnly);
    let d = d.unwrap();
    assert_eq!((d.status, d.attempts.len()), (Status::Failed, 0));
    assert!(d.error.unwrap().contains("65536-byte bound"));
    assert_eq!(rx.requests(), 0);
}

/// Sends a batch one by one and, before each request after the first, looks in the store
/// at how the earlier deliveries stand.
struct Watching<'k> {
    kv: &'k MemoryKv,
    ids: Mutex<Vec<String>>,
    seen: Mutex<Vec<Vec<Status>>>,
}

impl Sender for Watching<'_> {
    fn send(
        &self,
        _request: &OutboundRequest,
        _extra: &[(String, String)],
        _timeout: Duration,
    ) -> Result<Received, SendFailure> {
        let engine = Engine::new(self.kv, &NeverSends, &NeverSleeps);
        let statuses = self
            .ids
            .lock()
            .unwrap()
            .iter()
            .map(|id| engine.get(id).unwrap().unwrap().status)
            .collect();
        self.seen.lock().unwrap().push(statuses);
        status(200)
    }
}

struct NeverSends;
impl Sender for NeverSends {
    fn send(
        &self,
        _: &OutboundRequest,
        _: &[(String, String)],
        _: Duration,
    ) -> Result<Received, SendFailure> {
        unreachable!()
    }
}
struct NeverSleeps;
impl Clock for NeverSleeps {
    fn now(&self) -> Timestamp {
        Timestamp(START)
    }
    fn sleep(&self, _: Duration) {}
}

#[test]
fn a_batch_logs_each_attempt_as_it_ends_not_when_the_slowest_does() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let watching = Watching {
        kv: &kv,
        ids: Mutex::default(),
        seen: Mutex::default(),
    };
    let engine = Engine::new(&kv, &watching, &clock);
    let deliveries: Vec<Delivery> = (0..3)
        .map(|_| engine.create(new_delivery("b1"), None).unwrap())
        .collect();
    *watching.ids.lock().unwrap() = deliveries.iter().map(|d| d.id.clone()).collect();
    let done = engine.run_all(deliveries).unwrap();
    assert!(done.iter().all(|d| d.status == Status::Delivered));
    // Before the third request, the first two were already logged as delivered.
    let seen = watching.seen.lock().unwrap();
    assert_eq!(seen[0], [Status::Pending, Status::Pending, Status::Pending]);
    assert_eq!(seen[2][..2], [Status::Delivered, Status::Delivered]);
}

#[test]
fn the_backlog_counts_what_is_due_and_overdue_until_a_sweep_sends_it() {
    use funnelhooks_delivery::outbox::{backlog, last_sweep};
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(500), status(500), status(500)]);
    let engine = Engine::new(&kv, &rx, &clock);
    for _ in 0..3 {
        let d = run(&engine, "b1", Attempts::FirstOnly);
        assert_eq!(d.status, Status::Retrying);
    }
    assert_eq!(last_sweep(&kv).unwrap(), None);
    let now = backlog(&kv, clock.now()).unwrap();
    assert_eq!(
        (now.due, now.overdue),
        (0, 0),
        "{now:?}: the retries are 5 s ahead"
    );
    // A delivered one leaves its entry (due if its first attempt had not been made), but
    // is no work.
    let ok = Receiver::default();
    let fine = Engine::new(&kv, &ok, &clock);
    assert_eq!(
        run(&fine, "b2", Attempts::FirstOnly).status,
        Status::Delivered
    );
    // Ten minutes pass without a sweep: three retries are overdue since the first minute.
    clock.advance(Duration::from_secs(600));
    let late = backlog(&kv, clock.now()).unwrap();
    assert_eq!((late.due, late.overdue), (3, 3), "{late:?}");
    let oldest = late.oldest_overdue.unwrap();
    assert!(clock.now().0 - oldest.0 >= 540_000, "{late:?}");
    let sweep = engine.retry_due(Duration::from_secs(20)).unwrap();
    assert_eq!(sweep.attempted, 3);
    let after = backlog(&kv, clock.now()).unwrap();
    assert_eq!(after.overdue, 0, "{after:?}");
    let last = last_sweep(&kv).unwrap().unwrap();
    assert_eq!((last.attempted, last.by.as_str()), (3, "scheduler"));
    assert_eq!(last.at, clock.now());
}

#[test]
fn retry_now_makes_a_waiting_retry_at_once_and_never_one_a_sweep_may_be_making() {
    let (kv, clock) = (MemoryKv::new(), FakeClock::new());
    let rx = Receiver::answering(vec![status(503), status(503), status(200)]);
    let engine = Engine::new(&kv, &rx, &clock);
    let d = run(&engine, "b1", Attempts::FirstOnly);
    assert_eq!(d.status, Status::Retrying);
    // The first retry is 5 s away: within a lease it may be a sweep's, so it is left to it.
    assert!(matches!(
        engine.retry_now(&d.id).unwrap(),
        RetryNow::DueSoon
    ));
    assert_eq!(rx.requests(), 1);
    clock.advance(Duration::from_secs(10));
    let sweep = engine.retry_due(Duration::from_secs(20)).unwrap();
    assert_eq!(sweep.attempted, 1);
    let waiting = engine.get(&d.id).unwrap().unwrap();
    let next = waiting.next_attempt_at.unwrap();
    assert!(next.0 - clock.now().0 > 120_000, "minutes away");
    // A sweep on an instance whose clock is 10 s ahead has just taken it (its lease ends
    // 70 s from here): left alone.
    let mut leased = waiting.clone();
    leased.next_attempt_at = Some(Timestamp(clock.now().0 + 70_000));
    funnelhooks_store::Records::new(&kv)
        .put(&format!("dlv:{}", d.id), &leased)
        .unwrap();
    assert!(matches!(
        engine.retry_now(&d.id).unwrap(),
        RetryNow::DueSoon
    ));
    assert_eq!(rx.requests(), 2);
    funnelhooks_store::Records::new(&kv)
        .put(&format!("dlv:{}", d.id), &waiting)
        .unwrap();
    // Minutes away: "Retry now" makes it, once.
    let RetryNow::Attempted(done) = engine.retry_now(&d.id).unwrap() else {
        panic!("not attempted");
    };
    assert_eq!((done.status, done.attempts.len()), (Status::Delivered, 3));
    assert_eq!(rx.requests(), 3);
    // Delivered now: nothing to retry, and the sweep at the old time sends nothing.
    assert!(matches!(
        engine.retry_now(&d.id).unwrap(),
        RetryNow::NotRetrying
    ));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        engine.retry_due(Duration::from_secs(20)).unwrap().attempted,
        0
    );
    assert_eq!(rx.requests(), 3);
    assert!(matches!(
        engine
            .retry_now("0b5e3c1a-0000-4000-8000-000000000000")
            .unwrap(),
        RetryNow::NotFound
    ));
}
