//! Call hooks as a receiver sees them: the request each hook form builds for a CallKeeper
//! event, what the form refuses (naming the member), and how events are read.

use funnelhooks_calls::event::Lookup;
use funnelhooks_calls::{CallEvent, EventKind, HookConfig};
use funnelhooks_core::Kind;
use funnelhooks_delivery::TargetPolicy;
use serde_json::{Value, json};

const POLICY: TargetPolicy = TargetPolicy {
    allow_loopback: false,
};

/// A call-end event as CallKeeper posts it (seed 002's parameters).
fn call_over() -> CallEvent {
    let body = json!({
        "id": 88412, "hook_event": " Call is over",
        "visit_info": {"utm_source": "google", "utm_campaign": "spring"},
        "session": {"pgs": 4}, "udata": {"vst": 2},
        "city": "Москва", "phone2": "+7 (999) 123-45-67", "site": "shop.example",
        "duration_sec": 95, "duration_min": "2", "record_url": "https://rec.example/1.mp3",
        "date": "2018-12-04 12:14:54", "roistat_visit": null, "tags": "a&b=c"
    });
    CallEvent::parse("", Some("application/json"), body.to_string().as_bytes()).unwrap()
}

fn hook(form: Value) -> HookConfig {
    let h = HookConfig::from_json(&form).unwrap();
    h.check_target(POLICY).unwrap();
    h
}

fn refused(form: Value) -> (String, &'static str) {
    let e = HookConfig::from_json(&form)
        .and_then(|h| h.check_target(POLICY))
        .unwrap_err();
    assert!(matches!(e.kind, Kind::Invalid | Kind::Malformed), "{e:?}");
    (e.field.unwrap_or_default(), e.code)
}

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[test]
fn a_get_hook_sends_the_call_parameters_under_its_own_names_in_its_order() {
    let h = hook(json!({
        "protocol": "https", "host": "crm.example.com", "path": "/calls/in",
        "method": "GET", "event": "end",
        "parameters": [
            {"name": "call", "param": "id"}, {"name": "town", "param": "city"},
            {"name": "client_phone", "param": "phone2"}, {"name": "pages", "param": "session pgs"},
            {"name": "utm", "param": "visit_info"}, {"name": "seconds", "param": "duration_sec"},
            {"name": "token", "value": "s3cret"}, {"name": "label", "template": "{city}/{site}"},
            {"name": "tags", "param": "tags"}
        ]
    }));
    let built = h.build(&call_over(), POLICY).unwrap();
    assert_eq!(built.request.method, "GET");
    assert!(
        built
            .request
            .url
            .starts_with("https://crm.example.com/calls/in?"),
        "{}",
        built.request.url
    );
    assert!(built.request.body.is_empty());
    let pairs = query(&built.request.url);
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "call",
            "town",
            "client_phone",
            "pages",
            "utm",
            "seconds",
            "token",
            "label",
            "tags"
        ]
    );
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(get("call"), "88412");
    assert_eq!(get("town"), "Москва");
    assert_eq!(get("client_phone"), "+7 (999) 123-45-67");
    assert_eq!(
        get("pages"),
        "4",
        "session pgs read from the nested session object"
    );
    let utm: Value = serde_json::from_str(&get("utm")).unwrap();
    assert_eq!(
        utm["utm_campaign"], "spring",
        "nested parameters travel as JSON text"
    );
    assert_eq!(get("seconds"), "95");
    assert_eq!(get("token"), "s3cret");
    assert_eq!(get("label"), "Москва/shop.example");
    assert_eq!(get("tags"), "a&b=c", "values are escaped, not split");
    assert!(built.missing.is_empty(), "{:?}", built.missing);
}

