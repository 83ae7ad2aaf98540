//! Building one delivery's request from a step's webhook config and a dialog: the Keitaro
//! postback from the seeds (GET, four escaped query values, SSRF check) and the BotHelp
//! profile (POST, JSON body with every custom field), plus signing one request.
//!
//!   cargo bench -p funnelhooks-steps --bench build_request

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use funnelhooks_core::Timestamp;
use funnelhooks_delivery::{SigningSecret, TargetPolicy};
use funnelhooks_dialogs::{Dialog, FieldValue};
use funnelhooks_steps::{WebhookConfig, prepare};
use serde_json::json;

fn dialog() -> Dialog {
    let mut d = Dialog::pending("bot", 1227280, Timestamp(1_710_093_032_806));
    d.username = Some("ivan_petrov".into());
    d.name = Some("Иван Петров".into());
    d.started = true;
    d.created_at = Some(Timestamp(1_710_092_972_806));
    d.tracker.insert("clickid".into(), "a&b c=Кир/1?".into());
    d.tracker.insert("utm_source".into(), "tg".into());
    d.tracker.insert("utm_campaign".into(), "spring".into());
    for i in 0..10 {
        d.fields
            .insert(format!("field{i}"), FieldValue::Text(format!("value {i}")));
    }
    d.fields
        .insert("userBalance".into(), FieldValue::Number(5000.into()));
    d
}

fn bench(c: &mut Criterion) {
    let d = dialog();
    let keitaro = WebhookConfig::from_json(&json!({
        "url": "https://keitaro.yoursite.com/25123a/postback?subid={tracker.clickid}&username={username}&chatid={chatId}&startdialogue={createdAt}"
    }))
    .unwrap();
    let bothelp = WebhookConfig::from_json(&json!({
        "url": "https://hooks.example.com/bothelp", "method": "POST", "body": "profile"
    }))
    .unwrap();
    let policy = TargetPolicy::default();
    c.bench_function("prepare keitaro postback (GET)", |b| {
        b.iter(|| prepare(black_box(&keitaro), black_box(&d), policy).unwrap())
    });
    c.bench_function("prepare bothelp profile (POST JSON)", |b| {
        b.iter(|| prepare(black_box(&bothelp), black_box(&d), policy).unwrap())
    });
    let body = prepare(&bothelp, &d, policy).unwrap().request.body;
    let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    c.bench_function("sign the bothelp body", |b| {
        b.iter(|| secret.headers(black_box("msg_1"), 1_710_092_972, black_box(&body)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
