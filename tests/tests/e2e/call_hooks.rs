//! Call hooks on the real app, CallKeeper-style: services and ingest keys, hooks as the form
//! holds them, call events fanned out in parallel to loopback receivers, repeats recognised.

use std::time::Duration;

use funnelhooks_testhost::{Answer, Client, Receiver};
use serde_json::{Value, json};

use crate::common::{Admin, real_app, serve, snapshot};

fn app() -> funnelhooks_testhost::HostBuilder {
    real_app().variable("allow_loopback_webhooks", "true")
}

/// A service with its ingest key.
struct Service {
    admin: Admin,
    client: Client,
    id: String,
    key: String,
}

async fn service(client: &Client) -> Service {
    let admin = Admin::new(client);
    let reply = admin
        .call(
            "POST",
            "/api/calls/services",
            Some(json!({"name": "shop.example widget"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let body = reply.json();
    Service {
        admin,
        client: client.clone(),
        id: body["id"].as_str().unwrap().to_string(),
        key: body["ingestKey"].as_str().unwrap().to_string(),
    }
}

/// A hook form pointing at `rx`.
fn form(rx: &Receiver, extra: Value) -> Value {
    let mut f = json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                       "path": "/calls"});
    for (k, v) in extra.as_object().unwrap() {
        f[k] = v.clone();
    }
    f
}

/// A call as CallKeeper reports it.
fn call(id: u64, hook_event: &str) -> Value {
    json!({
        "id": id, "hook_event": hook_event,
        "visit_info": {"utm_source": "google", "utm_campaign": "spring"},
        "city": "Москва", "phone2": "+79991234567", "site": "shop.example",
        "duration_sec": 95, "record_url": "https://rec.example/1.mp3",
        "date": "2018-12-04 12:14:54"
    })
}

impl Service {
    async fn hook(&self, form: Value) -> String {
        let reply = self
            .admin
            .call(
                "POST",
                &format!("/api/calls/services/{}/hooks", self.id),
                Some(form),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()["id"].as_str().unwrap().to_string()
    }

    async fn post_event(&self, body: &Value) -> funnelhooks_testhost::Reply {
        let path = format!("/api/calls/services/{}/events?key={}", self.id, self.key);
        self.client
            .send(
                "POST",
                &path,
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await
            .unwrap()
    }

    /// Posts the event; it must be accepted.
    async fn event(&self, body: Value) -> Value {
        let reply = self.post_event(&body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// Waits until every delivery the answer lists has left `pending`.
    async fn settled(&self, answer: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        for d in answer["deliveries"].as_array().unwrap() {
            let path = format!("/api/deliveries/{}", d["deliveryId"].as_str().unwrap());
            let mut settled = None;
            for _ in 0..400 {
                let now = self.admin.get(&path).await;
                if now["status"] != "pending" {
                    settled = Some(now);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            out.push(settled.expect("the delivery settled within 10 s"));
        }
        out
    }

    async fn log(&self) -> Vec<Value> {
        let page = self
            .admin
            .get(&format!("/api/deliveries?serviceId={}", self.id))
            .await;
        page["items"].as_array().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_hook_receives_the_call_under_its_own_parameter_names() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = service(&client).await;
    let hook = s
        .hook(form(&rx, json!({"method": "GET", "event": "Call is over", "parameters": [
            {"name": "call", "param": "id"}, {"name": "town", "param": "city"},
            {"name": "client", "param": "phone2"}, {"name": "utm", "param": "visit_info"},
            {"name": "secs", "param": "duration_sec"}, {"name": "api_token", "value": "tok-Секрет&1"},
            {"name": "campaign", "value": "spring-sale"},
            {"name": "label", "template": "{site}: {city}"}]})))
        .await;
    let answer = s.event(call(88412, " Call is over")).await;
    assert_eq!(
        (answer["duplicate"].clone(), answer["matched"].clone()),
        (json!(false), json!(1))
    );
    assert_eq!(answer["deliveries"][0]["hookId"], hook);
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("user-agent"), Some("funnelhooks/0.1.0"));
    assert_eq!(got[0].method, "GET");
    assert!(
        got[0].path_and_query.starts_with("/calls?"),
        "{}",
        got[0].path_and_query
    );
    let q = got[0].query();
    let get = |n: &str| {
        q.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("call"), "88412");
    assert_eq!(get("town"), "Москва");
    assert_eq!(get("client"), "+79991234567");
    assert_eq!(
        serde_json::from_str::<Value>(&get("utm")).unwrap()["utm_source"],
        "google"
    );
    assert_eq!(get("secs"), "95");
    assert_eq!(
        get("api_token"),
        "tok-Секрет&1",
        "the constant secret arrives intact"
    );
    assert_eq!(get("campaign"), "spring-sale");
    assert_eq!(get("label"), "shop.example: Москва");
    let done = s.settled(&answer).await;
    assert_eq!(done[0]["status"], "delivered");
    assert_eq!(
        (done[0]["hookId"].clone(), done[0]["callId"].clone()),
        (json!(hook), json!("88412"))
    );
    assert!(
        done[0]["request"]["url"]
            .as_str()
            .unwrap()
            .contains("api_token=***"),
        "the log masks the secret: {}",
        done[0]["request"]["url"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn post_hooks_send_json_and_form_bodies() {
    let (_app, _server, client) = serve(app()).await;
    let (json_rx, form_rx) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    let s = service(&client).await;
    let params = json!([{"name": "callId", "param": "id"}, {"name": "utm", "param": "visit_info"},
                        {"name": "city", "param": "city"}, {"name": "api_key", "value": "k-77"}]);
    s.hook(form(
        &json_rx,
        json!({"method": "POST", "contentType": "application/json",
                                  "event": "end", "parameters": params}),
    ))
    .await;
    s.hook(form(
        &form_rx,
        json!({"method": "POST",
                                  "contentType": "application/x-www-form-urlencoded",
                                  "event": "end", "parameters": params}),
    ))
    .await;
    let answer = s.event(call(501, "Call is over")).await;
    assert_eq!(answer["matched"], 2);
    let j = json_rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        (j[0].method.as_str(), j[0].header("content-type")),
        ("POST", Some("application/json"))
    );
    let body: Value = serde_json::from_slice(&j[0].body).unwrap();
    assert_eq!(
        body,
        json!({"callId": 501, "utm": {"utm_source": "google", "utm_campaign": "spring"},
               "city": "Москва", "api_key": "k-77"})
    );
    let f = form_rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        f[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&f[0].body)
        .into_owned()
        .collect();
    assert_eq!(fields[0], ("callId".into(), "501".into()));
    assert_eq!(fields[2], ("city".into(), "Москва".into()));
    assert!(
        fields[1].1.contains("\"utm_campaign\":\"spring\""),
        "{:?}",
        fields[1]
    );
    assert_eq!(fields[3], ("api_key".into(), "k-77".into()));
    // The log shows both bodies with the constant secret masked, and finds them by call.
    for d in s.settled(&answer).await {
        let body = d["request"]["body"].as_str().unwrap();
        assert!(body.contains("api_key") && !body.contains("k-77"), "{body}");
    }
    let by_call = s
        .admin
        .get(&format!("/api/deliveries?serviceId={}&callId=501", s.id))
        .await;
    assert_eq!(by_call["items"].as_array().unwrap().len(), 2);
    let other = s
        .admin
        .get(&format!("/api/deliveries?serviceId={}&callId=502", s.id))
        .await;
    assert!(other["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn start_hooks_fire_on_call_start_only_and_end_hooks_on_call_end_only() {
    let (_app, _server, client) = serve(app()).await;
    let (start_rx, end_rx) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    let s = service(&client).await;
    let params = json!([{"name": "id", "param": "id"}, {"name": "secs", "param": "duration_sec"},
                        {"name": "rec", "param": "record_url"}]);
    let start_hook = s
        .hook(form(
            &start_rx,
            json!({"event": "start", "parameters": params}),
        ))
        .await;
    let end_hook = s
        .hook(form(&end_rx, json!({"event": "end", "parameters": params})))
        .await;
    let started = s.event(call(7, "Call is processing")).await;
    assert_eq!(started["event"], "start");
    assert_eq!(started["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(started["deliveries"][0]["hookId"], start_hook);
    s.settled(&started).await;
    let q = start_rx.received()[0].query();
    assert_eq!(q[0], ("id".into(), "7".into()));
    assert_eq!(
        q[1],
        ("secs".into(), String::new()),
        "no duration at call start"
    );
    assert_eq!(
        q[2],
        ("rec".into(), String::new()),
        "no recording at call start"
    );
    assert!(end_rx.received().is_empty());
    let ended = s.event(call(7, "Call is over")).await;
    assert_eq!(ended["deliveries"][0]["hookId"], end_hook);
    s.settled(&ended).await;
    let q = end_rx.received()[0].query();
    assert_eq!(q[1], ("secs".into(), "95".into()));
    assert_eq!(
        start_rx.received().len(),
        1,
        "the start hook is not sent again at the end"
    );
    // An explicit event type works too (and the hook_event may be absent).
    let explicit = s.event(json!({"id": 8, "event": "start"})).await;
    assert_eq!(explicit["deliveries"][0]["hookId"], start_hook);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_event_sends_nothing_again_even_when_the_copies_arrive_together() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = service(&client).await;
    s.hook(form(
        &rx,
        json!({"event": "end", "parameters": [{"name": "id", "param": "id"}]}),
    ))
    .await;
    let first = s.event(call(42, "Call is over")).await;
    s.settled(&first).await;
    let again = s.event(call(42, "Call is over")).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        again["deliveries"][0]["deliveryId"],
        first["deliveries"][0]["deliveryId"]
    );
    // The telephony side retrying a new call ten times at once.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (client, path, key) = (
                s.client.clone(),
                format!("/api/calls/services/{}/events", s.id),
                s.key.clone(),
            );
            tokio::spawn(async move {
                let headers = [
                    ("content-type", "application/json"),
                    ("x-ingest-key", key.as_str()),
                ];
                client
                    .send(
                        "POST",
                        &path,
                        &headers,
                        call(43, "Call is over").to_string(),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    // One copy delivers; a copy that arrives while it works is told to come back (503 with
    // Retry-After, as trackers expect), one that arrives after it is a duplicate.
    let (mut fresh, mut later) = (0, 0);
    for t in tasks {
        let reply = t.await.unwrap();
        match reply.status {
            200 => fresh += usize::from(reply.json()["duplicate"] == false),
            503 => {
                assert_eq!(reply.json()["error"]["code"], "event_in_progress");
                assert!(reply.header("retry-after").is_some());
                later += 1;
            }
            other => panic!("{other}: {}", reply.text()),
        }
    }
    assert_eq!(fresh, 1, "exactly one copy is delivered");
    for _ in 0..later {
        let again = s.event(call(43, "Call is over")).await;
        assert_eq!(again["duplicate"], true, "a copy that came back later");
    }
    let log = s.log().await;
    assert_eq!(log.len(), 2, "one delivery per call");
    for d in &log {
        let answer = json!({"deliveries": [{"deliveryId": d["id"]}]});
        assert_eq!(s.settled(&answer).await[0]["status"], "delivered");
    }
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_hook_stays_silent_and_a_deleted_hook_stops() {
    let (_app, _server, client) = serve(app()).await;
    let (quiet_rx, control_rx) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    let s = service(&client).await;
    let quiet = s.hook(form(&quiet_rx, json!({"event": "end"}))).await;
    let control = s.hook(form(&control_rx, json!({"event": "end"}))).await;
    let hook_path = |h: &str| format!("/api/calls/services/{}/hooks/{h}", s.id);
    let patched = s
        .admin
        .call("PATCH", &hook_path(&quiet), Some(json!({"enabled": false})))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(
        (
            patched.json()["enabled"].clone(),
            patched.json()["port"].clone()
        ),
        (json!(false), json!(quiet_rx.port()))
    );
    let answer = s.event(call(1, "Call is over")).await;
    assert_eq!(answer["matched"], 1);
    s.settled(&answer).await;
    assert_eq!(control_rx.received().len(), 1);
    assert!(
        quiet_rx.received().is_empty(),
        "the disabled hook sent nothing"
    );
    // Enabled again, then deleted.
    s.admin
        .call("PATCH", &hook_path(&quiet), Some(json!({"enabled": true})))
        .await;
    let answer = s.event(call(2, "Call is over")).await;
    assert_eq!(answer["matched"], 2);
    s.settled(&answer).await;
    assert_eq!(quiet_rx.received().len(), 1);
    assert_eq!(s.admin.status("DELETE", &hook_path(&quiet)).await, 204);
    assert_eq!(s.admin.status("GET", &hook_path(&quiet)).await, 404);
    let answer = s.event(call(3, "Call is over")).await;
    assert_eq!(answer["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(answer["deliveries"][0]["hookId"], control);
    s.settled(&answer).await;
    assert_eq!(
        quiet_rx.received().len(),
        1,
        "the deleted hook sent nothing more"
    );
    assert_eq!(control_rx.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hooks_of_one_event_are_sent_in_parallel() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    // Nobody is answered until all four requests are in: sent one by one, the first would
    // wait forever (its timeout) and the batch would fail.
    rx.hold_until(4);
    let s = service(&client).await;
    for _ in 0..4 {
        s.hook(form(
            &rx,
            json!({"event": "end", "timeoutMs": 8000,
                                 "retry": {"maxAttempts": 1}}),
        ))
        .await;
    }
    let answer = s.event(call(9, "Call is over")).await;
    let done = s.settled(&answer).await;
    for d in &done {
        assert_eq!(d["status"], "delivered", "{d}");
    }
    assert_eq!(rx.received().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_hook_is_retried_by_the_sweep_and_410_stops_the_hook() {
    let (_app, _server, client) = serve(app()).await;
    let (flaky, gone) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    flaky.script([Answer::new(503, "busy")]);
    gone.otherwise(Answer::new(410, "gone"));
    let s = service(&client).await;
    let _ = s.hook(form(&flaky, json!({"event": "end"}))).await;
    let gone_hook = s.hook(form(&gone, json!({"event": "end"}))).await;
    let answer = s.event(call(11, "Call is over")).await;
    let done = s.settled(&answer).await;
    assert_eq!(done[0]["status"], "retrying");
    assert_eq!(done[1]["status"], "failed");
    let hook = s
        .admin
        .get(&format!("/api/calls/services/{}/hooks/{gone_hook}", s.id))
        .await;
    assert_eq!(hook["gone"], true);
    // The next event logs the gone hook as skipped and sends it nothing.
    let next = s.event(call(12, "Call is over")).await;
    let skipped = &next["deliveries"][1];
    assert_eq!(skipped["status"], "skipped", "{next}");
    s.settled(&next).await;
    assert_eq!(gone.received().len(), 1);
    assert_eq!(flaky.received().len(), 2);
    // The flaky hook's retry is due 5 s (plus jitter) later; the sweep sends it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let sweep = s
        .admin
        .call("POST", "/api/deliveries/retry-due", None)
        .await;
    assert_eq!(sweep.status, 200, "{}", sweep.text());
    assert_eq!(sweep.json()["delivered"], 1, "{}", sweep.text());
    assert_eq!(flaky.received().len(), 3);
}

/// A request to the ingest route and the status and error code it must get.
type RefusedEvent<'a> = (String, Vec<(&'a str, &'a str)>, String, u16, &'a str);

#[tokio::test(flavor = "multi_thread")]
async fn bad_events_are_refused_by_name_and_leave_nothing_behind() {
    let (app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = service(&client).await;
    s.hook(form(&rx, json!({"event": "end"}))).await;
    let before = snapshot(&app);
    let path = format!("/api/calls/services/{}/events", s.id);
    let json_ct = [("content-type", "application/json")];
    let cases: Vec<RefusedEvent> = vec![
        (
            format!(
                "/api/calls/services/{}/events?key={}",
                "0b6c3c9e-4c1b-4a57-9a4e-8d1c2b3a4f50", s.key
            ),
            json_ct.to_vec(),
            call(1, "Call is over").to_string(),
            404,
            "unknown_service",
        ),
        (
            path.clone(),
            json_ct.to_vec(),
            call(1, "Call is over").to_string(),
            401,
            "missing_ingest_key",
        ),
        (
            format!("{path}?key=ik_wrong"),
            json_ct.to_vec(),
            call(1, "Call is over").to_string(),
            401,
            "bad_ingest_key",
        ),
        (
            format!("{path}?key={}", s.key),
            json_ct.to_vec(),
            "{\"id\": 1,".into(),
            400,
            "bad_json",
        ),
        (
            format!("{path}?key={}", s.key),
            json_ct.to_vec(),
            call(1, "Call is ringing").to_string(),
            422,
            "unknown_event",
        ),
        (
            format!("{path}?key={}", s.key),
            json_ct.to_vec(),
            json!({"hook_event": "Call is over"}).to_string(),
            422,
            "missing_call_id",
        ),
        (
            format!("{path}?key={}", s.key),
            vec![("content-type", "multipart/form-data; boundary=x")],
            "--x".into(),
            415,
            "unsupported_media_type",
        ),
    ];
    // Kept: what came with the key. An unknown service has nobody to tell; a wrong or missing
    // key could come from anyone who knows the service's id.
    let cases_kept = cases.iter().filter(|c| !matches!(c.3, 404 | 401)).count();
    for (path, headers, body, status, code) in cases {
        let reply = client.send("POST", &path, &headers, body).await.unwrap();
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["code"], code, "{}", reply.text());
        assert!(
            error["field"].is_string(),
            "the error names the field: {}",
            reply.text()
        );
    }
    // Nothing but the service's refused events, one per refusal, for its page (kept just
    // after each answer). The unknown service's refusal has nobody to tell.
    let mut listed = serde_json::Value::Null;
    for _ in 0..50 {
        listed = s
            .admin
            .get(&format!(
                "/api/calls/services/{}/refused-events?limit=200",
                s.id
            ))
            .await;
        if listed["items"].as_array().unwrap().len() == cases_kept {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        cases_kept,
        "{listed}"
    );
    assert!(
        !listed.to_string().contains(&s.key),
        "a refused event's key is never kept: {listed}"
    );
    let (kept, rest): (Vec<_>, Vec<_>) = snapshot(&app)
        .into_iter()
        .partition(|(k, _)| k.starts_with("refused-calls:"));
    assert_eq!(rest, before, "a refused event writes nothing else");
    assert_eq!(
        kept.len(),
        cases_kept + 1,
        "the entries and the list's counter"
    );
    assert_eq!(
        client
            .send("PUT", &path, &[], String::new())
            .await
            .unwrap()
            .status,
        405
    );
    assert!(rx.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn services_show_their_key_once_rotate_it_and_list_the_call_parameters() {
    let (app, _server, client) = serve(app()).await;
    let s = service(&client).await;
    let listed = s.admin.get("/api/calls/services").await;
    let text = listed.to_string();
    assert!(!text.contains(&s.key), "the key is shown only when created");
    assert_eq!(
        listed["items"][0]["ingestKeyHint"],
        format!("…{}", &s.key[s.key.len() - 4..])
    );
    let read = s.admin.get(&format!("/api/calls/services/{}", s.id)).await;
    let params = read["parameters"].as_array().unwrap();
    assert_eq!(params.len(), 40);
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "duration_sec" && p["knownAtStart"] == false)
    );
    assert!(
        params
            .iter()
            .all(|p| !p["description"].as_str().unwrap().is_empty())
    );
    // A bad hook is refused by member and changes nothing.
    let before = snapshot(&app);
    let bad = s
        .admin
        .call(
            "POST",
            &format!("/api/calls/services/{}/hooks", s.id),
            Some(json!({"host": "10.1.2.3", "event": "end"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.json()["error"]["field"].clone()),
        (422, json!("host"))
    );
    assert_eq!(snapshot(&app), before);
    // Rotating the key: the old one stops at once.
    let rotated = s
        .admin
        .call(
            "POST",
            &format!("/api/calls/services/{}/ingest-key", s.id),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let new_key = rotated.json()["ingestKey"].as_str().unwrap().to_string();
    assert_ne!(new_key, s.key);
    assert_eq!(s.post_event(&call(1, "Call is over")).await.status, 401);
    let headers = [
        ("content-type", "application/json"),
        ("x-ingest-key", new_key.as_str()),
    ];
    let ok = client
        .send(
            "POST",
            &format!("/api/calls/services/{}/events", s.id),
            &headers,
            call(1, "Call is over").to_string(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Management needs the admin token; deleting the service stops its ingest.
    assert_eq!(client.get("/api/calls/services").await.unwrap().status, 401);
    assert_eq!(
        s.admin
            .status("DELETE", &format!("/api/calls/services/{}", s.id))
            .await,
        204
    );
    assert_eq!(
        s.admin
            .status("GET", &format!("/api/calls/services/{}", s.id))
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_send_delivers_a_sample_call_once_marked_as_a_test() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = service(&client).await;
    let hook = s
        .hook(form(
            &rx,
            json!({"event": "start", "enabled": false, "parameters": [
            {"name": "id", "param": "id"}, {"name": "city", "param": "city"},
            {"name": "secs", "param": "duration_sec"}]}),
        ))
        .await;
    let path = format!("/api/calls/services/{}/hooks/{hook}/test-send", s.id);
    let reply = s
        .admin
        .call("POST", &path, Some(json!({"call": {"city": "Тверь"}})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let d = reply.json();
    assert_eq!(
        (d["test"].clone(), d["status"].clone()),
        (json!(true), json!("delivered"))
    );
    assert_eq!(
        d["attempts"][0]["status"], 200,
        "the receiver's answer comes back"
    );
    let q = rx.received()[0].query();
    assert_eq!(q[0], ("id".into(), "123456".into()));
    assert_eq!(q[1], ("city".into(), "Тверь".into()));
    assert_eq!(
        q[2],
        ("secs".into(), String::new()),
        "a start hook has no duration"
    );
    let bad = s.admin.call("POST", &path, Some(json!({"cal": {}}))).await;
    assert_eq!(
        (bad.status, bad.json()["error"]["field"].clone()),
        (422, json!("cal"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_tracker_configured_with_get_can_send_the_event_in_the_query() {
    let (_app, _server, client) = serve(app()).await;
    let rx = Receiver::start().await.unwrap();
    let s = service(&client).await;
    s.hook(form(
        &rx,
        json!({"event": "end", "parameters": [
        {"name": "call", "param": "id"}, {"name": "utm", "param": "visit_info"}]}),
    ))
    .await;
    let path = format!(
        "/api/calls/services/{}/events?key={}&id=555&hook_event=Call+is+over&visit_info%5Butm_source%5D=vk",
        s.id, s.key
    );
    let reply = client.get(&path).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["callId"], "555");
    s.settled(&reply.json()).await;
    let q = rx.received()[0].query();
    assert_eq!(q[0], ("call".into(), "555".into()));
    assert_eq!(q[1], ("utm".into(), r#"{"utm_source":"vk"}"#.into()));
}
