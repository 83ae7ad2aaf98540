//! updateDialog as a tracker drives it: parsing, typing, errors, applying, pre-assignment.

use std::collections::BTreeMap;

use funnelhooks_core::{Kind, Timestamp};
use funnelhooks_dialogs::{
    BotSchema, Dialog, FieldType, FieldValue, Start, Status, StepRef, from_request, parse_update,
};
use funnelhooks_template::{Target, Template};

const STEP: &str = "046050f6-38f6-4b18-b9fa-e6582f5352d0";
const T0: Timestamp = Timestamp(1_710_092_972_806);
const T1: Timestamp = Timestamp(1_710_092_999_000);

fn fields() -> BTreeMap<String, FieldType> {
    [
        ("userBalance".to_string(), FieldType::Number),
        ("refID".to_string(), FieldType::String),
        ("reg_status".to_string(), FieldType::Boolean),
        ("regDate".to_string(), FieldType::Date),
    ]
    .into()
}

fn step(id: &str) -> Result<Option<StepRef>, funnelhooks_core::Error> {
    Ok((id == STEP).then(|| StepRef {
        id: STEP.into(),
        key: "welcome".into(),
        sends_webhook: false,
    }))
}

fn update_get(query: &str) -> Result<funnelhooks_dialogs::Update, funnelhooks_core::Error> {
    let fields = fields();
    let schema = BotSchema {
        fields: &fields,
        step: &step,
        auto: None,
    };
    parse_update(from_request(query, None, b"")?, &schema)
}

fn apply(query: &str) -> Dialog {
    let update = update_get(query).unwrap();
    let mut d = Dialog::pending("bot1", update.chat_id, T0);
    d.apply(&update, T1).unwrap();
    d
}

#[test]
fn keitaro_get_moves_step_sets_status_and_writes_typed_fields() {
    let d = apply(&format!(
        "chatId=1227280&stepId={STEP}&status=manual&userBalance=5000&fields.refID=12345&tracker.clickid=abc"
    ));
    assert_eq!(d.chat_id, 1_227_280);
    assert_eq!(d.step_id.as_deref(), Some(STEP));
    assert_eq!(d.step_key.as_deref(), Some("welcome"));
    assert_eq!(d.status, Status::Manual);
    assert_eq!(d.fields["userBalance"], FieldValue::Number(5000.into()));
    assert_eq!(d.fields["refID"], FieldValue::Text("12345".into()));
    assert_eq!(d.tracker["clickid"], "abc");
    assert_eq!(d.updated_at, T1);
    assert!(!d.started);
}

#[test]
fn php_style_get_with_a_boolean_field() {
    let d = apply(&format!(
        "chatId=-1001234567890&fields.reg_status=1&fields.user_id=77&stepId={STEP}"
    ));
    assert_eq!(d.chat_id, -1_001_234_567_890);
    assert_eq!(d.fields["reg_status"], FieldValue::Bool(true));
    assert_eq!(d.fields["user_id"], FieldValue::Text("77".into()));
}

#[test]
fn undefined_keys_are_stored_as_text_and_reported() {
    let u = update_get("chatId=1&newKey=42&details.other=x&userBalance=1").unwrap();
    assert_eq!(u.undefined_fields, vec!["newKey", "other"]);
    assert_eq!(u.fields["newKey"], FieldValue::Text("42".into()));
}

#[test]
fn dates_accept_iso_and_unix_time_and_store_iso() {
    let a = update_get("chatId=1&regDate=2024-03-10T17:49:32.806Z").unwrap();
    let b = update_get("chatId=1&regDate=1710092972").unwrap();
    assert_eq!(
        a.fields["regDate"],
        FieldValue::Text("2024-03-10T17:49:32.806Z".into())
    );
    assert_eq!(
        b.fields["regDate"],
        FieldValue::Text("2024-03-10T17:49:32.000Z".into())
    );
}

