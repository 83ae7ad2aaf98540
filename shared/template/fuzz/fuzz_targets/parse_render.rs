//! Any bytes, as a template for every target and as the values of every name: parsing,
//! rendering and linting must never panic, and a rendered header never carries CR/LF/NUL.
#![no_main]

use funnelhooks_template::{Builtin, MapContext, OwnedValue, Target, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first half is the template, the second the value every name resolves to.
    let split = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    let (src, value) = text.split_at(split);
    let ctx = MapContext::default()
        .with_builtin(Builtin::Username, OwnedValue::Str(value.to_string()))
        .with_builtin(
            Builtin::CreatedAt,
            OwnedValue::Time(data.len() as i64 * 86_400_123),
        )
        .with_builtin(Builtin::ChatId, OwnedValue::Int(-(data.len() as i64)))
        .with_field("a", OwnedValue::Str(value.to_string()))
        .with_tracker("a", OwnedValue::Str(value.to_string()));
    for target in [
        Target::Url,
        Target::Json,
        Target::Form,
        Target::Header,
        Target::Text,
    ] {
        if let Ok(t) = Template::parse(src, target) {
            let _ = t.lint(|_| funnelhooks_template::Known::No);
            if let Ok(r) = t.render(&ctx) {
                if target == Target::Header {
                    assert!(!r.output.contains(['\r', '\n', '\0']));
                }
            }
        }
    }
});
