//! Delivery guarantees on the real app when the store fails part-way: no step entry and no
//! call event is lost, none is sent twice, and a move that never landed sends nothing. The
//! sweep runs on a test clock (`?at=`, allowed by `allow_test_clock`) so hours pass at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnelhooks_testhost::{Answer, App, Client, Receiver};
use serde_json::{Value, json};

use crate::common::{Admin, real_app, serve, snapshot};

const STEP: &str = "5f0c7a3e-2b1d-4c8e-9a6f-1e2d3c4b5a69";

fn app() -> funnelhooks_testhost::HostBuilder {
    real_app()
        .variable("allow_loopback_webhooks", "true")
        .variable("allow_test_clock", "true")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The sweep, run as if `ahead` had passed.
async fn sweep_after(admin: &Admin, ahead: Duration) -> Value {
    let at = now_ms() + ahead.as_millis() as i64;
    let reply = admin
        .call("POST", &format!("/api/deliveries/retry-due?at={at}"), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Step entries handed off by postbacks and waiting in the outbox (see
/// `funnelhooks_dialogs::handoff`).
fn handoffs(app: &App) -> usize {
    snapshot(app)
        .into_iter()
        .filter(|(k, v)| {
            k.starts_with("due:")
                && k.rsplit(':')
                    .next()
                    .is_some_and(|s| s.parse::<u64>().is_ok())
                && v.as_deref().is_some_and(|v| v.starts_with(b"{"))
        })
        .count()
}

/// A bot with a send-webhook step to `rx` and a postback link: the admin, the link's id
/// and the bot's.
async fn bot(client: &Client, rx: &Receiver) -> (Admin, String, String) {
    let admin = Admin::new(client);
    let bot = admin.bot("Casino").await;
    let step = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/steps/{STEP}"),
            Some(json!({"key": "lead", "kind": "send-webhook",
                        "webhook": {"url": format!("{}/pb?c={{chatId}}", rx.url())}})),
        )
        .await;
    assert_eq!(step.status, 201, "{}", step.text());
    let (link, _) = admin.link(&bot).await;
    (admin, link, bot)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postback_whose_dialog_write_fails_sends_nothing_and_its_retry_sends_once() {
    let (app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let (admin, link, bot_id) = bot(&client, &rx).await;
    let postback = format!("/api/bots/webhooks/{link}/updateDialog?chatId=7&stepId={STEP}");
    app.kv().fail_writes("dlg:", 1);
    let failed = client.get(&postback).await.unwrap();
    assert_eq!(failed.status, 503, "{}", failed.text());
    assert_eq!(handoffs(&app), 1, "handed off before the dialog write");
    // The tracker retries: the move lands and its webhook goes out once.
    let moved = client.get(&postback).await.unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.json()["webhookQueued"], true);
    rx.wait_for(1, Duration::from_secs(10)).await;
    let dialog = admin.get(&format!("/api/bots/{bot_id}/dialogs/7")).await;
    let entries = dialog["stepDeliveries"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    // Later, the sweep finds the failed postback's handoff, sees the move never happened
    // with it, and drops it: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sweep = sweep_after(&admin, Duration::from_secs(120)).await;
    assert_eq!(sweep["recovered"], 0, "{sweep}");
    assert_eq!(handoffs(&app), 0);
    sweep_after(&admin, Duration::from_secs(600)).await;
    assert_eq!(rx.received().len(), 1, "sent once");
    let delivery = admin
        .get(&format!("/api/deliveries/{}", entries[0].as_str().unwrap()))
        .await;
    assert_eq!(
        delivery["status"], "delivered",
        "the dialog leads to its delivery"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_entry_whose_delivery_could_not_be_logged_is_delivered_by_the_sweep_once() {
    let (app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let (admin, link, _) = bot(&client, &rx).await;
    // The chained delivery fails to write its record (twice: the chain's one try).
    app.kv().fail_writes("dlv:", 1);
    let postback = format!("/api/bots/webhooks/{link}/updateDialog?chatId=8&stepId={STEP}");
    let moved = client.get(&postback).await.unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    app.idle().await;
    assert_eq!(rx.received().len(), 0, "the chain failed");
    assert_eq!(handoffs(&app), 1, "its handoff waits");
    // The sweep after its minute makes the delivery the chain did not, to send it a lease
    // later: two sweeps at once (two instances) both make it, long before either sends it.
    let (one, two) = tokio::join!(
        sweep_after(&admin, Duration::from_secs(120)),
        sweep_after(&admin, Duration::from_secs(120))
    );
    let recovered = one["recovered"].as_u64().unwrap() + two["recovered"].as_u64().unwrap();
    assert!((1..=2).contains(&recovered), "{one} {two}");
    assert_eq!(
        one["delivered"].as_u64().unwrap() + two["delivered"].as_u64().unwrap(),
        0
    );
    assert_eq!(handoffs(&app), 0);
    for ahead in [240, 300, 600, 3600] {
        let at = Duration::from_secs(ahead);
        tokio::join!(sweep_after(&admin, at), sweep_after(&admin, at));
    }
    assert_eq!(rx.received().len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_entry_whose_step_stopped_sending_webhooks_does_not_hold_up_the_sweep() {
    let (app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let (admin, link, bot_id) = bot(&client, &rx).await;
    // An entry the chain could not deliver, then its step made a message step.
    app.kv().fail_writes("dlv:", 1);
    let postback = format!("/api/bots/webhooks/{link}/updateDialog?chatId=9&stepId={STEP}");
    assert_eq!(client.get(&postback).await.unwrap().status, 200);
    app.idle().await;
    let step = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot_id}/steps/{STEP}"),
            Some(json!({"key": "lead", "kind": "message"})),
        )
        .await;
    assert_eq!(step.status, 200, "{}", step.text());
    // Another bot's entry behind it in the outbox is still delivered.
    let rx2 = Receiver::start().await.unwrap();
    let (_, link2, _) = bot(&client, &rx2).await;
    let other = format!("/api/bots/webhooks/{link2}/updateDialog?chatId=10&stepId={STEP}");
    app.kv().fail_writes("dlv:", 1);
    assert_eq!(client.get(&other).await.unwrap().status, 200);
    app.idle().await;
    assert_eq!(handoffs(&app), 2);
    let sweep = sweep_after(&admin, Duration::from_secs(120)).await;
    assert_eq!(sweep["recovered"], 1, "{sweep}");
    assert_eq!(handoffs(&app), 0, "the first dropped, the second made");
    sweep_after(&admin, Duration::from_secs(240)).await;
    assert_eq!(rx.received().len(), 0, "a message step sends nothing");
    assert_eq!(rx2.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_whose_failed_attempt_could_not_be_logged_is_retried_by_the_sweep() {
    let (app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    rx.script([Answer::new(503, "busy")]);
    let (admin, link, _) = bot(&client, &rx).await;
    // The delivery is logged, its attempt is made (503), and logging the attempt fails (the
    // instance could as well have died): nothing says a retry is due but the outbox.
    app.kv().fail_writes_after("dlv:", 1, 1);
    let postback = format!("/api/bots/webhooks/{link}/updateDialog?chatId=9&stepId={STEP}");
    assert_eq!(client.get(&postback).await.unwrap().status, 200);
    rx.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sweep = sweep_after(&admin, Duration::from_secs(90)).await;
    assert_eq!(sweep["delivered"], 1, "{sweep}");
    assert_eq!(rx.received().len(), 2, "the attempt was made again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_event_that_failed_half_way_is_delivered_when_the_tracker_retries_it() {
    let (app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let admin = Admin::new(&client);
    let created = admin
        .call(
            "POST",
            "/api/calls/services",
            Some(json!({"name": "widget"})),
        )
        .await
        .json();
    let (service, key) = (
        created["id"].as_str().unwrap().to_string(),
        created["ingestKey"].as_str().unwrap().to_string(),
    );
    for path in ["/a", "/b"] {
        let hook = admin
            .call(
                "POST",
                &format!("/api/calls/services/{service}/hooks"),
                Some(
                    json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                            "path": path, "event": "start"}),
                ),
            )
            .await;
        assert_eq!(hook.status, 201, "{}", hook.text());
    }
    let event = json!({"id": 5501, "hook_event": "Call is processing"});
    let path = format!("/api/calls/services/{service}/events?key={key}");
    let post = || {
        client.send(
            "POST",
            &path,
            &[("content-type", "application/json")],
            event.to_string(),
        )
    };
    // A delivery cannot be logged: the event fails after it was claimed.
    app.kv().fail_writes("dlv:", 1);
    let failed = post().await.unwrap();
    assert_eq!(failed.status, 503, "{}", failed.text());
    // The tracker retries: delivered, not "duplicate".
    let retried = post().await.unwrap();
    assert_eq!(retried.status, 200, "{}", retried.text());
    let answer = retried.json();
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert_eq!(answer["deliveries"].as_array().unwrap().len(), 2);
    rx.wait_for(2, Duration::from_secs(10)).await;
    // The attempts are logged after the answer: the sweeps below come once they are (a
    // sweep two minutes ahead takes a delivery whose attempt is not logged yet for one
    // whose request died, and sends it again: at least once, by design).
    app.idle().await;
    // And again: now it is a duplicate, naming the same deliveries.
    let again = post().await.unwrap().json();
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        again["deliveries"][0]["deliveryId"],
        answer["deliveries"][0]["deliveryId"]
    );
    for ahead in [120, 600, 3600] {
        sweep_after(&admin, Duration::from_secs(ahead)).await;
    }
    let mut paths: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/a", "/b"], "each hook got the event once");
}
