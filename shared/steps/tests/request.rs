//! A step's webhook config, validated at save and rendered into the request a receiver
//! gets: Keitaro postbacks and BotHelp profiles from the seeds.

use funnelhooks_core::Timestamp;
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_dialogs::{Dialog, FieldValue};
use funnelhooks_steps::profile::profile;
use funnelhooks_steps::{WebhookConfig, prepare};
use serde_json::json;

const CREATED: Timestamp = Timestamp(1_710_092_972_806);

fn dialog() -> Dialog {
    let mut d = Dialog::pending("bot", 1227280, Timestamp(CREATED.0 + 60_000));
    d.username = Some("ivan_petrov".into());
    d.name = Some("Иван Петров".into());
    d.started = true;
    d.created_at = Some(CREATED);
    d.step_key = Some("deposit".into());
    d.tracker.insert("clickid".into(), "a&b c=Кир/1?".into());
    d.tracker.insert("utm_source".into(), "tg".into());
    d.tracker.insert("sub2".into(), "x".into());
    d.fields
        .insert("userBalance".into(), FieldValue::Number(5000.into()));
    d.fields
        .insert("email".into(), FieldValue::Text("ivan@example.com".into()));
    d.fields.insert("vip".into(), FieldValue::Bool(true));
    d
}

fn config(v: serde_json::Value) -> WebhookConfig {
    WebhookConfig::from_json(&v).unwrap()
}

fn query_pairs(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[test]
fn the_seed_keitaro_postback_arrives_with_exactly_the_dialog_values() {
    let c = config(json!({
        "url": "https://keitaro.yoursite.com/25123a/postback?subid={tracker.clickid}&username={username}&chatid={chatId}&startdialogue={createdAt}"
    }));
    let p = prepare(&c, &dialog(), TargetPolicy::default()).unwrap();
    assert_eq!(p.request.method, "GET");
    assert!(p.request.body.is_empty());
    assert!(p.missing.is_empty());
    assert_eq!(
        query_pairs(&p.request.url),
        [
            ("subid".to_string(), "a&b c=Кир/1?".to_string()),
            ("username".into(), "ivan_petrov".into()),
            ("chatid".into(), "1227280".into()),
            ("startdialogue".into(), "2024-03-10T17:49:32.806Z".into()),
        ]
    );
}

#[test]
fn a_bothelp_profile_post_carries_the_documented_members() {
    let c = config(
        json!({"url": "https://hooks.example.com/bothelp", "method": "POST", "body": "profile"}),
    );
    let p = prepare(&c, &dialog(), TargetPolicy::default()).unwrap();
    assert_eq!(p.request.method, "POST");
    assert!(
        p.request
            .headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    let body: serde_json::Value = serde_json::from_slice(&p.request.body).unwrap();
    assert_eq!(body, profile(&dialog()));
    assert_eq!(body["created_at"], json!(1_710_092_972));
    assert_eq!(body["name"], "Иван Петров");
    assert_eq!(body["first_name"], "Иван");
    assert_eq!(body["last_name"], "Петров");
    assert_eq!(body["profile_link"], "https://t.me/ivan_petrov");
    assert_eq!(body["email"], "ivan@example.com");
    assert_eq!(body["phone"], "");
    assert_eq!(body["conversations_count"], 1);
    assert_eq!(body["first_contact_at"], json!(1_710_092_972));
    assert_eq!(body["last_contact_at"], json!(1_710_093_032));
    assert_eq!(body["user_id"], "1227280");
    assert_eq!(body["created_at_show"], "10/03/2024 17:49:32 UTC");
    assert_eq!(body["utm_source"], "tg");
    assert_eq!(
        body["userBalance"], "5000",
        "custom fields as text, as BotHelp sends them"
    );
    assert_eq!(body["vip"], "true");
    assert_eq!(
        (body["bothelp_user_id"].clone(), body["cuid"].clone()),
        (json!(""), json!(""))
    );
    assert!(
        body.get("username").is_none(),
        "not a member of BotHelp's profile"
    );
    assert!(body.get("sub2").is_none(), "only utm_* tracker fields");
}

#[test]
fn a_body_without_a_method_is_posted() {
    let c = config(json!({"url": "https://hooks.example.com/bothelp", "body": "profile"}));
    let p = prepare(&c, &dialog(), TargetPolicy::default()).unwrap();
    assert_eq!(p.request.method, "POST");
    let c = config(json!({"url": "https://hooks.example.com/k?a={chatId}"}));
    let p = prepare(&c, &dialog(), TargetPolicy::default()).unwrap();
    assert_eq!(
        p.request.method, "GET",
        "no body: GET, as Chatterfy's postbacks"
    );
}

#[test]
fn json_form_and_text_templates_escape_for_their_body() {
    let d = dialog();
    let json_body = config(json!({"url": "https://x.example/", "method": "POST",
        "body": {"template": "{\"click\": \"{tracker.clickid}\", \"balance\": {userBalance}, \"raw\": {\"a\": 1}}", "contentType": "json"}}));
    let p = prepare(&json_body, &d, TargetPolicy::default()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&p.request.body).unwrap();
    assert_eq!(
        v,
        json!({"click": "a&b c=Кир/1?", "balance": 5000, "raw": {"a": 1}})
    );

    let form = config(json!({"url": "https://x.example/", "method": "POST",
        "body": {"template": "sub1={tracker.clickid}&name={name}", "contentType": "form"}}));
    let p = prepare(&form, &d, TargetPolicy::default()).unwrap();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&p.request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("sub1".into(), "a&b c=Кир/1?".into()),
            ("name".into(), "Иван Петров".into())
        ]
    );
    assert!(p.request.headers.contains(&(
        "content-type".into(),
        "application/x-www-form-urlencoded".into()
    )));
}

