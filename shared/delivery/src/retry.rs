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

/// `Retry-After` as delta-seconds (`120`) or an HTTP date in any of the three forms RFC 9110
/// §5.6.7 asks recipients to read (`Wed, 21 Oct 2015 07:28:00 GMT`,
/// `Wednesday, 21-Oct-15 07:28:00 GMT`, `Wed Oct 21 07:28:00 2015`).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value, now_unix)?;
    Some(Duration::from_secs(
        u64::try_from(at - now_unix).unwrap_or(0),
    ))
}

fn month(name: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as i64 + 1)
}

/// `hh:mm:ss` as seconds of the day.
fn clock(text: &str) -> Option<i64> {
    let mut parts = text.split(':');
    let mut next = |max: i64| {
        parts
            .next()
            .filter(|p| p.len() == 2)
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|v| (0..=max).contains(v))
    };
    let (h, m, s) = (next(23)?, next(59)?, next(60)?);
    parts.next().is_none().then_some(h * 3600 + m * 60 + s)
}

/// Unix seconds of `day month year` at `seconds` of the day; years of four digits only, so a
/// huge year cannot overflow the day count.
fn moment(day: &str, month_name: &str, year: i64, seconds: i64) -> Option<i64> {
    let day: i64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    if !(1..=9999).contains(&year) {
        return None;
    }
    Some(days_from_civil(year, month(month_name)?, day) * 86_400 + seconds)
}

/// An HTTP date (RFC 9110 §5.6.7) in Unix seconds: the IMF-fixdate senders generate, and the
/// obsolete RFC 850 and asctime forms recipients must still read. A two-digit RFC 850 year is
/// the latest year with those digits not more than 50 years after `now_unix`.
fn parse_http_date(s: &str, now_unix: i64) -> Option<i64> {
    let words: Vec<&str> = s.split_ascii_whitespace().collect();
    match words.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [wd, day, mon, year, time, "GMT"] if wd.len() == 4 && wd.ends_with(',') => {
            let year = year.parse().ok().filter(|_| year.len() == 4)?;
            moment(day, mon, year, clock(time)?)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [wd, date, time, "GMT"] if wd.ends_with(',') => {
            let mut dmy = date.split('-');
            let (day, mon, yy) = (dmy.next()?, dmy.next()?, dmy.next()?);
            let yy: i64 = yy.parse().ok().filter(|_| yy.len() == 2)?;
            let this_year = 1970 + now_unix.div_euclid(31_556_952);
            let mut year = this_year - this_year.rem_euclid(100) + yy;
            if year > this_year + 50 {
                year -= 100;
            }
            moment(day, mon, year, clock(time)?)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [wd, mon, day, time, year] if wd.len() == 3 => {
            let year = year.parse().ok().filter(|_| year.len() == 4)?;
            moment(day, mon, year, clock(time)?)
        }
        _ => None,
    }
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
        let date = |s| parse_http_date(s, 1_445_412_480);
        assert_eq!(date("Wed, 21 Oct 2015 07:28:00 GMT"), Some(1_445_412_480));
        assert_eq!(date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(date("Wed, 21 Oct 2015 07:28:00 UTC"), None);
        assert_eq!(date("Wed, 21 Oct 2015 7:28:00 GMT"), None);
        assert_eq!(date("garbage"), None);
        assert_eq!(date("Wed, 21 Oct 99999999999999999 07:28:00 GMT"), None);
    }

    #[test]
    fn all_three_http_date_forms_are_read() {
        let now = 1_445_412_480; // 2015-10-21T07:28:00Z
        let date = |s| parse_http_date(s, now);
        // RFC 9110's own example, in each form.
        let nov_1994 = Some(784_111_777);
        assert_eq!(date("Sun, 06 Nov 1994 08:49:37 GMT"), nov_1994);
        assert_eq!(date("Sunday, 06-Nov-94 08:49:37 GMT"), nov_1994);
        assert_eq!(date("Sun Nov  6 08:49:37 1994"), nov_1994);
        // A two-digit year is the latest one not more than 50 years ahead.
        assert_eq!(
            date("Wednesday, 21-Oct-15 07:29:00 GMT"),
            Some(1_445_412_540)
        );
        assert_eq!(
            date("Thursday, 01-Jan-65 00:00:00 GMT"),
            Some(2_997_993_600)
        );
        assert_eq!(date("Thursday, 01-Jan-70 00:00:00 GMT"), Some(0));
        let v = |h| verdict(Outcome::Status(503), 1, Some(h), now, 0);
        assert_eq!(
            v("Wednesday, 21-Oct-15 07:30:00 GMT"),
            Verdict::RetryIn(Duration::from_secs(120))
        );
        assert_eq!(
            v("Wed Oct 21 07:31:00 2015"),
            Verdict::RetryIn(Duration::from_secs(180))
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
