//! What the end-to-end tests share beyond the test host (`funnelhooks-testhost`): the real
//! `spin up` runner (SQLite, Redis, process groups) and the delivery soak scenario, which the
//! soak program under `bench/` runs at length.

pub mod soak;
pub mod spin_cli;

pub use funnelhooks_testhost::repo_root;
