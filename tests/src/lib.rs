//! A test host that runs funnelhooks' real `.wasm` components the way Spin does, without a
//! `spin` binary: it reads `spin.toml`, routes, adds Spin's request headers, provides Spin's
//! key-value store (with compare-and-swap), variables and outbound HTTP allow-list, and serves
//! requests concurrently over loopback. Helpers for tests (client, scripted receiver) and the
//! request-path benchmark live here too.

pub mod bench;
pub mod client;
pub mod headers;
pub mod host;
pub mod kv;
pub mod logs;
pub mod manifest;
pub mod outbound;
pub mod receiver;
pub mod routing;
pub mod server;
pub mod soak;
pub mod spin_cli;
pub mod variables;
pub mod wasm_memory;

pub use client::{Client, Reply};
pub use host::{App, Fuel, HostBuilder, HostResponse};
pub use receiver::{Answer, Received, Receiver};

use std::path::PathBuf;

/// The repository root (where `spin.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
