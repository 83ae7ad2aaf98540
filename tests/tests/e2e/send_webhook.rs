//! Send-webhook steps on the real app, delivering to loopback receivers: Keitaro postbacks,
//! BotHelp profiles, retries, timeouts, redirects, signatures, SSRF, the retry sweep, the log.

use std::time::Duration;

use base64::Engine as _;
use funnelhooks_testhost::{Answer, Client, Receiver};
use serde_json::{Value, json};

use crate::common::{Admin, real_app, serve, snapshot};

const STEP: &str = "5f0c7a3e-2b1d-4c8e-9a6f-1e2d3c4b5a69";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CLICK: &str = "a&b c=Кир/1?";
const SWEEP_KEY: &str = "9f2c41d07be84a6e";

/// A bot with a link, a started dialog (chat 1227280) and a send-webhook step.
struct Setup {
    admin: Admin,
    client: Client,
    bot: String,
    link: String,
}

async fn setup(client: &Client, webhook: Value) -> Setup {
    let admin = Admin::new(client);
    let bot = admin.bot("Casino").await;
    admin
        .put(
            &format!("/api/bots/{bot}/fields/userBalance"),
            json!({"type": "number"}),
        )
        .await;
    let step = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/steps/{STEP}"),
            Some(json!({"key": "lead", "kind": "send-webhook", "webhook": webhook})),
        )
        .await;
    assert_eq!(step.status, 201, "{}", step.text());
    admin
        .put(
            &format!("/api/bots/{bot}/dialogs/1227280"),
            json!({"username": "ivan_petrov", "name": "Иван Петров",
                   "tracker": {"clickid": CLICK, "utm_source": "tg"}}),
        )
        .await;
    let (link, _) = admin.link(&bot).await;
    Setup {
        admin,
        client: client.clone(),
        bot,
        link,
    }
}

