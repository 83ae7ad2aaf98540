//! Operation ids: how a writer learns whether its compare-and-swap landed when the host's
//! answer cannot be trusted.
//!
//! Every write made by [`crate::Records::modify`] gives the record its next version number and
//! carries a random operation id. The record keeps, in a header line before its JSON, its
//! version and the ids of its latest versions, newest first, grouped by the second they were
//! written in: `ops:v41;1733000001.1f2e3d4c,0a1b2c3d;1733000000.9a8b7c6d\n{...}` says version
//! 41 was written by `1f2e3d4c`, 40 by `0a1b2c3d` and 39 by `9a8b7c6d`.
//!
//! After a swap that reported failure (Spin's Redis store reports failure for every swap,
//! applied or not) or failed with an error (a remote store timing out after committing), the
//! writer reads the record again and looks at exactly one place: the id of the version its
//! write would have made. Its own id there means the change landed; another id, or a version
//! not reached, means it did not. Because only that one place is compared, the answer does
//! not depend on how many ids the record keeps, and the header can stay small: a record keeps
//! the ids of [`REMEMBER_SECS`] seconds, at most [`MAX_REMEMBERED`] of them (or
//! [`MAX_REMEMBERED_REPEATABLE`]). A writer paused for longer than that many writes of the same
//! record finds its version gone from the header and knows it cannot tell
//! ([`Landed::Unknown`]); it never guesses (see [`crate::Records::modify`]).
//!
//! A record without a versioned header (written by a plain `put`, or by an older release)
//! reads as it always did; its next write starts from a version derived from its bytes, the
//! same for every writer that read it, so versions of a record that was replaced by a plain
//! write do not meet the old ones. A JSON text never starts
//! with `o`, so the header is never confused with a record.

use std::sync::atomic::{AtomicU64, Ordering};

/// How long a record remembers a write, at most.
pub const REMEMBER_SECS: u64 = 60;
/// Most ids a record remembers at once, for records whose changes must not be applied twice
/// (counters, lists): a paused writer past this many writes of the record fails as unsure, so
/// it is large; these records are not written hundreds of times a second.
pub const MAX_REMEMBERED: usize = 1_000;
/// Most ids a record of [`crate::Records::repeatable`] remembers (a dialog): every byte of the
/// header is read and written again by each write of a busy record (one hot chat), so this
/// is small, and a writer paused past it applies its change again, which such a change
/// allows. With 1,000 ids (9 KB of header) one hot chat ran at 0.60 of Spin's key-value
/// floor on disk, with 64 at 0.72-0.76; 16 (under 200 bytes) take a postback 7 % fewer Wasm
/// instructions than 64 and served 4.6 % more in memory (four alternating wrk rounds).
pub const MAX_REMEMBERED_REPEATABLE: usize = 16;

const PREFIX: &[u8] = b"ops:v";
/// Characters in an id: 48 random bits, six to a character.
const ID_LEN: usize = 8;
/// The id alphabet (URL-safe base64): no `,` `;` `.` or newline, which the header uses.
const ID_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// A record's first version is below this, derived from the record ([`first_version`]), so
/// versions restarted by a plain write do not repeat the old ones.
const VERSION_START_BOUND: u64 = 1 << 40;

/// One write's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId([u8; ID_LEN]);

impl OpId {
    /// A fresh random id.
    pub fn new() -> Self {
        let bits = random_bits();
        let mut out = [0u8; ID_LEN];
        for (i, b) in out.iter_mut().enumerate() {
            *b = ID_ALPHABET[((bits >> (6 * i)) & 0x3f) as usize];
        }
        OpId(out)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Default for OpId {
    fn default() -> Self {
        Self::new()
    }
}

/// 64 random bits: RandomState is keyed from the host's random source (per process, per
/// instance on Wasm); the counter and the clock make values of one instance differ.
pub(crate) fn random_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(now_nanos());
    h.finish()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The version after a record without a versioned header: derived from its bytes, so every
/// writer that read the same record aims at the same version (their writes are compared like
/// any others), while a record a plain write replaced starts elsewhere.
fn first_version(record: &[u8]) -> u64 {
    // FNV-1a: stable, and spread enough for telling records apart.
    let hash = record.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % VERSION_START_BOUND + 1
}

/// A versioned header: the record's version and the groups after it.
struct Header<'a> {
    version: u64,
    groups: &'a [u8],
}

/// Splits stored bytes into the versioned header (if any) and the record. An unversioned
/// header of an older release is dropped: its ids name no version.
fn split(bytes: &[u8]) -> (Option<Header<'_>>, &[u8]) {
    if !bytes.starts_with(b"ops:") {
        return (None, bytes);
    }
    let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
        return (None, bytes);
    };
    let header = bytes[..nl].strip_prefix(PREFIX).and_then(|rest| {
        let end = rest.iter().position(|b| *b == b';').unwrap_or(rest.len());
        let version = parse_number(&rest[..end])?;
        Some(Header {
            version,
            groups: rest.get(end + 1..).unwrap_or_default(),
        })
    });
    (header, &bytes[nl + 1..])
}

