//! The audit trail: every change made through the management API (create, update, delete,
//! rotate, replay, recover, test-send), with when, which key, what, on what, and for updates
//! which members the request set (their names, never their values). The newest
//! [`AUDIT_KEEP`] entries are kept; each new one past that removes the oldest.
//!
//! Keys: the index `audit` holds each entry's JSON in its slot.

use std::collections::BTreeMap;

use funnelhooks_core::text::shorten;
use funnelhooks_core::{Error, Timestamp};
use funnelhooks_store::{Index, Kv, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// How many entries the trail keeps (an installation's whole trail: 3 MB or so, and never
/// more than 40 MB: an entry is bounded below).
pub const AUDIT_KEEP: u64 = 10_000;
/// Longest path an entry keeps, in bytes (a path can be padded with empty segments).
pub const MAX_AUDIT_PATH: usize = 512;
/// Most body member names an entry keeps, and the longest.
pub const MAX_AUDIT_FIELDS: usize = 32;
/// Longest id or name an entry keeps, in characters.
pub const MAX_AUDIT_TEXT: usize = 128;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// When it was made.
    pub at: Timestamp,
    /// The key that made it (`root`: the admin token).
    pub key_id: String,
    /// The key's name then.
    pub key_name: String,
    /// The operation (`putStep`, `replayDelivery`, `rotateApiKey`: the OpenAPI operation id).
    pub action: String,
    /// The method and path called (no query: a query may hold a key).
    pub method: String,
    /// The path called.
    pub path: String,
    /// What it acted on: the path's ids by name (`botId`, `stepId`, ...).
    pub target: BTreeMap<String, String>,
    /// The members the request body set, by name; never their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The status it was answered with.
    pub status: u16,
}

/// The members a JSON body sets (top level, sorted); none for a body that is not an object.
pub fn fields_of(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `text` cut to `max` bytes at a character boundary, `…` marking the cut.
fn cut(text: &str, max: usize) -> String {
    let mut text = text.to_string();
    shorten(&mut text, max);
    text
}

impl AuditEntry {
    /// The entry within its bounds: a path cut at [`MAX_AUDIT_PATH`] bytes, at most
    /// [`MAX_AUDIT_FIELDS`] member names, ids and names cut at [`MAX_AUDIT_TEXT`], the method
    /// in capitals (the router takes any case). An entry is a few KB at most, whatever the
    /// request.
    pub fn bounded(mut self) -> AuditEntry {
        let text = |t: &str| cut(t, MAX_AUDIT_TEXT);
        self.path = cut(&self.path, MAX_AUDIT_PATH);
        self.method = text(&self.method).to_ascii_uppercase();
        self.key_name = text(&self.key_name);
        let more = self.fields.len().saturating_sub(MAX_AUDIT_FIELDS);
        self.fields.truncate(MAX_AUDIT_FIELDS);
        for field in &mut self.fields {
            *field = text(field);
        }
        if more > 0 {
            self.fields.push(format!("… {more} more"));
        }
        // The names are the route table's and ours; the values came with the request.
        for value in self.target.values_mut() {
            *value = text(value);
        }
        self
    }
}

/// The audit trail in a key-value store.
pub struct Audit<'a> {
    kv: &'a dyn Kv,
}

/// One page of the trail, newest first.
pub struct AuditPage {
    /// The entries, newest first, each with its position.
    pub items: Vec<(u64, AuditEntry)>,
    /// Where the next (older) page starts, if there may be one.
    pub next: Option<u64>,
}

impl<'a> Audit<'a> {
    /// The trail in `kv`.
    pub fn new(kv: &'a dyn Kv) -> Self {
        Self { kv }
    }

    fn index(&self) -> Index<'a> {
        Index::new(self.kv, "audit".into())
    }

    /// Appends `entry`, dropping the oldest past [`AUDIT_KEEP`].
    pub fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let text = serde_json::to_string(entry).unwrap_or_default();
        let index = self.index();
        let slot = index.add(&text)?;
        if slot > AUDIT_KEEP {
            index.remove(slot - AUDIT_KEEP)?;
        }
        Ok(())
    }

    /// Up to `limit` entries older than position `before` (`None`: from the newest) that
    /// `keep` keeps, newest first.
    pub fn page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<AuditPage, Error> {
        let page = self.index().page_newest_first(before, limit)?;
        let items = page
            .slots
            .into_iter()
            .zip(page.items)
            .filter_map(|(slot, text)| {
                serde_json::from_str::<AuditEntry>(&text)
                    .ok()
                    .map(|e| (slot, e))
            })
            .filter(|(_, e)| keep(e))
            .collect();
        Ok(AuditPage {
            items,
            next: page.next,
        })
    }
}
