//! The test host's own tests: each Spin behaviour the components can observe (routing, Spin's
//! request headers, key-value semantics, variables, the outbound allow-list, manifest checks),
//! proven against the probe fixture. They prove the imitation, not the product.

mod common;
mod headers;
mod kv;
mod manifest;
mod outbound;
mod routing;
mod variables;
