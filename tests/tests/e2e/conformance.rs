//! The document and the server agree: schemathesis runs every check of `openapi.yaml`
//! (examples, coverage, fuzzing and the stateful phase its links allow) against the real
//! `spin up`, with a fixed seed and a bounded number of examples so a run is repeatable; any
//! server error or mismatch fails the test with schemathesis' report. `scripts/test`
//! installs schemathesis (pinned) into `target/schemathesis-venv`.

use std::process::Command;

use funnelhooks_testhost::repo_root;
use funnelhooks_tests::spin_cli::require;

use crate::common::{ADMIN_TOKEN, spin_up_app};

/// Examples per operation and phase: enough to reach every operation and its checks, few
/// enough for a test run of about a minute.
const MAX_EXAMPLES: &str = "10";
/// A fixed seed: the same run each time (a new mismatch shows when the document or the
/// server changes, not at random).
const SEED: &str = "20261130";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_mismatch_on_the_real_spin() {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let Some(st) = require("st").unwrap() else {
        return;
    };
    let up = spin_up_app(spin).await;
    let url = up.url().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .current_dir(repo_root())
            .args(["run", "openapi.yaml", "--url", &url])
            .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .args(["--checks", "all", "--max-examples", MAX_EXAMPLES])
            // One worker: Python 3.11's `ast` keeps its recursion depth per interpreter, not
            // per thread, so hypothesis describing strategies in two threads at once can fail
            // with "AST constructor recursion depth mismatch" (CPython gh-106905), a crash of
            // the tool that once failed a clean CI run, not a finding about the API.
            .args(["--seed", SEED, "--workers", "1", "--no-color"])
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}\n--- spin log ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        up.log_tail()
    );
    assert!(
        report.contains("Stateful"),
        "the stateful phase ran: {report}"
    );
}