#[test]
fn json_body_with_nested_objects_and_tags() {
    let fields = fields();
    let schema = BotSchema {
        fields: &fields,
        step: &step,
        auto: None,
    };
    let body = br#"{"chatId": "42", "fields": {"userBalance": 12.5}, "tracker": {"utm_source": "fb"}, "addTags": ["vip", "paid"], "removeTag": "lead"}"#;
    let u = parse_update(
        from_request("", Some("application/json"), body).unwrap(),
        &schema,
    )
    .unwrap();
    let mut d = Dialog::pending("bot1", 42, T0);
    d.tags = vec!["lead".into(), "old".into()];
    d.apply(&u, T1).unwrap();
    assert_eq!(
        d.fields["userBalance"],
        FieldValue::Number(serde_json::Number::from_f64(12.5).unwrap())
    );
    assert_eq!(d.tracker["utm_source"], "fb");
    assert_eq!(d.tags, vec!["old", "vip", "paid"]);
}

#[test]
fn every_bad_parameter_is_named_with_the_right_status() {
    let cases = [
        ("stepId=x", Kind::Malformed, "missing_chat_id", "chatId"),
        ("chatId=abc", Kind::Invalid, "bad_chat_id", "chatId"),
        (
            "chatId=99999999999999999999",
            Kind::Invalid,
            "bad_chat_id",
            "chatId",
        ),
        (
            "chat_id=1&stepId=nope",
            Kind::NotFound,
            "unknown_step",
            "stepId",
        ),
        (
            "chatId=1&status=paused",
            Kind::Invalid,
            "bad_status",
            "status",
        ),
        (
            "chatId=1&userBalance=lots",
            Kind::Invalid,
            "wrong_type",
            "userBalance",
        ),
        (
            "chatId=1&fields.reg_status=maybe",
            Kind::Invalid,
            "wrong_type",
            "fields.reg_status",
        ),
        (
            "chatId=1&regDate=yesterday",
            Kind::Invalid,
            "wrong_type",
            "regDate",
        ),
        ("chatId=1&bad key=1", Kind::Invalid, "bad_key", "bad key"),
        (
            "chatId=1&weird.scope=1",
            Kind::Invalid,
            "bad_key",
            "weird.scope",
        ),
        (
            "chatId=1&addTag=ok,not ok",
            Kind::Invalid,
            "bad_tag",
            "addTag",
        ),
    ];
    for (query, kind, code, field) in cases {
        let err = update_get(query).unwrap_err();
        assert_eq!(
            (err.kind, err.code, err.field.as_deref()),
            (kind, code, Some(field)),
            "{query}"
        );
    }
    let long = format!("chatId=1&tracker.x={}", "a".repeat(4097));
    assert_eq!(update_get(&long).unwrap_err().code, "value_too_long");
}

#[test]
fn an_update_past_a_limit_changes_nothing() {
    let mut d = Dialog::pending("bot1", 1, T0);
    for i in 0..256 {
        d.fields
            .insert(format!("f{i}"), FieldValue::Text("x".into()));
    }
    let before = d.clone();
    let u = update_get("chatId=1&f0=changed&brandNew=1").unwrap();
    let err = d.apply(&u, T1).unwrap_err();
    assert_eq!(err.code, "too_many_fields");
    assert_eq!(d, before);
}

#[test]
fn pre_assigned_data_merges_when_the_chat_starts() {
    let mut d = apply(&format!(
        "chatId=5&stepId={STEP}&refID=r1&tracker.clickid=from-postback&tracker.sub1=s1&addTag=lead"
    ));
    let start = Start {
        username: Some("john_doe".into()),
        name: Some("John".into()),
        start_payload: None,
        tracker: [("clickid".to_string(), "from-campaign".to_string())].into(),
    };
    d.start(&start, T1).unwrap();
    assert!(d.started);
    assert_eq!(d.created_at, Some(T1));
    assert_eq!(d.username.as_deref(), Some("john_doe"));
    assert_eq!(
        d.tracker["clickid"], "from-campaign",
        "the start wins for tracker keys it has"
    );
    assert_eq!(
        d.tracker["sub1"], "s1",
        "pre-assigned keys the start lacks are kept"
    );
    assert_eq!(d.fields["refID"], FieldValue::Text("r1".into()));
    assert_eq!(d.step_key.as_deref(), Some("welcome"));
    assert_eq!(d.tags, vec!["lead"]);
    // A second start keeps the first createdAt.
    d.start(&Start::default(), Timestamp(T1.0 + 5000)).unwrap();
    assert_eq!(d.created_at, Some(T1));
}

