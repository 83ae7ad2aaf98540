//! Where bots, postback links, steps and dialogs live in the key-value store, and every
//! change to them. Keys (ASCII, no `/ \ ? #`, well under 250 bytes):
//!
//! | key | record |
//! |---|---|
//! | `bot:{botId}` | [`Bot`], with its custom field definitions and the ids of its steps and links |
//! | `bots:n`, `bots:{slot}` | the list of bots ([`Index`]) |
//! | `link:{postbackId}` | [`PostbackLink`] |
//! | `step:{botId}:{stepId}` | [`Step`] |
//! | `dlg:{botId}:{chatId}` | [`Dialog`], with its slot in its bot's list (hosts with atomics) |
//! | `dlg:{botId}:{chatId}:born` | creation election counter (hosts with atomics) |
//! | `dlg:{botId}:{chatId}:slot` | the dialog's slot in its bot's list (hosts without atomics, and dialogs created before the slot moved into the record) |
//! | `dlgs:{botId}:n`, `dlgs:{botId}:{slot}` | a bot's dialogs ([`Index`]) |
//! | `handoffs:n`, `handoffs:{slot}`, `handoffs:cursor` | step entries awaiting delivery ([`crate::handoff`]) |
//!
//! On hosts without key-value atomics a dialog's custom and tracker fields are stored one
//! per key instead (see [`crate::split`]), so concurrent postbacks writing different fields
//! never overwrite each other.

use funnelhooks_core::{Error, Kind, MAX_PAGE, Page, Timestamp, is_uuid, new_id};
use funnelhooks_store::{Cleanup, GetMany, Index, Jobs, Kv, Modified, Records, Seen};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::bots::{
    Bot, FieldDef, MAX_LINKS, MAX_STEPS, PostbackLink, Step, StepInput, StepKind, bot_of_link_id,
    guessable_link_id, new_link_id, valid_link_id,
};
use crate::clicks::{self, ClickClaimed};
use crate::handoff::{Handoffs, StepReached};
pub use crate::keys::step_key;
use crate::keys::{bot_key, dialog_key, dialog_key_template, link_key};
use crate::limits::{ADMISSION_CHECK_EVERY, DialogLimits, MAX_FIELDS};
use crate::model::{Dialog, Status};
use crate::params::Param;
use crate::split;
use crate::start::Start;
use crate::update::{BotSchema, ChangedBy, StepRef, Update, chat_id_of, parse_update, step_id_of};

// The repository's methods, a file per resource; the keys, records and errors they share are
// here.
mod bots;
mod dialogs;
pub use dialogs::MAX_SEARCHED;
mod fields;
mod links;
mod steps;

/// The store, seen as bots and dialogs. Generic over the store so that a build for a host
/// with atomics leaves out the per-part layout (`K::atomic()` is a constant there).
pub struct Repo<'a, K: Kv> {
    pub(crate) kv: &'a K,
}

/// What an updateDialog postback did.
#[derive(Debug, Clone, PartialEq)]
pub struct Postback {
    /// The dialog after the update; `None` when the postback asked for no change (then
    /// nothing was written, and no dialog created).
    pub dialog: Option<Dialog>,
    /// The validated update.
    pub update: Update,
    /// Whether the dialog was created by this postback.
    pub created: bool,
    /// The step the dialog moved into, when this postback moved it to another step (a
    /// postback repeating the step the dialog is already on moves nothing).
    pub entered_step: Option<StepRef>,
    /// When it moved into a send-webhook step: the entry to deliver, already handed off.
    pub step_entry: Option<StepReached>,
    /// When this postback gave the dialog a click id conversions wait for: to hand to the
    /// conversions component after answering.
    pub click_claimed: Option<ClickClaimed>,
}

impl Postback {
    /// The same, holding `update`.
    pub(crate) fn with_update(self, update: Update) -> Postback {
        Postback { update, ..self }
    }
}

/// What the bot engine starting a dialog did.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The dialog after the start.
    pub dialog: Dialog,
    /// Whether the start created it.
    pub created: bool,
    /// The `/start` payload, as read into tracker fields.
    pub payload: Option<crate::auto::PayloadRead>,
    /// When the start gave the dialog a click id conversions wait for: to hand to the
    /// conversions component after answering.
    pub click_claimed: Option<ClickClaimed>,
}

/// A chat's dialog record as a postback's first read found it (`None`: absent).
type SeenDialog = (i64, Option<Vec<u8>>);

/// The record of the step a postback names as its first read found it (`None`: absent).
type SeenStep = Option<Vec<u8>>;

fn bot_missing() -> Error {
    Error::unknown_bot()
}

/// No custom field under this key.
pub fn field_missing() -> Error {
    Error::not_found(
        "unknown_field",
        "this bot has no custom field with this key",
    )
    .at("key")
}

fn step_missing() -> Error {
    Error::not_found("unknown_step", "this bot has no step with this id").at("stepId")
}

/// A bot's link list is full.
fn too_many_links() -> Error {
    Error::new(
        Kind::Invalid,
        "too_many_webhooks",
        format!("a bot has at most {MAX_LINKS} postback links; revoke one first"),
    )
}

/// The same answer for a link that never existed and one that was revoked.
fn link_missing() -> Error {
    Error::not_found(
        "unknown_webhook",
        "no postback link with this id; it may have been revoked",
    )
}

impl<'a, K: Kv> Repo<'a, K> {
    /// Bots and dialogs in `kv`.
    pub fn new(kv: &'a K) -> Self {
        Self { kv }
    }

    /// The step entries awaiting delivery ([`crate::handoff`]).
    pub fn handoffs(&self) -> Handoffs<'a> {
        Handoffs::new(self.kv)
    }

    fn records(&self) -> Records<'a> {
        Records::new(self.kv)
    }

    fn bots_index(&self) -> Index<'a> {
        Index::new(self.kv, "bots".into())
    }

    fn dialogs_index(&self, bot: &str) -> Index<'a> {
        Index::new(self.kv, format!("dlgs:{bot}"))
    }
}
