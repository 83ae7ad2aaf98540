//! What users of Chatterfy, Keitaro and BotHelp templates see rendered.

use funnelhooks_template::{
    Builtin, ErrorKind, Known, LintKind, MapContext, Name, OwnedValue, Slot, Target, Template,
};

const KEITARO: &str = "https://keitaro.yoursite.com/25123a/postback?subid={tracker.clickid}&username={username}&chatid={chatId}&startdialogue={createdAt}";

fn dialog() -> MapContext {
    MapContext::default()
        .with_builtin(Builtin::ChatId, OwnedValue::Int(1_227_280))
        .with_builtin(Builtin::Username, "john_doe".into())
        .with_builtin(Builtin::Name, "John Wick".into())
        .with_builtin(Builtin::StepKey, "welcome".into())
        .with_builtin(
            Builtin::StepId,
            "046050f6-38f6-4b18-b9fa-e6582f5352d0".into(),
        )
        .with_builtin(Builtin::Status, "auto".into())
        .with_builtin(Builtin::CreatedAt, OwnedValue::Time(1_710_092_972_806))
        .with_field("refId", "12345".into())
        .with_field("userBalance", OwnedValue::Int(5000))
        .with_tracker("clickid", "test123".into())
        .with_tracker("ad_name", "test".into())
}

fn render(src: &str, target: Target) -> String {
    let t = Template::parse(src, target).unwrap();
    let r = t.render(&dialog()).unwrap();
    assert!(r.missing.is_empty(), "missing {:?} in {src}", r.missing);
    r.output
}

#[test]
fn keitaro_postback_from_the_chatterfy_docs_renders_with_every_value() {
    assert_eq!(
        render(KEITARO, Target::Url),
        "https://keitaro.yoursite.com/25123a/postback?subid=test123&username=john_doe&chatid=1227280&startdialogue=2024-03-10T17%3A49%3A32.806Z"
    );
}

#[test]
fn single_and_double_brace_forms_are_the_same_variable() {
    let a = render(
        "Hi {name} ({chatId}) {{name}} {{ chatId }} {{  fields.refId  }}",
        Target::Text,
    );
    assert_eq!(a, "Hi John Wick (1227280) John Wick 1227280 12345");
}

#[test]
fn bare_custom_field_key_reads_the_field() {
    assert_eq!(
        render(
            "https://x.example/?ref={refId}&bal={userBalance}",
            Target::Url
        ),
        "https://x.example/?ref=12345&bal=5000"
    );
}

#[test]
fn details_and_fields_are_the_same_custom_field() {
    assert_eq!(
        render("{details.refId}/{fields.refId}", Target::Text),
        "12345/12345"
    );
}

#[test]
fn common_mistakes_from_the_seeds_still_resolve() {
    // Chatterfy's FAQ writes {fields.chatId}; people write {chatid}, {chat_id}, {tracker.clickId}.
    assert_eq!(
        render(
            "{fields.chatId} {chatid} {chat_id} {CreatedAt|unix} {tracker.clickId}",
            Target::Text
        ),
        "1227280 1227280 1227280 1710092972 test123"
    );
}

#[test]
fn a_custom_field_named_like_a_builtin_wins_under_fields() {
    let ctx = dialog().with_field("status", "vip".into());
    let t = Template::parse("{status} {fields.status}", Target::Text).unwrap();
    assert_eq!(t.render(&ctx).unwrap().output, "auto vip");
}

#[test]
fn step_id_and_step_key_are_different_things() {
    assert_eq!(
        render("{stepKey} {stepId} {status}", Target::Text),
        "welcome 046050f6-38f6-4b18-b9fa-e6582f5352d0 auto"
    );
}

#[test]
fn date_modifiers_give_the_forms_trackers_and_bothelp_want() {
    assert_eq!(
        render(
            "{{createdAt}}|{{createdAt|unix}}|{{createdAt|unix_ms}}|{{createdAt|date}}|{{createdAt|datetime}}|{{createdAt|show}}",
            Target::Text
        ),
        "2024-03-10T17:49:32.806Z|1710092972|1710092972806|2024-03-10|2024-03-10 17:49:32|10/03/2024 17:49:32 UTC"
    );
}

