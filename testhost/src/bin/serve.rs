//! Serves the real app through the test host, for poking at it without a `spin` binary
//! (curl, schemathesis against `openapi.yaml`). Variables come from `SPIN_VARIABLE_*`, as
//! with `spin up`; the key-value store is in memory and goes with the process.
//!
//!   SPIN_VARIABLE_ADMIN_TOKEN=change-me cargo run -p funnelhooks-testhost --bin serve

use anyhow::Result;
use funnelhooks_testhost::{HostBuilder, repo_root};

#[tokio::main]
async fn main() -> Result<()> {
    let app = HostBuilder::new(repo_root().join("spin.toml")).build()?;
    let server = app.serve().await?;
    println!("serving {} (Ctrl-C stops)", server.url());
    std::future::pending::<()>().await;
    Ok(())
}
