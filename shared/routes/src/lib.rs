//! Every component's HTTP routes, declared once as data: the method, the path template (as
//! `openapi.yaml` writes it, `/api/bots/{botId}`), the OpenAPI operation id, who may call it
//! and which handler serves it. The components dispatch from these tables, `405` answers and
//! their `Allow` header come from them, and the OpenAPI test reads them (no Rust source is
//! scanned). Plain Rust with no dependencies, so tests and tools can read the tables.

/// Who may call a route. The management API's routes say whether they read or write; what
/// they read or write (a bot, a service, a delivery, a collection) follows from the path
/// ([`Route::target`]), and an API key's role and scope decide from both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the secret, if any, is in the path (postback links) or there is none.
    Public,
    /// Any API key (or the admin token) may call it; it changes nothing.
    Read,
    /// Keys that may change what the route targets (editors in scope, admins).
    Write,
    /// Admin keys and the admin token only: installation-wide settings and operations.
    Admin,
    /// An admin, or `?key=<retry_sweep_key>` (schedulers that can only call a URL).
    AdminOrSweepKey,
    /// An admin, or `Authorization: Bearer <metrics_token>` (a Prometheus scraper that should
    /// not hold an admin key).
    AdminOrMetricsToken,
    /// The call-tracking service's ingest key (header, query or path).
    IngestKey,
    /// Only another component of the app, through Spin's local chaining.
    Chained,
}

impl Access {
    /// Whether a key (or the admin token) is asked for.
    pub fn wants_key(self) -> bool {
        matches!(
            self,
            Access::Read
                | Access::Write
                | Access::Admin
                | Access::AdminOrSweepKey
                | Access::AdminOrMetricsToken
        )
    }
}

/// What a management route reads or changes, as its path says: the scope an API key is
/// held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One bot and what it holds (`{botId}` in the path).
    Bot,
    /// One call-tracking service and its hooks (`{serviceId}` in the path).
    Service,
    /// One delivery (`{deliveryId}`): its owner's bot or service, once it is read.
    Delivery,
    /// The bots: a list shows those in scope; creating one takes the scope of all bots.
    Bots,
    /// The call-tracking services, likewise.
    Services,
    /// The delivery log: a list shows the deliveries of bots and services in scope.
    Deliveries,
    /// Nothing stored (a preview, a list of parameters, the caller itself).
    Nothing,
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

impl<Op> Route<Op> {
    /// What the route reads or changes, from its path.
    pub fn target(&self) -> Target {
        let path = self.path;
        if path.contains("{botId}") {
            Target::Bot
        } else if path.contains("{serviceId}") {
            Target::Service
        } else if path.contains("{deliveryId}") {
            Target::Delivery
        } else if path == "/api/bots" {
            Target::Bots
        } else if path == "/api/calls/services" {
            Target::Services
        } else if path == "/api/deliveries" {
            Target::Deliveries
        } else {
            Target::Nothing
        }
    }
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

    /// Every parameter, by name, in the path's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(n, v)| (*n, v.as_str()))
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
        "GET" "/api/bots/{botId}/auto-actions" "readAutoActions" Read ReadAutoActions,
        "PUT" "/api/bots/{botId}/auto-actions" "putAutoActions" Write PutAutoActions,
        "POST" "/api/bots/{botId}/auto-actions/start-preview" "previewStartPayload" Read PreviewStartPayload,
        "POST" "/api/bots/{botId}/conversion-links" "createConversionLink" Write CreateConversionLink,
        "GET" "/api/bots/{botId}/conversion-links" "listConversionLinks" Read ListConversionLinks,
        "DELETE" "/api/bots/{botId}/conversion-links/{conversionId}" "revokeConversionLink" Write RevokeConversionLink,
        "POST" "/internal/click-claimed" "" Chained ClickClaimed,
        "POST" "/internal/claims-due" "" Chained ClaimsDue,
    }
}

/// `bots-api`: bots, postback links, custom fields, dialogs.
pub mod bots_api {
    table! {
        "POST" "/api/bots" "createBot" Write CreateBot,
        "GET" "/api/bots" "listBots" Read ListBots,
        "GET" "/api/bots/{botId}" "readBot" Read ReadBot,
        "PATCH" "/api/bots/{botId}" "renameBot" Write RenameBot,
        "DELETE" "/api/bots/{botId}" "deleteBot" Write DeleteBot,
        "POST" "/api/bots/{botId}/webhooks" "createPostbackLink" Write CreateLink,
        "GET" "/api/bots/{botId}/webhooks" "listPostbackLinks" Read ListLinks,
        "PUT" "/api/bots/{botId}/webhooks/{postbackId}" "importPostbackLink" Write ImportLink,
        "DELETE" "/api/bots/{botId}/webhooks/{postbackId}" "revokePostbackLink" Write RevokeLink,
        "GET" "/api/bots/{botId}/fields" "listFields" Read ListFields,
        "PUT" "/api/bots/{botId}/fields/{key}" "putField" Write PutField,
        "GET" "/api/bots/{botId}/fields/{key}" "readField" Read ReadField,
        "DELETE" "/api/bots/{botId}/fields/{key}" "deleteField" Write DeleteField,
        "GET" "/api/bots/{botId}/dialogs" "listDialogs" Read ListDialogs,
        "PUT" "/api/bots/{botId}/dialogs/{chatId}" "startDialog" Write StartDialog,
        "GET" "/api/bots/{botId}/dialogs/{chatId}" "readDialog" Read ReadDialog,
        "DELETE" "/api/bots/{botId}/dialogs/{chatId}" "eraseDialog" Write EraseDialog,
        "POST" "/api/bots/{botId}/dialogs/{chatId}/move" "moveDialog" Write MoveDialog,
        "GET" "/api/bots/{botId}/refused-postbacks" "listRefusedPostbacks" Read ListRefused,
    }
}

