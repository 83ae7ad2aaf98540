//! The date forms trackers and bot platforms want, written straight into the output without
//! allocating (a render must cost well under a microsecond).

/// How a moment is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateForm {
    /// `2024-03-10T17:49:32.806Z` (ISO 8601, UTC, milliseconds): Chatterfy's `createdAt`.
    Iso,
    /// `1710092972` (Unix seconds): BotHelp's `created_at`.
    Unix,
    /// `1710092972806` (Unix milliseconds).
    UnixMs,
    /// `2024-03-10`.
    Date,
    /// `2024-03-10 17:49:32`: CallKeeper's `date`.
    DateTime,
    /// `10/03/2024 17:49:32 UTC`: BotHelp's `created_at_show`.
    Show,
}

/// A small stack buffer a formatted value is written into before it is escaped.
pub struct Buf {
    bytes: [u8; 40],
    len: usize,
}

impl Buf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self {
            bytes: [0; 40],
            len: 0,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        let bytes = &self.bytes[..self.len];
        debug_assert!(bytes.is_ascii());
        // SAFETY: every byte is written by this module from ASCII digits and ASCII constants
        // (`push_slice` is private and only given ASCII), so the bytes are valid UTF-8.
        // Skipping validation removes a tenth of the cost of a render.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn push(&mut self, b: u8) {
        self.push_slice(&[b]);
    }

    fn push_slice(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.bytes.len());
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    fn push_two(&mut self, n: i64) {
        let pair = (n.rem_euclid(100) as usize) * 2;
        self.push_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }

    /// Writes `n` with at least `width` digits (zero-padded), with a sign when negative.
    pub fn push_int(&mut self, n: i64, width: usize) {
        if n < 0 {
            self.push(b'-');
        }
        let mut digits = [b'0'; 20];
        let mut v = n.unsigned_abs();
        let mut i = digits.len();
        // Two digits at a time from a table: a render writes a dozen numbers.
        while v >= 100 {
            let pair = (v % 100) as usize * 2;
            v /= 100;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        if v >= 10 {
            let pair = v as usize * 2;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        } else {
            i -= 1;
            digits[i] = b'0' + v as u8;
        }
        let start = i.min(digits.len().saturating_sub(width));
        self.push_slice(&digits[start..]);
    }
}

/// "00" to "99", for writing two digits at once.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

impl Default for Buf {
    fn default() -> Self {
        Self::new()
    }
}

/// A moment split into its calendar parts (UTC).
struct Parts {
    y: i64,
    m: i64,
    d: i64,
    hh: i64,
    mm: i64,
    ss: i64,
    ms: i64,
}

impl Parts {
    fn of(unix_ms: i64) -> Parts {
        let (y, m, d) = civil_from_days(unix_ms.div_euclid(86_400_000));
        let ms_of_day = unix_ms.rem_euclid(86_400_000);
        Parts {
            y,
            m,
            d,
            hh: ms_of_day / 3_600_000,
            mm: ms_of_day / 60_000 % 60,
            ss: ms_of_day / 1000 % 60,
            ms: ms_of_day % 1000,
        }
    }
}

/// The separators a form uses, plain or already percent-encoded for a URL.
struct Seps {
    colon: &'static [u8],
    space: &'static [u8],
    slash: &'static [u8],
}

/// Writes `unix_ms` in `form`; with `for_url`, already percent-encoded for a URL
/// (`:` as `%3A`, space as `%20`, `/` as `%2F`), which saves escaping it afterwards.
pub fn format(unix_ms: i64, form: DateForm, for_url: bool, out: &mut Buf) {
    match form {
        DateForm::Unix => return out.push_int(unix_ms.div_euclid(1000), 1),
        DateForm::UnixMs => return out.push_int(unix_ms, 1),
        _ => {}
    }
    let p = Parts::of(unix_ms);
    if form == DateForm::Iso && (0..=9999).contains(&p.y) {
        return iso_fast(&p, for_url, out);
    }
    let seps = if for_url {
        Seps {
            colon: b"%3A",
            space: b"%20",
            slash: b"%2F",
        }
    } else {
        Seps {
            colon: b":",
            space: b" ",
            slash: b"/",
        }
    };
    match form {
        DateForm::Iso => {
            date(&p, out);
            out.push(b'T');
            clock(&p, &seps, out);
            out.push(b'.');
            out.push_int(p.ms, 3);
            out.push(b'Z');
        }
        DateForm::Date => date(&p, out),
        DateForm::DateTime => {
            date(&p, out);
            out.push_slice(seps.space);
            clock(&p, &seps, out);
        }
        DateForm::Show => {
            out.push_two(p.d);
            out.push_slice(seps.slash);
            out.push_two(p.m);
            out.push_slice(seps.slash);
            out.push_int(p.y, 4);
            out.push_slice(seps.space);
            clock(&p, &seps, out);
            out.push_slice(seps.space);
            out.push_slice(b"UTC");
        }
        DateForm::Unix | DateForm::UnixMs => unreachable!("handled above"),
    }
}

