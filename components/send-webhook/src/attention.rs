//! `GET /api/attention`, the console's "Needs attention": every step and hook that is
//! failing, paused or disabled, with where it stands, its last 24 hours hour by hour
//! (deliveries that ended delivered, failed or held) and the failed deliveries a bulk
//! recover would send again. Read from the states and the log; nothing is written.

use std::collections::BTreeMap;

use funnelhooks_calls::CallRepo;
use funnelhooks_core::{Error, Kind, Timestamp};
use funnelhooks_delivery::engine::LogScope;
use funnelhooks_delivery::log::{Delivery, Status};
use funnelhooks_delivery::state::{ATTENTION, StepOrHook};
use funnelhooks_spin::json;
use funnelhooks_steps::WebhookConfig;
use funnelhooks_store::Records;
use serde_json::{Value as Json, json as j};
use spin_sdk::http::Response;

use crate::Ctx;

const HOUR_MS: i64 = 3_600_000;
/// Most log entries read per bot or service for the 24 hours.
const MAX_HISTORY: usize = 1_000;

/// The name a person knows it by: a step's key, a hook's name (or its host).
fn name_of(ctx: &Ctx, s: &StepOrHook) -> Result<Option<String>, Error> {
    let found = match s {
        StepOrHook::Step { bot_id, step_id } => ctx
            .repo
            .bot(bot_id)
            .and_then(|bot| ctx.repo.step::<WebhookConfig>(&bot, step_id))
            .map(|step| step.key),
        StepOrHook::Hook {
            service_id,
            hook_id,
        } => CallRepo::new(ctx.kv).service(service_id).and_then(|svc| {
            let hook = svc.hook(hook_id)?;
            Ok(hook
                .config
                .name
                .clone()
                .unwrap_or_else(|| hook.config.host.clone()))
        }),
    };
    match found {
        Ok(name) => Ok(Some(name)),
        // Deleted since: nothing to attend to.
        Err(e) if e.kind == Kind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bot's or service's key, to read each log once.
fn scope_key(s: &StepOrHook) -> &str {
    match s {
        StepOrHook::Step { bot_id, .. } => bot_id,
        StepOrHook::Hook { service_id, .. } => service_id,
    }
}

fn scope_of(s: &StepOrHook) -> LogScope {
    match s {
        StepOrHook::Step { bot_id, .. } => LogScope::Bot(bot_id.clone()),
        StepOrHook::Hook { service_id, .. } => LogScope::Service(service_id.clone()),
    }
}

/// The last 24 hours of `s` in `log`: per hour (oldest first) deliveries that ended
/// delivered, failed (or are still retrying) and held; and the failed ones not recovered.
fn history(s: &StepOrHook, log: &[Delivery], now: Timestamp) -> Json {
    let mut hours = vec![(0u32, 0u32, 0u32); 24];
    let (mut unrecovered, mut oldest) = (0, None::<Timestamp>);
    for d in log
        .iter()
        .filter(|d| !d.test && StepOrHook::of(&d.owner).as_ref() == Some(s))
    {
        let ago = ((now.0 - d.updated_at.0).max(0) / HOUR_MS) as usize;
        let Some(hour) = 23usize.checked_sub(ago) else {
            continue;
        };
        match d.status {
            Status::Delivered => hours[hour].0 += 1,
            Status::Failed | Status::Retrying => hours[hour].1 += 1,
            Status::Skipped if d.held => hours[hour].2 += 1,
            _ => {}
        }
        let recoverable = d.status == Status::Failed || (d.status == Status::Skipped && d.held);
        if recoverable && d.recovered_by.is_none() {
            unrecovered += 1;
            oldest = Some(oldest.map_or(d.created_at, |o| o.min(d.created_at)));
        }
    }
    let delivered: u32 = hours.iter().map(|h| h.0).sum();
    let failed: u32 = hours.iter().map(|h| h.1).sum();
    let held: u32 = hours.iter().map(|h| h.2).sum();
    let rate =
        (delivered + failed > 0).then(|| f64::from(delivered) / f64::from(delivered + failed));
    j!({
        "delivered": delivered,
        "failed": failed,
        "held": held,
        "successRate": rate,
        "hours": hours.iter().map(|h| j!({"delivered": h.0, "failed": h.1, "held": h.2})).collect::<Vec<_>>(),
        "unrecovered": unrecovered,
        "oldestUnrecoveredAt": oldest,
    })
}

/// `GET /api/attention`.
pub(crate) fn needs_attention(ctx: &Ctx) -> Result<Response, Error> {
    let listed: Vec<String> = Records::new(ctx.kv).get(ATTENTION)?.unwrap_or_default();
    let mut found = Vec::new();
    for key in listed.iter().rev() {
        let Some(s) = StepOrHook::parse(key) else {
            continue;
        };
        let state = ctx.engine.state_of(&s)?;
        if !state.needs_attention() {
            continue;
        }
        let Some(name) = name_of(ctx, &s)? else {
            continue;
        };
        found.push((s, state, name));
    }
    // Each bot's or service's log is read once, for all of its steps or hooks.
    let day_ago = Timestamp(ctx.now.0 - 24 * HOUR_MS);
    let mut logs: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    let mut partial = false;
    for (s, ..) in &found {
        let key = scope_key(s).to_string();
        if logs.contains_key(&key) {
            continue;
        }
        let scope = scope_of(s);
        let (log, next) = ctx
            .engine
            .list(&scope, None, MAX_HISTORY, |d| d.updated_at >= day_ago)?;
        partial |= next.is_some() && log.len() >= MAX_HISTORY;
        logs.insert(key, log);
    }
    let items: Vec<Json> = found
        .iter()
        .map(|(s, state, name)| {
            let log = &logs[scope_key(s)];
            let mut item = s.ids();
            item.insert("name".into(), j!(name));
            item.insert("deliveryState".into(), state.view());
            item.insert("last24h".into(), history(s, log, ctx.now));
            Json::Object(item)
        })
        .collect();
    Ok(json(200, &j!({"items": items, "partial": partial})))
}