#[test]
fn missing_names_render_empty_and_are_reported_in_order() {
    let t = Template::parse("a={tracker.sub9}&b={{fields.nope}}&c={chatId}", Target::Url).unwrap();
    let r = t.render(&dialog()).unwrap();
    assert_eq!(r.output, "a=&b=&c=1227280");
    assert_eq!(r.missing, vec!["tracker.sub9", "fields.nope"]);
}

#[test]
fn default_fills_a_missing_value_and_is_not_reported_missing() {
    let t = Template::parse(
        "a={tracker.sub9|default:none}&b={{ fields.x | default: \"two words\" }}",
        Target::Url,
    )
    .unwrap();
    let r = t.render(&dialog()).unwrap();
    assert_eq!(r.output, "a=none&b=two%20words");
    assert!(r.missing.is_empty());
}

#[test]
fn query_values_escape_everything_that_could_change_the_query() {
    let ctx = dialog().with_tracker("clickid", "a b&c=d#e+f%g/h?i Привет".into());
    let t = Template::parse("https://k.example/p?subid={tracker.clickid}", Target::Url).unwrap();
    assert_eq!(
        t.render(&ctx).unwrap().output,
        "https://k.example/p?subid=a%20b%26c%3Dd%23e%2Bf%25g%2Fh%3Fi%20%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82"
    );
}

#[test]
fn path_segments_keep_slashes_out_and_refuse_dot_segments() {
    let ctx = dialog()
        .with_field("a", "../admin".into())
        .with_field("b", "..".into());
    let t = Template::parse("https://x.example/users/{a}/x", Target::Url).unwrap();
    let out = t.render(&ctx).unwrap().output;
    assert_eq!(out, "https://x.example/users/..%2Fadmin/x");
    assert_eq!(url::Url::parse(&out).unwrap().path(), "/users/..%2Fadmin/x");
    // URL parsers resolve ".." even percent-encoded, so it is refused rather than escaped.
    let t = Template::parse("https://x.example/users/{b}/x", Target::Url).unwrap();
    assert_eq!(t.render(&ctx).unwrap_err().code(), "dot_segment");
}

#[test]
fn variables_are_placed_by_url_part() {
    let t = Template::parse("https://{h}.example/{p}?q={q}#{f}", Target::Url).unwrap();
    let slots: Vec<Slot> = t.tags().map(|t| t.slot).collect();
    assert_eq!(
        slots,
        vec![
            Slot::UrlAuthority,
            Slot::UrlPath,
            Slot::UrlQuery,
            Slot::UrlFragment
        ]
    );
}

#[test]
fn json_body_keeps_its_own_braces_and_types_values_by_position() {
    let body = r#"{"profile": {"chat": {chatId}, "name": "{name}", "note": "say \"{{username}}\"", "bal": {{userBalance}}, "created": {createdAt|unix}, "when": {createdAt}, "none": {tracker.nope}, "css": "a { color: red }"}}"#;
    let t = Template::parse(body, Target::Json).unwrap();
    let r = t.render(&dialog()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.output).unwrap();
    assert_eq!(v["profile"]["chat"], 1_227_280);
    assert_eq!(v["profile"]["name"], "John Wick");
    assert_eq!(v["profile"]["note"], "say \"john_doe\"");
    assert_eq!(v["profile"]["bal"], 5000);
    assert_eq!(v["profile"]["created"], 1_710_092_972);
    assert_eq!(v["profile"]["when"], "2024-03-10T17:49:32.806Z");
    assert_eq!(v["profile"]["none"], serde_json::Value::Null);
    assert_eq!(v["profile"]["css"], "a { color: red }");
    assert_eq!(r.missing, vec!["tracker.nope"]);
}

#[test]
fn text_that_is_not_a_variable_passes_through() {
    for src in [
        "{\"a\": {\"b\": 1}}",
        "lone { and }} and {{ and }",
        "a { color: red; }",
        "{ chatId }",
        "{{#each}}",
        "{1}",
        "",
    ] {
        assert_eq!(render(src, Target::Text), src);
    }
}

