//! `GET /api/health`: tells a load balancer, a SpinKube probe or a person with curl that the app
//! is up, that its key-value store answers, and whether the host blocks outbound requests to
//! private networks (without that, a webhook to a host name could reach an internal address:
//! an operator sees it here, and the senders refuse host names until it is fixed).

use funnelhooks_routes::health::ROUTES;
use funnelhooks_routes::{Found, find};
use funnelhooks_spin::{PrivateNetworks, json, private_networks, respond};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::key_value::Store;

/// A key nothing else uses: reading it proves the store answers without touching user data.
const PROBE_KEY: &str = "health:probe";

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    funnelhooks_spin::begin("health", &req);
    funnelhooks_core::log::set_route("/api/health");
    // The route table (`funnelhooks_routes::health`) decides; only the method can be wrong.
    let method = req.method().to_string();
    let path = req.path_with_query().unwrap_or_default();
    let path = path.split('?').next().unwrap_or("");
    if let Found::WrongMethod(allowed) = find(ROUTES, &method, path) {
        let mut response = json(
            405,
            &serde_json::json!({"error": {"code": "method_not_allowed",
                "message": format!("this route takes {}", allowed.join(", ")), "field": null}}),
        );
        response.set_header("allow", allowed.join(", "));
        return respond(out, response).await;
    }
    let kv = Store::open_default().and_then(|store| store.get(PROBE_KEY).map(|_| ()));
    let private = private_networks();
    let mut warnings = Vec::new();
    if private == PrivateNetworks::Open {
        warnings.push(
            "outbound requests to private networks are not blocked: webhooks and call hooks to host names are refused until the app runs with block_networks = [\"private\"] (runtime-config/sqlite.toml; see docs/security.md)",
        );
    }
    let (status, body) = match kv {
        Ok(()) => (
            200,
            serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"),
                "keyValue": "ok", "outbound": {"privateNetworks": private.as_str()},
                "warnings": warnings}),
        ),
        Err(e) => (
            503,
            serde_json::json!({"status": "degraded", "version": env!("CARGO_PKG_VERSION"),
                "keyValue": e.to_string(), "outbound": {"privateNetworks": private.as_str()},
                "warnings": warnings}),
        ),
    };
    respond(out, json(status, &body)).await;
}
