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
use crate::model::Dialog;
use crate::params::Param;
use crate::split;
use crate::start::Start;
use crate::update::{BotSchema, StepRef, Update, chat_id_of, parse_update};

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

    // ---- bots

    /// Creates a bot named `name`.
    pub fn create_bot(&self, name: String, now: Timestamp) -> Result<Bot, Error> {
        let id = new_id();
        let slot = self.bots_index().add(&id)?;
        let bot = Bot {
            id,
            name,
            fields: Default::default(),
            steps: Vec::new(),
            links: Vec::new(),
            created_at: now,
            updated_at: now,
            slot,
            admission: Default::default(),
            auto_actions: None,
            conversion_links: Vec::new(),
        };
        self.records().put(&bot_key(&bot.id), &bot)?;
        Ok(bot)
    }

    /// Whether bot `id` exists (one read, the record not parsed: an API key's scope check).
    pub fn bot_exists(&self, id: &str) -> Result<bool, Error> {
        Ok(is_uuid(id) && self.kv.get(&bot_key(id))?.is_some())
    }

    /// The bot, or a 404.
    pub fn bot(&self, id: &str) -> Result<Bot, Error> {
        if !is_uuid(id) {
            return Err(bot_missing());
        }
        self.records().get(&bot_key(id))?.ok_or_else(bot_missing)
    }

    /// A page of bots, oldest first.
    pub fn bots(&self, after: u64, limit: usize) -> Result<Page<Bot>, Error> {
        let page = self.bots_index().page(after, limit.min(MAX_PAGE))?;
        let mut items = Vec::with_capacity(page.items.len());
        for id in page.items {
            if let Some(bot) = self.records().get(&bot_key(&id))? {
                items.push(bot);
            }
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Changes the bot with `change` (retried on concurrent writes), or a 404.
    pub fn modify_bot<R>(
        &self,
        id: &str,
        now: Timestamp,
        mut change: impl FnMut(&mut Bot) -> Result<R, Error>,
    ) -> Result<R, Error> {
        if !is_uuid(id) {
            return Err(bot_missing());
        }
        self.records()
            .modify(&bot_key(id), |bot: &mut Bot| {
                let r = change(bot)?;
                bot.updated_at = now;
                Ok::<_, Error>(r)
            })?
            .ok_or_else(bot_missing)
    }

    /// Deletes the bot and everything that belongs to it: links first (so its postbacks stop
    /// at once), then steps, dialogs and the bot.
    pub fn delete_bot(&self, id: &str) -> Result<(), Error> {
        let bot = self.bot(id)?;
        // The links, steps and dialogs go in the background (the retry sweep runs cleanup
        // jobs), a bounded stretch at a time: the job is queued first, so whatever fails
        // after it, nothing is left behind; the bot is gone for every reader at once.
        let mut extra: Vec<String> = bot.links.iter().map(|l| link_key(l)).collect();
        extra.extend(bot.links.iter().map(|l| format!("{}:born", link_key(l))));
        extra.extend(bot.steps.iter().map(|s| step_key(id, s)));
        // Each step's delivery state and rate limit, and its place among what needs
        // attention (a deleted bot needs none).
        extra.extend(
            bot.steps
                .iter()
                .flat_map(|s| funnelhooks_core::senders::keys("step", id, s)),
        );
        funnelhooks_core::senders::unlist(self.kv, "step", id)?;
        // Its conversion links, click ids and waiting conversions.
        let (conversion_keys, conversion_jobs) = clicks::cleanups(&bot);
        extra.extend(conversion_keys);
        for job in &conversion_jobs {
            Jobs::new(self.kv).add(job)?;
        }
        Jobs::new(self.kv).add(&Cleanup {
            what: format!("bot {id}"),
            extra,
            index: format!("dlgs:{id}"),
            keys: self.dialog_key_templates(&bot),
            listed: if self.kv.atomic() {
                Vec::new()
            } else {
                split::listed_parts(&dialog_key_template(id))
            },
            done: 0,
        })?;
        self.kv.delete(&bot_key(id))?;
        self.bots_index().remove(bot.slot)?;
        Ok(())
    }

    /// Every key a dialog of `bot` may have, with `{}` for its chat id.
    fn dialog_key_templates(&self, bot: &Bot) -> Vec<String> {
        let base = dialog_key_template(&bot.id);
        let mut keys = vec![base.clone(), format!("{base}:slot"), format!("{base}:born")];
        if !self.kv.atomic() {
            keys.extend(split::part_templates(&base, bot));
        }
        keys
    }

    // ---- postback links

    /// Creates a postback link for the bot.
    pub fn create_link(&self, bot_id: &str, now: Timestamp) -> Result<PostbackLink, Error> {
        let link = PostbackLink {
            id: new_link_id(bot_id),
            bot_id: bot_id.to_string(),
            created_at: now,
        };
        self.list_link(bot_id, &link.id, now)?;
        self.records().put(&link_key(&link.id), &link)?;
        Ok(link)
    }

    /// Adds `link_id` to the bot's links (once), within [`MAX_LINKS`].
    fn list_link(&self, bot_id: &str, link_id: &str, now: Timestamp) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            if bot.links.iter().any(|l| l == link_id) {
                return Ok(());
            }
            if bot.links.len() >= MAX_LINKS {
                return Err(too_many_links());
            }
            bot.links.push(link_id.to_string());
            Ok(())
        })?;
        Ok(())
    }

    /// Imports postback link `link_id` (a Chatterfy link's id, so its trackers keep working
    /// with only the origin changed) for the bot; `true` when it is new. Importing it again
    /// into the same bot changes nothing; an id in use by another bot is refused.
    pub fn import_link(
        &self,
        bot_id: &str,
        link_id: &str,
        now: Timestamp,
    ) -> Result<(PostbackLink, bool), Error> {
        if !valid_link_id(link_id) {
            return Err(Error::invalid(
                "bad_postback_id",
                "postbackId",
                "a postback id is 16 to 64 of A-Z a-z 0-9 - _ (Chatterfy's are UUID-shaped)",
            ));
        }
        if let Some(why) = guessable_link_id(link_id, bot_id) {
            return Err(Error::invalid(
                "guessable_postback_id",
                "postbackId",
                format!("this postback id cannot be a link: {why}"),
            ));
        }
        self.bot(bot_id)?;
        let key = link_key(link_id);
        let fresh = PostbackLink {
            id: link_id.to_string(),
            bot_id: bot_id.to_string(),
            created_at: now,
        };
        // An election settles two imports of one id at once: one bot gets it.
        let (link, modified) = self.records().upsert(
            &key,
            &format!("{key}:born"),
            || fresh.clone(),
            |l: &mut PostbackLink| Ok::<_, Error>(l.clone()),
        )?;
        if link.bot_id != bot_id {
            return Err(Error::conflict(
                "postback_id_in_use",
                "this postback id is in use by another bot; revoke it there first",
            )
            .at("postbackId"));
        }
        let created = modified == Modified::Created;
        if let Err(e) = self.list_link(bot_id, link_id, now) {
            // Not the bot's: the id stays free.
            if created {
                self.forget_link(link_id)?;
            }
            return Err(e);
        }
        Ok((link, created))
    }

    fn forget_link(&self, link_id: &str) -> Result<(), Error> {
        let key = link_key(link_id);
        self.kv.delete(&key)?;
        self.kv.delete(&format!("{key}:born"))?;
        Ok(())
    }

    /// The bot's postback links, oldest first.
    pub fn links(&self, bot: &Bot) -> Result<Vec<PostbackLink>, Error> {
        let mut out = Vec::with_capacity(bot.links.len());
        for id in &bot.links {
            if let Some(link) = self.records().get(&link_key(id))? {
                out.push(link);
            }
        }
        Ok(out)
    }

    /// Revokes a link: from now on it is a 404, like an id that never existed.
    pub fn revoke_link(&self, bot_id: &str, link_id: &str, now: Timestamp) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            let before = bot.links.len();
            bot.links.retain(|l| l != link_id);
            if bot.links.len() == before {
                return Err(link_missing());
            }
            Ok(())
        })?;
        self.forget_link(link_id)
    }

    // ---- custom fields

    /// Defines or redefines a custom field; `true` when it is new.
    pub fn put_field(
        &self,
        bot_id: &str,
        key: &str,
        def: FieldDef,
        now: Timestamp,
    ) -> Result<bool, Error> {
        self.modify_bot(bot_id, now, |bot| {
            if !bot.fields.contains_key(key) && bot.fields.len() >= MAX_FIELDS {
                return Err(Error::invalid(
                    "too_many_fields",
                    "key",
                    format!("a bot defines at most {MAX_FIELDS} custom fields"),
                ));
            }
            Ok(bot.fields.insert(key.to_string(), def.clone()).is_none())
        })
    }

    /// Removes a custom field definition (values already stored in dialogs stay).
    pub fn delete_field(&self, bot_id: &str, key: &str, now: Timestamp) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            bot.fields.remove(key).map(|_| ()).ok_or_else(field_missing)
        })
    }

    // ---- steps

    /// Creates or replaces a step; `true` when it is new.
    pub fn put_step<W: Serialize + DeserializeOwned>(
        &self,
        bot_id: &str,
        step_id: &str,
        input: StepInput<W>,
        now: Timestamp,
    ) -> Result<(Step<W>, bool), Error> {
        if !is_uuid(step_id) {
            return Err(Error::invalid(
                "bad_step_id",
                "stepId",
                format!("{step_id:?} is not a UUID"),
            ));
        }
        let created = self.modify_bot(bot_id, now, |bot| {
            if bot.steps.iter().any(|s| s == step_id) {
                return Ok(false);
            }
            if bot.steps.len() >= MAX_STEPS {
                return Err(Error::new(
                    Kind::Invalid,
                    "too_many_steps",
                    format!("a bot has at most {MAX_STEPS} steps"),
                ));
            }
            bot.steps.push(step_id.to_string());
            Ok(true)
        })?;
        // Only when it was first created matters of the old record.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            created_at: Timestamp,
        }
        let old = self.records().get::<Created>(&step_key(bot_id, step_id))?;
        let step = Step {
            id: step_id.to_string(),
            key: input.key,
            kind: input.kind,
            webhook: input.webhook,
            webhook_gone: false,
            created_at: old.map_or(now, |o| o.created_at),
            updated_at: now,
        };
        self.records().put(&step_key(bot_id, step_id), &step)?;
        Ok((step, created))
    }

    /// Marks a send-webhook step's webhook as gone (its receiver answered 410).
    pub fn mark_webhook_gone(&self, bot_id: &str, step_id: &str) -> Result<(), Error> {
        // Changed as raw JSON: the config is kept exactly as stored.
        self.records()
            .modify(&step_key(bot_id, step_id), |s: &mut serde_json::Value| {
                s["webhookGone"] = true.into();
                Ok::<_, Error>(())
            })?;
        Ok(())
    }

    /// The step with its webhook config read as `W`, or a 404.
    pub fn step<W: DeserializeOwned>(&self, bot: &Bot, step_id: &str) -> Result<Step<W>, Error> {
        self.find_step(bot, step_id)?.ok_or_else(step_missing)
    }

    /// The step record as stored, as plain JSON, without the bot (the retry sweep reading
    /// a signing secret); `None` when it was deleted.
    pub fn step_json(
        &self,
        bot_id: &str,
        step_id: &str,
    ) -> Result<Option<serde_json::Value>, Error> {
        Ok(self.records().get(&step_key(bot_id, step_id))?)
    }

    fn find_step<W: DeserializeOwned>(
        &self,
        bot: &Bot,
        step_id: &str,
    ) -> Result<Option<Step<W>>, Error> {
        if !bot.steps.iter().any(|s| s == step_id) {
            return Ok(None);
        }
        Ok(self.records().get(&step_key(&bot.id, step_id))?)
    }

    /// The bot's steps, in the order they were created.
    pub fn steps<W: DeserializeOwned>(&self, bot: &Bot) -> Result<Vec<Step<W>>, Error> {
        let mut out = Vec::with_capacity(bot.steps.len());
        for id in &bot.steps {
            if let Some(step) = self.records().get(&step_key(&bot.id, id))? {
                out.push(step);
            }
        }
        Ok(out)
    }

    /// Deletes a step. Dialogs on it keep its id and key.
    pub fn delete_step(&self, bot_id: &str, step_id: &str, now: Timestamp) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            // Conversions would have nowhere to move their dialogs: say which action first.
            let actions = bot.auto_actions.as_ref().and_then(|a| a["actions"].as_array());
            if let Some(i) = actions
                .into_iter()
                .flatten()
                .position(|a| a["stepId"].as_str() == Some(step_id))
            {
                return Err(Error::conflict(
                    "step_in_auto_actions",
                    format!(
                        "Auto Actions move dialogs to this step (actions[{i}]); change that action first"
                    ),
                )
                .at("stepId"));
            }
            let before = bot.steps.len();
            bot.steps.retain(|s| s != step_id);
            if bot.steps.len() == before {
                return Err(step_missing());
            }
            Ok(())
        })?;
        self.kv.delete(&step_key(bot_id, step_id))?;
        Ok(())
    }

    // ---- dialogs

    /// The bot behind link `link_id` and the postback's parameters checked against it, and
    /// the dialog's record when it could be read with them (see [`Repo::bot_behind`]).
    fn read_postback(
        &self,
        link_id: &str,
        params: Vec<(String, Param)>,
    ) -> Result<(Bot, Update, Option<SeenDialog>), Error>
    where
        K: GetMany,
    {
        if !valid_link_id(link_id) {
            return Err(link_missing());
        }
        let (bot, seen) = self.bot_behind(link_id, chat_id_of(&params))?;
        let fields = bot.field_types();
        let step = |id: &str| -> Result<Option<StepRef>, Error> {
            // The config is not needed here: it is skipped, not parsed.
            Ok(self.find_step::<IgnoredAny>(&bot, id)?.map(|s| StepRef {
                id: s.id,
                key: s.key,
                sends_webhook: s.kind == StepKind::SendWebhook,
            }))
        };
        let schema = BotSchema {
            fields: &fields,
            step: &step,
            auto: bot.auto_actions.as_ref(),
        };
        let update = parse_update(params, &schema)?;
        Ok((bot, update, seen))
    }

    /// The bot behind link `link_id`, read with the link in one round trip when the id names
    /// the bot (and the link record agrees), else after it. A link whose bot is gone is as
    /// unknown as any other. With them, when the host reads them in the same round trip,
    /// `chat`'s dialog record: the postback's write can then be prepared before its
    /// compare-and-swap reads the record, and a new chat's is not read again.
    fn bot_behind(
        &self,
        link_id: &str,
        chat: Option<i64>,
    ) -> Result<(Bot, Option<SeenDialog>), Error>
    where
        K: GetMany,
    {
        let link_key = link_key(link_id);
        let (link, named) = match bot_of_link_id(link_id) {
            Some(named) => {
                let bot_key = bot_key(&named);
                let dialog = chat.map(|c| dialog_key(&named, c));
                let extra: Vec<&str> = dialog.iter().map(String::as_str).collect();
                let (found, extra) = self.kv.get_many_and(&[&link_key, &bot_key], &extra)?;
                let mut found = found.into_iter();
                let link = Records::parse::<PostbackLink>(&link_key, found.next().flatten())?;
                let bot = found.next().flatten();
                let seen = chat.zip(extra.and_then(|e| e.into_iter().next()));
                (link, Some((named, bot_key, bot, seen)))
            }
            None => (self.records().get(&link_key)?, None),
        };
        let link = link.ok_or_else(link_missing)?;
        let (bot, seen) = match named {
            Some((named, key, bot, seen)) if named == link.bot_id => {
                (Records::parse(&key, bot)?, seen)
            }
            _ => (self.records().get(&bot_key(&link.bot_id))?, None),
        };
        Ok((bot.ok_or_else(link_missing)?, seen))
    }

    /// An updateDialog postback through link `link_id`: all of it is applied or none. A new
    /// dialog is created only within `limits`, asked for only when they matter (a bot closed
    /// to new dialogs, an admission check): reading them costs the host a lookup.
    pub fn postback(
        &self,
        link_id: &str,
        params: Vec<(String, Param)>,
        now: Timestamp,
        limits: &dyn Fn() -> DialogLimits,
    ) -> Result<Postback, Error>
    where
        K: GetMany,
    {
        let (bot, update, seen) = self.read_postback(link_id, params)?;
        if update.is_empty() {
            return Ok(Postback {
                dialog: None,
                update,
                created: false,
                entered_step: None,
                step_entry: None,
                click_claimed: None,
            });
        }
        let seen = match &seen {
            Some((chat, record)) if *chat == update.chat_id => match record {
                Some(bytes) => Seen::Bytes(bytes),
                None => Seen::Absent,
            },
            _ => Seen::Unknown,
        };
        let refusal = bot
            .admission
            .may_refuse(now)
            .then(limits)
            .and_then(|l| bot.admission.refusal(now, l));
        // Handed off before the dialog changes: once the move is written, its delivery can
        // no longer be lost (see `handoff`).
        let handoff = match &update.step {
            Some(s) if s.sends_webhook => Some(self.handoffs().hand_off_entry(
                &bot.id,
                update.chat_id,
                &s.id,
                Default::default(),
                now,
            )?),
            _ => None,
        };
        let change = |d: &mut Dialog| {
            let before = d.step_id.clone();
            // This postback's own earlier write, applied again (see `Records::repeatable`):
            // the move it made is still this postback's.
            let moved_before = handoff
                .as_ref()
                .is_some_and(|h| d.step_deliveries.contains(&h.entry.id));
            d.apply(&update, now)?;
            let entered = update.step.is_some() && (d.step_id != before || moved_before);
            if let (true, Some(h)) = (entered, &handoff) {
                d.entered_webhook_step(&h.entry.id);
            }
            Ok(entered)
        };
        // Pointed at the chat before the dialog gets it (see `crate::conversions`).
        let click = self.click_to_claim(&bot, update.chat_id, &update.tracker)?;
        let (dialog, slot, entered) =
            self.change_dialog(&bot, update.chat_id, seen, now, refusal, change)?;
        let click_claimed = self.conversions_waiting(&bot, update.chat_id, click, now);
        if let Some(slot) = slot
            && slot.is_multiple_of(ADMISSION_CHECK_EVERY)
        {
            self.admit(&bot, slot, now, limits())?;
        }
        let created = slot.is_some();
        let entered_step = update.step.clone().filter(|_| entered);
        let step_entry = handoff.filter(|_| entered);
        Ok(Postback {
            dialog: Some(dialog),
            update,
            entered_step,
            step_entry,
            created,
            click_claimed,
        })
    }

    /// When the bot has Auto Actions and `tracker` gives chat `chat` a click id: points the
    /// click id at the chat, and returns its key suffix for [`Repo::conversions_waiting`].
    fn click_to_claim(
        &self,
        bot: &Bot,
        chat: i64,
        tracker: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<String>, Error> {
        let Some(field) = bot.click_id_field() else {
            return Ok(None);
        };
        match tracker.get(field).and_then(|v| clicks::click_value(v)) {
            Some(value) => Ok(Some(clicks::claim(self.kv, bot, field, chat, value)?)),
            None => Ok(None),
        }
    }

    /// After a dialog got the click id of `suffix`: whether conversions wait for it. The
    /// dialog's write has landed, so a failure here is logged, not returned (the conversions
    /// go on waiting).
    fn conversions_waiting(
        &self,
        bot: &Bot,
        chat: i64,
        suffix: Option<String>,
        now: Timestamp,
    ) -> Option<ClickClaimed> {
        let suffix = suffix?;
        let noted = clicks::any_waiting(self.kv, &bot.id, &suffix).and_then(|waiting| {
            waiting
                .then(|| clicks::note_claimed(self.kv, &bot.id, chat, suffix, now))
                .transpose()
        });
        match noted {
            Ok(claimed) => claimed,
            Err(e) => {
                if let Some(line) = funnelhooks_core::log::line(
                    funnelhooks_core::log::Level::Warn,
                    "waiting_conversions_failed",
                ) {
                    line.str("bot", &bot.id)
                        .num("chat", chat)
                        .str("error", &e.message)
                        .emit();
                }
                None
            }
        }
    }

    /// The bot engine starting (or refreshing) a dialog; `true` when it was created.
    pub fn start_dialog(
        &self,
        bot_id: &str,
        chat: i64,
        start: &Start,
        now: Timestamp,
    ) -> Result<(Dialog, bool), Error> {
        let s = self.start_dialog_with(bot_id, chat, start, now)?;
        Ok((s.dialog, s.created))
    }

    /// The bot engine starting (or refreshing) a dialog, with its `/start` payload read by
    /// the bot's rule and the conversions waiting for its click id applied.
    pub fn start_dialog_with(
        &self,
        bot_id: &str,
        chat: i64,
        start: &Start,
        now: Timestamp,
    ) -> Result<Started, Error> {
        let bot = self.bot(bot_id)?;
        let mut start = start.clone();
        let payload = match &start.start_payload {
            Some(p) => Some(crate::auto::read_start_payload(
                p,
                bot.auto_actions.as_ref(),
                "startPayload",
            )?),
            None => None,
        };
        for (k, v) in payload.iter().flat_map(|p| &p.tracker) {
            start.tracker.entry(k.clone()).or_insert_with(|| v.clone());
        }
        start.validate()?;
        let click = self.click_to_claim(&bot, chat, &start.tracker)?;
        // The bot engine starting a chat is always admitted: only postback links are limited.
        let (dialog, slot, _) = self.change_dialog(&bot, chat, Seen::Unknown, now, None, |d| {
            d.start(&start, now).map(|()| false)
        })?;
        let click_claimed = self.conversions_waiting(&bot, chat, click, now);
        Ok(Started {
            dialog,
            created: slot.is_some(),
            payload,
            click_claimed,
        })
    }

    /// Changes (or creates) the dialog with `change`; `seen` is what a read just before
    /// found at its key, `refusal` the error a creation gets, if creating is not allowed
    /// now. Returns the dialog, its slot in the bot's list when this call created it, and
    /// what `change` said.
    pub(crate) fn change_dialog(
        &self,
        bot: &Bot,
        chat: i64,
        seen: Seen<'_>,
        now: Timestamp,
        refusal: Option<Error>,
        change: impl Fn(&mut Dialog) -> Result<bool, Error>,
    ) -> Result<(Dialog, Option<u64>, bool), Error> {
        if !self.kv.atomic() {
            let (dialog, created, entered) = split::change(self.kv, bot, chat, refusal, &change)?;
            if !created {
                return Ok((dialog, None, entered));
            }
            let slot = self.dialogs_index(&bot.id).add(&chat.to_string())?;
            self.kv.set(
                &format!("{}:slot", dialog_key(&bot.id, chat)),
                slot.to_string().as_bytes(),
            )?;
            return Ok((dialog, Some(slot), entered));
        }
        let key = dialog_key(&bot.id, chat);
        // Set by `create`, which the upsert calls just before changing the fresh record.
        let fresh = std::cell::Cell::new(false);
        let born_slot = std::cell::Cell::new(None);
        // A dialog's change sets values and adds to sets: applied again, it gives the same
        // dialog, so a write that cannot be confirmed is applied again rather than failed.
        let records = Records::repeatable(self.kv);
        let ((mut dialog, entered), modified) = records.upsert_born(
            &key,
            &format!("{key}:born"),
            seen,
            || {
                fresh.set(true);
                Dialog::pending(&bot.id, chat, now)
            },
            |d: &mut Dialog| {
                if let (true, Some(e)) = (fresh.replace(false), &refusal) {
                    return Err(e.clone());
                }
                let entered = change(d)?;
                Ok::<_, Error>((d.clone(), entered))
            },
            // The creator keeps the dialog's place in the bot's list in the record, and the
            // list's entry is written with it, in one round trip.
            |d: &mut Dialog| {
                let index = self.dialogs_index(&bot.id);
                let slot = index.reserve()?;
                d.list_slot = Some(slot);
                born_slot.set(Some(slot));
                Ok(vec![(index.slot_key(slot), chat.to_string().into_bytes())])
            },
        )?;
        // Set only by a creation (`born` runs just before the creating write).
        let slot = born_slot.get();
        debug_assert_eq!(slot.is_some(), modified == Modified::Created);
        if slot.is_some() {
            dialog.list_slot = slot;
        }
        Ok((dialog, slot, entered))
    }

    /// After a postback created a dialog in `slot` of the bot's list: every
    /// [`ADMISSION_CHECK_EVERY`] creations, counts
    /// this minute's new dialogs and the bot's total against `limits`, and closes the bot to
    /// new dialogs for the rest of the minute (or for good, at the total) when past them.
    fn admit(
        &self,
        bot: &Bot,
        slot: u64,
        now: Timestamp,
        limits: DialogLimits,
    ) -> Result<(), Error> {
        let minute = now.0.div_euclid(60_000);
        self.records().modify(&bot_key(&bot.id), |b: &mut Bot| {
            let a = &mut b.admission;
            if a.minute != minute {
                a.minute = minute;
                a.first_slot = slot;
            } else if limits.per_minute > 0 && slot - a.first_slot >= limits.per_minute {
                a.closed_until = (minute + 1) * 60_000;
            }
            a.full = limits.total > 0 && slot >= limits.total;
            Ok::<_, Error>(())
        })?;
        Ok(())
    }

    /// The dialog, or a 404.
    pub fn dialog(&self, bot: &Bot, chat: i64) -> Result<Dialog, Error> {
        self.find_dialog(bot, chat)?.ok_or_else(|| {
            Error::not_found("unknown_dialog", "this bot has no dialog with this chat").at("chatId")
        })
    }

    pub(crate) fn find_dialog(&self, bot: &Bot, chat: i64) -> Result<Option<Dialog>, Error> {
        if self.kv.atomic() {
            Ok(self.records().get(&dialog_key(&bot.id, chat))?)
        } else {
            Ok(split::load(self.kv, bot, chat)?)
        }
    }

    /// A page of the bot's dialogs, oldest first.
    pub fn dialogs(&self, bot: &Bot, after: u64, limit: usize) -> Result<Page<Dialog>, Error> {
        let page = self
            .dialogs_index(&bot.id)
            .page(after, limit.min(MAX_PAGE))?;
        let mut items = Vec::with_capacity(page.items.len());
        for (chat, slot) in page.items.iter().zip(&page.slots) {
            // A creator that took a place and then failed to write leaves a place whose
            // dialog, created again later, lives in another: list it only there.
            if let Ok(chat) = chat.parse()
                && let Some(d) = self.find_dialog(bot, chat)?
                && d.list_slot.is_none_or(|s| s == *slot)
            {
                items.push(d);
            }
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Erases the dialog and everything stored for it, or a 404.
    pub fn erase_dialog(&self, bot: &Bot, chat: i64) -> Result<(), Error> {
        let dialog = self.dialog(bot, chat)?;
        clicks::unclaim(self.kv, bot, &dialog)?;
        let slot = match dialog.list_slot {
            Some(slot) => Some(slot),
            // Dialogs created before the place was kept in the record, and the split layout.
            None => self
                .kv
                .get(&format!("{}:slot", dialog_key(&bot.id, chat)))?
                .and_then(|s| std::str::from_utf8(&s).ok().and_then(|s| s.parse().ok())),
        };
        if let Some(slot) = slot {
            self.dialogs_index(&bot.id).remove(slot)?;
        }
        self.erase_dialog_keys(bot, chat)
    }

    fn erase_dialog_keys(&self, bot: &Bot, chat: i64) -> Result<(), Error> {
        let key = dialog_key(&bot.id, chat);
        if !self.kv.atomic() {
            split::erase(self.kv, bot, chat)?;
        }
        self.kv.delete(&key)?;
        self.kv.delete(&format!("{key}:slot"))?;
        self.kv.delete(&format!("{key}:born"))?;
        Ok(())
    }
}