fn date(p: &Parts, out: &mut Buf) {
    out.push_int(p.y, 4);
    out.push(b'-');
    out.push_two(p.m);
    out.push(b'-');
    out.push_two(p.d);
}

fn clock(p: &Parts, seps: &Seps, out: &mut Buf) {
    out.push_two(p.hh);
    out.push_slice(seps.colon);
    out.push_two(p.mm);
    out.push_slice(seps.colon);
    out.push_two(p.ss);
}

/// The common case, ISO 8601 of years 0 to 9999, written at fixed positions in one copy.
fn iso_fast(p: &Parts, for_url: bool, out: &mut Buf) {
    let mut iso = *b"0000-00-00T00:00:00.000Z";
    let two = |n: i64| {
        let i = (n as usize) * 2;
        [DIGIT_PAIRS[i], DIGIT_PAIRS[i + 1]]
    };
    [iso[0], iso[1]] = two(p.y / 100);
    [iso[2], iso[3]] = two(p.y % 100);
    [iso[5], iso[6]] = two(p.m);
    [iso[8], iso[9]] = two(p.d);
    [iso[11], iso[12]] = two(p.hh);
    [iso[14], iso[15]] = two(p.mm);
    [iso[17], iso[18]] = two(p.ss);
    iso[20] = b'0' + (p.ms / 100) as u8;
    [iso[21], iso[22]] = two(p.ms % 100);
    if !for_url {
        return out.push_slice(&iso);
    }
    out.push_slice(&iso[..13]);
    out.push_slice(b"%3A");
    out.push_slice(&iso[14..16]);
    out.push_slice(b"%3A");
    out.push_slice(&iso[17..]);
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01, using Neri and
/// Schneider's Euclidean affine functions (multiplications and shifts) for the years a dialog
/// can have, and Hinnant's algorithm for the rest.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shifted so that every day from year -400 to beyond 9999 maps to a u32 without overflow.
    const SHIFT_DAYS: i64 = 719_468 + 146_097 * 4; // 0000-03-01 minus 1600 years of cycles
    if let Ok(n) = u32::try_from(days + SHIFT_DAYS)
        && n < 1 << 31
    {
        let n1 = 4 * n + 3;
        let c = n1 / 146_097;
        let nc = n1 % 146_097 / 4;
        let n2 = 4 * nc + 3;
        let p2 = 2_939_745u64 * u64::from(n2);
        let z = (p2 >> 32) as u32;
        let nd = (p2 as u32) / 2_939_745 / 4;
        let j = nd > 305;
        let y = 100 * c + z + u32::from(j);
        let n3 = 2141 * nd + 197_913;
        let m = (n3 >> 16) - if j { 12 } else { 0 };
        let d = (n3 & 0xffff) / 2141 + 1;
        return (i64::from(y) - 1600, i64::from(m), i64::from(d));
    }
    civil_from_days_hinnant(days)
}

