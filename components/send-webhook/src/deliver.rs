//! Delivering a send-webhook step for a dialog: now (`POST /api/bots/{botId}/dialogs/{chatId}/send-webhook`),
//! as a test (`POST /api/bots/{botId}/steps/{stepId}/test-send`), and when a postback moves a
//! dialog into the step (`POST /internal/step-reached`, chained from update-dialog).

use funnelhooks_core::json::Members;
use funnelhooks_core::{Error, Kind};
use funnelhooks_delivery::engine::{Attempts, NewDelivery, keys_read_making};
use funnelhooks_delivery::state::StepOrHook;
use funnelhooks_delivery::{Delivery, Owner};
use funnelhooks_dialogs::Dialog;
use funnelhooks_dialogs::bots::{Bot, StepKind};
use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_spin::json;
use funnelhooks_spin::request::{body, chat_id};
use funnelhooks_steps::sample::sample;
use funnelhooks_steps::{WebhookStep, prepare};
use serde_json::{Map, Value as Json};
use spin_sdk::http::Response;

use crate::Ctx;

/// How much of a delivery's sending happens in this request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    /// Attempts now, as the engine's [`Attempts`] says.
    Now(Attempts),
    /// Nothing now: a retry sweep sends it this long after it is made.
    Queue(std::time::Duration),
}

/// A real delivery, or a test one (one attempt, never retried, marked in the log).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A dialog entered the step, or an admin sent it.
    Real,
    /// A test send.
    Test,
}

/// The step entry a delivery answers: its delivery's id, the handoff (of the list before
/// #30) to clear once the delivery is in the log, and whether the entry waits in the outbox.
pub(crate) struct Answering<'e> {
    id: &'e str,
    handoff: Option<u64>,
    in_outbox: Option<&'e str>,
}

/// Builds and sends the step's webhook for the dialog; returns the logged delivery. When it
/// answers a step entry, it gets the entry's id: an entry delivered already (by the chain or
/// by the sweep) is not delivered again.
pub(crate) fn deliver(
    ctx: &Ctx,
    (bot, dialog, step): (&Bot, &Dialog, &WebhookStep),
    (purpose, sending): (Purpose, Sending),
    entry: Option<Answering<'_>>,
) -> Result<Delivery, Error> {
    let config = match (&step.webhook, &step.kind) {
        (Some(config), StepKind::SendWebhook) => config,
        _ => {
            // The request is fine; the step it names is of another kind.
            return Err(Error::conflict(
                "not_a_webhook_step",
                "this step is not a send-webhook step with a webhook config",
            )
            .at("stepId"));
        }
    };
    let owner = Owner::Step {
        bot_id: bot.id.clone(),
        chat_id: dialog.chat_id,
        step_id: step.id.clone(),
    };
    let mut new = NewDelivery::new(owner, &config.options);
    new.id = entry.as_ref().map(|e| e.id.to_string());
    new.in_outbox = entry.as_ref().and_then(|e| e.in_outbox.map(str::to_string));
    // Queued: the sweep that found the entry sends it, within its own time budget.
    if let Sending::Queue(after) = sending {
        new.first_attempt_after = Some(after);
    }
    if purpose == Purpose::Test {
        new.test = true;
        new.max_attempts = 1;
    }
    let skip = if step.webhook_gone && purpose == Purpose::Real {
        Some("the receiver answered 410 Gone before; save the step again to resume".to_string())
    } else {
        match prepare(config, dialog, ctx.policy) {
            Err(e) => Some(e.to_string()),
            Ok(prepared) => {
                new.request = Some(prepared.request);
                new.missing = prepared.missing;
                (config.skip_if_missing && !new.missing.is_empty())
                    .then(|| format!("no value for {}", new.missing.join(", ")))
            }
        }
    };
    let skipped = skip.is_some();
    let created = ctx.engine.create_once(new, skip)?;
    if let Some(slot) = entry.and_then(|e| e.handoff) {
        ctx.repo.handoffs().handed_over(slot)?;
    }
    let done = match sending {
        // Created before by someone else, who sends it (or it waits in the outbox).
        _ if !created.fresh => return Ok(created.delivery),
        _ if skipped => return Ok(created.delivery),
        Sending::Queue(_) => return Ok(created.delivery),
        Sending::Now(attempts) => ctx.engine.run(created.delivery, attempts)?,
    };
    if done.gone && purpose == Purpose::Real {
        ctx.repo.mark_webhook_gone(&bot.id, &step.id)?;
    }
    Ok(done)
}

/// `POST /api/bots/{botId}/dialogs/{chatId}/send-webhook` `{"stepId"}`.
pub(crate) fn send_now(ctx: &Ctx) -> Result<Response, Error> {
    let chat = chat_id(ctx.params.get("chatId"))?;
    let body = body(ctx.req)?;
    let m = Members::of(&body, &["stepId"])?;
    let step = m.required("stepId", 64)?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let step = ctx.repo.step(&bot, &step)?;
    let dialog = ctx.repo.dialog(&bot, chat)?;
    let sending = (Purpose::Real, Sending::Now(Attempts::WithQuickRetries));
    let done = deliver(ctx, (&bot, &dialog, &step), sending, None)?;
    Ok(json(200, &done.view()))
}