/// The header's groups: (second, ids), newest first.
fn groups(groups: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    groups.split(|b| *b == b';').map_while(|group| {
        let dot = group.iter().position(|b| *b == b'.')?;
        let second = parse_number(&group[..dot])?;
        Some((second, &group[dot + 1..]))
    })
}

/// A group's ids, every one counted: the i-th id of the header names version - i.
fn ids(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|b| *b == b',')
}

/// The first ids of a group's `list`, at most `room` of them: (their bytes, how many, whether
/// that is the whole list).
fn first_ids(list: &[u8], room: usize) -> (&[u8], usize, bool) {
    // Every id this crate writes has ID_LEN characters, so the list's length tells how many
    // it holds without reading it.
    let stride = ID_LEN + 1;
    if (list.len() + 1).is_multiple_of(stride) {
        let count = (list.len() + 1) / stride;
        let taken = count.min(room);
        return (&list[..taken * stride - 1], taken, taken == count);
    }
    let (mut end, mut taken) = (0, 0);
    for id in ids(list) {
        if taken == room {
            return (&list[..end], taken, false);
        }
        end += id.len() + usize::from(taken > 0);
        taken += 1;
    }
    (list, taken, true)
}

/// A decimal number as the header writes it: digits only, no sign, no overflow.
fn parse_number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        let d = d.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Writes `n` in decimal without the formatting machinery (a third of a write's header work).
fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The record without its operation header.
pub fn strip_ops(bytes: &[u8]) -> &[u8] {
    split(bytes).1
}

/// Whether a write landed, as the record read after it tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landed {
    /// The version the write made is there, with the write's id.
    Yes,
    /// Another write made that version, or the record has not reached it: this write did not
    /// land.
    No,
    /// The record has moved on so far that it no longer remembers who made that version.
    Unknown,
}

/// Whether the write `op` that made (or would have made) `version` landed, judged from the
/// stored `bytes` read after it.
pub(crate) fn landed(bytes: &[u8], op: OpId, version: u64) -> Landed {
    let Some(header) = split(bytes).0 else {
        // Replaced by a plain write (which keeps no versions): nothing of this write is there.
        return Landed::No;
    };
    let Some(mut back) = header.version.checked_sub(version) else {
        return Landed::No;
    };
    for (_, list) in groups(header.groups) {
        for id in ids(list) {
            if back == 0 {
                return if id == op.as_bytes() {
                    Landed::Yes
                } else {
                    Landed::No
                };
            }
            back -= 1;
        }
    }
    Landed::Unknown
}

/// `record` as the next version after `previous`, made by `op` (written now), with the ids of
/// the latest versions before it that are young enough, `keep` ids in all at most. Returns
/// the bytes and their version.
pub(crate) fn with_op(previous: &[u8], op: OpId, record: &[u8], keep: usize) -> (Vec<u8>, u64) {
    with_op_at(
        previous,
        op,
        record,
        keep,
        (now_nanos() / 1_000_000_000) as u64,
    )
}