#[test]
fn a_post_json_hook_keeps_numbers_nested_objects_and_nulls() {
    let h = hook(json!({
        "host": "crm.example.com", "port": 8443, "path": "hooks", "method": "POST",
        "contentType": "application/json", "event": "Call is over",
        "parameters": [
            {"name": "callId", "param": "id"}, {"name": "utm", "param": "visit_info"},
            {"name": "roistat", "param": "roistat_visit"}, {"name": "source", "value": "callkeeper"}
        ]
    }));
    let built = h.build(&call_over(), POLICY).unwrap();
    assert_eq!(built.request.method, "POST");
    assert_eq!(built.request.url, "https://crm.example.com:8443/hooks");
    assert_eq!(
        built.request.headers,
        [("content-type".to_string(), "application/json".to_string())]
    );
    let body: Value = serde_json::from_slice(&built.request.body).unwrap();
    assert_eq!(
        body,
        json!({"callId": 88412, "utm": {"utm_source": "google", "utm_campaign": "spring"},
               "roistat": null, "source": "callkeeper"})
    );
}

#[test]
fn a_post_form_hook_encodes_every_value_as_a_form_field() {
    let h = hook(json!({
        "protocol": "http", "host": "crm.example.com", "path": "/in", "method": "post",
        "contentType": "application/x-www-form-urlencoded", "event": "end",
        "parameters": [{"name": "id", "param": "id"}, {"name": "tags", "param": "tags"},
                       {"name": "utm", "param": "visit_info"}]
    }));
    let built = h.build(&call_over(), POLICY).unwrap();
    assert_eq!(built.request.url, "http://crm.example.com/in");
    assert_eq!(
        built.request.headers[0].1,
        "application/x-www-form-urlencoded"
    );
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&built.request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(fields[0], ("id".into(), "88412".into()));
    assert_eq!(fields[1], ("tags".into(), "a&b=c".into()));
    assert!(fields[2].1.starts_with('{'));
}

