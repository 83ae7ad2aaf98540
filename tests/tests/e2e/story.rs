//! The marketer's console actions over HTTP, on every runtime and store: a dialog's story (what
//! postbacks and the API changed), moving a dialog to a step from the API (its webhook sent
//! as a postback's would be), finding dialogs by username, name or click id, "Retry now" on
//! a retrying delivery, and the call events a service refused.

use std::time::Duration;

use funnelhooks_testhost::{Answer, Receiver};
use serde_json::json;

use crate::scenarios::Target;

/// Runs the story scenarios against `t`.
pub async fn run_all(t: &Target) {
    dialog_story_moves_and_search(t).await;
    retry_now_sends_a_waiting_retry_once(t).await;
    refused_call_events_are_kept_without_the_key(t).await;
}

/// A postback's changes and an API move are in the dialog's history; the move into a webhook
/// step sends its webhook once; bad moves change nothing; search finds the dialog by what a
/// marketer knows of it.
async fn dialog_story_moves_and_search(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    let bot = admin.bot("Story").await;
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "lead", "kind": "send-webhook", "webhook": {
                "url": format!("{}/lead?chat={{chatId}}&click={{tracker.clickid}}", rx.url())}})),
        )
        .await;
    assert_eq!(step.status, 201, "{l}: {}", step.text());
    let step = step.json()["id"].as_str().unwrap().to_string();
    let (link, url) = admin.link(&bot).await;
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    admin
        .put(
            &format!("/api/bots/{bot}/dialogs/555"),
            json!({"username": "Ivan_Petrov", "name": "Иван Петров"}),
        )
        .await;
    let posted = t
        .client
        .get(&format!(
            "{path}?chatId=555&tracker.clickid=3k2h5f1a2b&userBalance=10&addTag=vip"
        ))
        .await
        .unwrap();
    assert_eq!(posted.status, 200, "{l}: {}", posted.text());
    let dialog = admin.get(&format!("/api/bots/{bot}/dialogs/555")).await;
    let history = dialog["history"].as_array().expect("a history");
    assert_eq!(history.len(), 1, "{l}: {dialog}");
    assert_eq!(history[0]["by"], "postback", "{l}");
    assert_eq!(
        history[0]["link"],
        format!("{}…", &link[..8]),
        "{l}: the link by its start only"
    );
    assert_eq!(
        history[0]["changed"],
        json!(["fields.userBalance", "tracker.clickid", "+vip"]),
        "{l}"
    );

    // Found by what a marketer knows: the username, a part of the name, the click id.
    for q in [
        "@ivan_petrov",
        "%D0%BF%D0%B5%D1%82%D1%80",
        "3k2h5f1a2b",
        "555",
    ] {
        let found = admin.get(&format!("/api/bots/{bot}/dialogs?q={q}")).await;
        let chats: Vec<_> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["chatId"].clone())
            .collect();
        assert_eq!(chats, vec![json!(555)], "{l}: q={q}: {found}");
    }
    let none = admin
        .get(&format!("/api/bots/{bot}/dialogs?q=nobody"))
        .await;
    assert_eq!(none["items"], json!([]), "{l}");
    let long = admin
        .call(
            "GET",
            &format!("/api/bots/{bot}/dialogs?q={}", "x".repeat(201)),
            None,
        )
        .await;
    assert_eq!(long.status, 400, "{l}: {}", long.text());
    assert_eq!(long.json()["error"]["field"], "q", "{l}");

    // Bad moves are refused by name and change nothing.
    let moves = format!("/api/bots/{bot}/dialogs/555/move");
    for (body, status, code, field) in [
        (json!({}), 422, "missing_field", "stepId"),
        (json!({"status": "asleep"}), 422, "bad_status", "status"),
        (
            json!({"stepId": "0b5e3c1a-0000-4000-8000-000000000000"}),
            404,
            "unknown_step",
            "stepId",
        ),
        (
            json!({"stepId": step, "colour": "red"}),
            422,
            "unknown_field",
            "colour",
        ),
    ] {
        let refused = admin.call("POST", &moves, Some(body.clone())).await;
        assert_eq!(refused.status, status, "{l}: {body}: {}", refused.text());
        assert_eq!(refused.json()["error"]["code"], code, "{l}: {body}");
        assert_eq!(refused.json()["error"]["field"], field, "{l}: {body}");
    }
    let unknown_chat = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/dialogs/556/move"),
            Some(json!({"stepId": step})),
        )
        .await;
    assert_eq!(unknown_chat.status, 404, "{l}: {}", unknown_chat.text());
    assert_eq!(
        admin
            .status("GET", &format!("/api/bots/{bot}/dialogs/556"))
            .await,
        404,
        "{l}: not created"
    );
    assert_eq!(rx.received().len(), 0, "{l}: nothing sent");
    let same = admin.get(&format!("/api/bots/{bot}/dialogs/555")).await;
    assert_eq!(
        same["history"], dialog["history"],
        "{l}: refusals left no trace"
    );

    // The move into the webhook step: answered with the delivery's id, sent once.
    let moved = admin
        .call(
            "POST",
            &moves,
            Some(json!({"stepId": step, "status": "manual"})),
        )
        .await;
    assert_eq!(moved.status, 200, "{l}: {}", moved.text());
    let moved = moved.json();
    assert_eq!(
        (moved["stepKey"].as_str(), moved["status"].as_str()),
        (Some("lead"), Some("manual")),
        "{l}"
    );
    let delivery = moved["deliveryId"]
        .as_str()
        .expect("a delivery id")
        .to_string();
    let got = rx.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "{l}: the step's webhook never arrived");
    assert_eq!(
        got[0].path_and_query, "/lead?chat=555&click=3k2h5f1a2b",
        "{l}"
    );
    let mut logged = json!(null);
    for _ in 0..50 {
        let reply = admin
            .call("GET", &format!("/api/deliveries/{delivery}"), None)
            .await;
        if reply.status == 200 {
            logged = reply.json();
            if logged["status"] == "delivered" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logged["status"], "delivered", "{l}: {logged}");
    let after = admin.get(&format!("/api/bots/{bot}/dialogs/555")).await;
    let last = after["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["by"].as_str(),
            last["stepKey"].as_str(),
            last["status"].as_str()
        ),
        (Some("api"), Some("lead"), Some("manual")),
        "{l}: {last}"
    );
    // Moved again to the step it is on: nothing more is sent.
    let again = admin
        .call("POST", &moves, Some(json!({"stepId": step})))
        .await;
    assert_eq!(again.status, 200, "{l}");
    assert_eq!(again.json()["deliveryId"], json!(null), "{l}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "{l}: sent once");
    eprintln!("{l}: dialog story, move, search: ok");
}

