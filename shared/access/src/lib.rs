//! Who may do what. The admin token from the `admin_token` variable is the root key; an admin
//! makes API keys, each with a role ([`Role`]: viewer, editor, admin) and a scope (all bots or
//! a list of them; all call-tracking services or a list). A key is shown once and stored as
//! the SHA-256 of its secret part; every request reads its record, so a revoked or rotated
//! key stops working at once on every instance. [`Caller::check`] decides a route for a
//! caller from the route table's access and the path's target; what a key may not see
//! answers as if it did not exist. Changes made through the management API are kept in the
//! [`audit`] trail.

pub mod audit;
pub mod caller;
pub mod keys;

pub use audit::{Audit, AuditEntry};
pub use caller::{Caller, Role, Scope};
pub use keys::{ApiKey, Keys};
