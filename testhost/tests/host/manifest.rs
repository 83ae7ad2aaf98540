//! Manifest validation and the import check: the host refuses what Spin refuses, loudly; and
//! its WIT copies are the ones the components are built against.

use funnelhooks_testhost::manifest::Manifest;
use funnelhooks_testhost::{HostBuilder, repo_root};

const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "m"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
"#;

#[test]
fn minimal_manifest_parses() {
    let m = Manifest::parse(MINIMAL).unwrap();
    assert_eq!(m.http_triggers().len(), 1);
}

#[test]
fn misspelled_component_field_is_rejected() {
    let bad = MINIMAL.replace("source =", "sourse =");
    let err = Manifest::parse(&bad).unwrap_err();
    assert!(format!("{err:#}").contains("sourse"), "{err:#}");
}

#[test]
fn required_variable_with_a_default_is_rejected() {
    let bad = format!("{MINIMAL}\n[variables]\nx = {{ required = true, default = \"y\" }}\n");
    let err = Manifest::parse(&bad).unwrap_err();
    assert!(format!("{err:#}").contains("required"), "{err:#}");
}

#[test]
fn component_variable_naming_an_undeclared_app_variable_is_rejected() {
    let bad = format!("{MINIMAL}\n[component.c.variables]\ntoken = \"{{{{ nope }}}}\"\n");
    let err = Manifest::parse(&bad).unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");
}

#[test]
fn bad_identifiers_are_rejected() {
    let bad = MINIMAL
        .replace("[component.c]", "[component.C_1]")
        .replace("component = \"c\"", "component = \"C_1\"");
    assert!(Manifest::parse(&bad).is_err());
    let private_false = MINIMAL.replace("route = \"/...\"", "route = { private = false }");
    assert!(Manifest::parse(&private_false).is_err());
}

#[test]
fn component_importing_something_the_host_lacks_fails_at_load_naming_it() {
    let dir = std::env::temp_dir().join(format!("fh-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A component that needs Spin's SQLite interface, which the test host does not provide.
    std::fs::write(
        dir.join("c.wasm"),
        r#"(component (import "fermyon:spin/sqlite@2.0.0" (instance (export "placeholder" (func)))))"#,
    )
    .unwrap();
    std::fs::write(dir.join("spin.toml"), MINIMAL).unwrap();
    let err = HostBuilder::new(dir.join("spin.toml"))
        .env(|_| None)
        .build()
        .err()
        .expect("must refuse to load");
    let msg = format!("{err:#}");
    assert!(msg.contains("fermyon:spin/sqlite@2.0.0"), "{msg}");
    assert!(msg.contains("does not provide"), "{msg}");
}

#[test]
fn wit_files_match_spin_sdk() {
    // The host's WIT copies must be exactly what the components were built against.
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"spin-sdk\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("spin-sdk in Cargo.lock");
    let cargo_home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo")
        });
    let sdk = std::fs::read_dir(cargo_home.join("registry/src"))
        .unwrap()
        .map(|e| e.unwrap().path().join(format!("spin-sdk-{version}")))
        .find(|p| p.exists())
        .expect("spin-sdk sources in the cargo registry (run scripts/build-wasm)");
    let pairs = [
        ("spin/key-value.wit", "spin@2.0.0/key-value.wit"),
        ("spin/variables.wit", "spin@2.0.0/variables.wit"),
        ("keyvalue/store.wit", "keyvalue-2024-10-17/store.wit"),
        ("keyvalue/atomic.wit", "keyvalue-2024-10-17/atomic.wit"),
        ("keyvalue/batch.wit", "keyvalue-2024-10-17/batch.wit"),
    ];
    for (ours, theirs) in pairs {
        let ours_text = std::fs::read_to_string(
            funnelhooks_testhost::repo_root()
                .join("testhost/wit/deps")
                .join(ours),
        )
        .unwrap();
        let theirs_text = std::fs::read_to_string(sdk.join("wit/deps").join(theirs)).unwrap();
        assert_eq!(
            ours_text, theirs_text,
            "testhost/wit/deps/{ours} drifted from spin-sdk {version}"
        );
    }
}