#[test]
fn quoted_literal_writes_braces_next_to_a_variable() {
    assert_eq!(
        render(r#"{{"{chatId}"}} = {{"{"}}{chatId}{{"}"}}"#, Target::Text),
        "{chatId} = {1227280}"
    );
    // Triple braces need no literal at all: the outer pair is plain text.
    assert_eq!(render("{{{chatId}}}", Target::Text), "{1227280}");
}

#[test]
fn form_bodies_use_form_encoding() {
    let ctx = dialog().with_field("msg", "a b&c=d+é".into());
    let t = Template::parse("chat={chatId}&msg={msg}", Target::Form).unwrap();
    assert_eq!(
        t.render(&ctx).unwrap().output,
        "chat=1227280&msg=a+b%26c%3Dd%2B%C3%A9"
    );
}

#[test]
fn header_value_with_a_line_break_is_an_error_not_a_silent_strip() {
    let ctx = dialog().with_field("token", "abc\r\nX-Evil: 1".into());
    let t = Template::parse("Bearer {{fields.token}}", Target::Header).unwrap();
    let err = t.render(&ctx).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::HeaderBreak { .. }));
    assert_eq!(err.offset, 7);
    assert!(err.to_string().contains("fields.token"), "{err}");
    // raw does not let it through either.
    let raw = Template::parse("{{fields.token|raw}}", Target::Header).unwrap();
    assert!(raw.render(&ctx).is_err());
}

#[test]
fn header_template_with_a_line_break_in_its_own_text_is_refused_at_parse() {
    // Found by the fuzzer: the text, not only the values, must stay on one line.
    let err = Template::parse("Bearer x\r\nX-Evil: 1", Target::Header).unwrap_err();
    assert_eq!(err.code(), "header_text");
    assert_eq!(err.offset, 8);
    assert!(Template::parse("a\nb", Target::Text).is_ok());
}

#[test]
fn raw_skips_escaping() {
    let ctx = dialog().with_field("q", "a=1&b=2".into());
    assert_eq!(
        Template::parse("https://x.example/?{q|raw}", Target::Url)
            .unwrap()
            .render(&ctx)
            .unwrap()
            .output,
        "https://x.example/?a=1&b=2"
    );
}

#[test]
fn errors_name_the_position_and_the_problem() {
    let err = Template::parse("ok {{ chatId | bogus }}", Target::Text).unwrap_err();
    assert_eq!(err.offset, 15);
    assert_eq!(err.code(), "unknown_modifier");
    assert!(err.to_string().contains("bogus"));

    let err = Template::parse("{{ fields.a.b }}", Target::Text).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::BadName(_)));
    assert_eq!(err.offset, 3);

    let err = Template::parse("{{ x | default }}", Target::Text).unwrap_err();
    assert_eq!(err.code(), "bad_default");

    let err = Template::parse("{{ x junk }}", Target::Text).unwrap_err();
    assert_eq!(err.code(), "unexpected");
    assert_eq!(err.offset, 5);
}

#[test]
fn lint_reports_unknown_names_unclosed_tags_and_risky_spots_with_offsets() {
    let src = "https://{fields.host}/p?a={usernme}&b={{ fields.refId }}&c={{ chatId &d={q|raw}";
    let t = Template::parse(src, Target::Url).unwrap();
    let lints = t.lint(|n| match n {
        Name::Field { key, .. } if key == "refId" => Known::Yes,
        _ => Known::No,
    });
    let kinds: Vec<(LintKind, &str)> = lints
        .iter()
        .map(|l| (l.kind, &src[l.offset..l.end]))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (LintKind::UnknownName, "fields.host"),
            (LintKind::VariableInHost, "{fields.host}"),
            (LintKind::UnknownName, "usernme"),
            (LintKind::UnclosedTag, "{{"),
            (LintKind::UnknownName, "q"),
            (LintKind::RawValue, "{q|raw}"),
        ]
    );
}

