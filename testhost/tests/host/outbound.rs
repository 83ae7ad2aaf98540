//! The outbound allow-list and real loopback receivers.

use funnelhooks_testhost::outbound::AllowedHosts;
use funnelhooks_testhost::{Answer, Receiver};

use crate::common::{fixture, probe, serve};
use crate::routing::urlencode;

#[tokio::test(flavor = "multi_thread")]
async fn allowed_request_reaches_a_real_loopback_receiver() {
    let receiver = Receiver::start().await.unwrap();
    receiver.script([Answer::new(201, "created").header("x-answer", "yes")]);
    let (_app, _server, client) = serve(fixture()).await;
    let url = format!("{}/postback?subid=abc", receiver.url());
    let answer = probe(&client, &format!("/probe?op=fetch&url={}", urlencode(&url))).await;
    assert_eq!(answer["status"], 201, "{answer}");
    assert_eq!(answer["body"], "created");
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path_and_query, "/postback?subid=abc");
    assert_eq!(
        got[0].header("host").unwrap(),
        format!("127.0.0.1:{}", receiver.port())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_outside_the_allow_list_is_denied_before_any_connection() {
    let receiver = Receiver::start().await.unwrap();
    let (_app, _server, client) = serve(fixture()).await;
    let url = format!("{}/x", receiver.url());
    // `locked` may only reach localhost:1.
    let answer = probe(
        &client,
        &format!("/locked?op=fetch&url={}", urlencode(&url)),
    )
    .await;
    let error = answer["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("HttpRequestDenied"), "{answer}");
    assert!(receiver.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn chaining_needs_the_target_in_the_allow_list() {
    let (_app, _server, client) = serve(fixture()).await;
    let url = "http://hidden.spin.internal/?op=headers";
    let answer = probe(&client, &format!("/locked?op=fetch&url={}", urlencode(url))).await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn templated_host_is_allowed_only_once_its_variable_has_a_value() {
    let receiver = Receiver::start().await.unwrap();
    let url = format!("http://localhost:{}/t", receiver.port());
    let path = format!("/probe?op=fetch&url={}", urlencode(&url));

    let (_app, _server, client) = serve(fixture()).await;
    let denied = probe(&client, &path).await;
    assert!(
        denied["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{denied}"
    );

    let with_host = fixture().variable("extra_host", &format!("localhost:{}", receiver.port()));
    let (_app, _server, client) = serve(with_host).await;
    let allowed = probe(&client, &path).await;
    assert_eq!(allowed["status"], 200, "{allowed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_run_concurrently_in_separate_instances() {
    // The receiver answers nobody until four requests are in flight at once: with requests
    // served one after another the first would wait forever and the test would time out.
    let receiver = Receiver::start().await.unwrap();
    receiver.hold_until(4);
    let (_app, _server, client) = serve(fixture()).await;
    let path = format!(
        "/probe?op=fetch&url={}",
        urlencode(&format!("{}/slow", receiver.url()))
    );
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let path = path.clone();
            tokio::spawn(async move { client.get(&path).await.unwrap() })
        })
        .collect();
    let all = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut replies = Vec::new();
        for c in calls {
            replies.push(c.await.unwrap());
        }
        replies
    })
    .await
    .expect("requests were not served concurrently");
    for reply in all {
        assert_eq!(reply.json()["status"], 200, "{}", reply.text());
    }
}

fn hosts(list: &[&str]) -> AllowedHosts {
    let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    AllowedHosts::parse(&list, |t| Ok(t.to_string()), &["a".into(), "b".into()]).unwrap()
}

#[test]
fn default_port_follows_the_scheme() {
    let h = hosts(&["https://tracker.example.com"]);
    assert!(h.allows("https", "tracker.example.com", None));
    assert!(h.allows("https", "tracker.example.com", Some(443)));
    assert!(!h.allows("https", "tracker.example.com", Some(8443)));
    assert!(!h.allows("http", "tracker.example.com", None));
}

#[test]
fn port_ranges_exclude_their_end_as_in_spin() {
    let h = hosts(&["http://127.0.0.1:8000..8002"]);
    assert!(h.allows("http", "127.0.0.1", Some(8000)));
    assert!(h.allows("http", "127.0.0.1", Some(8001)));
    assert!(!h.allows("http", "127.0.0.1", Some(8002)));
}

#[test]
fn wildcards_cidrs_and_any_scheme() {
    let h = hosts(&["*://*.keitaro.example:*", "http://10.0.0.0/8:80"]);
    assert!(h.allows("https", "t.keitaro.example", Some(9999)));
    assert!(!h.allows("https", "keitaro.example", None));
    assert!(h.allows("http", "10.1.2.3", None));
    assert!(!h.allows("http", "11.1.2.3", None));
}

#[test]
fn wildcard_chaining_means_the_apps_own_components() {
    let h = hosts(&["http://*.spin.internal"]);
    assert!(h.allows("http", "a.spin.internal", None));
    assert!(!h.allows("http", "c.spin.internal", None));
}

#[test]
fn malformed_entries_are_refused_with_spins_reasons() {
    let parse = |s: &str| {
        AllowedHosts::parse(&[s.to_string()], |t| Ok(t.to_string()), &[])
            .err()
            .map(|e| format!("{e:#}"))
    };
    assert!(parse("insecure:allow-all").unwrap().contains("*://*:*"));
    assert!(
        parse("example.com")
            .unwrap()
            .contains("does not contain a scheme")
    );
    assert!(
        parse("https://example.com:443/path")
            .unwrap()
            .contains("has a path")
    );
    assert!(parse("https://ex*ample.com").unwrap().contains("wildcards"));
    assert!(parse("ftp://example.com").unwrap().contains("default port"));
    assert!(parse("https://example.com:443").is_none());
}
