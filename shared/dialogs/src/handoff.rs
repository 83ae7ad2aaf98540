//! Step entries handed over to the send-webhook component. A postback that may move a dialog
//! into a send-webhook step writes a handoff *before* it changes the dialog, with the id the
//! step's delivery will have; the dialog change records that id when the move happens
//! ([`crate::Dialog::step_deliveries`]), in the same write. After answering, update-dialog
//! asks send-webhook (by Spin's local chaining) to deliver; send-webhook creates the delivery
//! under that id (so creating it twice creates it once) and makes its first attempt.
//!
//! The handoff is the step entry's JSON put straight into the delivery outbox, due in the
//! minute after [`HANDOFF_GRACE_MS`] has passed (`due:{minute}:{slot}`, see
//! [`funnelhooks_store::due_in_minute`]): it stands for the delivery's own outbox entry, so
//! the delivery writes none, and nothing is removed when the chain did its work (the delivery
//! keeps the entry's key, and retention drops both together). When the sweep reaches it, a
//! delivery that was made and attempted is left alone; one made but never attempted is sent;
//! one the chain never got to (a crash, an overloaded host, a store failure) is made then, if
//! the dialog recorded the entry, and sent a lease later; the entry is dropped if the move
//! never landed. So no step entry is lost, and none is sent twice. Two writes (a slot, its
//! entry) per handoff, where a list of its own and the delivery's outbox entry cost four
//! before (#30).
//!
//! Before #30 handoffs had a list of their own: `handoffs:n` / `handoffs:{slot}` (an
//! [`Index`] of [`StepEntry`] JSON, oldest first) and `handoffs:cursor` (every slot up to it
//! is handled); the sweep still delivers what an older version left there.

use funnelhooks_store::{Index, Kv, Records};
use serde::{Deserialize, Serialize};

use funnelhooks_core::{Error, Timestamp};

/// How long a handoff may wait for its chained delivery before the sweep takes it over.
pub const HANDOFF_GRACE_MS: i64 = 60_000;

/// Most slots one call of [`Repo::stale_handoffs`] reads.
const MAX_SLOTS_PER_CALL: u64 = 1_000;

const CURSOR: &str = "handoffs:cursor";

/// A dialog that entered a send-webhook step, waiting for its delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepEntry {
    /// The id its delivery gets (empty in handoffs written before entries had one). First:
    /// the outbox reads it from the entry's text without a JSON parser.
    #[serde(default)]
    pub id: String,
    /// The bot.
    pub bot_id: String,
    /// The dialog's chat.
    pub chat_id: i64,
    /// The step entered.
    pub step_id: String,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Custom fields as the entry left them, over the dialog's when its webhook is rendered:
    /// a conversion's own payout, not the one a later conversion wrote before the delivery.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, crate::model::FieldValue>,
}

impl StepEntry {
    /// The keys delivering the entry reads first: its bot, its step and its dialog (as stored
    /// on hosts with atomics), for a store that reads them in one round trip.
    pub fn keys_read(&self) -> [String; 3] {
        [
            crate::keys::bot_key(&self.bot_id),
            crate::keys::step_key(&self.bot_id, &self.step_id),
            crate::keys::dialog_key(&self.bot_id, self.chat_id),
        ]
    }
}

/// What update-dialog sends the send-webhook component (by Spin's local chaining) when a
/// postback moved a dialog into a send-webhook step: the entry and its handoff's slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReached {
    /// The entry.
    #[serde(flatten)]
    pub entry: StepEntry,
    /// Its slot in the handoff list of versions before #30, which is cleared once its
    /// delivery exists.
    pub handoff: Option<u64>,
    /// The outbox key of its handoff, which stands for its delivery's own outbox entry (the
    /// delivery writes none) and is dropped with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_outbox: Option<String>,
    /// The store refused the postback's `get-many` (Spin's Redis store does): the delivery
    /// reads key by key without asking again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reads_one_by_one: bool,
}

/// The step entries awaiting delivery, in the store (`Repo::handoffs`).
pub struct Handoffs<'a> {
    kv: &'a dyn Kv,
}

impl<'a> Handoffs<'a> {
    /// The handoffs in `kv`.
    pub fn new(kv: &'a dyn Kv) -> Self {
        Self { kv }
    }

    fn handoffs(&self) -> Index<'a> {
        Index::new(self.kv, "handoffs".into())
    }

    /// Records a step entry in the handoff list as versions before #30 did; returns its slot.
    pub fn hand_off(&self, entry: &StepEntry) -> Result<u64, Error> {
        let text = serde_json::to_string(entry).unwrap_or_default();
        Ok(self.handoffs().add(&text)?)
    }

    /// A new entry of chat `chat_id` into step `step_id`, with its delivery's id, handed off.
    pub(crate) fn hand_off_entry(
        &self,
        bot_id: &str,
        chat_id: i64,
        step_id: &str,
        fields: std::collections::BTreeMap<String, crate::model::FieldValue>,
        now: Timestamp,
    ) -> Result<StepReached, Error> {
        let entry = StepEntry {
            id: funnelhooks_core::new_id(),
            bot_id: bot_id.to_string(),
            chat_id,
            step_id: step_id.to_string(),
            at_ms: now.0,
            fields,
        };
        // The minute after the grace period: the sweep never takes an entry the chain may
        // still be delivering.
        let minute = (now.0 + HANDOFF_GRACE_MS).div_euclid(60_000) + 1;
        let text = serde_json::to_string(&entry).unwrap_or_default();
        let due = funnelhooks_store::due_in_minute(self.kv, minute);
        let slot = due.add(&text)?;
        Ok(StepReached {
            entry,
            handoff: None,
            in_outbox: Some(due.slot_key(slot)),
            reads_one_by_one: false,
        })
    }

    /// The step entry's delivery is in the log: the handoff is done.
    pub fn handed_over(&self, slot: u64) -> Result<(), Error> {
        Ok(self.handoffs().remove(slot)?)
    }

    /// Up to `limit` handoffs older than the grace period, oldest first, with their slots.
    /// Moves the cursor past the slots already handled, so each call reads only what is new.
    pub fn stale_handoffs(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(u64, StepEntry)>, Error> {
        let index = self.handoffs();
        let last = index.last_slot()?;
        let cursor: u64 = Records::new(self.kv).get(CURSOR)?.unwrap_or(0);
        let (mut handled_to, mut slot, mut stale) = (cursor, cursor, Vec::new());
        while slot < last && stale.len() < limit && slot - cursor < MAX_SLOTS_PER_CALL {
            slot += 1;
            let Some(text) = index.get(slot)? else {
                if stale.is_empty() {
                    handled_to = slot;
                }
                continue;
            };
            match serde_json::from_str::<StepEntry>(&text) {
                // Entries are written in time order: the rest are younger still.
                Ok(entry) if entry.at_ms > now.0 - HANDOFF_GRACE_MS => break,
                Ok(entry) => stale.push((slot, entry)),
                // Unreadable: nothing can deliver it; keep the sweep moving.
                Err(_) => index.remove(slot)?,
            }
        }
        if handled_to > cursor {
            Records::new(self.kv).put(CURSOR, &handled_to)?;
        }
        Ok(stale)
    }
}
