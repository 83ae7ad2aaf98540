//! Records a change made through the management API in the audit trail
//! (`funnelhooks_access::audit`): called by each component once its handler has answered.

use funnelhooks_access::Audit;
use funnelhooks_access::audit::{AuditEntry, fields_of};
use funnelhooks_core::log::Level;
use funnelhooks_routes::Access;
use serde_json::Value as Json;
use spin_sdk::http::{Request, Response};

use crate::auth::ADMITTED;

/// Path parameters that are credentials (a link's id opens it): kept as their start only.
const CREDENTIAL_PARAMS: &[&str] = &["postbackId", "conversionId", "pathKey"];
/// Operations whose new id is a credential (a link's).
const CREDENTIAL_CREATES: &[&str] = &["createPostbackLink", "createConversionLink"];
/// Ids taken from the request or the answer, when the path does not name them: what a
/// create made, whose a replay or recovery was.
const NAMED_IDS: &[&str] = &["botId", "serviceId", "stepId", "hookId"];

/// Records `req`, answered with `response`, when it changed something: a route that writes
/// (or an admin's), not a read, answered with success, or with a server error (the change may
/// have been made before it failed; the status says which). The trail failing does not undo
/// the change or fail the answer; it is logged.
pub fn record(req: &Request, response: &Response) {
    let Some(admitted) = ADMITTED.take() else {
        return;
    };
    let status = *response.status();
    let writes = matches!(admitted.access, Access::Write | Access::Admin);
    let reads = matches!(
        req.method(),
        spin_sdk::http::Method::Get | spin_sdk::http::Method::Head
    );
    if !writes || reads || !((200..300).contains(&status) || status >= 500) {
        return;
    }
    let start = funnelhooks_core::text::start_of;
    let mut path = req.path().to_string();
    let mut target = std::collections::BTreeMap::new();
    for (name, value) in admitted.params.iter() {
        let shown = if CREDENTIAL_PARAMS.contains(&name) {
            path = path.replace(value, &start(value));
            start(value)
        } else {
            value.to_string()
        };
        target.insert(name.to_string(), shown);
    }
    let answer: Json = serde_json::from_slice(response.body()).unwrap_or_default();
    let asked: Json = serde_json::from_slice(req.body()).unwrap_or_default();
    if let Some(id) = answer["id"].as_str().filter(|_| status == 201) {
        let id = if CREDENTIAL_CREATES.contains(&admitted.operation_id) {
            start(id)
        } else {
            id.to_string()
        };
        target.insert("created".into(), id);
    }
    for name in NAMED_IDS {
        if let Some(id) = answer[*name].as_str().or_else(|| asked[*name].as_str()) {
            target
                .entry(name.to_string())
                .or_insert_with(|| id.to_string());
        }
    }
    let entry = AuditEntry {
        at: crate::now(),
        key_id: admitted.caller.id().to_string(),
        key_name: admitted.caller.name.clone(),
        action: admitted.operation_id.to_string(),
        method: req.method().to_string(),
        path,
        target,
        fields: fields_of(req.body()),
        status,
    };
    let entry = entry.bounded();
    let recorded = crate::SpinKv::open_default().and_then(|kv| Audit::new(&kv).record(&entry));
    if let Err(e) = recorded
        && let Some(line) = funnelhooks_core::log::line(Level::Error, "audit_not_recorded")
    {
        line.str("action", &entry.action)
            .str("error", &e.to_string())
            .emit();
    }
}
