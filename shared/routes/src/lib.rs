//! Every component's HTTP routes, declared once as data: the method, the path template (as
//! `openapi.yaml` writes it, `/api/bots/{botId}`), the OpenAPI operation id, who may call it
//! and which handler serves it. The components dispatch from these tables, `405` answers and
//! their `Allow` header come from them, and the OpenAPI test reads them (no Rust source is
//! scanned). Plain Rust with no dependencies, so tests and tools can read the tables.

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the secret, if any, is in the path (postback links) or there is none.
    Public,
    /// `Authorization: Bearer <admin_token>`.
    Admin,
    /// The admin token, or `?key=<retry_sweep_key>` (schedulers that can only call a URL).
    AdminOrSweepKey,
    /// The admin token, or `Authorization: Bearer <metrics_token>` (a Prometheus scraper
    /// that should not hold the admin token).
    AdminOrMetricsToken,
    /// The call-tracking service's ingest key (header, query or path).
    IngestKey,
    /// Only another component of the app, through Spin's local chaining.
    Chained,
}

/// One route: `method path` is served by `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<Op: 'static> {
    /// `GET`, `POST`, ...
    pub method: &'static str,
    /// The path template: literal segments and `{name}` parameters.
    pub path: &'static str,
    /// The OpenAPI operation id (empty for chained routes, which are not documented).
    pub operation_id: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The component's handler.
    pub op: Op,
}

/// The values of a matched route's path parameters, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The value of `{name}` (empty when the route has none by that name).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// What a request finds in a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<Op: 'static> {
    /// The route serving it.
    Route(Route<Op>, Params),
    /// The path is served, but not with this method: these are the methods that are.
    WrongMethod(Vec<&'static str>),
    /// Nothing here serves the path.
    NoRoute,
}

/// The parameters of `path` under `template`, if it matches; the number of literal segments
/// tells how specific the match is (`/api/deliveries/retry-due` beats
/// `/api/deliveries/{deliveryId}`).
fn matches(template: &'static str, path: &str) -> Option<(usize, Params)> {
    let mut want = template.split('/').filter(|s| !s.is_empty());
    let mut got = path.split('/').filter(|s| !s.is_empty());
    let (mut literal, mut params) = (0, Vec::new());
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some((literal, Params(params))),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                params.push((&w[1..w.len() - 1], g.to_string()));
            }
            (Some(w), Some(g)) if w == g => literal += 1,
            _ => return None,
        }
    }
}

/// Finds what serves `method path` in `table`: the most specific template that matches the
/// path, then the method.
pub fn find<Op: Copy>(table: &[Route<Op>], method: &str, path: &str) -> Found<Op> {
    let matched: Vec<(usize, &Route<Op>, Params)> = table
        .iter()
        .filter_map(|r| matches(r.path, path).map(|(n, p)| (n, r, p)))
        .collect();
    let Some(best) = matched.iter().map(|(n, ..)| *n).max() else {
        return Found::NoRoute;
    };
    let mut allowed = Vec::new();
    for (n, route, params) in matched {
        if n != best {
            continue;
        }
        if route.method.eq_ignore_ascii_case(method) {
            return Found::Route(*route, params);
        }
        if !allowed.contains(&route.method) {
            allowed.push(route.method);
        }
    }
    Found::WrongMethod(allowed)
}

macro_rules! table {
    ($($method:literal $path:literal $id:literal $access:ident $op:ident),* $(,)?) => {
        /// What the component does for each route.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op { $($op),* }

        /// The component's routes.
        pub const ROUTES: &[crate::Route<Op>] = &[
            $(crate::Route {
                method: $method,
                path: $path,
                operation_id: $id,
                access: crate::Access::$access,
                op: Op::$op,
            }),*
        ];
    };
}

/// `health`: liveness, readiness, the installation's health and its metrics.
pub mod health {
    table! {
        "GET" "/api/health" "health" Public Health,
        "HEAD" "/api/health" "" Public HealthHead,
        "GET" "/api/health/live" "liveness" Public Live,
        "GET" "/api/health/ready" "readiness" Public Ready,
        "GET" "/api/metrics" "metrics" AdminOrMetricsToken Metrics,
        "POST" "/internal/store-check" "" Chained StoreCheck,
    }
}

/// `update-dialog`: the public postback.
pub mod update_dialog {
    table! {
        "GET" "/api/bots/webhooks/{postbackId}/updateDialog" "updateDialogGet" Public UpdateDialog,
        "POST" "/api/bots/webhooks/{postbackId}/updateDialog" "updateDialogPost" Public UpdateDialogPost,
    }
}

