//! End-to-end tests: the real `.wasm` components, run by the test host as Spin would run them.
//! Build the components first (`scripts/test` does).

mod access;
mod app_manifest;
mod attacks;
mod auto_actions;
mod bots_api;
mod call_hooks;
mod common;
mod conformance;
mod console;
mod docs;
mod failing_targets;
mod guarantees;
mod health;
mod openapi;
mod operations;
mod readme;
mod real_spin;
mod round_trips;
mod scenarios;
mod security;
mod seeds;
mod send_webhook;
mod stores;
mod story;
mod update_dialog;