/// `POST /internal/step-reached` (a [`StepReached`]): a postback moved the dialog into a
/// send-webhook step. One attempt now; retries go to the outbox.
pub(crate) fn step_reached(ctx: &Ctx) -> Result<Response, Error> {
    let reached: StepReached = serde_json::from_slice(ctx.req.body())
        .map_err(|e| Error::malformed("bad_json", "body", format!("not a step entry: {e}")))?;
    let sending = Sending::Now(Attempts::FirstOnly);
    match deliver_entry(ctx, &reached, sending)? {
        Handled::Delivered(done) => Ok(json(200, &done.view())),
        Handled::NeverHappened => Ok(json(200, &serde_json::json!({"delivered": false}))),
    }
}

/// What became of a step entry.
pub(crate) enum Handled {
    /// Its delivery, created now or before.
    Delivered(Box<Delivery>),
    /// The dialog never moved into the step (the postback's write did not land): nothing
    /// to deliver.
    NeverHappened,
}

/// Delivers a step entry: now, from the chain, or queued, by the sweep finding its handoff.
/// The sweep checks the entry happened: the dialog records it with the move.
pub(crate) fn deliver_entry(
    ctx: &Ctx,
    reached: &StepReached,
    sending: Sending,
) -> Result<Handled, Error> {
    let entry = &reached.entry;
    // What follows reads these one by one: one round trip for them all, for this entry only.
    let mut keys = Vec::new();
    if !entry.id.is_empty() && !reached.reads_one_by_one {
        let sender = StepOrHook::Step {
            bot_id: entry.bot_id.clone(),
            step_id: entry.step_id.clone(),
        };
        keys.extend(entry.keys_read());
        keys.extend(keys_read_making(&entry.id, &sender));
    }
    let _ahead = ctx.kv.read_ahead(&keys);
    let bot = ctx.repo.bot(&entry.bot_id)?;
    let step = ctx.repo.step(&bot, &entry.step_id)?;
    let mut dialog = ctx.repo.dialog(&bot, entry.chat_id)?;
    // The entry's own values (a conversion's payout) over what later writes left.
    dialog
        .fields
        .extend(entry.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Handoffs written before entries had ids were written after the move: they happened.
    let answering = (!entry.id.is_empty()).then_some(Answering {
        id: &entry.id,
        handoff: reached.handoff,
        in_outbox: reached.in_outbox.as_deref(),
    });
    if matches!(sending, Sending::Queue(_))
        && !entry.id.is_empty()
        && !dialog.step_deliveries.contains(&entry.id)
        && ctx.engine.get(&entry.id)?.is_none()
    {
        return Ok(Handled::NeverHappened);
    }
    let done = deliver(
        ctx,
        (&bot, &dialog, &step),
        (Purpose::Real, sending),
        answering,
    )?;
    if entry.id.is_empty()
        && let Some(slot) = reached.handoff
    {
        ctx.repo.handoffs().handed_over(slot)?;
    }
    Ok(Handled::Delivered(Box::new(done)))
}

/// `{"chatId"}` (a real dialog) or `{"sample": {...}}` (or neither: the default sample).
pub(crate) struct DialogChoice<'a> {
    chat_id: Option<&'a Json>,
    sample: Option<&'a Map<String, Json>>,
}

impl<'a> DialogChoice<'a> {
    /// The choice in a body's `chatId` and `sample` members.
    pub(crate) fn from_members(m: &Members<'a>) -> Result<Self, Error> {
        Ok(Self {
            chat_id: m.get("chatId"),
            sample: m.object("sample")?,
        })
    }

    /// The sample's overrides.
    pub(crate) fn sample(&self) -> Option<&'a Map<String, Json>> {
        self.sample
    }
}

/// `POST /api/bots/{botId}/steps/{stepId}/test-send`: one attempt against a real dialog or a
/// sample, marked as a test.
pub(crate) fn test_send(ctx: &Ctx) -> Result<Response, Error> {
    let body = body(ctx.req)?;
    let choice = DialogChoice::from_members(&Members::of(&body, &["chatId", "sample"])?)?;
    let bot = ctx.repo.bot(ctx.params.get("botId"))?;
    let step = ctx.repo.step(&bot, ctx.params.get("stepId"))?;
    let dialog = dialog_or_sample(ctx, &bot, &choice)?;
    let sending = (Purpose::Test, Sending::Now(Attempts::FirstOnly));
    let done = deliver(ctx, (&bot, &dialog, &step), sending, None)?;
    Ok(json(200, &done.view()))
}

/// The dialog named by `chatId`, else a sample dialog (from `sample`, over defaults).
pub(crate) fn dialog_or_sample(
    ctx: &Ctx,
    bot: &Bot,
    choice: &DialogChoice<'_>,
) -> Result<Dialog, Error> {
    match choice.chat_id {
        None => sample(&bot.id, ctx.now, choice.sample),
        Some(chat) => {
            let chat = funnelhooks_core::chat::from_json(chat, "chatId")?;
            ctx.repo.dialog(bot, chat)
        }
    }
}

/// Whether an error means the entry can never be delivered (the bot, step or dialog is gone,
/// or the step sends no webhook any more), as opposed to a store that may answer later.
pub(crate) fn undeliverable(e: &Error) -> bool {
    matches!(e.kind, Kind::NotFound | Kind::Invalid)
}
