//! Operation ids: how a writer learns whether its compare-and-swap landed when the host's
//! answer cannot be trusted.
//!
//! Every write made by [`crate::Records::modify`] carries a random operation id, and the record
//! remembers the ids of the writes of the last [`REMEMBER_SECS`] seconds in a header line
//! before its JSON, grouped by the second they were written in, newest first:
//! `ops:1733000001.1f2e3d4c5b6a,0a1b2c3d4e5f;1733000000.9a8b7c6d5e4f\n{...}`.
//!
//! After a swap that reported failure (Spin's Redis store reports failure for every swap,
//! applied or not) or failed with an error (a remote store timing out after committing), the
//! writer reads the record again: its id there means the change landed; its absence means it
//! did not, and the change is applied again to what is there now. A writer must find its id
//! when it reads right after its swap, however many others write the same record meanwhile
//! (200 postbacks to one chat at once): so a record keeps the ids of [`REMEMBER_SECS`]
//! seconds, up to [`MAX_REMEMBERED`] of them. A JSON text never starts with `o`, so records
//! without the header (written by a plain `put`, or before this header existed) read as they
//! always did.

use std::sync::atomic::{AtomicU64, Ordering};

/// How long a record remembers a write: far longer than any writer takes between its swap
/// and its check, however loaded the host.
pub const REMEMBER_SECS: u64 = 60;
/// Most ids a record remembers at once, whatever their age: a bound on the header (9 bytes
/// an id) under a storm of writes to one record. Smaller bounds were tried for the speed of
/// one hot chat (every byte of the header is read and written again by each write) and
/// failed: with 64, and then with 256, a writer paused on busy cores while 15 others kept
/// writing the same record did not find its id and applied its change twice (16 threads x 50
/// increments on the faulty and the Redis store counted 801; with 64 in 7 runs of 30 under
/// load, with 256 in 1 of 15 while a build ran). Correct first.
pub const MAX_REMEMBERED: usize = 1_000;

const PREFIX: &[u8] = b"ops:";
/// Characters in an id: 48 random bits, six to a character (8 bytes where hex took 12: every
/// remembered id is read and written again by each write of a busy record).
const ID_LEN: usize = 8;
/// The id alphabet (URL-safe base64): no `,` `;` `.` or newline, which the header uses.
const ID_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// One write's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId([u8; ID_LEN]);

impl OpId {
    /// A fresh random id.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // RandomState is keyed from the host's random source (per process, per instance on
        // Wasm); the counter and the clock make ids of one instance differ.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(now_nanos());
        let bits = h.finish();
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

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Splits stored bytes into the header (empty without one) and the record.
fn split(bytes: &[u8]) -> (&[u8], &[u8]) {
    if !bytes.starts_with(PREFIX) {
        return (&[], bytes);
    }
    match bytes.iter().position(|b| *b == b'\n') {
        Some(nl) => (&bytes[PREFIX.len()..nl], &bytes[nl + 1..]),
        None => (&[], bytes),
    }
}

/// The header's groups: (second, ids), newest first.
fn groups(header: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    header.split(|b| *b == b';').filter_map(|group| {
        let dot = group.iter().position(|b| *b == b'.')?;
        let second = std::str::from_utf8(&group[..dot]).ok()?.parse().ok()?;
        Some((second, &group[dot + 1..]))
    })
}

fn ids(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|b| *b == b',').filter(|id| id.len() == ID_LEN)
}

/// The record without its operation header.
pub fn strip_ops(bytes: &[u8]) -> &[u8] {
    split(bytes).1
}

/// Whether the stored bytes remember `op`.
pub(crate) fn remembers(bytes: &[u8], op: OpId) -> bool {
    groups(split(bytes).0).any(|(_, list)| ids(list).any(|id| id == op.as_bytes()))
}

/// `record` with a header remembering `op` (written now) and the ids of `previous` that are
/// young enough.
pub(crate) fn with_op(previous: &[u8], op: OpId, record: &[u8]) -> Vec<u8> {
    with_op_at(previous, op, record, (now_nanos() / 1_000_000_000) as u64)
}

fn with_op_at(previous: &[u8], op: OpId, record: &[u8], now: u64) -> Vec<u8> {
    let header = split(previous).0;
    let mut out = Vec::with_capacity(PREFIX.len() + header.len() + 32 + record.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(now.to_string().as_bytes());
    out.push(b'.');
    out.extend_from_slice(op.as_bytes());
    let mut kept = 1;
    let mut in_group = now;
    for (second, list) in groups(header) {
        // Older than the memory (or from a clock far ahead): forgotten.
        if second + REMEMBER_SECS < now || second > now + REMEMBER_SECS {
            continue;
        }
        for id in ids(list) {
            if kept >= MAX_REMEMBERED {
                break;
            }
            if id == op.as_bytes() {
                continue;
            }
            if second == in_group {
                out.push(b',');
            } else {
                out.push(b';');
                out.extend_from_slice(second.to_string().as_bytes());
                out.push(b'.');
                in_group = second;
            }
            out.extend_from_slice(id);
            kept += 1;
        }
    }
    out.push(b'\n');
    out.extend_from_slice(record);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_733_000_000;

    #[test]
    fn a_record_remembers_the_writes_of_the_last_seconds() {
        let mut bytes = b"{\"a\":1}".to_vec();
        let ops: Vec<OpId> = (0..MAX_REMEMBERED).map(|_| OpId::new()).collect();
        for (i, op) in ops.iter().enumerate() {
            bytes = with_op_at(&bytes, *op, b"{\"a\":1}", T + i as u64 / 64);
        }
        assert_eq!(strip_ops(&bytes), b"{\"a\":1}");
        assert!(ops.iter().all(|op| remembers(&bytes, *op)));
        // A write later forgets all but itself and what is young enough.
        let late = OpId::new();
        bytes = with_op_at(&bytes, late, b"{}", T + 3 + REMEMBER_SECS);
        assert!(remembers(&bytes, late));
        assert!(remembers(&bytes, ops[MAX_REMEMBERED - 1]) && !remembers(&bytes, ops[0]));
        bytes = with_op_at(&bytes, OpId::new(), b"{}", T + 1000);
        assert!(!remembers(&bytes, late));
        assert_eq!(strip_ops(&bytes), b"{}");
    }

    #[test]
    fn the_header_stays_bounded_under_a_storm() {
        let mut bytes = b"{}".to_vec();
        for _ in 0..MAX_REMEMBERED + 500 {
            bytes = with_op_at(&bytes, OpId::new(), b"{}", T);
        }
        let header = split(&bytes).0;
        assert_eq!(
            groups(header).map(|(_, l)| ids(l).count()).sum::<usize>(),
            MAX_REMEMBERED
        );
    }

    #[test]
    fn records_without_a_header_read_as_they_are() {
        assert_eq!(strip_ops(b"[1,2]"), b"[1,2]");
        assert_eq!(strip_ops(b""), b"");
        assert!(!remembers(b"{}", OpId::new()));
    }

    #[test]
    fn ids_differ() {
        let a: Vec<OpId> = (0..1000).map(|_| OpId::new()).collect();
        for (i, x) in a.iter().enumerate() {
            assert!(!a[i + 1..].contains(x));
        }
    }
}
