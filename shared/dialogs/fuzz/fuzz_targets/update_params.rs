//! Any query string and body, as any content type: reading and validating updateDialog
//! parameters never panics, refusals are 4xx, and applying an accepted update either succeeds
//! or leaves the dialog exactly as it was.
#![no_main]

use std::collections::BTreeMap;

use funnelhooks_dialog::{BotSchema, Dialog, FieldType, Timestamp, from_request, parse_update};
use libfuzzer_sys::fuzz_target;

fn step_key(id: &str) -> Result<Option<String>, funnelhooks_dialog::DialogError> {
    Ok((id == "s1").then(|| "welcome".to_string()))
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let query = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let fields: BTreeMap<String, FieldType> = [
        ("n".to_string(), FieldType::Number),
        ("b".to_string(), FieldType::Boolean),
        ("d".to_string(), FieldType::Date),
        ("s".to_string(), FieldType::String),
    ]
    .into();
    let schema = BotSchema {
        fields: &fields,
        step: &step,
        auto: None,
    };
    for kind in [
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let params = match from_request(&query, kind, body) {
            Ok(p) => p,
            Err(e) => {
                assert!(!matches!(e.kind, Kind::Internal | Kind::Unavailable));
                continue;
            }
        };
        match parse_update(params, &schema) {
            Ok(update) => {
                let mut dialog = Dialog::pending("bot", update.chat_id, Timestamp(0));
                let before = dialog.clone();
                if dialog.apply(&update, Timestamp(1)).is_err() {
                    assert_eq!(dialog, before);
                }
            }
            Err(e) => assert!(!matches!(e.kind, Kind::Internal | Kind::Unavailable)),
        }
    }
});
