//! Whatever a tracker sends, parsing never panics and properly encoded values arrive intact.

use std::collections::BTreeMap;

use funnelhooks_core::{Error, Kind};
use funnelhooks_dialogs::{BotSchema, FieldType, FieldValue, StepRef, from_request, parse_update};
use proptest::prelude::*;

fn no_steps(_: &str) -> Result<Option<StepRef>, Error> {
    Ok(None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_query_or_body_parses_or_is_refused_without_panicking(
        query in ".{0,200}",
        body in proptest::collection::vec(any::<u8>(), 0..200),
        json in any::<bool>(),
    ) {
        let fields: BTreeMap<String, FieldType> =
            [("n".to_string(), FieldType::Number), ("d".to_string(), FieldType::Date)].into();
        let schema = BotSchema { fields: &fields, step: &no_steps, auto: None };
        let kind = if json { "application/json" } else { "application/x-www-form-urlencoded" };
        if let Ok(params) = from_request(&query, Some(kind), &body)
            && let Err(e) = parse_update(params, &schema)
        {
            prop_assert!(matches!(e.kind, Kind::Malformed | Kind::TooLarge | Kind::Invalid));
        }
    }

    #[test]
    fn encoded_values_arrive_exactly(value in "\\PC{0,100}", chat in any::<i64>()) {
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let fields = BTreeMap::new();
        let schema = BotSchema { fields: &fields, step: &no_steps, auto: None };
        let query = format!("chatId={chat}&fields.note={encoded}&tracker.clickid={encoded}");
        let update = parse_update(from_request(&query, None, b"").unwrap(), &schema).unwrap();
        prop_assert_eq!(update.chat_id, chat);
        prop_assert_eq!(&update.fields["note"], &FieldValue::Text(value.clone()));
        prop_assert_eq!(&update.tracker["clickid"], &value);
    }
}
