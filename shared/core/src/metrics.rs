//! The postback counters every instance adds to in the store, and the names the metrics
//! route reads them under. Accepted postbacks are not counted here: a counter there would be
//! one more store write on the path every tracker waits on (see docs/operations.md,
//! "Metrics").

/// The error codes a refused postback is counted under; any other is `other`.
pub const POSTBACK_REFUSALS: [&str; 25] = [
    "missing_chat_id",
    "bad_chat_id",
    "unknown_step",
    "bad_status",
    "wrong_type",
    "bad_value",
    "bad_key",
    "bad_tag",
    "too_many_fields",
    "too_many_tracker_fields",
    "too_many_tags",
    "value_too_long",
    "dialog_too_large",
    "unknown_webhook",
    "too_many_new_dialogs",
    "too_many_dialogs",
    "body_too_large",
    "bad_json",
    "bad_body",
    "bad_encoding",
    "unsupported_media_type",
    "method_not_allowed",
    "store_unavailable",
    "store_unsure",
    "corrupt_record",
];

/// The store key of the counter of postbacks refused with `code` (`other` for a code not in
/// [`POSTBACK_REFUSALS`]).
pub fn postback_refusal_key(code: &str) -> String {
    let code = POSTBACK_REFUSALS
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("other");
    format!("metrics:postbacks:refused:{code}")
}