/// A delivery waiting minutes for its retry is sent at once by "Retry now", once; one whose
/// retry is due within a minute (or is a sweep's) is left to the sweep.
async fn retry_now_sends_a_waiting_retry_once(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let rx = Receiver::start().await.unwrap();
    // The receiver asks for two minutes, then answers.
    rx.script([Answer::new(503, "busy").header("retry-after", "120")]);
    let bot = admin.bot("Retry now").await;
    let step = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/steps"),
            Some(json!({"key": "sale", "kind": "send-webhook", "webhook": {
                "url": format!("{}/sale?chat={{chatId}}", rx.url()), "retry": {"maxAttempts": 3}}})),
        )
        .await;
    let step = step.json()["id"].as_str().unwrap().to_string();
    admin
        .put(&format!("/api/bots/{bot}/dialogs/9"), json!({}))
        .await;
    let sent = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/dialogs/9/send-webhook"),
            Some(json!({"stepId": step})),
        )
        .await;
    assert_eq!(sent.status, 200, "{l}: {}", sent.text());
    let waiting = sent.json();
    assert_eq!(waiting["status"], "retrying", "{l}: {waiting}");
    let id = waiting["id"].as_str().unwrap().to_string();
    let retried = admin
        .call("POST", &format!("/api/deliveries/{id}/retry"), None)
        .await;
    assert_eq!(retried.status, 200, "{l}: {}", retried.text());
    assert_eq!(
        retried.json()["status"],
        "delivered",
        "{l}: {}",
        retried.text()
    );
    assert_eq!(
        retried.json()["attempts"].as_array().unwrap().len(),
        2,
        "{l}"
    );
    assert_eq!(rx.received().len(), 2, "{l}");
    let done = admin
        .call("POST", &format!("/api/deliveries/{id}/retry"), None)
        .await;
    assert_eq!(done.status, 409, "{l}: {}", done.text());
    assert_eq!(done.json()["error"]["code"], "not_retrying", "{l}");
    // A retry due within the minute is the sweep's (it may be making it already).
    rx.script([Answer::new(503, "busy").header("retry-after", "30")]);
    let soon = admin
        .call(
            "POST",
            &format!("/api/bots/{bot}/dialogs/9/send-webhook"),
            Some(json!({"stepId": step})),
        )
        .await
        .json();
    assert_eq!(soon["status"], "retrying", "{l}: {soon}");
    let refused = admin
        .call(
            "POST",
            &format!("/api/deliveries/{}/retry", soon["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(refused.status, 409, "{l}: {}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "retry_due_soon", "{l}");
    assert_eq!(
        admin
            .status(
                "POST",
                "/api/deliveries/0b5e3c1a-0000-4000-8000-000000000000/retry"
            )
            .await,
        404,
        "{l}"
    );
    eprintln!("{l}: retry now: ok");
}

/// A call event the ingest route refuses is kept for its service, with why and what was sent
/// but never the key; events for unknown services are not kept; the list goes with the
/// service.
async fn refused_call_events_are_kept_without_the_key(t: &Target) {
    let l = &t.label;
    let admin = t.admin();
    let service = admin
        .call(
            "POST",
            "/api/calls/services",
            Some(json!({"name": "refusals"})),
        )
        .await
        .json();
    let (id, key) = (
        service["id"].as_str().unwrap().to_string(),
        service["ingestKey"].as_str().unwrap().to_string(),
    );
    let events = format!("/api/calls/services/{id}/events");
    let no_call = t
        .client
        .get(&format!(
            "{events}?key={key}&hook_event=Call+is+over&city=Omsk"
        ))
        .await
        .unwrap();
    assert!(
        matches!(no_call.status, 400 | 422),
        "{l}: {}",
        no_call.text()
    );
    // Kept just after the answer: wait for it, so the next one is the newer.
    let kept = |n: usize| {
        let admin = &admin;
        let id = &id;
        async move {
            for _ in 0..100 {
                let list = admin
                    .get(&format!("/api/calls/services/{id}/refused-events"))
                    .await;
                if list["items"].as_array().unwrap().len() >= n {
                    return list;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{n} refused events were not kept");
        }
    };
    kept(1).await;
    // The key under an encoded name (`k%65y`) is still the key: taken, and not kept.
    let encoded = t
        .client
        .get(&format!(
            "{events}?k%65y={key}&id=2&hook_event=Call+is+ringing"
        ))
        .await
        .unwrap();
    assert_eq!(encoded.status, 422, "{l}: {}", encoded.text());
    // A wrong key is answered and not kept: anyone who knows the service's id could send it.
    let wrong_key = t
        .client
        .get(&format!(
            "{events}?key=ik_wrong&id=1&hook_event=Call+is+over"
        ))
        .await
        .unwrap();
    assert_eq!(wrong_key.status, 401, "{l}: {}", wrong_key.text());
    kept(2).await;
    // The wrong key's refusal, had it been kept, would be there by now too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = kept(2).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{l}: {list}");
    assert_eq!(
        items[0]["code"],
        encoded.json()["error"]["code"],
        "{l}: newest first"
    );
    assert_eq!(items[1]["code"], no_call.json()["error"]["code"], "{l}");
    assert_eq!(
        items[1]["sent"], "hook_event=Call+is+over&city=Omsk",
        "{l}: {list}"
    );
    assert_eq!(
        items[0]["sent"], "id=2&hook_event=Call+is+ringing",
        "{l}: {list}"
    );
    assert!(!list.to_string().contains(&key), "{l}: the key was kept");
    let unknown = t
        .client
        .get("/api/calls/services/0b5e3c1a-0000-4000-8000-000000000000/events?id=1")
        .await
        .unwrap();
    assert_eq!(unknown.status, 404, "{l}");
    assert_eq!(
        admin
            .status("DELETE", &format!("/api/calls/services/{id}"))
            .await,
        204,
        "{l}"
    );
    assert_eq!(
        admin
            .status("GET", &format!("/api/calls/services/{id}/refused-events"))
            .await,
        404,
        "{l}"
    );
    eprintln!("{l}: refused call events: ok");
}
