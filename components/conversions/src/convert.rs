//! `GET|POST /api/bots/conversions/{conversionId}`: a conversion by click id, by GET, form
//! POST or JSON, under Keitaro's, Binom's or the bot's own parameter names; and the chained
//! `/internal/click-claimed` that applies conversions waiting for a click id a dialog got.

use funnelhooks_core::Error;
use funnelhooks_dialogs::clicks::ClickClaimed;
use funnelhooks_dialogs::conversions::Outcome;
use funnelhooks_dialogs::from_request;
use funnelhooks_dialogs::handoff::StepReached;
use funnelhooks_spin::json;
use serde_json::json;
use spin_sdk::http::Response;

use crate::Ctx;

/// The conversion. The answer says what became of it, never which chat it is: the link sits
/// in a tracker's settings (docs/security.md).
pub(crate) fn conversion(ctx: &Ctx) -> Result<(Response, Vec<StepReached>), Error> {
    let content_type = ctx.req.header("content-type").and_then(|h| h.as_str());
    let params = from_request(ctx.req.query(), content_type, ctx.req.body())?;
    let done = ctx
        .repo
        .convert(ctx.params.get("conversionId"), params, ctx.now)?;
    let c = &done.conversion;
    let mut answer = json!({
        "ok": true,
        "outcome": done.outcome,
        "clickId": c.click_id,
        "type": c.event_type,
    });
    if let Some(tid) = &c.tid {
        answer["tid"] = tid.as_str().into();
    }
    if done.outcome == Outcome::Applied {
        answer["stepId"] = done.step_id.as_deref().into();
        answer["webhookQueued"] = (!done.reached.is_empty()).into();
    }
    if !done.missing.is_empty() {
        answer["missingParams"] = done.missing.clone().into();
    }
    if let Some(t) = done.expires_at {
        answer["waitsUntil"] = serde_json::to_value(t).unwrap_or_default();
    }
    if done.outcome == Outcome::Ignored {
        answer["reason"] = format!(
            "the bot has no action for the event type {:?}",
            c.event_type
        )
        .into();
    }
    if done.shared > 0 {
        answer["clickIdShared"] = true.into();
    }
    Ok((json(200, &answer), done.reached))
}

/// A dialog got a click id conversions wait for (chained from update-dialog or bots-api).
pub(crate) fn click_claimed(ctx: &Ctx) -> Result<(Response, Vec<StepReached>), Error> {
    let claimed: ClickClaimed = serde_json::from_slice(ctx.req.body())
        .map_err(|e| Error::malformed("bad_body", "", e.to_string()))?;
    let (applied, reached) = ctx.repo.click_claimed(&claimed, ctx.now)?;
    Ok((json(200, &json!({ "applied": applied })), reached))
}

/// Notes of dialogs that got a click id conversions wait for, whose chained request never
/// came (chained from the retry sweep): applied now.
pub(crate) fn claims_due(ctx: &Ctx) -> Result<(Response, Vec<StepReached>), Error> {
    let (mut applied, mut reached) = (0, Vec::new());
    for claimed in ctx.repo.stale_claims(ctx.now, MAX_CLAIMS_PER_SWEEP)? {
        let (n, r) = ctx.repo.click_claimed(&claimed, ctx.now)?;
        applied += n;
        reached.extend(r);
    }
    Ok((json(200, &json!({ "applied": applied })), reached))
}

/// Most notes one sweep applies.
const MAX_CLAIMS_PER_SWEEP: usize = 50;