#[test]
fn at_call_start_the_parameters_not_known_yet_render_empty() {
    let body = "id=77&hook_event=Call+is+processing&duration_sec=0&record_url=x&city=Omsk";
    let start = CallEvent::parse(
        "",
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(start.kind, EventKind::Start);
    assert_eq!(start.lookup("duration_sec"), Lookup::NotYet);
    let h = hook(json!({
        "host": "crm.example.com", "event": "start",
        "parameters": [{"name": "d", "param": "duration_sec"}, {"name": "r", "param": "record_url"},
                       {"name": "c", "param": "city"}]
    }));
    let built = h.build(&start, POLICY).unwrap();
    assert_eq!(
        query(&built.request.url),
        [
            ("d".into(), "".into()),
            ("r".into(), "".into()),
            ("c".into(), "Omsk".into())
        ]
    );
    assert!(
        built.missing.is_empty(),
        "not-yet-known parameters are not 'missing'"
    );
}

#[test]
fn a_parameter_the_event_lacks_is_sent_empty_and_reported() {
    let h = hook(json!({"host": "crm.example.com", "event": "end",
                        "parameters": [{"name": "ya", "param": "ya_clientid"}]}));
    let built = h.build(&call_over(), POLICY).unwrap();
    assert_eq!(query(&built.request.url), [("ya".into(), "".into())]);
    assert_eq!(built.missing, ["ya_clientid"]);
}

#[test]
fn the_form_refuses_what_would_misroute_or_mislead_naming_the_member() {
    let base = |patch: Value| {
        let mut form = json!({"host": "crm.example.com", "event": "end"});
        for (k, v) in patch.as_object().unwrap() {
            form[k] = v.clone();
        }
        form
    };
    let cases = [
        (json!({"host": "crm.example.com:8080"}), "host", "bad_host"),
        (
            json!({"host": "https://crm.example.com"}),
            "host",
            "bad_host",
        ),
        (json!({"host": "crm example.com"}), "host", "bad_host"),
        (json!({"host": ""}), "host", "missing_field"),
        (json!({"host": "127.0.0.1"}), "host", "refused_target"),
        (json!({"host": "10.0.0.8"}), "host", "refused_target"),
        (json!({"host": "169.254.169.254"}), "host", "refused_target"),
        (json!({"host": "localhost"}), "host", "refused_target"),
        (json!({"protocol": "ftp"}), "protocol", "bad_protocol"),
        (json!({"host": "1.2.3.4.5"}), "host", "bad_host"),
        (json!({"host": "foo.123"}), "host", "bad_host"),
        (json!({"host": "256.1.1.1"}), "host", "bad_host"),
        (
            json!({"host": "send-webhook.spin.internal"}),
            "host",
            "refused_target",
        ),
        (json!({"port": 70000}), "port", "bad_port"),
        (json!({"path": "/in?x=1"}), "path", "bad_path"),
        (json!({"method": "PUT"}), "method", "bad_method"),
        (json!({"event": "ringing"}), "event", "bad_event"),
        (
            json!({"contentType": "multipart/form-data"}),
            "contentType",
            "bad_content_type",
        ),
        (json!({"timeoutMs": 60000}), "timeoutMs", "bad_timeout"),
        (
            json!({"signingSecret": "nope"}),
            "signingSecret",
            "bad_secret",
        ),
        (json!({"colour": "red"}), "colour", "unknown_field"),
        (
            json!({"parameters": [{"name": "x", "param": "duration"}]}),
            "parameters[0].param",
            "unknown_param",
        ),
        (
            json!({"parameters": [{"name": "x", "param": "id", "value": "1"}]}),
            "parameters[0]",
            "ambiguous_value",
        ),
        (
            json!({"parameters": [{"param": "id"}]}),
            "parameters[0].name",
            "missing_field",
        ),
        (
            json!({"parameters": [{"name": "x", "template": "{{ city | shout }}"}]}),
            "parameters[0].template",
            "bad_template",
        ),
    ];
    for (patch, field, code) in cases {
        assert_eq!(
            refused(base(patch.clone())),
            (field.to_string(), code),
            "{patch}"
        );
    }
    let mut no_event = base(json!({}));
    no_event.as_object_mut().unwrap().remove("event");
    assert_eq!(refused(no_event), ("event".into(), "missing_field"));
}

#[test]
fn defaults_follow_the_protocol_and_the_stored_form_reads_back_the_same() {
    let h = hook(
        json!({"protocol": "http", "host": "CRM.Example.com.", "event": "end",
                        "parameters": [{"name": "api_key", "value": "k-123"}],
                        "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    );
    assert_eq!(
        (h.port, h.path.as_str(), h.host.as_str()),
        (80, "/", "crm.example.com")
    );
    assert!(!h.post && h.enabled);
    let again = HookConfig::from_json(&h.to_stored_json()).unwrap();
    assert_eq!(again, h);
    let view = h.to_view_json();
    assert_eq!(view["signed"], true);
    assert!(
        view.get("signingSecret").is_none(),
        "the secret is never shown"
    );
    assert_eq!(
        view["parameters"][0]["value"], "***",
        "a secret-looking constant is masked"
    );
}

#[test]
fn loopback_targets_need_the_explicit_policy() {
    let form = json!({"protocol": "http", "host": "127.0.0.1", "port": 8081, "event": "end"});
    let h = HookConfig::from_json(&form).unwrap();
    assert_eq!(
        h.check_target(POLICY).unwrap_err().field.as_deref(),
        Some("host")
    );
    assert!(
        h.build(&call_over(), POLICY).is_err(),
        "refused again at send"
    );
    let local = TargetPolicy {
        allow_loopback: true,
    };
    h.check_target(local).unwrap();
    assert_eq!(
        h.build(&call_over(), local).unwrap().request.url,
        "http://127.0.0.1:8081/"
    );
    let v6 = json!({"protocol": "http", "host": "[::1]", "port": 8081, "event": "end"});
    let h = HookConfig::from_json(&v6).unwrap();
    assert_eq!(
        h.build(&call_over(), local).unwrap().request.url,
        "http://[::1]:8081/"
    );
}

#[test]
fn events_are_read_from_json_form_and_query_with_an_explicit_type_winning_ties() {
    let form = "id=5&visit_info%5Butm_source%5D=vk&current=%7B%22utm_medium%22%3A%22cpc%22%7D&hook_event=Call+is+over";
    let e = CallEvent::parse(
        "key=ik_x",
        Some("application/x-www-form-urlencoded"),
        form.as_bytes(),
    )
    .unwrap();
    assert_eq!((e.kind, e.call_id.as_str()), (EventKind::End, "5"));
    assert_eq!(e.params["visit_info"], json!({"utm_source": "vk"}));
    assert_eq!(e.params["current"], json!({"utm_medium": "cpc"}));
    assert!(
        !e.params.contains_key("key"),
        "the ingest key is not a call parameter"
    );
    let q = CallEvent::parse("event=start&id=abc-1", None, b"").unwrap();
    assert_eq!((q.kind, q.call_id.as_str()), (EventKind::Start, "abc-1"));
    let explicit =
        CallEvent::parse("event=end", Some("application/json"), br#"{"id": 9}"#).unwrap();
    assert_eq!(explicit.kind, EventKind::End);
}

#[test]
fn bad_events_are_refused_naming_the_parameter() {
    let cases: [(&str, &[u8], &str, &str); 7] = [
        (
            "",
            br#"{"hook_event": "Call is over"}"#,
            "id",
            "missing_call_id",
        ),
        ("", br#"{"id": 1}"#, "hook_event", "missing_event"),
        (
            "",
            br#"{"id": 1, "hook_event": "Call is ringing"}"#,
            "hook_event",
            "unknown_event",
        ),
        (
            "event=start",
            br#"{"id": 1, "hook_event": "Call is over"}"#,
            "event",
            "conflicting_event",
        ),
        (
            "",
            br#"{"id": {"x": 1}, "event": "end"}"#,
            "id",
            "bad_call_id",
        ),
        ("", b"[1, 2]", "body", "bad_body"),
        ("", b"{\"id\": ", "body", "bad_json"),
    ];
    for (query, body, field, code) in cases {
        let e = CallEvent::parse(query, Some("application/json"), body).unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.code),
            (Some(field), code),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(matches!(e.kind, Kind::Malformed | Kind::Invalid));
    }
    let big = vec![b'a'; 70_000];
    assert_eq!(
        CallEvent::parse("", None, &big).unwrap_err().kind,
        Kind::TooLarge
    );
}

#[test]
fn the_sample_call_for_test_sends_carries_every_preset_and_takes_overrides() {
    let mut overrides = serde_json::Map::new();
    overrides.insert("city".into(), json!("Тверь"));
    let s = funnelhooks_calls::event::sample(EventKind::End, &overrides);
    for p in funnelhooks_calls::PRESETS {
        assert!(
            matches!(s.lookup(p.name), Lookup::Value(_)),
            "{} is in the sample",
            p.name
        );
    }
    assert_eq!(s.lookup("city"), Lookup::Value(&json!("Тверь")));
    assert_eq!(s.params["hook_event"], "Call is over");
}

#[test]
fn a_masked_constant_is_kept_only_while_the_hook_sends_to_the_same_place() {
    let stored = hook(json!({
        "protocol": "https", "host": "crm.example.com", "path": "/in", "event": "end",
        "parameters": [{"name": "api_token", "value": "live-secret"}, {"name": "call", "param": "id"}]
    }));
    let mut view = stored.to_view_json();
    assert_eq!(view["parameters"][0]["value"], "***");
    view.as_object_mut().unwrap().remove("signed");
    view["path"] = json!("/v2/in");
    let kept = stored.replaced(&view).unwrap();
    assert_eq!(
        kept.to_stored_json()["parameters"][0]["value"],
        "live-secret"
    );
    for (member, value) in [
        ("host", json!("collector.attacker.example")),
        ("port", json!(8443)),
        ("protocol", json!("http")),
    ] {
        let mut moved = view.clone();
        moved[member] = value;
        let e = stored.replaced(&moved).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("secret_not_carried", Some("parameters[0].value")),
            "{member}"
        );
    }
}