/// `send-webhook`: steps and their webhooks, deliveries, the log, the retry sweep, previews.
pub mod send_webhook {
    table! {
        "GET" "/api/bots/{botId}/steps" "listSteps" Read ListSteps,
        "POST" "/api/bots/{botId}/steps" "createStep" Write CreateStep,
        "PUT" "/api/bots/{botId}/steps/{stepId}" "putStep" Write PutStep,
        "GET" "/api/bots/{botId}/steps/{stepId}" "readStep" Read ReadStep,
        "DELETE" "/api/bots/{botId}/steps/{stepId}" "deleteStep" Write DeleteStep,
        "POST" "/api/bots/{botId}/steps/{stepId}/test-send" "testSendStep" Write TestSendStep,
        "POST" "/api/bots/{botId}/steps/{stepId}/pause" "pauseStep" Write PauseStep,
        "POST" "/api/bots/{botId}/steps/{stepId}/resume" "resumeStep" Write ResumeStep,
        "POST" "/api/bots/{botId}/dialogs/{chatId}/send-webhook" "sendStepNow" Write SendStepNow,
        "POST" "/api/templates/preview" "previewTemplate" Read PreviewTemplate,
        "GET" "/api/deliveries" "listDeliveries" Read ListDeliveries,
        "GET" "/api/deliveries/{deliveryId}" "readDelivery" Read ReadDelivery,
        "POST" "/api/deliveries/{deliveryId}/replay" "replayDelivery" Write ReplayDelivery,
        "POST" "/api/deliveries/{deliveryId}/retry" "retryDeliveryNow" Write RetryNow,
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
        "GET" "/api/calls/parameters" "listCallParameters" Read ListParameters,
        "POST" "/api/calls/services" "createService" Write CreateService,
        "GET" "/api/calls/services" "listServices" Read ListServices,
        "GET" "/api/calls/services/{serviceId}" "readService" Read ReadService,
        "DELETE" "/api/calls/services/{serviceId}" "deleteService" Write DeleteService,
        "POST" "/api/calls/services/{serviceId}/ingest-key" "rotateIngestKey" Write RotateKey,
        "GET" "/api/calls/services/{serviceId}/refused-events" "listRefusedCallEvents" Read ListRefusedEvents,
        "GET" "/api/calls/services/{serviceId}/hooks" "listHooks" Read ListHooks,
        "POST" "/api/calls/services/{serviceId}/hooks" "createHook" Write CreateHook,
        "GET" "/api/calls/services/{serviceId}/hooks/{hookId}" "readHook" Read ReadHook,
        "PUT" "/api/calls/services/{serviceId}/hooks/{hookId}" "replaceHook" Write ReplaceHook,
        "PATCH" "/api/calls/services/{serviceId}/hooks/{hookId}" "changeHook" Write ChangeHook,
        "DELETE" "/api/calls/services/{serviceId}/hooks/{hookId}" "deleteHook" Write DeleteHook,
        "POST" "/api/calls/services/{serviceId}/hooks/{hookId}/test-send" "testSendHook" Write TestSendHook,
        "POST" "/api/calls/services/{serviceId}/hooks/{hookId}/pause" "pauseHook" Write PauseHook,
        "POST" "/api/calls/services/{serviceId}/hooks/{hookId}/resume" "resumeHook" Write ResumeHook,
        "POST" "/api/calls/services/{serviceId}/events" "ingestCallEvent" IngestKey IngestEvent,
        "GET" "/api/calls/services/{serviceId}/events" "ingestCallEventGet" IngestKey IngestEventGet,
        "POST" "/api/calls/services/{serviceId}/events/{pathKey}" "ingestCallEventByPath" IngestKey IngestEventByPath,
        "GET" "/api/calls/services/{serviceId}/events/{pathKey}" "ingestCallEventByPathGet" IngestKey IngestEventByPathGet,
    }
}

/// `access`: API keys, the audit trail of admin changes, and who the caller is.
pub mod access {
    table! {
        "GET" "/api/keys" "listApiKeys" Admin ListKeys,
        "POST" "/api/keys" "createApiKey" Admin CreateKey,
        "GET" "/api/keys/{keyId}" "readApiKey" Admin ReadKey,
        "PATCH" "/api/keys/{keyId}" "changeApiKey" Admin ChangeKey,
        "DELETE" "/api/keys/{keyId}" "revokeApiKey" Admin RevokeKey,
        "POST" "/api/keys/{keyId}/rotate" "rotateApiKey" Admin RotateKey,
        "GET" "/api/audit" "listAuditEntries" Admin ListAudit,
        "GET" "/api/me" "whoAmI" Read Me,
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
        all(access::ROUTES
            .iter()
            .map(|r| (r.method, r.path, r.operation_id))
            .collect());
        assert_eq!(ids.len(), 85);
    }
}