#[test]
fn a_dialog_renders_the_keitaro_postback_from_the_seeds() {
    let mut d = apply("chatId=1227280&tracker.clickid=test123");
    d.start(
        &Start {
            username: Some("john_doe".into()),
            ..Start::default()
        },
        T0,
    )
    .unwrap();
    let t = Template::parse(
        "https://keitaro.yoursite.com/25123a/postback?subid={tracker.clickid}&username={username}&chatid={chatId}&startdialogue={createdAt}",
        Target::Url,
    )
    .unwrap();
    assert_eq!(
        t.render(&d).unwrap().output,
        "https://keitaro.yoursite.com/25123a/postback?subid=test123&username=john_doe&chatid=1227280&startdialogue=2024-03-10T17%3A49%3A32.806Z"
    );
}

#[test]
fn a_date_field_takes_date_forms_as_created_at_does_and_text_stays_text() {
    let d = apply("chatId=5&note=2024-03-10");
    let d = {
        let mut d = d;
        d.apply(&update_get("chatId=5&regDate=1710092972").unwrap(), T1)
            .unwrap();
        d
    };
    let t = Template::parse(
        "https://t.example/p?reg={regDate|unix}&day={regDate|date}&iso={regDate}&note={note|unix}",
        Target::Url,
    )
    .unwrap();
    assert_eq!(
        t.render(&d).unwrap().output,
        "https://t.example/p?reg=1710092972&day=2024-03-10&iso=2024-03-10T17%3A49%3A32.000Z&note=2024-03-10"
    );
}

#[test]
fn dialog_json_reads_like_the_design_card() {
    let d = apply("chatId=7&userBalance=5000");
    let json = serde_json::to_value(&d).unwrap();
    for key in [
        "botId",
        "chatId",
        "username",
        "name",
        "stepId",
        "stepKey",
        "status",
        "fields",
        "tracker",
        "tags",
        "started",
        "createdAt",
        "updatedAt",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["updatedAt"], "2024-03-10T17:49:59.000Z");
    assert_eq!(json["fields"]["userBalance"], 5000);
    let back: Dialog = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn stored_field_values_read_back_as_the_type_they_were_written_with() {
    let stored = r#"{"yes":true,"no":false,"count":5000,"debt":-12,"big":18446744073709551615,
        "rate":2.5,"ref":"12345","empty":""}"#;
    let fields: BTreeMap<String, FieldValue> = serde_json::from_str(stored).unwrap();
    assert_eq!(fields["yes"], FieldValue::Bool(true));
    assert_eq!(fields["no"], FieldValue::Bool(false));
    assert_eq!(fields["count"], FieldValue::Number(5000.into()));
    assert_eq!(fields["debt"], FieldValue::Number((-12).into()));
    assert_eq!(fields["big"], FieldValue::Number(u64::MAX.into()));
    assert_eq!(
        fields["rate"],
        FieldValue::Number(serde_json::Number::from_f64(2.5).unwrap())
    );
    // Digits written as text stay text.
    assert_eq!(fields["ref"], FieldValue::Text("12345".into()));
    assert_eq!(fields["empty"], FieldValue::Text(String::new()));
    let written: serde_json::Value = serde_json::to_value(&fields).unwrap();
    assert_eq!(
        written,
        serde_json::from_str::<serde_json::Value>(stored).unwrap()
    );
    for bad in ["null", "[1]", r#"{"a":1}"#] {
        let err = serde_json::from_str::<FieldValue>(bad).unwrap_err();
        assert!(
            err.to_string().contains("a boolean, a number or text"),
            "{bad}: {err}"
        );
    }
}
