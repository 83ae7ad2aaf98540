//! Store round trips per request on the main paths, counted by the test host. Each count is
//! pinned: a change that adds a round trip to a path fails here and has to say why (counts,
//! not times, so the numbers do not depend on the machine).

use funnelhooks_testhost::kv::{OpSnapshot, Semantics};
use funnelhooks_testhost::{App, Client, HostBuilder};
use serde_json::json;

use crate::common::{Admin, real_app, serve};

/// The store operations `f` caused (waiting for work done after the answer, if any).
async fn ops_of<F: std::future::Future<Output = ()>>(app: &App, f: F) -> OpSnapshot {
    let before = app.kv().ops();
    f.await;
    app.kv().ops().since(&before)
}

struct Setup {
    app: App,
    client: Client,
    admin: Admin,
    bot: String,
    path: String,
    message_step: String,
    _server: funnelhooks_testhost::server::Server,
}

async fn setup() -> Setup {
    setup_on(Semantics::Sqlite).await
}

/// The app as these tests count it, on a store with `semantics`: webhooks to loopback
/// receivers allowed, and without the sweep traffic asks for now and then (auto_sweep), so
/// that the counts are the request's own, the same on every run.
fn counted_app(semantics: Semantics) -> HostBuilder {
    real_app()
        .store_semantics(semantics)
        .variable("allow_loopback_webhooks", "true")
        .variable("auto_sweep", "false")
}

async fn setup_on(semantics: Semantics) -> Setup {
    let (app, server, client) = serve(counted_app(semantics)).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Counts").await;
    admin
        .put(
            &format!("/api/bots/{bot}/fields/userBalance"),
            json!({"type": "number"}),
        )
        .await;
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "deposit", "kind": "message"})),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, url) = admin.link(&bot).await;
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    Setup {
        app,
        client,
        admin,
        bot,
        path,
        message_step: step,
        _server: server,
    }
}

impl Setup {
    /// A send-webhook step to `rx`, and the store operations of a postback moving chat 1
    /// into it, until its chained delivery is done.
    async fn moved_into_webhook_step(
        &self,
        rx: &funnelhooks_testhost::Receiver,
    ) -> (String, OpSnapshot) {
        let webhook = self
            .admin
            .call(
                "POST",
                &format!("/api/bots/{}/steps", self.bot),
                Some(json!({"key": "lead", "kind": "send-webhook",
                            "webhook": {"url": format!("{}/lead", rx.url())}})),
            )
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let into = format!("chatId=1&stepId={webhook}");
        let ops = ops_of(&self.app, async {
            self.postback(&into).await;
            self.app.idle().await;
        })
        .await;
        (webhook, ops)
    }