#[test]
fn headers_are_rendered_and_a_line_break_in_a_value_is_refused() {
    let c =
        config(json!({"url": "https://x.example/", "headers": {"X-Click": "{tracker.clickid}"}}));
    let p = prepare(&c, &dialog(), TargetPolicy::default()).unwrap();
    assert!(
        p.request
            .headers
            .contains(&("x-click".into(), "a&b c=Кир/1?".into()))
    );
    let mut d = dialog();
    d.tracker.insert("clickid".into(), "a\r\nX-Evil: 1".into());
    let e = prepare(&c, &d, TargetPolicy::default()).unwrap_err();
    assert!(
        e.code == "render_failed" && e.field.as_deref() == Some("webhook.headers.x-click"),
        "{e:?}"
    );
}

#[test]
fn missing_values_are_reported() {
    let c = config(json!({"url": "https://x.example/?a={tracker.sub9}&b={fields.nope}"}));
    let p = prepare(&c, &dialog(), TargetPolicy::default()).unwrap();
    assert_eq!(p.missing, ["tracker.sub9", "fields.nope"]);
}

#[test]
fn rendered_urls_are_checked_against_the_ssrf_rules() {
    for url in [
        "http://127.0.0.1:8080/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
        "http://localhost/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://10.1.2.3/",
    ] {
        let c = config(json!({ "url": url }));
        let e = prepare(&c, &dialog(), TargetPolicy::default()).unwrap_err();
        assert_eq!(e.code, "refused_target", "{url}");
    }
    let c = config(json!({"url": "http://127.0.0.1:8080/x"}));
    assert!(
        prepare(
            &c,
            &dialog(),
            TargetPolicy {
                allow_loopback: true
            }
        )
        .is_ok()
    );
}

