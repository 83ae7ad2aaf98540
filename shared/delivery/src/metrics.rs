//! Counters of what deliveries did, kept in the store so every instance adds to the same
//! ones (`metrics:attempts:{class}:{outcome}`): an engine adds up its request's attempts and
//! writes each changed counter once when it is done (one increment per request and kind,
//! not per attempt), so a call event to ten hooks that all answer 200 costs one.

use std::cell::RefCell;
use std::collections::BTreeMap;

use funnelhooks_store::Kv;

use crate::log::{Delivery, Status};

/// How an attempt ended: its status class, or why there was no answer; `none` for a
/// delivery that ended without an attempt (skipped, or refused before sending).
pub const CLASSES: [&str; 7] = ["2xx", "3xx", "4xx", "5xx", "timeout", "network", "none"];

/// Where a delivery stood after the attempt (or after it was logged without one).
pub const OUTCOMES: [&str; 4] = ["delivered", "retrying", "failed", "skipped"];

/// The store key of one counter.
pub fn counter_key(class: &str, outcome: &str) -> String {
    format!("metrics:attempts:{class}:{outcome}")
}

/// The class of `d`'s latest attempt (`none` without one).
fn class_of(d: &Delivery) -> &'static str {
    let Some(last) = d.attempts.last() else {
        return "none";
    };
    match (last.status, last.error.as_deref()) {
        (Some(s), _) => match s {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        (None, Some(e)) if e.starts_with("timed out") => "timeout",
        (None, _) => "network",
    }
}

/// A request's counts, written when it is done.
#[derive(Default)]
pub struct Tally {
    counts: RefCell<BTreeMap<(&'static str, &'static str), i64>>,
}

impl Tally {
    /// Counts what just happened to `d` (an attempt, or its end without one).
    pub fn count(&self, d: &Delivery) {
        let outcome = match d.status {
            Status::Delivered => "delivered",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Pending => return,
        };
        *self
            .counts
            .borrow_mut()
            .entry((class_of(d), outcome))
            .or_default() += 1;
    }

    /// Adds the counts to the store's counters and starts again. Counting is best effort:
    /// a store that fails here has failed the request's own writes already.
    pub fn flush(&self, kv: &dyn Kv) {
        let counts = std::mem::take(&mut *self.counts.borrow_mut());
        for ((class, outcome), n) in counts {
            let _ = kv.increment(&counter_key(class, outcome), n);
        }
    }
}