/// `conversions`: Auto Actions, conversion links, and conversions by click id.
pub mod conversions {
    table! {
        "GET" "/api/bots/conversions/{conversionId}" "conversionGet" Public Conversion,
        "POST" "/api/bots/conversions/{conversionId}" "conversionPost" Public ConversionPost,
        "GET" "/api/bots/{botId}/auto-actions" "readAutoActions" Admin ReadAutoActions,
        "PUT" "/api/bots/{botId}/auto-actions" "putAutoActions" Admin PutAutoActions,
        "POST" "/api/bots/{botId}/auto-actions/start-preview" "previewStartPayload" Admin PreviewStartPayload,
        "POST" "/api/bots/{botId}/conversion-links" "createConversionLink" Admin CreateConversionLink,
        "GET" "/api/bots/{botId}/conversion-links" "listConversionLinks" Admin ListConversionLinks,
        "DELETE" "/api/bots/{botId}/conversion-links/{conversionId}" "revokeConversionLink" Admin RevokeConversionLink,
        "POST" "/internal/click-claimed" "" Chained ClickClaimed,
        "POST" "/internal/claims-due" "" Chained ClaimsDue,
    }
}

/// `bots-api`: bots, postback links, custom fields, dialogs.
pub mod bots_api {
    table! {
        "POST" "/api/bots" "createBot" Admin CreateBot,
        "GET" "/api/bots" "listBots" Admin ListBots,
        "GET" "/api/bots/{botId}" "readBot" Admin ReadBot,
        "PATCH" "/api/bots/{botId}" "renameBot" Admin RenameBot,
        "DELETE" "/api/bots/{botId}" "deleteBot" Admin DeleteBot,
        "POST" "/api/bots/{botId}/webhooks" "createPostbackLink" Admin CreateLink,
        "GET" "/api/bots/{botId}/webhooks" "listPostbackLinks" Admin ListLinks,
        "PUT" "/api/bots/{botId}/webhooks/{postbackId}" "importPostbackLink" Admin ImportLink,
        "DELETE" "/api/bots/{botId}/webhooks/{postbackId}" "revokePostbackLink" Admin RevokeLink,
        "GET" "/api/bots/{botId}/fields" "listFields" Admin ListFields,
        "PUT" "/api/bots/{botId}/fields/{key}" "putField" Admin PutField,
        "GET" "/api/bots/{botId}/fields/{key}" "readField" Admin ReadField,
        "DELETE" "/api/bots/{botId}/fields/{key}" "deleteField" Admin DeleteField,
        "GET" "/api/bots/{botId}/dialogs" "listDialogs" Admin ListDialogs,
        "PUT" "/api/bots/{botId}/dialogs/{chatId}" "startDialog" Admin StartDialog,
        "GET" "/api/bots/{botId}/dialogs/{chatId}" "readDialog" Admin ReadDialog,
        "DELETE" "/api/bots/{botId}/dialogs/{chatId}" "eraseDialog" Admin EraseDialog,
    }
}

/// `send-webhook`: steps and their webhooks, deliveries, the log, the retry sweep, previews.
pub mod send_webhook {
    table! {
        "GET" "/api/bots/{botId}/steps" "listSteps" Admin ListSteps,
        "POST" "/api/bots/{botId}/steps" "createStep" Admin CreateStep,
        "PUT" "/api/bots/{botId}/steps/{stepId}" "putStep" Admin PutStep,
        "GET" "/api/bots/{botId}/steps/{stepId}" "readStep" Admin ReadStep,
        "DELETE" "/api/bots/{botId}/steps/{stepId}" "deleteStep" Admin DeleteStep,
        "POST" "/api/bots/{botId}/steps/{stepId}/test-send" "testSendStep" Admin TestSendStep,
        "POST" "/api/bots/{botId}/steps/{stepId}/pause" "pauseStep" Admin PauseStep,
        "POST" "/api/bots/{botId}/steps/{stepId}/resume" "resumeStep" Admin ResumeStep,
        "POST" "/api/bots/{botId}/dialogs/{chatId}/send-webhook" "sendStepNow" Admin SendStepNow,
        "POST" "/api/templates/preview" "previewTemplate" Admin PreviewTemplate,
        "GET" "/api/deliveries" "listDeliveries" Admin ListDeliveries,
        "GET" "/api/deliveries/{deliveryId}" "readDelivery" Admin ReadDelivery,
        "POST" "/api/deliveries/{deliveryId}/replay" "replayDelivery" Admin ReplayDelivery,
        "POST" "/api/deliveries/recover" "recoverDeliveries" Admin RecoverDeliveries,
        "GET" "/api/attention" "needsAttention" Admin NeedsAttention,
        "GET" "/api/alerts/endpoints" "listAlertEndpoints" Admin ListAlertEndpoints,
        "POST" "/api/alerts/endpoints" "createAlertEndpoint" Admin CreateAlertEndpoint,
        "GET" "/api/alerts/endpoints/{endpointId}" "readAlertEndpoint" Admin ReadAlertEndpoint,
        "PUT" "/api/alerts/endpoints/{endpointId}" "replaceAlertEndpoint" Admin ReplaceAlertEndpoint,
        "DELETE" "/api/alerts/endpoints/{endpointId}" "deleteAlertEndpoint" Admin DeleteAlertEndpoint,
        "POST" "/api/alerts/endpoints/{endpointId}/test-send" "testSendAlertEndpoint" Admin TestSendAlertEndpoint,
        "POST" "/api/deliveries/retry-due" "retryDue" AdminOrSweepKey RetryDue,
        "GET" "/api/deliveries/retry-due" "retryDueGet" AdminOrSweepKey RetryDueGet,
        "POST" "/internal/step-reached" "" Chained StepReached,
        "POST" "/internal/sweep-if-idle" "" Chained SweepIfIdle,
    }
}

