//! `GET /api/health`: tells a load balancer, a SpinKube probe or a person with curl that the app
//! is up and that its key-value store answers.

use funnelhooks_routes::health::ROUTES;
use funnelhooks_routes::{Found, find};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::key_value::Store;

/// A key nothing else uses: reading it proves the store answers without touching user data.
const PROBE_KEY: &str = "health:probe";

#[spin_sdk::http_component]
fn handle(req: Request) -> impl IntoResponse {
    // The route table (`funnelhooks_routes::health`) decides; only the method can be wrong.
    if let Found::WrongMethod(allowed) = find(ROUTES, &req.method().to_string(), req.path()) {
        let mut response = json(
            405,
            serde_json::json!({"error": {"code": "method_not_allowed",
                "message": format!("this route takes {}", allowed.join(", ")), "field": null}}),
        );
        response.set_header("allow", allowed.join(", "));
        return response;
    }
    let kv = Store::open_default().and_then(|store| store.get(PROBE_KEY).map(|_| ()));
    match kv {
        Ok(()) => json(
            200,
            serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"),
                "keyValue": "ok"}),
        ),
        Err(e) => json(
            503,
            serde_json::json!({"status": "degraded", "version": env!("CARGO_PKG_VERSION"),
                "keyValue": e.to_string()}),
        ),
    }
}

fn json(status: u16, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
