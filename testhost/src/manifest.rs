//! Reads a `spin.toml` (manifest version 2) the way Spin does, rejecting what Spin rejects:
//! unknown fields, bad identifiers, variables that are both required and defaulted, and
//! component variables that name no application variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

/// A parsed Spin application manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always 2.
    pub spin_manifest_version: u32,
    /// Name, version, description and trigger-wide settings.
    pub application: Application,
    /// Application variables, by name.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// Triggers by type; only `http` is used here.
    #[serde(rename = "trigger", default)]
    pub triggers: BTreeMap<String, Vec<HttpTrigger>>,
    /// Components by id.
    #[serde(rename = "component", default)]
    pub components: BTreeMap<String, Component>,
    /// The directory the manifest lives in; relative `source` paths start here.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// `[application]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The application's name.
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// A description.
    #[serde(default)]
    pub description: String,
    /// Authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Deployment targets.
    #[serde(default)]
    pub targets: Vec<toml::Value>,
    /// `[application.trigger.http]` (`base`).
    #[serde(rename = "trigger", default)]
    pub trigger_global: BTreeMap<String, toml::Table>,
    /// Tool-specific tables.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// An application variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// What it is for.
    pub description: Option<String>,
    /// Spin refuses to start when no provider gives it a value.
    #[serde(default)]
    pub required: bool,
    /// Value used when no provider has one.
    pub default: Option<String>,
    /// Not shown in logs.
    #[serde(default)]
    pub secret: bool,
}

/// An HTTP route: a path pattern, or `{ private = true }` for chaining-only components.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Route {
    /// `/api/...`, `/api/bots/:id`, `/exact`.
    Path(String),
    /// Reachable only through `http://<component>.spin.internal`.
    Private {
        /// Must be true.
        private: bool,
    },
}

/// `[[trigger.http]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// Trigger id (optional).
    #[serde(default)]
    pub id: String,
    /// The route.
    pub route: Route,
    /// The component id it runs.
    pub component: String,
    /// `spin` or `wagi`; only the default (`spin`, the wasi:http executor) is supported.
    pub executor: Option<toml::Table>,
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Path to the `.wasm`, relative to the manifest.
    pub source: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Component variables: templates over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables the component sees.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Outbound allow-list.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value stores the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// SQLite databases (not provided by the test host).
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// AI models (not provided by the test host).
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Files to mount (not provided by the test host).
    #[serde(default)]
    pub files: Vec<toml::Value>,
    /// Files not to mount.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// `spin build` settings.
    pub build: Option<BuildConfig>,
    /// Tool-specific tables.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// `[component.<id>.build]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// One command or several.
    pub command: toml::Value,
    /// Directory to run it in.
    pub workdir: Option<String>,
    /// Paths `spin watch` watches.
    #[serde(default)]
    pub watch: Vec<String>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let mut manifest = Self::parse(&text).with_context(|| format!("in {}", path.display()))?;
        manifest.dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(manifest)
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.spin_manifest_version == 2,
            "spin_manifest_version must be 2"
        );
        for (name, var) in &self.variables {
            validate_lower_snake(name).with_context(|| format!("variable {name:?}"))?;
            ensure!(
                !(var.required && var.default.is_some()),
                "variable {name:?}: a required variable may not have a default"
            );
        }
        for (id, component) in &self.components {
            validate_kebab(id).with_context(|| format!("component id {id:?}"))?;
            for (key, template) in &component.variables {
                validate_lower_snake(key)
                    .with_context(|| format!("component {id:?} variable {key:?}"))?;
                for name in template_names(template)? {
                    ensure!(
                        self.variables.contains_key(name),
                        "component {id:?} variable {key:?} refers to unknown variable {name:?}"
                    );
                }
            }
        }
        for (kind, triggers) in &self.triggers {
            ensure!(
                kind == "http",
                "trigger type {kind:?} is not supported by the test host"
            );
            for t in triggers {
                ensure!(
                    self.components.contains_key(&t.component),
                    "trigger for route {:?} names unknown component {:?}",
                    t.route,
                    t.component
                );
                if let Route::Private { private } = t.route {
                    ensure!(
                        private,
                        "route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}",
                        t.component
                    );
                }
                if let Some(executor) = &t.executor {
                    let kind = executor.get("type").and_then(|v| v.as_str());
                    ensure!(
                        kind == Some("spin"),
                        "executor {kind:?} is not supported by the test host"
                    );
                }
            }
        }
        Ok(())
    }

    /// The HTTP base path (`[application.trigger.http] base`), `/` by default.
    pub fn http_base(&self) -> String {
        self.application
            .trigger_global
            .get("http")
            .and_then(|t| t.get("base"))
            .and_then(|b| b.as_str())
            .unwrap_or("/")
            .to_string()
    }

    /// The HTTP triggers, in manifest order.
    pub fn http_triggers(&self) -> &[HttpTrigger] {
        self.triggers.get("http").map(Vec::as_slice).unwrap_or(&[])
    }

    /// The absolute path of a component's `.wasm`.
    pub fn source_path(&self, component: &Component) -> PathBuf {
        self.dir.join(&component.source)
    }
}

/// The variable names in a Spin template (`"{{ admin_token }}"`), in order.
pub fn template_names(template: &str) -> Result<Vec<&str>> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unterminated '{{{{' in template {template:?}");
        };
        let name = after[..end].trim();
        validate_lower_snake(name)?;
        names.push(name);
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// Spin's rule for variable names: lower-case letters, digits and single underscores,
/// starting with a letter and ending with a letter or digit.
pub fn validate_lower_snake(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    ensure!(!bytes.is_empty(), "must not be empty");
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        bail!(
            "{name:?}: invalid character {bad:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        );
    }
    ensure!(
        bytes[0].is_ascii_lowercase(),
        "{name:?}: must start with a lowercase ASCII letter"
    );
    ensure!(
        bytes[bytes.len() - 1].is_ascii_alphanumeric(),
        "{name:?}: must end with a lowercase ASCII letter or digit"
    );
    ensure!(
        !name.contains("__"),
        "{name:?}: must not contain multiple consecutive underscores"
    );
    Ok(())
}

fn validate_kebab(id: &str) -> Result<()> {
    ensure!(!id.is_empty(), "must not be empty");
    for word in id.split('-') {
        ensure!(!word.is_empty(), "must not have empty words ('--')");
        ensure!(
            word.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "may contain only lower-case letters, digits and '-'"
        );
    }
    ensure!(
        id.as_bytes()[0].is_ascii_lowercase(),
        "must start with a lower-case letter"
    );
    Ok(())
}
