//! Records a change made through the management API in the audit trail
//! (`funnelhooks_access::audit`): called by each component once its handler has answered.

use funnelhooks_access::Audit;
use funnelhooks_access::audit::{AuditEntry, fields_of};
use funnelhooks_core::log::Level;
use funnelhooks_routes::Access;
use spin_sdk::http::Request;

use crate::auth::ADMITTED;

/// Records `req`, answered with `status`, when it changed something: a route that writes
/// (or an admin's), not a read, answered with success. The trail failing does not undo the
/// change or fail the answer; it is logged.
pub fn record(req: &Request, status: u16) {
    let Some(admitted) = ADMITTED.take() else {
        return;
    };
    let writes = matches!(admitted.access, Access::Write | Access::Admin);
    let reads = matches!(
        req.method(),
        spin_sdk::http::Method::Get | spin_sdk::http::Method::Head
    );
    if !writes || reads || !(200..300).contains(&status) {
        return;
    }
    let entry = AuditEntry {
        at: crate::now(),
        key_id: admitted.caller.id().to_string(),
        key_name: admitted.caller.name.clone(),
        action: admitted.operation_id.to_string(),
        method: req.method().to_string(),
        path: req.path().to_string(),
        target: admitted
            .params
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        fields: fields_of(req.body()),
        status,
    };
    let recorded = crate::SpinKv::open_default().and_then(|kv| Audit::new(&kv).record(&entry));
    if let Err(e) = recorded
        && let Some(line) = funnelhooks_core::log::line(Level::Error, "audit_not_recorded")
    {
        line.str("action", &entry.action)
            .str("error", &e.to_string())
            .emit();
    }
}