/// Howard Hinnant's `civil_from_days`, valid for any day count.
fn civil_from_days_hinnant(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The digits in `b[r]` as a number, if they are all digits.
fn digits(b: &[u8], r: std::ops::Range<usize>) -> Option<i64> {
    let part = b.get(r)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(part).ok()?.parse().ok()
}

/// Unix milliseconds of `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z`, `±HH:MM` or
/// no zone (UTC); a space may stand for `T`. `None` for anything else or an impossible date.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let day_ms = parse_date(b)? * 86_400_000;
    if b.len() == 10 {
        return Some(day_ms);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (hh, mi) = (digits(b, 11..13)?, digits(b, 14..16)?);
    let (ss, ms, zone_at) = match b.get(16) {
        Some(b':') => seconds(b)?,
        _ => (0, 0, 16),
    };
    if hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    let offset_ms = zone_offset_ms(b.get(zone_at..)?)?;
    Some(day_ms + ((hh * 60 + mi) * 60 + ss) * 1000 + ms - offset_ms)
}

/// Days since 1970-01-01 of the `YYYY-MM-DD` that `b` starts with, if it is a real date.
fn parse_date(b: &[u8]) -> Option<i64> {
    let (y, m, d) = (digits(b, 0..4)?, digits(b, 5..7)?, digits(b, 8..10)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !(1..=12).contains(&m) {
        return None;
    }
    let month_days = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `:SS[.fff…]` at byte 16: seconds, milliseconds (the first three digits, padded) and where
/// the zone starts.
fn seconds(b: &[u8]) -> Option<(i64, i64, usize)> {
    let ss = digits(b, 17..19)?;
    if b.get(19) != Some(&b'.') {
        return Some((ss, 0, 19));
    }
    let start = 20;
    let mut end = start;
    while b.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    if end == start {
        return None;
    }
    let fraction = &b[start..end.min(start + 3)];
    let ms = (0..3).fold(0, |v, k| {
        v * 10 + fraction.get(k).map_or(0, |d| i64::from(d - b'0'))
    });
    Some((ss, ms, end))
}

/// `Z`, nothing (UTC, as a tracker writing "2024-03-10 17:49" most likely means) or
/// `±HH:MM`, in milliseconds east of UTC.
fn zone_offset_ms(zone: &[u8]) -> Option<i64> {
    match zone {
        b"" | b"Z" | b"z" => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            if ![*h1, *h2, *m1, *m2].iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let off = (h * 60 + m) * 60_000;
            Some(if *sign == b'+' { off } else { -off })
        }
        _ => None,
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ms: i64, form: DateForm) -> String {
        let mut b = Buf::new();
        format(ms, form, false, &mut b);
        b.as_str().to_string()
    }

    #[test]
    fn chatterfy_example_moment_in_every_form() {
        // 2024-03-10T17:49:32.806Z, the example in Chatterfy's docs.
        let ms = 1_710_092_972_806;
        assert_eq!(fmt(ms, DateForm::Iso), "2024-03-10T17:49:32.806Z");
        assert_eq!(fmt(ms, DateForm::Unix), "1710092972");
        assert_eq!(fmt(ms, DateForm::UnixMs), "1710092972806");
        assert_eq!(fmt(ms, DateForm::Date), "2024-03-10");
        assert_eq!(fmt(ms, DateForm::DateTime), "2024-03-10 17:49:32");
        assert_eq!(fmt(ms, DateForm::Show), "10/03/2024 17:49:32 UTC");
    }

    #[test]
    fn url_form_is_already_percent_encoded() {
        let mut b = Buf::new();
        format(1_710_092_972_806, DateForm::Iso, true, &mut b);
        assert_eq!(b.as_str(), "2024-03-10T17%3A49%3A32.806Z");
        let mut b = Buf::new();
        format(1_710_092_972_806, DateForm::Show, true, &mut b);
        assert_eq!(b.as_str(), "10%2F03%2F2024%2017%3A49%3A32%20UTC");
    }

    #[test]
    fn both_calendar_algorithms_agree_across_their_boundary() {
        for days in (-1_000_000i64..4_000_000).step_by(997) {
            assert_eq!(
                civil_from_days(days),
                civil_from_days_hinnant(days),
                "day {days}"
            );
        }
    }

    #[test]
    fn iso_dates_parse_back_to_what_format_wrote() {
        for ms in [0, -1, 1_710_092_972_806, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_iso(&fmt(ms, DateForm::Iso)), Some(ms), "{ms}");
        }
        assert_eq!(parse_iso("2024-03-10"), Some(1_710_028_800_000));
        assert_eq!(parse_iso("2024-03-10 17:49"), Some(1_710_092_940_000));
        assert_eq!(
            parse_iso("2024-03-10T20:49:32.8+03:00"),
            Some(1_710_092_972_800)
        );
        for bad in [
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "10/03/2024",
            "2024-03-10T25:00Z",
            "2024-03-10T10:00+3",
            "",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn moments_before_1970_floor_correctly() {
        assert_eq!(fmt(-1, DateForm::Iso), "1969-12-31T23:59:59.999Z");
        assert_eq!(fmt(-1, DateForm::Unix), "-1");
    }
}