    async fn postback(&self, query: &str) {
        let reply = self
            .client
            .get(&format!("{}?{query}", self.path))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postback_costs_a_pinned_number_of_store_round_trips() {
    let s = setup().await;
    let new_chat = ops_of(
        &s.app,
        s.postback("chatId=1&userBalance=5&tracker.clickid=x"),
    )
    .await;
    let existing = ops_of(&s.app, s.postback("chatId=1&userBalance=6")).await;
    let step = s.message_step.clone();
    let moved = ops_of(&s.app, s.postback(&format!("chatId=1&stepId={step}"))).await;
    println!("postback, new chat: {new_chat}");
    println!("postback, existing chat: {existing}");
    println!("postback, existing chat, step move: {moved}");
    // link, bot and dialog (one get-many: the link id names its bot; the dialog is seen
    // absent, so it is not read again), election increment, index increment, one set-many:
    // the dialog with its place in the list and the list's entry (one SQLite transaction)
    assert_eq!(new_chat.total(), 4, "new chat: {new_chat}");
    assert_eq!(new_chat.get_many, 1, "new chat: {new_chat}");
    assert_eq!(new_chat.set_many, 1, "new chat: {new_chat}");
    // link, bot and dialog, current, swap
    assert_eq!(existing.total(), 3, "existing chat: {existing}");
    // link, bot, dialog and the step it names (one get-many), current, swap: 4 before the
    // step was read with the others (#30)
    assert_eq!(moved.total(), 3, "step move: {moved}");

    // A webhook step: the move hands its entry off first (the handoff list's counter and its
    // entry); a tracker repeating that postback, the dialog already on the step, enters
    // nothing and writes nothing but the dialog (before #30 it wrote a handoff each time).
    let rx = funnelhooks_testhost::Receiver::start().await.unwrap();
    let (webhook, delivered_ops) = s.moved_into_webhook_step(&rx).await;
    let into = format!("chatId=1&stepId={webhook}");
    println!("postback into a webhook step, delivered: {delivered_ops}");
    // The postback: link, bot, dialog and step, the handoff (its slot in the outbox and its
    // entry, which stands for the delivery's own outbox entry), current, swap. Chained after
    // the answer, the delivery: bot, step, dialog, whether it exists and its step's state in
    // one get-many; its two log slots, their entries and its record in one set-many; its
    // record after the attempt; the metrics counter. 8 writes, 13 before #30 (a handoff list
    // of its own with the entry removed once delivered, the delivery's own outbox slot, and
    // the set-many written key by key in send-webhook); 11 round trips, 16 before the reads
    // were batched.
    let o = &delivered_ops;
    assert_eq!(o.total(), 11, "into a webhook step: {o}");
    assert_eq!(o.get_many, 2, "into a webhook step: {o}");
    let writes = o.set + o.set_many + o.increment + o.swap + o.delete;
    assert_eq!(writes, 8, "into a webhook step: {o}");
    // The move's delivery, chained after its answer, is done before the repeat is counted.
    assert_eq!(
        rx.wait_for(1, std::time::Duration::from_secs(20))
            .await
            .len(),
        1
    );
    let mut delivered = false;
    for _ in 0..100 {
        let log = s
            .admin
            .get(&format!("/api/deliveries?stepId={webhook}&botId={}", s.bot))
            .await;
        if log["items"][0]["status"] == "delivered" {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(delivered, "the move's delivery was logged as delivered");
    // What it writes after its record (counters) lands too.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let repeat = ops_of(&s.app, s.postback(&into)).await;
    println!("postback repeating the webhook step the dialog is on: {repeat}");
    // link, bot, dialog and step, current, swap
    assert_eq!(
        repeat.total(),
        3,
        "repeat into the current webhook step: {repeat}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_a_postback_pays_two_reads_more_per_write_to_learn_whether_it_landed() {
    // Spin's Redis store reports every swap as failed: Spin reads the value again for the
    // fresh CAS it hands back, and we read it once more to find our operation id. It also
    // fails every get-many of two keys, so link and bot are then read one by one (one round
    // trip more than on SQLite, where they are read together).
    let s = setup_on(Semantics::Redis).await;
    let new_chat = ops_of(&s.app, s.postback("chatId=1&userBalance=5")).await;
    let existing = ops_of(&s.app, s.postback("chatId=1&userBalance=6")).await;
    println!("Redis: postback, new chat: {new_chat}");
    println!("Redis: postback, existing chat: {existing}");
    assert_eq!(new_chat.total(), 7, "new chat: {new_chat}");
    assert_eq!(existing.total(), 7, "existing chat: {existing}");
    // The paths that read ahead in one get-many on SQLite ask Redis at most once per request
    // and, refused, read key by key (the rest of the request does not ask again).
    let rx = funnelhooks_testhost::Receiver::start().await.unwrap();
    let (_, into_step) = s.moved_into_webhook_step(&rx).await;
    let event = call_event_ops_on(Semantics::Redis, 1).await;
    println!("Redis: postback into a webhook step, delivered: {into_step}");
    println!("Redis: call event, 1 hook: {event}");
    // The postback's refusal is handed on: its chained delivery does not ask (20, as before
    // the reads were batched). A call event asks once (14, one more than before).
    assert_eq!(into_step.get_many, 1, "into a webhook step: {into_step}");
    assert_eq!(into_step.total(), 20, "into a webhook step: {into_step}");
    assert_eq!(event.get_many, 1, "call event: {event}");
    assert_eq!(event.total(), 14, "call event: {event}");
}

#[tokio::test(flavor = "multi_thread")]
async fn management_reads_cost_a_pinned_number_of_store_round_trips() {
    let s = setup().await;
    s.postback("chatId=1&tracker.clickid=x").await;
    let bot = s.bot.clone();
    let read_bot = ops_of(&s.app, async {
        s.admin.get(&format!("/api/bots/{bot}")).await;
    })
    .await;
    let read_dialog = ops_of(&s.app, async {
        s.admin.get(&format!("/api/bots/{bot}/dialogs/1")).await;
    })
    .await;
    println!("read a bot: {read_bot}");
    println!("read a dialog: {read_dialog}");
    assert_eq!(read_bot.total(), 1, "{read_bot}");
    assert_eq!(read_dialog.total(), 2, "{read_dialog}");
}

/// A call-tracking service with `hooks` call-start hooks to `rx`: the path of a call event
/// (call 1) to it.
async fn service_with_hooks(
    admin: &Admin,
    rx: &funnelhooks_testhost::Receiver,
    hooks: usize,
) -> String {
    let service = admin
        .call("POST", "/api/calls/services", Some(json!({"name": "n"})))
        .await
        .json();
    let (id, key) = (
        service["id"].as_str().unwrap(),
        service["ingestKey"].as_str().unwrap(),
    );
    for _ in 0..hooks {
        let hook = json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                          "path": "/c", "event": "start"});
        let path = format!("/api/calls/services/{id}/hooks");
        let reply = admin.call("POST", &path, Some(hook)).await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    format!("/api/calls/services/{id}/events?key={key}&id=1&hook_event=Call+is+processing")
}

/// One call event to a service with `hooks` hooks on a loopback receiver, answered and every
/// delivery made: its store operations.
async fn call_event_ops(hooks: usize) -> OpSnapshot {
    call_event_ops_on(Semantics::Sqlite, hooks).await
}

/// [`call_event_ops`] on a store with `semantics`.
async fn call_event_ops_on(semantics: Semantics, hooks: usize) -> OpSnapshot {
    let (app, _server, client) = serve(counted_app(semantics)).await;
    let admin = Admin::new(&client);
    let rx = funnelhooks_testhost::Receiver::start().await.unwrap();
    let event = service_with_hooks(&admin, &rx, hooks).await;
    let before = app.kv().ops();
    let reply = client.send("POST", &event, &[], "").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The hooks are sent after the answer: counted once the handler is done.
    app.idle().await;
    assert_eq!(rx.received().len(), hooks);
    app.kv().ops().since(&before)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_event_costs_a_pinned_number_of_store_round_trips_per_hook() {
    let one = call_event_ops(1).await;
    let four = call_event_ops(4).await;
    let ten = call_event_ops(10).await;
    println!("call event, 10 hooks: {ten}");
    println!("call event, 1 hook: {one}");
    println!("call event, 4 hooks: {four}");
    // The service and the event's record in one read (a new event goes straight to its
    // election: the claim's election, its place in the service's events list, its write). A
    // call event's deliveries are made together (#30): one read for those made already (a
    // retried event) and the hooks' states (paused, disabled, backing off), one increment
    // per index for all the slots (outbox, the log, the service's log), the slots' entries,
    // the records and the event's own record in one set-many (one SQLite transaction);
    // after the answer the attempts that end together are written together (how many end
    // together depends on the receiver: at most one write per hook), and the metrics
    // counter of their outcomes once (all delivered: one increment). Before #30 each hook
    // cost 7 round trips more, 5 of them writes: 10 hooks, 78; 13 for one hook before its
    // reads were batched.
    assert_eq!(one.total(), 11, "{one}");
    assert_eq!(one.get + one.get_many, 2, "{one}");
    let reads = |o: &OpSnapshot| o.get + o.get_many;
    let writes = |o: &OpSnapshot| o.set + o.set_many;
    for (hooks, many) in [(4, &four), (10, &ten)] {
        assert_eq!(reads(many), reads(&one), "{hooks} hooks: {one} / {many}");
        assert_eq!(
            many.increment, one.increment,
            "{hooks} hooks: {one} / {many}"
        );
        assert_eq!(many.delete + many.swap, 0, "{hooks} hooks: {many}");
        let outcome_writes = writes(many) - (writes(&one) - 1);
        assert!(
            (1..=hooks).contains(&outcome_writes),
            "{hooks} hooks: {outcome_writes} writes of outcomes: {one} / {many}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_made_by_the_sweep_costs_a_pinned_number_of_store_round_trips() {
    let (app, _server, client) =
        serve(counted_app(Semantics::Sqlite).variable("allow_test_clock", "true")).await;
    let admin = Admin::new(&client);
    let rx = funnelhooks_testhost::Receiver::start().await.unwrap();
    rx.script([funnelhooks_testhost::Answer::new(503, "busy")]);
    let event = service_with_hooks(&admin, &rx, 1).await;
    assert_eq!(
        client.send("POST", &event, &[], "").await.unwrap().status,
        200
    );
    app.idle().await;
    assert_eq!(rx.received().len(), 1, "the first attempt, answered 503");
    // A sweep before the retry is due, a minute before the one that makes it, which runs
    // just after the delivery's first outbox entry (its lease's end) is due: whatever the
    // second of the minute, the second walks the same outbox minutes and finds both entries
    // (the retry's, and the first one, dropped: the delivery is taken already).
    let list = admin.get("/api/deliveries").await;
    let at = |field: &str| {
        funnelhooks_core::Timestamp::parse_iso(list["items"][0][field].as_str().unwrap())
            .unwrap()
            .0
    };
    let (created, next) = (at("createdAt"), at("nextAttemptAt"));
    let sweep_at = |at: i64| {
        let admin = &admin;
        async move {
            let reply = admin
                .call("POST", &format!("/api/deliveries/retry-due?at={at}"), None)
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.json()
        }
    };
    let when = created + 61_000;
    assert!(next < when && next > when - 60_000, "{list}");
    let before = sweep_at(when - 60_000).await;
    assert_eq!(before["attempted"], 0, "{before}");
    let sweep = ops_of(&app, async {
        let made = sweep_at(when).await;
        assert_eq!(made["delivered"], 1, "{made}");
    })
    .await;
    println!("a sweep making one retry: {sweep}");
    assert_eq!(rx.received().len(), 2);
    // What any sweep reads and writes: legacy handoffs, conversions waiting, cleanup jobs,
    // the outbox cursor and each open minute's counter, the rescue walk's stretch of the log
    // and its cursor, the installation's last sweep. For the retry: its entry; the delivery
    // taken under a lease (current, swap) with an outbox entry for the lease's end (slot,
    // entry: the sweep may die mid-attempt); its hook's state; the owner's log checked for
    // retention; its record after the attempt; the entry removed; its hook, failing until
    // now, marked as delivering again (state and attention list, two swaps); the metrics
    // counter. And the first entry: read, its delivery read, dropped (3).
    assert_eq!(sweep.total(), 35, "a sweep making one retry: {sweep}");
    assert_eq!(sweep.set_many + sweep.get_many, 0, "{sweep}");
}
