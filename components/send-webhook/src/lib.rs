//! Steps (with their webhook configs) and the delivery log: save and read steps, pause and
//! resume them, deliver a step's webhook for a dialog now, read the log, replay, recover in
//! bulk, test-send, sweep the retries that are due, preview a template; operator alert
//! endpoints and the "Needs attention" view. The update-dialog component reaches
//! `POST /internal/step-reached` through Spin's local chaining
//! (`http://send-webhook.spin.internal`); no public route leads there. Routes are the table
//! `funnelhooks_routes::send_webhook`.

mod alerts;
mod attention;
mod deliver;
mod deliveries;
mod preview;
mod steps;

use funnelhooks_calls::CallRepo;
use funnelhooks_core::Timestamp;
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_delivery::engine::{Clock, Engine, Secrets};
use funnelhooks_delivery::{Owner, SigningSecret};
use funnelhooks_dialogs::Repo;
use funnelhooks_routes::Params;
use funnelhooks_routes::send_webhook::{Op, ROUTES};
use funnelhooks_spin::kv::BatchedSpinKv as SpinKv;
use funnelhooks_spin::request::{MAX_JSON_BODY, read};
use funnelhooks_spin::{ApiError, SpinClock, SpinSender, respond};
use funnelhooks_store::StoreError;
use spin_sdk::http::{IncomingRequest, Request, Response, ResponseOutparam};

/// What every handler gets: the request, its path parameters, the store (as it is, seen as
/// bots and dialogs, and as the delivery engine), where webhooks may go, and the time it
/// arrived.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request,
    pub params: Params,
    pub kv: &'a SpinKv,
    pub repo: Repo<'a, SpinKv>,
    pub engine: Engine<'a, SpinKv, SpinSender, SpinClock>,
    pub policy: TargetPolicy,
    pub now: Timestamp,
}

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("send-webhook", &incoming);
    let req = match read(incoming, MAX_JSON_BODY).await {
        Ok(req) => req,
        Err(e) => return respond(out, e.response()).await,
    };
    let (response, then_sweep) = match serve(&req) {
        Ok(done) => done,
        Err(e) => (e.response(), false),
    };
    funnelhooks_spin::audit::record(&req, &response);
    respond(out, response).await;
    if then_sweep && funnelhooks_spin::auto_sweep() {
        after_answer(&req);
    }
}

/// Work after the answer: the sweep traffic runs when none ran lately (see
/// [`deliveries::sweep_if_idle`]); what fails is logged, nobody waits for it.
fn after_answer(req: &Request) {
    let result = with_ctx(req, Params::default(), SpinClock::REAL, |ctx| {
        deliveries::sweep_if_idle(ctx).map_err(ApiError::from)
    });
    if let Err(e) = result
        && let Some(line) =
            funnelhooks_core::log::line(funnelhooks_core::log::Level::Error, "sweep_failed")
    {
        line.str("code", e.error.code)
            .str("by", "traffic")
            .opt_str(
                "detail",
                e.error
                    .detail
                    .as_deref()
                    .map(funnelhooks_core::log::redact_keys)
                    .as_deref(),
            )
            .emit();
    }
}

/// Signing secrets, read where they are kept: with the step, or with the call hook.
struct OwnerSecrets<'a> {
    kv: &'a SpinKv,
}

impl Secrets for OwnerSecrets<'_> {
    fn secret(&self, owner: &Owner) -> Result<Option<SigningSecret>, StoreError> {
        let secret = match owner {
            Owner::Step {
                bot_id, step_id, ..
            } => funnelhooks_steps::signing_secret(&Repo::new(self.kv), bot_id, step_id),
            Owner::Hook {
                service_id,
                hook_id,
                ..
            } => CallRepo::new(self.kv).hook_secret(service_id, hook_id),
            // The engine reads an alert endpoint's secret itself.
            Owner::Alert { .. } => return Ok(None),
        };
        secret.map_err(|e| StoreError::Backend(e.message))
    }
}

/// Answers the request; `true` when a sweep should be considered after the answer.
fn serve(req: &Request) -> Result<(Response, bool), ApiError> {
    let (op, params) = funnelhooks_spin::route(ROUTES, req)?;
    let clock = match op {
        Op::RetryDue | Op::RetryDueGet => {
            SpinClock::for_sweep(funnelhooks_spin::request::query_param(req, "at").as_deref())
        }
        _ => SpinClock::REAL,
    };
    // One in sixteen requests looks after its answer (a read). The chained nudge sweeps
    // before it answers: Spin drops a chained component's work once its caller has the
    // answer, and the caller here has answered its own client already.
    let then_sweep = match op {
        Op::SweepIfIdle | Op::RetryDue | Op::RetryDueGet => false,
        _ => funnelhooks_spin::one_in(16),
    };
    let response = with_ctx(req, params, clock, |ctx| {
        Ok(match op {
            Op::ListSteps => steps::list(ctx),
            Op::CreateStep => steps::create(ctx),
            Op::PutStep => steps::put(ctx),
            Op::ReadStep => steps::read(ctx),
            Op::DeleteStep => steps::delete(ctx),
            Op::TestSendStep => deliver::test_send(ctx),
            Op::PauseStep => steps::pause_or_resume(ctx, true),
            Op::ResumeStep => steps::pause_or_resume(ctx, false),
            Op::SendStepNow => deliver::send_now(ctx),
            Op::StepReached => deliver::step_reached(ctx),
            Op::PreviewTemplate => preview::preview(ctx),
            Op::ListDeliveries => deliveries::list(ctx),
            Op::ReadDelivery => deliveries::read(ctx),
            Op::ReplayDelivery => deliveries::replay(ctx),
            Op::RetryNow => deliveries::retry_now(ctx),
            Op::RecoverDeliveries => deliveries::recover(ctx),
            Op::NeedsAttention => attention::needs_attention(ctx),
            Op::ListAlertEndpoints => alerts::list(ctx),
            Op::CreateAlertEndpoint => alerts::create(ctx),
            Op::ReadAlertEndpoint => alerts::read(ctx),
            Op::ReplaceAlertEndpoint => alerts::replace(ctx),
            Op::DeleteAlertEndpoint => alerts::delete(ctx),
            Op::TestSendAlertEndpoint => alerts::test_send(ctx),
            Op::RetryDue | Op::RetryDueGet => deliveries::retry_due(ctx),
            Op::SweepIfIdle => deliveries::sweep_if_idle(ctx)
                .map(|swept| funnelhooks_spin::json(200, &serde_json::json!({"swept": swept}))),
        }?)
    })?;
    Ok((response, then_sweep))
}

/// Runs `f` with a handler's context for `req` on `clock`: the store, the engine (with the
/// owners' signing secrets and the target rules), the repository.
fn with_ctx<T>(
    req: &Request,
    params: Params,
    clock: SpinClock,
    f: impl FnOnce(&Ctx) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let kv = SpinKv::open_default()?;
    let policy = funnelhooks_spin::target_policy();
    let sender = SpinSender::new(policy);
    let secrets = OwnerSecrets { kv: &kv };
    let ctx = Ctx {
        req,
        params,
        kv: &kv,
        repo: Repo::new(&kv),
        engine: Engine::new(&kv, &sender, &clock)
            .with_secrets(&secrets)
            .with_policy(policy)
            .with_rules(funnelhooks_spin::delivery_rules()),
        policy,
        now: clock.now(),
    };
    f(&ctx)
}