impl Setup {
    /// `POST /api/bots/{bot}/dialogs/1227280/send-webhook` and the delivery it answers with.
    async fn send_now(&self) -> Value {
        let reply = self
            .admin
            .call(
                "POST",
                &format!("/api/bots/{}/dialogs/1227280/send-webhook", self.bot),
                Some(json!({ "stepId": STEP })),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// The bot's deliveries, newest first.
    async fn log(&self) -> Vec<Value> {
        let page = self
            .admin
            .get(&format!("/api/deliveries?botId={}", self.bot))
            .await;
        page["items"].as_array().unwrap().clone()
    }

    /// Waits until the newest delivery is no longer pending (the chained delivery runs
    /// after the postback has been answered).
    async fn settled(&self) -> Value {
        for _ in 0..200 {
            if let Some(d) = self.log().await.first()
                && d["status"] != "pending"
            {
                return d.clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no delivery settled");
    }
}

fn app() -> funnelhooks_testhost::HostBuilder {
    real_app().variable("allow_loopback_webhooks", "true")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postback_into_a_keitaro_step_delivers_the_exact_values_once() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = setup(
        &client,
        json!({"url": format!("{}/25123a/postback?subid={{tracker.clickid}}&username={{username}}&chatid={{chatId}}&startdialogue={{createdAt}}", rx.url())}),
    )
    .await;
    let postback = format!(
        "/api/bots/webhooks/{}/updateDialog?chatId=1227280&stepId={STEP}",
        s.link
    );
    let reply = s.client.get(&postback).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["webhookQueued"], true);
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].method, "GET");
    let q = got[0].query();
    assert_eq!(q[0], ("subid".to_string(), CLICK.to_string()));
    assert_eq!(q[1], ("username".to_string(), "ivan_petrov".to_string()));
    assert_eq!(q[2], ("chatid".to_string(), "1227280".to_string()));
    assert!(q[3].1.ends_with('Z') && q[3].1.len() == 24, "{:?}", q[3]);
    let d = s.settled().await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["stepId"], STEP);
    // The tracker retries the same postback: the dialog is already on the step, nothing is sent.
    let again = s.client.get(&postback).await.unwrap();
    assert_eq!(again.json()["webhookQueued"], false);
    assert_eq!(s.log().await.len(), 1);
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_copies_of_one_postback_at_once_deliver_the_step_once() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = setup(
        &client,
        json!({"url": format!("{}/pb?c={{tracker.clickid}}", rx.url())}),
    )
    .await;
    let postback = format!(
        "/api/bots/webhooks/{}/updateDialog?chatId=1227280&stepId={STEP}",
        s.link
    );
    // A tracker that timed out and retried, many times over, all in flight together.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (s.client.clone(), postback.clone());
            tokio::spawn(async move { client.get(&url).await.unwrap() })
        })
        .collect();
    let mut queued = 0;
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        queued += usize::from(reply.json()["webhookQueued"] == true);
    }
    assert_eq!(
        queued, 1,
        "only one postback moved the dialog into the step"
    );
    assert_eq!(s.settled().await["status"], "delivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(s.log().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bothelp_step_posts_the_profile_as_json() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = setup(
        &client,
        json!({"url": format!("{}/bothelp", rx.url()), "method": "POST", "body": "profile"}),
    )
    .await;
    s.client
        .get(&format!(
            "/api/bots/webhooks/{}/updateDialog?chatId=1227280&userBalance=5000",
            s.link
        ))
        .await
        .unwrap();
    let d = s.send_now().await;
    assert_eq!(d["status"], "delivered", "{d}");
    let got = rx.received();
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["user_id"], "1227280");
    assert_eq!(body["first_name"], "Иван");
    assert_eq!(body["last_name"], "Петров");
    assert_eq!(body["profile_link"], "https://t.me/ivan_petrov");
    assert_eq!(body["utm_source"], "tg");
    assert_eq!(
        body["userBalance"], "5000",
        "custom fields travel as text, as BotHelp sends them"
    );
    assert!(body["created_at"].as_i64().unwrap() > 1_700_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_then_a_200_is_one_delivery_with_two_attempts_logged() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    rx.script([Answer::new(500, "oops"), Answer::new(200, "ok")]);
    let s = setup(
        &client,
        json!({"url": format!("{}/hook?c={{chatId}}", rx.url())}),
    )
    .await;
    let d = s.send_now().await;
    assert_eq!(d["status"], "delivered", "{d}");
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (attempts[0]["status"].clone(), attempts[1]["status"].clone()),
        (json!(500), json!(200))
    );
    assert_eq!(attempts[0]["body"], "oops");
    assert_eq!(rx.received().len(), 2);
    assert_eq!(s.log().await.len(), 1, "one delivery");
    let read = s
        .admin
        .get(&format!("/api/deliveries/{}", d["id"].as_str().unwrap()))
        .await;
    assert_eq!(read, d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_fails_at_once_and_a_redirect_is_not_followed() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    rx.script([
        Answer::new(404, "no such campaign"),
        Answer::new(302, "").header("location", &format!("{}/elsewhere", rx.url())),
    ]);
    let s = setup(&client, json!({"url": format!("{}/hook", rx.url())})).await;
    let first = s.send_now().await;
    assert_eq!(
        (
            first["status"].clone(),
            first["attempts"].as_array().unwrap().len()
        ),
        (json!("failed"), 1)
    );
    let second = s.send_now().await;
    assert_eq!(second["status"], "failed");
    assert_eq!(second["attempts"][0]["status"], 302);
    let paths: Vec<_> = rx
        .received()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(paths, ["/hook", "/hook"], "the Location was never visited");
    let sweep = s
        .admin
        .call("POST", "/api/deliveries/retry-due", None)
        .await
        .json();
    assert_eq!(sweep["attempted"], 0, "failures are not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_receiver_times_out_and_the_attempt_says_so() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    rx.script([Answer::new(200, "late").after(Duration::from_secs(3))]);
    let s = setup(
        &client,
        json!({"url": format!("{}/slow", rx.url()), "timeoutMs": 300, "retry": {"maxAttempts": 1}}),
    )
    .await;
    let d = s.send_now().await;
    assert_eq!(d["status"], "failed");
    let attempt = &d["attempts"][0];
    assert_eq!(attempt["status"], Value::Null);
    assert!(
        attempt["error"].as_str().unwrap().starts_with("timed out"),
        "{attempt}"
    );
    assert!(attempt["durationMs"].as_u64().unwrap() < 2_500, "{attempt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_verify_with_an_independent_hmac_and_the_secret_is_never_shown() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = setup(
        &client,
        json!({"url": format!("{}/signed", rx.url()), "method": "POST", "body": "profile", "signingSecret": SECRET}),
    )
    .await;
    let d = s.send_now().await;
    let got = &rx.received()[0];
    let (id, ts, sig) = (
        got.header("webhook-id").unwrap(),
        got.header("webhook-timestamp").unwrap(),
        got.header("webhook-signature").unwrap(),
    );
    assert_eq!(id, d["id"].as_str().unwrap());
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&got.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256::HMAC::mac(&signed, &key))
    );
    assert_eq!(sig, expected);
    let step = s
        .admin
        .get(&format!("/api/bots/{}/steps/{STEP}", s.bot))
        .await;
    assert_eq!(step["webhook"]["signed"], true);
    for shown in [
        step.to_string(),
        d.to_string(),
        s.log().await[0].to_string(),
    ] {
        assert!(!shown.contains("MfKQ9r8G"), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn private_loopback_and_metadata_targets_are_refused() {
    // Without the loopback setting (the default), as in production.
    let (_app, _server, client) = serve(real_app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://10.0.0.8/",
        "http://192.168.1.1/?c={chatId}",
    ] {
        let reply = admin
            .call(
                "PUT",
                &format!("/api/bots/{bot}/steps/{STEP}"),
                Some(json!({"key": "k", "kind": "send-webhook", "webhook": {"url": url}})),
            )
            .await;
        assert_eq!(reply.status, 422, "{url}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "refused_target", "{url}");
        assert_eq!(reply.json()["error"]["field"], "webhook.url");
    }
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/steps/{STEP}"))
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_a_step_with_a_template_error_names_the_member_and_position() {
    let (_app, _server, client) = serve(app()).await;
    let admin = Admin::new(&client);
    let bot = admin.bot("Funnel").await;
    let reply = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/steps/{STEP}"),
            Some(json!({"key": "k", "kind": "send-webhook",
                        "webhook": {"url": "https://t.example/p?s={{ tracker.clickid | nope }}"}})),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    let e = &reply.json()["error"];
    assert_eq!(e["code"], "bad_template");
    assert_eq!(e["field"], "webhook.url");
    // The byte offset of the unknown modifier `nope` in the URL template.
    let url = "https://t.example/p?s={{ tracker.clickid | nope }}";
    assert_eq!(e["position"], url.find("nope").unwrap());
    let missing = admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/steps/{STEP}"),
            Some(json!({"key": "k", "kind": "send-webhook"})),
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json()["error"]["field"], "webhook");

    // An unclosed brace would send "{tracker.clickid&status=sale" as text and lose the
    // conversion: refused at save (URL, header, body) and in the preview, by position.
    let slip = "https://t.example/p?subid={tracker.clickid&status=sale";
    for (webhook, field, template) in [
        (json!({"url": slip}), "webhook.url", slip),
        (
            json!({"url": "https://t.example/p", "headers": {"X-Click": "id {tracker.clickid"}}),
            "webhook.headers.x-click",
            "id {tracker.clickid",
        ),
        (
            json!({"url": "https://t.example/p", "method": "POST",
                   "body": {"contentType": "text", "template": "sale {{ tracker.clickid "}}),
            "webhook.body.template",
            "sale {{ tracker.clickid ",
        ),
    ] {
        let reply = admin
            .call(
                "PUT",
                &format!("/api/bots/{bot}/steps/{STEP}"),
                Some(json!({"key": "k", "kind": "send-webhook", "webhook": webhook})),
            )
            .await;
        assert_eq!(reply.status, 422, "{field}: {}", reply.text());
        let e = &reply.json()["error"];
        assert_eq!(e["code"], "malformed_template", "{field}");
        assert_eq!(e["field"], field);
        assert_eq!(e["position"], template.find('{').unwrap(), "{field}");
    }
    let preview = admin
        .call(
            "POST",
            "/api/templates/preview",
            Some(json!({"template": slip, "target": "url"})),
        )
        .await;
    assert_eq!(preview.status, 422, "{}", preview.text());
    assert_eq!(preview.json()["error"]["code"], "malformed_template");
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/steps/{STEP}"))
            .await,
        404,
        "a refused step is not half-saved"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_due_sends_what_is_due_and_nothing_else() {
    let (_app, _server, client) = serve(app().variable("retry_sweep_key", SWEEP_KEY)).await;
    let rx = Receiver::start().await.unwrap();
    // Chat 1 gets a 500 (due again in ~5 s); chat 2 a 503 asking for an hour.
    rx.script([
        Answer::new(500, ""),
        // A 503's Retry-After holds back that delivery only (a 429 backs off the target).
        Answer::new(503, "").header("retry-after", "3600"),
    ]);
    let s = setup(
        &client,
        json!({"url": format!("{}/hook?c={{chatId}}", rx.url())}),
    )
    .await;
    for chat in [1, 2] {
        s.admin
            .put(
                &format!("/api/bots/{}/dialogs/{chat}", s.bot),
                json!({"username": "u"}),
            )
            .await;
        let reply = s
            .client
            .get(&format!(
                "/api/bots/webhooks/{}/updateDialog?chatId={chat}&stepId={STEP}",
                s.link
            ))
            .await
            .unwrap();
        assert_eq!(reply.json()["webhookQueued"], true);
        rx.wait_for(chat, Duration::from_secs(10)).await;
    }
    let mut log = Vec::new();
    for _ in 0..200 {
        log = s.log().await;
        if log.len() == 2 && log.iter().all(|d| d["status"] == "retrying") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        log.len() == 2 && log.iter().all(|d| d["status"] == "retrying"),
        "both first attempts failed and wait for a retry: {log:?}"
    );
    let sweep = s
        .admin
        .call("POST", "/api/deliveries/retry-due", None)
        .await
        .json();
    assert_eq!(sweep["attempted"], 0, "nothing is due yet: {sweep}");
    // Wait past the 5 s retry (± 10 %), then sweep: only chat 1's is sent.
    let due = log.iter().find(|d| d["chatId"] == 1).unwrap()["nextAttemptAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!due.is_empty());
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    // As a cron that can only call a URL does it.
    let sweep = s
        .client
        .get(&format!("/api/deliveries/retry-due?key={SWEEP_KEY}"))
        .await
        .unwrap()
        .json();
    assert_eq!(
        (sweep["attempted"].clone(), sweep["delivered"].clone()),
        (json!(1), json!(1)),
        "{sweep}"
    );
    let paths: Vec<_> = rx
        .received()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(paths, ["/hook?c=1", "/hook?c=2", "/hook?c=1"]);
    let statuses: Vec<_> = s
        .log()
        .await
        .iter()
        .map(|d| (d["chatId"].clone(), d["status"].clone()))
        .collect();
    assert!(
        statuses.contains(&(json!(1), json!("delivered"))),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(json!(2), json!("retrying"))),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn test_send_replay_preview_and_the_filtered_log() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = setup(
        &client,
        json!({"url": format!("{}/hook?token=t0p&c={{tracker.clickid}}", rx.url()),
               "headers": {"Authorization": "Bearer s3cret"}}),
    )
    .await;
    let test = s
        .admin
        .call(
            "POST",
            &format!("/api/bots/{}/steps/{STEP}/test-send", s.bot),
            Some(json!({})),
        )
        .await;
    assert_eq!(test.status, 200, "{}", test.text());
    let test = test.json();
    assert_eq!(
        (test["test"].clone(), test["status"].clone()),
        (json!(true), json!("delivered"))
    );
    assert_eq!(rx.received()[0].query()[1].1, "sample-click-id");
    assert_eq!(
        rx.received()[0].header("authorization"),
        Some("Bearer s3cret")
    );
    let shown = test.to_string();
    assert!(
        !shown.contains("s3cret") && !shown.contains("t0p"),
        "{shown}"
    );
    let real = s.send_now().await;
    let replay = s
        .admin
        .call(
            "POST",
            &format!("/api/deliveries/{}/replay", real["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.json()["replayOf"], real["id"]);
    assert_eq!(rx.received().len(), 3);
    assert_eq!(
        rx.received()[2].path_and_query,
        rx.received()[1].path_and_query
    );
    let tests_only = s
        .admin
        .get(&format!("/api/deliveries?botId={}&test=true", s.bot))
        .await;
    assert_eq!(tests_only["items"].as_array().unwrap().len(), 1);
    let for_chat = s
        .admin
        .get(&format!(
            "/api/deliveries?botId={}&chatId=1227280&test=false",
            s.bot
        ))
        .await;
    assert_eq!(for_chat["items"].as_array().unwrap().len(), 2);
    let bad = s
        .admin
        .call("GET", "/api/deliveries?status=lost", None)
        .await;
    assert_eq!(
        (bad.status, bad.json()["error"]["field"].clone()),
        (400, json!("status"))
    );
    let preview = s
        .admin
        .call(
            "POST",
            "/api/templates/preview",
            Some(json!({"template": "https://t.example/?c={tracker.clickid}&b={userBalance}&x={nope}",
                        "target": "url", "botId": s.bot, "chatId": 1227280})),
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text());
    let p = preview.json();
    assert_eq!(
        p["output"],
        "https://t.example/?c=a%26b%20c%3D%D0%9A%D0%B8%D1%80%2F1%3F&b=&x="
    );
    assert_eq!(p["missing"], json!(["userBalance", "nope"]));
    assert_eq!(
        p["unknown"],
        json!(["nope"]),
        "userBalance is a field of the bot"
    );
    assert_eq!(p["lints"][0]["kind"], "unknown_name");
    assert_eq!(rx.received().len(), 3, "a preview sends nothing");
    assert_eq!(
        s.admin
            .status(
                "GET",
                "/api/deliveries/00000000-0000-4000-8000-000000000000"
            )
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_key_opens_the_retry_sweep_and_nothing_else() {
    let (_app, _server, client) = serve(app().variable("retry_sweep_key", SWEEP_KEY)).await;
    let sweep = |path: String| {
        let client = client.clone();
        async move { client.get(&path).await.unwrap().status }
    };
    assert_eq!(
        sweep(format!("/api/deliveries/retry-due?key={SWEEP_KEY}")).await,
        200
    );
    assert_eq!(
        sweep("/api/deliveries/retry-due?key=9f2c41d07be84a6f".into()).await,
        401
    );
    assert_eq!(sweep("/api/deliveries/retry-due".into()).await, 401);
    assert_eq!(sweep(format!("/api/deliveries?key={SWEEP_KEY}")).await, 401);
    // Without a configured key, no key opens it.
    let (_app2, _server2, client2) = serve(app()).await;
    let reply = client2.get("/api/deliveries/retry-due?key=").await.unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_entry_left_in_the_handoff_list_of_an_older_version_is_delivered_by_the_sweep() {
    let (app, _server, client) = serve(app().variable("retry_sweep_key", SWEEP_KEY)).await;
    let rx = Receiver::start().await.unwrap();
    let s = setup(
        &client,
        json!({"url": format!("{}/pb?c={{chatId}}", rx.url())}),
    )
    .await;
    let reply = s
        .client
        .get(&format!(
            "/api/bots/webhooks/{}/updateDialog?chatId=1227280&stepId={STEP}",
            s.link
        ))
        .await
        .unwrap();
    assert_eq!(reply.json()["webhookQueued"], true);
    assert_eq!(s.settled().await["status"], "delivered");
    // A host running a version before #30 that died between the postback's answer and the
    // chain left its handoff in the list of that time (its entry without an id: written
    // after the move), two minutes old: the sweep still delivers it.
    let handoffs = || {
        snapshot(&app)
            .into_iter()
            .filter(|(k, _)| k.starts_with("handoffs:") && k[9..].parse::<u64>().is_ok())
            .count()
    };
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 120_000;
    let entry = json!({"botId": s.bot, "chatId": 1227280, "stepId": STEP, "atMs": at_ms});
    app.kv().set("default", "handoffs:n", &1i64.to_le_bytes());
    app.kv()
        .set("default", "handoffs:1", entry.to_string().as_bytes());
    let sweep = |client: Client| async move {
        client
            .get(&format!("/api/deliveries/retry-due?key={SWEEP_KEY}"))
            .await
            .unwrap()
            .json()
    };
    let first = sweep(s.client.clone()).await;
    assert_eq!(
        (first["recovered"].clone(), first["delivered"].clone()),
        (json!(1), json!(1)),
        "{first}"
    );
    assert_eq!(rx.received().len(), 2);
    assert_eq!(rx.received()[1].path_and_query, "/pb?c=1227280");
    assert_eq!(handoffs(), 0);
    let second = sweep(s.client.clone()).await;
    assert_eq!(second["recovered"], 0, "{second}");
    assert_eq!(rx.received().len(), 2, "recovered once, sent once");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_send_against_a_real_dialog_uses_its_values_and_names_a_bad_chat_id() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = setup(
        &client,
        json!({"url": format!("{}/t?c={{tracker.clickid}}", rx.url())}),
    )
    .await;
    let send = |chat: Value| {
        let admin = &s.admin;
        let path = format!("/api/bots/{}/steps/{STEP}/test-send", s.bot);
        async move {
            admin
                .call("POST", &path, Some(json!({ "chatId": chat })))
                .await
        }
    };
    let real = send(json!("1227280")).await;
    assert_eq!(real.status, 200, "{}", real.text());
    assert_eq!(real.json()["test"], true);
    assert_eq!(rx.received()[0].query()[0].1, CLICK);
    for bad in [json!(true), json!(1.5), json!("12a")] {
        let reply = send(bad.clone()).await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text());
        assert_eq!(reply.json()["error"]["field"], "chatId", "{bad}");
    }
    assert_eq!(rx.received().len(), 1, "a refused test-send sends nothing");
}
