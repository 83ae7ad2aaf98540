//! What the engine's tests share: a clock the test moves, a scripted receiver, a step's
//! delivery.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use funnelhooks_core::Timestamp;
use funnelhooks_delivery::DeliveryOptions;
use funnelhooks_delivery::engine::{
    Attempts, Clock, Engine, NewDelivery, Received, SendFailure, Sender,
};
use funnelhooks_delivery::log::{Delivery, Owner};
use funnelhooks_delivery::request::OutboundRequest;
use funnelhooks_store::MemoryKv;

pub const START: i64 = 1_710_092_972_806;

pub struct FakeClock(AtomicI64);

impl FakeClock {
    pub fn new() -> Self {
        Self(AtomicI64::new(START))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
    fn sleep(&self, d: Duration) {
        self.advance(d);
    }
}

/// A request as the receiver got it, with the engine's extra (signature) headers.
pub type Got = (OutboundRequest, Vec<(String, String)>);

/// Answers from a script, one per request, and remembers what it got.
#[derive(Default)]
pub struct Receiver {
    pub script: Mutex<VecDeque<Result<Received, SendFailure>>>,
    pub got: Mutex<Vec<Got>>,
    /// URLs answered 200 whatever the script says (an alert endpoint beside a failing step).
    pub always_ok: Mutex<Vec<String>>,
}

pub fn status(code: u16) -> Result<Received, SendFailure> {
    Ok(Received {
        status: code,
        headers: vec![("x-answer".into(), code.to_string())],
        body: format!("answer {code}").into_bytes(),
        ..Received::default()
    })
}

impl Receiver {
    pub fn answering(script: Vec<Result<Received, SendFailure>>) -> Self {
        Self {
            script: Mutex::new(script.into()),
            got: Mutex::default(),
            always_ok: Mutex::default(),
        }
    }
    /// The receiver, answering 200 at `url` without taking from the script.
    pub fn always_ok(self, url: &str) -> Self {
        self.always_ok.lock().unwrap().push(url.to_string());
        self
    }
    pub fn requests(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

impl Sender for Receiver {
    fn send(
        &self,
        request: &OutboundRequest,
        extra: &[(String, String)],
        _timeout: Duration,
    ) -> Result<Received, SendFailure> {
        self.got
            .lock()
            .unwrap()
            .push((request.clone(), extra.to_vec()));
        if self.always_ok.lock().unwrap().contains(&request.url) {
            return status(200);
        }
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| status(200))
    }
}

pub fn owner(bot: &str, chat: i64) -> Owner {
    Owner::Step {
        bot_id: bot.into(),
        chat_id: chat,
        step_id: "s1".into(),
    }
}

pub fn chat_of(d: &Delivery) -> Option<i64> {
    match &d.owner {
        Owner::Step { chat_id, .. } => Some(*chat_id),
        _ => None,
    }
}

pub fn new_delivery(bot: &str) -> NewDelivery {
    NewDelivery {
        request: Some(OutboundRequest {
            method: "POST".into(),
            url: "https://hooks.example.com/in?token=s3cret&sub1=abc".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), "Bearer s3cret".into()),
            ],
            body: br#"{"chatId":1227280}"#.to_vec(),
        }),
        ..NewDelivery::new(owner(bot, 1227280), &DeliveryOptions::default())
    }
}

pub fn run(
    engine: &Engine<'_, MemoryKv, Receiver, FakeClock>,
    bot: &str,
    attempts: Attempts,
) -> Delivery {
    let created = engine.create(new_delivery(bot), None).unwrap();
    engine.run(created, attempts).unwrap()
}