/// `call-hooks`: call-tracking services, their hooks, and call events.
pub mod call_hooks {
    table! {
        "GET" "/api/calls/parameters" "listCallParameters" Admin ListParameters,
        "POST" "/api/calls/services" "createService" Admin CreateService,
        "GET" "/api/calls/services" "listServices" Admin ListServices,
        "GET" "/api/calls/services/{serviceId}" "readService" Admin ReadService,
        "DELETE" "/api/calls/services/{serviceId}" "deleteService" Admin DeleteService,
        "POST" "/api/calls/services/{serviceId}/ingest-key" "rotateIngestKey" Admin RotateKey,
        "GET" "/api/calls/services/{serviceId}/hooks" "listHooks" Admin ListHooks,
        "POST" "/api/calls/services/{serviceId}/hooks" "createHook" Admin CreateHook,
        "GET" "/api/calls/services/{serviceId}/hooks/{hookId}" "readHook" Admin ReadHook,
        "PUT" "/api/calls/services/{serviceId}/hooks/{hookId}" "replaceHook" Admin ReplaceHook,
        "PATCH" "/api/calls/services/{serviceId}/hooks/{hookId}" "changeHook" Admin ChangeHook,
        "DELETE" "/api/calls/services/{serviceId}/hooks/{hookId}" "deleteHook" Admin DeleteHook,
        "POST" "/api/calls/services/{serviceId}/hooks/{hookId}/test-send" "testSendHook" Admin TestSendHook,
        "POST" "/api/calls/services/{serviceId}/hooks/{hookId}/pause" "pauseHook" Admin PauseHook,
        "POST" "/api/calls/services/{serviceId}/hooks/{hookId}/resume" "resumeHook" Admin ResumeHook,
        "POST" "/api/calls/services/{serviceId}/events" "ingestCallEvent" IngestKey IngestEvent,
        "GET" "/api/calls/services/{serviceId}/events" "ingestCallEventGet" IngestKey IngestEventGet,
        "POST" "/api/calls/services/{serviceId}/events/{pathKey}" "ingestCallEventByPath" IngestKey IngestEventByPath,
        "GET" "/api/calls/services/{serviceId}/events/{pathKey}" "ingestCallEventByPathGet" IngestKey IngestEventByPathGet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_template_wins_and_wrong_methods_name_the_right_ones() {
        use send_webhook::{Op, ROUTES};
        match find(ROUTES, "GET", "/api/deliveries/retry-due") {
            Found::Route(r, _) => assert_eq!(r.op, Op::RetryDueGet),
            other => panic!("{other:?}"),
        }
        match find(ROUTES, "GET", "/api/deliveries/0b5e/") {
            Found::Route(r, p) => {
                assert_eq!(r.op, Op::ReadDelivery);
                assert_eq!(p.get("deliveryId"), "0b5e");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            find(ROUTES, "DELETE", "/api/deliveries/retry-due"),
            Found::WrongMethod(vec!["POST", "GET"])
        );
        assert_eq!(
            find(ROUTES, "PATCH", "/api/bots/b/steps/s"),
            Found::WrongMethod(vec!["PUT", "GET", "DELETE"])
        );
        assert_eq!(find(ROUTES, "GET", "/api/bots/b/steps/s/x"), Found::NoRoute);
    }

    #[test]
    fn every_table_names_each_operation_once() {
        let mut ids: Vec<&str> = Vec::new();
        let mut all = |routes: Vec<(&'static str, &'static str, &'static str)>| {
            for (method, path, id) in routes {
                assert!(path.starts_with('/'), "{method} {path}");
                if !id.is_empty() {
                    assert!(!ids.contains(&id), "{id} twice");
                    ids.push(id);
                }
            }
        };
        all(health::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.operation_id))
            .collect());
        all(update_dialog::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.operation_id))
            .collect());
        all(conversions::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.operation_id))
            .collect());
        all(bots_api::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.operation_id))
            .collect());
        all(send_webhook::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.operation_id))
            .collect());
        all(call_hooks::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.operation_id))
            .collect());
        assert_eq!(ids.len(), 73);
    }
}
