//! The web console in a real browser: `tests/browser/console_scenario.py` drives Debian's
//! chromium (Playwright) through the README's first minutes, against the real `spin up`,
//! with the tracker and the call tracker calling from outside the browser and a receiver on
//! loopback. It fails on any browser console error. `scripts/test` installs chromium and
//! Playwright (pinned, into `target/browser-venv`); the screenshots land in
//! `target/console-screenshots` (the README shows some, from `docs/console/`).

use std::path::PathBuf;
use std::process::Command;

use funnelhooks_testhost::{Client, repo_root};
use funnelhooks_tests::spin_cli::require;

use crate::common::{ADMIN_TOKEN, spin_up_app};

/// The Python with Playwright that `scripts/test` installs; missing fails in CI.
fn browser_python() -> Option<PathBuf> {
    let python = repo_root().join("target/browser-venv/bin/python");
    if python.is_file() {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "target/browser-venv is missing and CI is set: scripts/test installs Playwright there"
    );
    eprintln!("SKIPPED: target/browser-venv (Playwright) is missing; run scripts/test");
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_walks_the_first_minutes_in_a_real_browser() {
    let Some(spin) = require("spin").unwrap() else {
        return;
    };
    let Some(chromium) = require("chromium").unwrap() else {
        return;
    };
    let Some(python) = browser_python() else {
        return;
    };
    let up = spin_up_app(spin).await;
    // The console's catch-all takes nothing of the API's: Spin routes by specificity.
    let client = Client::new(up.url());
    let page = client.get("/").await.unwrap();
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(
        client.get("/api/health").await.unwrap().json()["status"],
        "ok"
    );
    let unknown = client.get("/api/no-such-thing").await.unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "not_found");

    let shots = repo_root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let url = up.url().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(repo_root().join("tests/browser/console_scenario.py"))
            .args(["--url", &url, "--token", ADMIN_TOKEN])
            .arg("--shots")
            .arg(&shots)
            .arg("--chromium")
            .arg(&chromium)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the console scenario failed:\n{}\n{}\n--- spin log ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        up.log_tail()
    );
}
