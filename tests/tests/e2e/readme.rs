//! The README's first minutes, replayed: every shell block marked
//! `<!-- replayed by tests/tests/e2e/readme.rs -->` runs, as written, in one `bash` against
//! the real app (only the origin and the receiver's port are swapped for the test's), and
//! what a reader is promised is checked: the dialog, the tracker's postback, the call hook.

use std::process::Command;
use std::time::Duration;

use funnelhooks_testhost::{Receiver, repo_root};
use serde_json::Value;

use crate::common::serve;

const MARK: &str = "<!-- replayed by tests/tests/e2e/readme.rs -->";

/// The marked ```sh blocks, in order.
fn replayed_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARK {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "{MARK} precedes a sh block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(block.join("\n"));
    }
    blocks
}

/// A directory with a `jq` that understands `-r .member`, for machines without jq.
fn jq_fallback() -> Option<tempfile::TempDir> {
    if Command::new("jq").arg("--version").output().is_ok() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = "#!/usr/bin/env python3\nimport json, sys\nkey = sys.argv[-1].lstrip('.')\nv = json.load(sys.stdin).get(key)\nprint(v if isinstance(v, str) else json.dumps(v))\n";
    let path = dir.path().join("jq");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_first_minutes_run_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = replayed_blocks(&readme);
    assert_eq!(
        blocks.len(),
        4,
        "health, first minutes, send-webhook step, call hook"
    );
    // The app as the README starts it: admin token change-me, loopback webhooks allowed.
    let builder = funnelhooks_testhost::HostBuilder::new(repo_root().join("spin.toml"))
        .variable("admin_token", "change-me")
        .variable("allow_loopback_webhooks", "true")
        .env(|_| None);
    let (_app, server, _client) = serve(builder).await;
    let rx = Receiver::start().await.unwrap();
    let script = blocks
        .join("\n")
        .replace("http://127.0.0.1:3000", &server.url())
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{}", rx.port()))
        .replace("\"port\":8081", &format!("\"port\":{}", rx.port()));
    let jq = jq_fallback();
    let path = match &jq {
        Some(dir) => format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        ),
        None => std::env::var("PATH").unwrap(),
    };
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("PATH", path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "the README's commands failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every answer printed is JSON without an error (curl prints them back to back).
    let answers: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map(|a| a.unwrap_or_else(|e| panic!("{e}: {stdout}")))
        .collect();
    assert_eq!(answers.len(), 9, "one answer per printing curl: {stdout}");
    for a in &answers {
        assert!(a.get("error").is_none(), "the README shows an error: {a}");
    }
    assert_eq!(answers[0]["status"], "ok", "the health check");
    let dialog = answers
        .iter()
        .find(|a| a["chatId"] == 1227280 && a.get("fields").is_some())
        .expect("the dialog is read back");
    assert_eq!(dialog["fields"]["userBalance"], 5000);
    assert_eq!(dialog["tracker"]["clickid"], "abc123");
    assert_eq!(dialog["tags"][0], "depositor");
    // The tracker's postback from the step, and the CRM's request from the call hook.
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let step = got
        .iter()
        .find(|r| r.query().iter().any(|(k, _)| k == "subid"))
        .unwrap();
    assert_eq!(
        step.query(),
        [
            ("subid".into(), "abc123".into()),
            ("status".into(), "lead".into()),
            ("balance".into(), "5000".into())
        ]
    );
    let call = got
        .iter()
        .find(|r| r.query().iter().any(|(k, _)| k == "call"))
        .unwrap();
    assert_eq!(
        call.path_and_query,
        "/?call=88412&town=Omsk&source=callkeeper"
    );
}