#[test]
fn saving_a_bad_config_names_the_member_and_the_position() {
    let cases = [
        (json!({}), "webhook.url", "missing_field", None),
        (
            json!({"url": "ftp://x.example/{chatId}"}),
            "webhook.url",
            "bad_url",
            Some(0),
        ),
        (
            json!({"url": "https://{tracker.host}/x"}),
            "webhook.url",
            "variable_in_host",
            Some(8),
        ),
        (
            json!({"url": "https://x.example/?a={{ chatId | nope }}"}),
            "webhook.url",
            "bad_template",
            Some(33),
        ),
        (
            json!({"url": "https://x.example/", "method": "TRACE"}),
            "webhook.method",
            "bad_method",
            None,
        ),
        (
            json!({"url": "https://x.example/", "method": "GET", "body": "profile"}),
            "webhook.body",
            "body_with_get",
            None,
        ),
        (
            json!({"url": "https://x.example/", "method": "POST", "body": {"template": "{}", "contentType": "xml"}}),
            "webhook.body.contentType",
            "bad_content_type",
            None,
        ),
        (
            json!({"url": "https://x.example/", "timeoutMs": 60000}),
            "webhook.timeoutMs",
            "bad_timeout",
            None,
        ),
        (
            json!({"url": "https://x.example/", "retry": {"maxAttempts": 9}}),
            "webhook.retry.maxAttempts",
            "bad_retry",
            None,
        ),
        (
            json!({"url": "https://x.example/", "signingSecret": "secret"}),
            "webhook.signingSecret",
            "bad_secret",
            None,
        ),
        (
            json!({"url": "https://x.example/", "headers": {"Host": "x"}}),
            "webhook.headers.Host",
            "reserved_header",
            None,
        ),
        (
            json!({"url": "https://x.example/", "headers": {"Bad Name": "x"}}),
            "webhook.headers.Bad Name",
            "bad_header_name",
            None,
        ),
        (
            json!({"url": "https://x.example/", "headers": {"Proxy-Authorization": "Basic x"}}),
            "webhook.headers.Proxy-Authorization",
            "reserved_header",
            None,
        ),
        (
            json!({"url": "https://x.example/", "headers": {"Keep-Alive": "5"}}),
            "webhook.headers.Keep-Alive",
            "reserved_header",
            None,
        ),
        (
            json!({"url": "https://x.example/", "headers": {"Expect": "100-continue"}}),
            "webhook.headers.Expect",
            "reserved_header",
            None,
        ),
        (
            json!({"url": "https://x.example/", "headers": {"X-Tag": "a\u{1}b"}}),
            "webhook.headers.X-Tag",
            "bad_template",
            Some(1),
        ),
        (
            json!({"url": "https://x.example/", "colour": 1}),
            "webhook.colour",
            "unknown_field",
            None,
        ),
    ];
    for (config, field, code, position) in cases {
        // Errors name members under `webhook`, as a step's body carries the config.
        let e = WebhookConfig::from_json(&config)
            .unwrap_err()
            .under("webhook");
        assert_eq!(
            (e.field.as_deref(), e.code),
            (Some(field), code),
            "{config}"
        );
        if position.is_some() {
            assert_eq!(e.position, position, "{config}");
        }
    }
}

#[test]
fn the_secret_is_stored_but_never_shown() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let c = config(json!({"url": "https://x.example/", "signingSecret": secret}));
    assert_eq!(c.to_stored_json()["signingSecret"], secret);
    let view = c.to_view_json();
    assert!(!view.to_string().contains("MfKQ9r8G"), "{view}");
    assert_eq!(view["signed"], true);
    assert_eq!(WebhookConfig::from_json(&c.to_stored_json()).unwrap(), c);
}