#[test]
fn a_brace_that_opens_no_variable_is_malformed_and_literal_braces_and_json_are_not() {
    // The marketer's slip: the tracker would get `{tracker.clickid&status=sale` as text.
    let slip = "https://tr.example/pb?subid={tracker.clickid&status=sale";
    let t = Template::parse(slip, Target::Url).unwrap();
    let lint = t.malformed().expect("a malformed variable");
    assert_eq!(lint.kind, LintKind::MalformedVariable);
    assert_eq!(&slip[lint.offset..], "{tracker.clickid&status=sale");
    for (src, target) in [
        ("{chat id}", Target::Text),
        ("{{ chatId ", Target::Text),
        ("a={username|nope", Target::Url),
    ] {
        let t = Template::parse(src, target).unwrap();
        assert!(t.malformed().is_some(), "{src}");
    }
    for (src, target) in [
        (r#"{"chat": {chatId}, "n": {"a": 1}}"#, Target::Json),
        (r#"{{"{"}}{chatId}{{"}"}}"#, Target::Text),
        (
            "https://x.example/?a={tracker.clickid}&b={{ username | default: \"-\" }}",
            Target::Url,
        ),
        ("price {100} and } alone", Target::Text),
    ] {
        let t = Template::parse(src, target).unwrap();
        assert_eq!(t.malformed(), None, "{src}");
    }
}

#[test]
fn a_parsed_template_is_reusable_and_rendering_does_not_touch_it() {
    let t = Template::parse(KEITARO, Target::Url).unwrap();
    let copy = t.clone();
    for _ in 0..3 {
        t.render(&dialog()).unwrap();
    }
    assert_eq!(t, copy);
    assert_eq!(t.source(), KEITARO);
}

#[test]
fn a_field_written_in_another_letter_case_is_used_when_it_is_the_only_match_and_linted() {
    // Seed 001: `refID=12345` is written, `{{fields.refId}}` is read.
    let t = Template::parse(
        "https://some.service.com/signup?refId={{fields.refId}}",
        Target::Url,
    )
    .unwrap();
    let keys = ["refID", "userBalance"];
    assert_eq!(
        funnelhooks_template::match_key("refId", keys),
        funnelhooks_template::KeyMatch::CaseOnly("refID")
    );
    assert_eq!(
        funnelhooks_template::match_key("refid", ["refID", "REFID"]),
        funnelhooks_template::KeyMatch::Ambiguous
    );
    let lints = t.lint(|_| Known::AsKey("refID".into()));
    assert_eq!(lints.len(), 1);
    assert_eq!(lints[0].kind, LintKind::FieldCase);
    assert!(
        lints[0].message.contains("\"refID\""),
        "{}",
        lints[0].message
    );
    let lints = t.lint(|_| Known::Ambiguous(vec!["refID".into(), "REFID".into()]));
    assert_eq!(lints[0].kind, LintKind::AmbiguousField);
}

#[test]
fn raw_in_a_json_body_writes_json_values_and_quotes_anything_else() {
    let t = Template::parse(
        r#"{"items": {fields.a|raw}, "n": {fields.a}}"#,
        Target::Json,
    )
    .unwrap();
    let render = |v: &str| {
        let ctx = MapContext::default().with_field("a", OwnedValue::Str(v.into()));
        t.render(&ctx).unwrap().output
    };
    assert_eq!(render("[1,2]"), r#"{"items": [1,2], "n": "[1,2]"}"#);
    assert_eq!(render("12.5"), r#"{"items": 12.5, "n": "12.5"}"#);
    // A value that would add members stays one string.
    assert_eq!(
        render(r#"1,"admin":true"#),
        r#"{"items": "1,\"admin\":true", "n": "1,\"admin\":true"}"#
    );
    // Missing: null, raw or not, never a hole in the document.
    let missing = t.render(&MapContext::default()).unwrap();
    assert_eq!(missing.output, r#"{"items": null, "n": null}"#);
}

#[test]
fn a_render_past_its_bound_fails_instead_of_growing() {
    let t = Template::parse(&"{tracker.x}".repeat(1_480), Target::Text).unwrap();
    let ctx = MapContext::default().with_tracker("x", OwnedValue::Str("y".repeat(12_000)));
    let e = t.render_within(&ctx, 64 * 1024).unwrap_err();
    assert_eq!(e.code(), "too_long");
    assert!(e.to_string().contains("65536 bytes"), "{e}");
    assert!(t.render_within(&MapContext::default(), 64 * 1024).is_ok());
}
