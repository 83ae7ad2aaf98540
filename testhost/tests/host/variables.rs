//! Variables: component scoping, templates, required secrets, providers.

use crate::common::{fixture, probe, serve};

#[tokio::test(flavor = "multi_thread")]
async fn component_variable_expands_its_template_over_app_variables() {
    let (_app, _server, client) = serve(fixture()).await;
    assert_eq!(
        probe(&client, "/probe?op=var&name=greeting").await["value"],
        "hello, world"
    );
    assert_eq!(
        probe(&client, "/probe?op=var&name=token").await["value"],
        "s3cret"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn override_beats_environment_which_beats_default() {
    let builder = fixture()
        .env(|k| match k {
            "SPIN_VARIABLE_GREETING" => Some("from-env".into()),
            "SPIN_VARIABLE_SECRET_TOKEN" => Some("env-secret".into()),
            _ => None,
        })
        .variable("secret_token", "override-secret");
    let (_app, _server, client) = serve(builder).await;
    assert_eq!(
        probe(&client, "/probe?op=var&name=greeting").await["value"],
        "from-env, world"
    );
    assert_eq!(
        probe(&client, "/probe?op=var&name=token").await["value"],
        "override-secret"
    );
}

#[test]
fn required_secret_without_a_value_stops_the_app() {
    let err = funnelhooks_testhost::HostBuilder::new(funnelhooks_testhost::fixture_manifest())
        .key_value_store("other")
        .env(|_| None)
        .build()
        .err()
        .expect("must not start without secret_token");
    assert!(format!("{err:#}").contains("secret_token"), "{err:#}");
}

#[test]
fn required_secret_can_come_from_spin_variable_env() {
    funnelhooks_testhost::HostBuilder::new(funnelhooks_testhost::fixture_manifest())
        .key_value_store("other")
        .env(|k| (k == "SPIN_VARIABLE_SECRET_TOKEN").then(|| "x".to_string()))
        .build()
        .expect("env provides the secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_sees_only_the_variables_it_declares() {
    let (_app, _server, client) = serve(fixture()).await;
    let locked = probe(&client, "/locked?op=var&name=token").await;
    assert!(
        locked["error"].as_str().unwrap().contains("Undefined"),
        "{locked}"
    );
    let bad = probe(&client, "/probe?op=var&name=Not-A-Name").await;
    assert!(
        bad["error"].as_str().unwrap().contains("InvalidName"),
        "{bad}"
    );
}

#[test]
fn overriding_an_undeclared_variable_is_a_mistake_not_a_silent_no_op() {
    let err = fixture()
        .variable("no_such_var", "x")
        .build()
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("no_such_var"), "{err:#}");
}
