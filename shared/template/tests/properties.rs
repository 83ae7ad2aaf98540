//! Properties that must hold for any values a tracker or a user can send.

use funnelhooks_template::{Builtin, MapContext, OwnedValue, Target, Template};
use proptest::prelude::*;

const KEITARO: &str = "https://keitaro.example.com/25123a/postback?subid={tracker.clickid}&username={username}&chatid={chatId}&startdialogue={createdAt}";

/// Years 0000 to 9999, the range ISO 8601 writes without a sign.
fn moment() -> impl Strategy<Value = i64> {
    -62_167_219_200_000i64..253_402_300_799_999
}

fn iso_by_the_time_crate(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn keitaro_query_pairs_decode_back_to_exactly_the_values_given(
        clickid in any::<String>(),
        username in any::<String>(),
        chat_id in any::<i64>(),
        created in moment(),
    ) {
        let ctx = MapContext::default()
            .with_builtin(Builtin::ChatId, OwnedValue::Int(chat_id))
            .with_builtin(Builtin::Username, OwnedValue::Str(username.clone()))
            .with_builtin(Builtin::CreatedAt, OwnedValue::Time(created))
            .with_tracker("clickid", OwnedValue::Str(clickid.clone()));
        let out = Template::parse(KEITARO, Target::Url).unwrap().render(&ctx).unwrap().output;
        let url = url::Url::parse(&out).unwrap();
        prop_assert_eq!(url.host_str(), Some("keitaro.example.com"));
        prop_assert_eq!(url.path(), "/25123a/postback");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let expected = vec![
            ("subid".to_string(), clickid),
            ("username".to_string(), username),
            ("chatid".to_string(), chat_id.to_string()),
            ("startdialogue".to_string(), iso_by_the_time_crate(created)),
        ];
        prop_assert_eq!(pairs, expected);
    }

    #[test]
    fn path_segment_decodes_back_and_never_splits(value in any::<String>()) {
        prop_assume!(value != "." && value != "..");
        let ctx = MapContext::default().with_field("a", OwnedValue::Str(value.clone()));
        let out = Template::parse("https://x.example/p/{fields.a}/end", Target::Url)
            .unwrap().render(&ctx).unwrap().output;
        let url = url::Url::parse(&out).unwrap();
        let segments: Vec<&str> = url.path_segments().unwrap().collect();
        prop_assert_eq!(segments.len(), 3);
        let decoded = url::form_urlencoded::parse(format!("v={}", segments[1].replace('+', "%2B")).as_bytes())
            .next().unwrap().1.into_owned();
        prop_assert_eq!(decoded, value);
    }

    #[test]
    fn json_body_stays_valid_and_carries_the_values(
        text in any::<String>(),
        number in any::<i64>(),
        as_number in any::<bool>(),
        missing in any::<bool>(),
    ) {
        let mut ctx = MapContext::default().with_field("a", OwnedValue::Str(text.clone()));
        let b = if as_number { OwnedValue::Int(number) } else { OwnedValue::Str(text.clone()) };
        ctx = ctx.with_field("b", b);
        if !missing {
            ctx = ctx.with_field("c", OwnedValue::Bool(true));
        }
        let src = r#"{"a": "{fields.a}", "b": {fields.b}, "c": "x {{ fields.a }} y", "d": {fields.c}, "e": {"f": [1, {"g": "}"}]}}"#;
        let out = Template::parse(src, Target::Json).unwrap().render(&ctx).unwrap().output;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
        prop_assert_eq!(v["a"].as_str(), Some(text.as_str()));
        if as_number {
            prop_assert_eq!(v["b"].as_i64(), Some(number));
        } else {
            prop_assert_eq!(v["b"].as_str(), Some(text.as_str()));
        }
        let c = format!("x {text} y");
        prop_assert_eq!(v["c"].as_str(), Some(c.as_str()));
        prop_assert_eq!(v["d"].clone(), if missing { serde_json::Value::Null } else { serde_json::Value::Bool(true) });
        prop_assert_eq!(v["e"]["f"][1]["g"].as_str(), Some("}"));
    }

    #[test]
    fn form_value_decodes_back(value in any::<String>()) {
        let ctx = MapContext::default().with_field("a", OwnedValue::Str(value.clone()));
        let out = Template::parse("k={fields.a}&z=1", Target::Form).unwrap().render(&ctx).unwrap().output;
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(out.as_bytes()).into_owned().collect();
        prop_assert_eq!(pairs, vec![("k".to_string(), value), ("z".to_string(), "1".to_string())]);
    }

    #[test]
    fn text_without_braces_passes_through_unchanged(text in "[^{]*") {
        for target in [Target::Url, Target::Json, Target::Form, Target::Header, Target::Text] {
            let breaks_header = text.chars().any(|c| c.is_ascii_control() && c != '\t');
            match Template::parse(&text, target) {
                Ok(t) => {
                    prop_assert!(!(target == Target::Header && breaks_header));
                    prop_assert_eq!(t.render(&MapContext::default()).unwrap().output, text.clone());
                }
                Err(e) => prop_assert!(target == Target::Header && breaks_header, "{e}"),
            }
        }
    }

    #[test]
    fn no_input_makes_parse_render_or_lint_panic(
        src in "(\\{|\\}|\\||:|\"|\\\\| |[a-zA-Z_.]{1,8}|default|raw|unix|fields\\.|tracker\\.|.){0,40}",
        value in any::<String>(),
    ) {
        let ctx = MapContext::default()
            .with_builtin(Builtin::CreatedAt, OwnedValue::Time(0))
            .with_field("a", OwnedValue::Str(value.clone()))
            .with_tracker("a", OwnedValue::Str(value));
        for target in [Target::Url, Target::Json, Target::Form, Target::Header, Target::Text] {
            match Template::parse(&src, target) {
                Ok(t) => {
                    let _ = t.render(&ctx);
                    let _ = t.lint(|_| funnelhooks_template::Known::No);
                }
                Err(e) => prop_assert!(e.offset <= src.len()),
            }
        }
    }

    #[test]
    fn header_values_never_carry_line_breaks(value in any::<String>()) {
        let ctx = MapContext::default().with_field("a", OwnedValue::Str(value));
        if let Ok(r) = Template::parse("X {fields.a} {fields.a|raw}", Target::Header).unwrap().render(&ctx) {
            prop_assert!(!r.output.chars().any(|c| c.is_ascii_control() && c != '\t'));
        }
    }

    #[test]
    fn a_raw_value_in_json_never_adds_members_or_breaks_the_document(
        value in prop_oneof![
            any::<String>(),
            "(1|true|null|\"x\"|,|\"admin\":true|\\{|\\}|\\[|\\]|:| ){0,12}",
        ],
    ) {
        let ctx = MapContext::default().with_field("a", OwnedValue::Str(value.clone()));
        let t = Template::parse(r#"{"a": {fields.a|raw}, "s": "{fields.a|raw}", "b": 1}"#, Target::Json).unwrap();
        let out = t.render(&ctx).unwrap().output;
        let doc: serde_json::Value = serde_json::from_str(&out).map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
        let members = doc.as_object().unwrap();
        prop_assert_eq!(members.len(), 3, "{}", out);
        prop_assert_eq!(&members["b"], &serde_json::json!(1));
        prop_assert_eq!(&members["s"], &serde_json::json!(value));
    }
}
