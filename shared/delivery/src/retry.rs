//! What an attempt's outcome means and when the next attempt is due: Svix's schedule
//! (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) with ±10 % jitter, and a receiver's
//! `Retry-After` honoured between 1 second and 24 hours.

use std::time::Duration;

use funnelhooks_template::datetime::days_from_civil;

/// Delay before each attempt; the first is immediate. Eight attempts in all.
pub const SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Bounds on a receiver's `Retry-After`.
pub const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);
/// See [`RETRY_AFTER_MIN`].
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this status.
    Status(u16),
    /// No answer in time.
    Timeout,
    /// Connection refused, reset, DNS failure, TLS failure...
    NetworkError,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Try again after this long.
    RetryIn(Duration),
    /// A retryable failure, but the schedule is used up.
    Exhausted,
    /// A failure retrying cannot fix (3xx, since redirects are not followed, and 4xx other
    /// than 408 and 429); `gone` is 410, which also marks the webhook config as gone.
    Failed {
        /// The receiver answered 410 Gone.
        gone: bool,
    },
}

/// The verdict on attempt number `attempt` (1 for the first) that ended with `outcome`.
/// `retry_after` is the response's header, `now_unix` the current time (for HTTP dates) and
/// `jitter` any random number (spreading retries so receivers are not hit in waves).
pub fn verdict(
    outcome: Outcome,
    attempt: usize,
    retry_after: Option<&str>,
    now_unix: i64,
    jitter: u32,
) -> Verdict {
    let retryable = match outcome {
        Outcome::Status(s) if (200..300).contains(&s) => return Verdict::Delivered,
        Outcome::Status(410) => return Verdict::Failed { gone: true },
        Outcome::Status(408 | 429) => true,
        Outcome::Status(s) => s >= 500,
        Outcome::Timeout | Outcome::NetworkError => true,
    };
    if !retryable {
        return Verdict::Failed { gone: false };
    }
    let Some(&base) = SCHEDULE.get(attempt) else {
        return Verdict::Exhausted;
    };
    if let Some(wait) = retry_after.and_then(|v| parse_retry_after(v, now_unix)) {
        return Verdict::RetryIn(wait.clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX));
    }
    // ±10 %: factor in [0.9, 1.1) from the jitter.
    let factor = 0.9 + 0.2 * (f64::from(jitter) / (f64::from(u32::MAX) + 1.0));
    Verdict::RetryIn(base.mul_f64(factor))
}

/// `Retry-After` as delta-seconds (`120`) or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs(
        u64::try_from(at - now_unix).unwrap_or(0),
    ))
}

/// An IMF-fixdate (RFC 9110 §5.6.7), the only HTTP date form senders may generate.
fn parse_http_date(s: &str) -> Option<i64> {
    let rest = s.get(5..)?; // "Wed, "
    let mut parts = rest.split(' ');
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    // Four digits, as the format has: a huge year must not overflow the day count.
    let year: i64 = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_delivered_whatever_the_attempt() {
        assert_eq!(
            verdict(Outcome::Status(200), 1, None, 0, 0),
            Verdict::Delivered
        );
        assert_eq!(
            verdict(Outcome::Status(204), 8, None, 0, 0),
            Verdict::Delivered
        );
    }

    #[test]
    fn server_errors_timeouts_408_and_429_retry_on_the_schedule() {
        for outcome in [
            Outcome::Status(500),
            Outcome::Status(503),
            Outcome::Status(408),
            Outcome::Status(429),
            Outcome::Timeout,
            Outcome::NetworkError,
        ] {
            // A jitter of half the range is no jitter at all.
            assert_eq!(
                verdict(outcome, 1, None, 0, 1 << 31),
                Verdict::RetryIn(Duration::from_secs(5)),
                "{outcome:?}"
            );
            assert_eq!(
                verdict(outcome, 2, None, 0, 1 << 31),
                Verdict::RetryIn(Duration::from_secs(300))
            );
            assert_eq!(verdict(outcome, 8, None, 0, 1 << 31), Verdict::Exhausted);
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let low = verdict(Outcome::Status(500), 3, None, 0, 0);
        let high = verdict(Outcome::Status(500), 3, None, 0, u32::MAX);
        assert_eq!(low, Verdict::RetryIn(Duration::from_secs(1620)));
        let Verdict::RetryIn(h) = high else { panic!() };
        assert!(h < Duration::from_secs(1980) && h > Duration::from_secs(1979));
    }

    #[test]
    fn other_client_errors_and_redirects_fail_at_once() {
        for s in [301, 302, 400, 401, 403, 404, 422] {
            assert_eq!(
                verdict(Outcome::Status(s), 1, None, 0, 0),
                Verdict::Failed { gone: false },
                "{s}"
            );
        }
        assert_eq!(
            verdict(Outcome::Status(410), 1, None, 0, 0),
            Verdict::Failed { gone: true }
        );
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let v = |h| verdict(Outcome::Status(429), 1, Some(h), 1_445_412_480, 0);
        assert_eq!(v("120"), Verdict::RetryIn(Duration::from_secs(120)));
        assert_eq!(v("0"), Verdict::RetryIn(RETRY_AFTER_MIN));
        assert_eq!(v("999999"), Verdict::RetryIn(RETRY_AFTER_MAX));
        // 2015-10-21T07:28:00Z is 1445412480: 60 s after "now".
        assert_eq!(
            v("Wed, 21 Oct 2015 07:29:00 GMT"),
            Verdict::RetryIn(Duration::from_secs(60))
        );
        // Unparseable: the schedule decides.
        assert_eq!(v("soon"), Verdict::RetryIn(Duration::from_secs_f64(4.5)));
    }

    #[test]
    fn http_dates_convert_to_unix_time() {
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Wed, 21 Oct 2015 07:28:00 UTC"), None);
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(
            parse_http_date("Wed, 21 Oct 99999999999999999 07:28:00 GMT"),
            None
        );
        // A date far ahead is capped like any long wait.
        assert_eq!(
            verdict(
                Outcome::Status(503),
                1,
                Some("Fri, 31 Dec 9999 23:59:59 GMT"),
                0,
                0
            ),
            Verdict::RetryIn(RETRY_AFTER_MAX)
        );
        assert_eq!(
            verdict(
                Outcome::Status(503),
                1,
                Some("99999999999999999999999"),
                0,
                0
            ),
            Verdict::RetryIn(Duration::from_secs_f64(4.5))
        );
    }
}
