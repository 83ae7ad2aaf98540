//! Rate limits: at most so many deliveries per second to one step's or hook's target (its
//! `rateLimit`), and to one host (the `rate_limit_per_host` setting). Each limit is a
//! record holding when its next turn comes (the generic cell rate algorithm with a burst of
//! one: turns are spaced evenly, never bunched, a tenth wider than the limit), taken with a
//! compare-and-swap, so every
//! instance and every path (a first attempt, a retry, a sweep, a replay, a recovery) shares
//! the one schedule. A delivery whose turn has not come waits in the outbox; nothing is
//! dropped.

use funnelhooks_core::Timestamp;
use funnelhooks_store::{Records, StoreError};

/// Lowest limit accepted, in deliveries per second (one a minute and a bit).
pub const MIN_PER_SECOND: f64 = 0.01;
/// Highest limit accepted, in deliveries per second.
pub const MAX_PER_SECOND: f64 = 1_000.0;

/// The key of a step's or hook's limit (`key` from [`crate::state::StepOrHook::key`]).
pub fn sender_key(key: &str) -> String {
    format!("rate:{key}")
}

/// The key of a host's limit.
pub fn host_key(host: &str) -> String {
    format!("rate:host:{}", host.to_ascii_lowercase())
}

/// How much wider than the limit turns are spaced: what happens between taking a turn and
/// the request reaching the receiver (a secret read, a connection) takes a few milliseconds
/// more for one request than for another, and that must not put six requests of a limit of
/// five into one second at the receiver.
pub const SPACING_MARGIN: f64 = 1.1;

/// How late after its turn a request may leave and every `per_second + 1` requests still
/// span a second: turns are spaced a tenth wider, so a second's worth of them spans 1.1 s.
pub const LATE_TURN_MS: i64 = ((SPACING_MARGIN - 1.0) * 1000.0) as i64;

/// Milliseconds between two turns at `per_second`.
pub fn interval_ms(per_second: f64) -> i64 {
    (1000.0 * SPACING_MARGIN / per_second.clamp(MIN_PER_SECOND, MAX_PER_SECOND)).ceil() as i64
}

/// Takes a turn at `now` on the limit at `key`: `Ok(None)` when the delivery may go now,
/// `Ok(Some(when))` when its turn comes later (nothing is taken then).
pub fn take(
    records: &Records<'_>,
    key: &str,
    per_second: f64,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let interval = interval_ms(per_second);
    let (wait, _) = records.upsert(
        key,
        &format!("{key}:born"),
        || 0i64,
        |next: &mut i64| {
            if *next > now.0 {
                return Ok::<_, StoreError>(Some(Timestamp(*next)));
            }
            *next = now.0 + interval;
            Ok(None)
        },
    )?;
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use funnelhooks_store::MemoryKv;

    #[test]
    fn turns_are_spaced_evenly_and_a_refused_turn_takes_nothing() {
        let kv = MemoryKv::new();
        let r = Records::new(&kv);
        assert_eq!(take(&r, "rate:x", 5.0, Timestamp(1_000)).unwrap(), None);
        assert_eq!(
            take(&r, "rate:x", 5.0, Timestamp(1_050)).unwrap(),
            Some(Timestamp(1_220))
        );
        assert_eq!(
            take(&r, "rate:x", 5.0, Timestamp(1_219)).unwrap(),
            Some(Timestamp(1_220))
        );
        assert_eq!(take(&r, "rate:x", 5.0, Timestamp(1_220)).unwrap(), None);
        assert_eq!(
            take(&r, "rate:x", 5.0, Timestamp(1_220)).unwrap(),
            Some(Timestamp(1_440))
        );
        // Another limit is another schedule.
        assert_eq!(take(&r, "rate:y", 5.0, Timestamp(1_220)).unwrap(), None);
        assert_eq!(interval_ms(3.0), 367);
    }
}
