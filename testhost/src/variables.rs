//! Variable resolution as Spin does it: a component sees only the variables its
//! `[component.x.variables]` table declares; each is a template over application variables,
//! whose value comes from the first provider that has one (test overrides, then
//! `SPIN_VARIABLE_<NAME>` from the environment), else the manifest default. A required
//! variable nobody provides stops the app from starting.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::manifest::{Manifest, template_names, validate_lower_snake};

/// Looks up an environment variable; replaceable so tests need not touch the process env.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The error a component sees, matching `fermyon:spin/variables@2.0.0`'s `error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    /// The name is not a valid variable name.
    InvalidName(String),
    /// The component declares no such variable.
    Undefined(String),
    /// No provider had a value.
    Provider(String),
}

/// Resolves component variables for one application.
#[derive(Clone)]
pub struct Resolver {
    app_variables: BTreeMap<String, crate::manifest::Variable>,
    component_variables: BTreeMap<String, BTreeMap<String, String>>,
    overrides: BTreeMap<String, String>,
    env: EnvLookup,
}

impl Resolver {
    /// A resolver for `manifest`, with test overrides taking precedence over the environment.
    pub fn new(
        manifest: &Manifest,
        overrides: BTreeMap<String, String>,
        env: EnvLookup,
    ) -> Result<Self> {
        for name in overrides.keys() {
            if !manifest.variables.contains_key(name) {
                bail!("override for {name:?}, which spin.toml does not declare");
            }
        }
        let resolver = Self {
            app_variables: manifest.variables.clone(),
            component_variables: manifest
                .components
                .iter()
                .map(|(id, c)| (id.clone(), c.variables.clone()))
                .collect(),
            overrides,
            env,
        };
        let missing: Vec<&str> = resolver
            .app_variables
            .iter()
            .filter(|(name, var)| var.default.is_none() && resolver.provided(name).is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        if !missing.is_empty() {
            bail!("no provider resolved required variable(s): {missing:?}");
        }
        Ok(resolver)
    }

    fn provided(&self, name: &str) -> Option<String> {
        if let Some(v) = self.overrides.get(name) {
            return Some(v.clone());
        }
        (self.env)(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
    }

    fn app_variable(&self, name: &str) -> Result<String, VariableError> {
        if let Some(v) = self.provided(name) {
            return Ok(v);
        }
        self.app_variables
            .get(name)
            .and_then(|v| v.default.clone())
            .ok_or_else(|| {
                VariableError::Provider(format!("no provider resolved required variable {name:?}"))
            })
    }

    /// What `variables::get(name)` returns inside `component`.
    pub fn get(&self, component: &str, name: &str) -> Result<String, VariableError> {
        validate_lower_snake(name).map_err(|e| VariableError::InvalidName(e.to_string()))?;
        let templates = self.component_variables.get(component).ok_or_else(|| {
            VariableError::Undefined(format!("no variable for component {component:?}"))
        })?;
        let template = templates.get(name).ok_or_else(|| {
            VariableError::Undefined(format!("no variable for {component:?}.{name:?}"))
        })?;
        self.expand(template)
    }

    fn expand(&self, template: &str) -> Result<String, VariableError> {
        // The manifest was validated, so every name here is a declared application variable.
        let names = template_names(template).map_err(|e| VariableError::Provider(e.to_string()))?;
        let mut out = String::new();
        let mut rest = template;
        for name in names {
            let start = rest.find("{{").expect("validated template");
            let end = rest[start..].find("}}").expect("validated template") + start;
            out.push_str(&rest[..start]);
            out.push_str(&self.app_variable(name)?);
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves every `{{ name }}` in `template` against application variables (used for
    /// templated `allowed_outbound_hosts`).
    pub fn expand_app_template(&self, template: &str) -> Result<String> {
        self.expand(template)
            .map_err(|e| anyhow::anyhow!("resolving {template:?}: {e:?}"))
    }
}