#[test]
fn a_stored_config_reads_back_as_saved_with_or_without_a_secret() {
    for config_json in [
        json!({"url": "https://x.example/?c={tracker.clickid}"}),
        json!({"url": "https://x.example/", "method": "POST", "body": "profile",
               "headers": {"x-tag": "{username}"}, "retry": {"maxAttempts": 3}}),
        json!({"url": "https://x.example/", "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    ] {
        let c = config(config_json.clone());
        let stored = c.to_stored_json();
        assert_eq!(WebhookConfig::from_json(&stored).unwrap(), c, "{stored}");
    }
}

#[test]
fn a_view_masks_secret_headers_and_url_credentials_and_sending_it_back_keeps_them() {
    let stored = config(json!({
        "url": "https://api.telegram.org/bot123456:AAE-abcdefghijklmnopqrstuvwxyz/sendMessage?chat_id={chatId}&token=s3cret",
        "method": "POST",
        "headers": {"Authorization": "Bearer live-token-1", "X-Source": "funnel"},
        "body": {"template": "{\"text\": \"hi\"}", "contentType": "json"}
    }));
    let view = stored.to_view_json();
    let shown = view.to_string();
    for secret in ["live-token-1", "AAE-abcdefghij", "s3cret"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert_eq!(view["headers"]["authorization"], "***");
    assert_eq!(view["headers"]["x-source"], "funnel");
    // The view sent back unchanged (minus `signed`) is the same config.
    let mut back = view.clone();
    back.as_object_mut().unwrap().remove("signed");
    let again = WebhookConfig::from_json_over(&back, Some(&stored)).unwrap();
    assert_eq!(again, stored);
    // Without a stored config, `***` is taken as written.
    let literal = WebhookConfig::from_json(&back).unwrap();
    assert_eq!(literal.headers[0].1.source(), "***");
}

fn step(
    webhook: serde_json::Value,
    stored: Option<&WebhookConfig>,
) -> Result<WebhookConfig, funnelhooks_core::Error> {
    funnelhooks_steps::step_input(
        &json!({"key": "s", "kind": "send-webhook", "webhook": webhook}),
        stored,
    )
    .map(|s| s.webhook.unwrap())
}

#[test]
fn a_saved_secret_never_follows_the_url_to_another_host() {
    let stored = config(json!({
        "url": "https://tracker.example.com/postback?subid={tracker.clickid}",
        "headers": {"Authorization": "Bearer live-token-1", "X-Source": "funnel"}
    }));
    let mut view = stored.to_view_json();
    view.as_object_mut().unwrap().remove("signed");
    // Same host, another path: the secret stays.
    view["url"] = json!("https://tracker.example.com/v2/postback?subid={tracker.clickid}");
    let kept = step(view.clone(), Some(&stored)).unwrap();
    assert_eq!(kept.headers[0].1.source(), "Bearer live-token-1");
    // Another host, another port or plain http: it must be entered again.
    for url in [
        "https://collector.attacker.example/x",
        "https://tracker.example.com:8443/postback",
        "http://tracker.example.com/postback",
    ] {
        view["url"] = json!(url);
        let e = step(view.clone(), Some(&stored)).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("secret_not_carried", Some("webhook.headers.authorization")),
            "{url}"
        );
    }
    // Entered again: saved, with the new value.
    view["headers"]["authorization"] = json!("Bearer new-host-token");
    let moved = step(view, Some(&stored)).unwrap();
    assert_eq!(moved.headers[0].1.source(), "Bearer new-host-token");
    // A masked URL that is not the saved one is refused rather than sent with `***` in it.
    let secret_url = config(json!({"url": "https://hooks.example.com/x?token=s3cret"}));
    let e = step(
        json!({"url": "https://hooks.example.com/y?token=***"}),
        Some(&secret_url),
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("masked_value", Some("webhook.url"))
    );
}

#[test]
fn a_json_body_that_does_not_render_to_json_is_refused_at_save() {
    let post = |template: &str| {
        step(
            json!({"url": "https://x.example/", "body": {"template": template, "contentType": "json"}}),
            None,
        )
    };
    assert!(post(r#"{"id": {chatId}, "name": "{name}", "missing": {fields.none}}"#).is_ok());
    for broken in [
        r#"{"id": {chatId}"#,
        r#"{"a": 1,}"#,
        "subid={tracker.clickid}",
        r#"{"a": {fields.x|raw}"#,
    ] {
        let e = post(broken).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("bad_json_template", Some("webhook.body.template")),
            "{broken}"
        );
    }
}

#[test]
fn a_request_past_a_bound_is_an_error_naming_the_bound() {
    let mut d = dialog();
    d.tracker.insert("x".into(), "y".repeat(12_000));
    let c = config(json!({
        "url": "https://x.example/",
        "body": {"template": "{tracker.x}".repeat(1_480), "contentType": "text"}
    }));
    let e = prepare(&c, &d, TargetPolicy::default()).unwrap_err();
    assert_eq!(e.code, "render_failed");
    assert!(e.message.contains("65536 bytes"), "{}", e.message);
    let c = config(json!({"url": format!("https://x.example/?a={}", "{tracker.x}")}));
    let e = prepare(&c, &d, TargetPolicy::default()).unwrap_err();
    assert!(e.message.contains("8192 bytes"), "{}", e.message);
}