fn with_op_at(previous: &[u8], op: OpId, record: &[u8], keep: usize, now: u64) -> (Vec<u8>, u64) {
    let (header, old_record) = split(previous);
    let version = match &header {
        Some(h) => h.version.wrapping_add(1),
        None => first_version(old_record),
    };
    let older = header.map_or(&[][..], |h| h.groups);
    let mut out = Vec::with_capacity(32 + older.len().min(keep * 9) + record.len());
    out.extend_from_slice(PREFIX);
    push_number(&mut out, version);
    out.push(b';');
    push_number(&mut out, now);
    out.push(b'.');
    out.extend_from_slice(op.as_bytes());
    let mut kept = 1;
    let mut in_group = now;
    // Ids are kept newest first without a gap, so the i-th one always names version - i:
    // the first id too old (or from a clock far ahead) ends the list. Groups are copied
    // whole where they fit: this runs on every write, inside the compare-and-swap.
    for (second, list) in groups(older) {
        if kept >= keep || second + REMEMBER_SECS < now || second > now + REMEMBER_SECS {
            break;
        }
        let (list, count, whole) = first_ids(list, keep - kept);
        if second == in_group {
            out.push(b',');
        } else {
            out.push(b';');
            push_number(&mut out, second);
            out.push(b'.');
            in_group = second;
        }
        out.extend_from_slice(list);
        kept += count;
        if !whole {
            break;
        }
    }
    out.push(b'\n');
    out.extend_from_slice(record);
    (out, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_733_000_000;
    const KEEP: usize = MAX_REMEMBERED_REPEATABLE;

    /// Writes `n` versions by fresh ids, one second apart every `per_second` writes.
    fn write_many(mut bytes: Vec<u8>, n: usize, per_second: usize) -> (Vec<u8>, Vec<(OpId, u64)>) {
        let mut made = Vec::new();
        for i in 0..n {
            let op = OpId::new();
            let (next, version) =
                with_op_at(&bytes, op, b"{\"a\":1}", KEEP, T + (i / per_second) as u64);
            bytes = next;
            made.push((op, version));
        }
        (bytes, made)
    }

    #[test]
    fn each_write_makes_the_next_version_and_its_writer_is_known_by_it() {
        let (bytes, made) = write_many(b"{\"a\":1}".to_vec(), KEEP, 10);
        assert_eq!(strip_ops(&bytes), b"{\"a\":1}");
        for pair in made.windows(2) {
            assert_eq!(pair[1].1, pair[0].1 + 1);
        }
        for (op, version) in &made {
            assert_eq!(landed(&bytes, *op, *version), Landed::Yes);
            // Another writer that aimed at the same version lost.
            assert_eq!(landed(&bytes, OpId::new(), *version), Landed::No);
        }
        // A version not reached yet was not made by anyone.
        let (last_op, last) = made[made.len() - 1];
        assert_eq!(landed(&bytes, last_op, last + 1), Landed::No);
    }

    #[test]
    fn a_version_older_than_the_header_is_unknown_never_guessed() {
        let (bytes, made) = write_many(b"{}".to_vec(), KEEP + 10, 1_000);
        let (first_op, first) = made[0];
        assert_eq!(landed(&bytes, first_op, first), Landed::Unknown);
        assert_eq!(landed(&bytes, OpId::new(), first), Landed::Unknown);
        let (op, version) = made[10];
        assert_eq!(landed(&bytes, op, version), Landed::Yes);
    }

    #[test]
    fn the_header_forgets_what_is_older_than_a_minute_and_stays_bounded() {
        let (bytes, made) = write_many(b"{}".to_vec(), KEEP * 3, 10);
        let kept: usize = groups(split(&bytes).0.unwrap().groups)
            .map(|(_, l)| ids(l).count())
            .sum();
        assert_eq!(kept, KEEP);
        let (op, version) = *made.last().unwrap();
        let (later, next) = with_op_at(&bytes, OpId::new(), b"{}", KEEP, T + 10_000);
        assert_eq!(next, version + 1);
        assert_eq!(landed(&later, op, version), Landed::Unknown);
    }

    #[test]
    fn records_without_a_versioned_header_read_as_they_are() {
        assert_eq!(strip_ops(b"[1,2]"), b"[1,2]");
        assert_eq!(strip_ops(b""), b"");
        // An older release's header: dropped, its record read.
        assert_eq!(strip_ops(b"ops:1733000000.AAAAAAAA\n{}"), b"{}");
        assert_eq!(landed(b"{}", OpId::new(), 7), Landed::No);
        let (bytes, v) = with_op_at(b"ops:1733000000.AAAAAAAA\n{}", OpId::new(), b"{}", KEEP, T);
        assert!((1..=VERSION_START_BOUND).contains(&v));
        assert_eq!(landed(&bytes, OpId::new(), v), Landed::No);
    }

    #[test]
    fn writers_of_the_same_record_without_a_header_aim_at_the_same_version() {
        let (a, b) = (OpId::new(), OpId::new());
        let (won, va) = with_op_at(b"{}", a, b"{\"x\":1}", KEEP, T);
        let (_, vb) = with_op_at(b"{}", b, b"{\"y\":1}", KEEP, T);
        assert_eq!(va, vb);
        // b's swap lost to a's: b learns so, whatever the numbers.
        assert_eq!(landed(&won, b, vb), Landed::No);
        assert_eq!(landed(&won, a, va), Landed::Yes);
        // A record replaced by a plain write with other content starts elsewhere.
        assert_ne!(with_op_at(b"{\"z\":2}", a, b"{}", KEEP, T).1, va);
    }

    #[test]
    fn ids_of_another_length_are_kept_one_by_one() {
        let previous = format!("ops:v5;{T}.abc,defghijkl,x;{}.AAAAAAAA\n{{}}", T - 1);
        let op = OpId::new();
        let id = std::str::from_utf8(op.as_bytes()).unwrap();
        let (three, version) = with_op_at(previous.as_bytes(), op, b"{}", 3, T);
        assert_eq!(version, 6);
        assert_eq!(
            three,
            format!("ops:v6;{T}.{id},abc,defghijkl\n{{}}").into_bytes()
        );
        let (all, _) = with_op_at(previous.as_bytes(), op, b"{}", 9, T);
        let kept = format!("ops:v6;{T}.{id},abc,defghijkl,x;{}.AAAAAAAA\n{{}}", T - 1);
        assert_eq!(all, kept.into_bytes());
    }

    #[test]
    fn ids_differ() {
        let a: Vec<OpId> = (0..1000).map(|_| OpId::new()).collect();
        for (i, x) in a.iter().enumerate() {
            assert!(!a[i + 1..].contains(x));
        }
    }
}
