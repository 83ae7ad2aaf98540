//! Our imitation of Spin: a host that runs Spin components from a `spin.toml` the way
//! `spin up` does, without a `spin` binary. It reads the manifest, routes, adds Spin's request
//! headers, provides Spin's key-value store (with compare-and-swap and each real store's
//! semantics), variables and the outbound HTTP allow-list, and serves requests concurrently
//! over loopback. Its own tests (`testhost/tests/host`) prove it against Spin's documented
//! behaviour with the probe fixture; the product's tests live in `tests/`.
//!
//! The loopback client and the scripted receiver (a webhook target whose answers a test
//! writes) live here too: they speak to a served host.

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
pub mod variables;
pub mod wasm_memory;

pub use client::{Admin, Client, Reply};
pub use host::{App, Fuel, HostBuilder, HostResponse};
pub use receiver::{Answer, Received, Receiver};

use std::path::PathBuf;

/// The repository root (where the app's `spin.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testhost/ has a parent")
        .to_path_buf()
}

/// The host's own fixture app (`testhost/fixtures/spin.toml`: the probe under many routes).
pub fn fixture_manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/spin.toml")
}
