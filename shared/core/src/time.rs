//! Moments: Unix milliseconds, written as ISO 8601 UTC with milliseconds, as Chatterfy writes
//! them (`2024-03-10T17:49:32.806Z`).

use funnelhooks_template::datetime::{Buf, DateForm, format, parse_iso};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A moment in Unix milliseconds, written as `2024-03-10T17:49:32.806Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The ISO 8601 form.
    pub fn iso(self) -> String {
        self.iso_buf().as_str().to_string()
    }

    /// The ISO 8601 form, in a buffer on the stack.
    fn iso_buf(self) -> Buf {
        let mut buf = Buf::new();
        format(self.0, DateForm::Iso, false, &mut buf);
        buf
    }

    /// Unix seconds.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The moment `ms` milliseconds later (saturating).
    pub fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Reads an ISO 8601 time.
    pub fn parse_iso(text: &str) -> Option<Timestamp> {
        parse_iso(text).map(Timestamp)
    }
}

// Both ways without a String: every record carries moments, and each read or write of one
// allocated and copied it.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.iso_buf().as_str())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an ISO 8601 time")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                parse_iso(text)
                    .map(Timestamp)
                    .ok_or_else(|| E::custom(format!("{text:?} is not an ISO 8601 time")))
            }
        }
        d.deserialize_str(Visit)
    }
}
