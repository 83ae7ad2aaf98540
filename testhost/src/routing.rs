//! HTTP routing with Spin's rules: the same `routefinder` matcher Spin uses (exact routes beat
//! wildcards, the longest prefix wins, `:name` captures one segment, `/...` captures the rest),
//! the application base, private routes left out, and the later of two identical routes winning.

use anyhow::{Result, anyhow};

use crate::manifest::{HttpTrigger, Route};

/// The application's routes.
#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<RouteEntry>,
}

#[derive(Debug, Clone)]
struct RouteEntry {
    component: String,
    based_route: String,
    raw_route: String,
}

/// What a request path matched: the component and everything Spin derives its headers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component that handles the request.
    pub component: String,
    /// The route with the base applied, as written (`/api/...`).
    pub based_route: String,
    /// The route as written in the manifest.
    pub raw_route: String,
    /// `:name` captures, in route order.
    pub named: Vec<(String, String)>,
    /// What `/...` captured, with Spin's trailing-slash rules (`spin-path-info`).
    pub path_info: String,
}

impl RouteMatch {
    /// The synthetic match Spin uses for `http://<component>.spin.internal` chaining.
    pub fn chained(component: &str, path: &str) -> Self {
        Self {
            component: component.to_string(),
            based_route: "/...".into(),
            raw_route: "/...".into(),
            named: Vec::new(),
            path_info: path.to_string(),
        }
    }

    /// The raw route without its trailing `/...` (`spin-component-route`).
    pub fn raw_route_or_prefix(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }
}

impl Router {
    /// Builds the router from the manifest's HTTP triggers and base.
    pub fn build(base: &str, triggers: &[HttpTrigger]) -> Result<Self> {
        // Identical routes: the later one replaces the earlier, as in Spin.
        let mut entries: Vec<RouteEntry> = Vec::new();
        for trigger in triggers {
            let Route::Path(raw) = &trigger.route else {
                continue;
            };
            let entry = RouteEntry {
                component: trigger.component.clone(),
                based_route: with_base(base, raw),
                raw_route: raw.clone(),
            };
            if let Some(existing) = entries.iter_mut().find(|e| e.raw_route == *raw) {
                *existing = entry;
            } else {
                entries.push(entry);
            }
        }
        let mut inner = routefinder::Router::new();
        for entry in entries {
            let spec = match entry.based_route.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => entry.based_route.clone(),
            };
            let component = entry.component.clone();
            inner.add(spec.as_str(), entry).map_err(|e| {
                anyhow!("route {spec:?} of component {component:?} does not parse: {e}")
            })?;
        }
        Ok(Self { inner })
    }

    /// The best route for `path`, or `None` (Spin answers 404).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let best = self.inner.best_match(path)?;
        let entry = best.handler();
        let captures = best.captures();
        let named = captures
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        // Spin has always kept trailing slashes in the path info; routefinder drops them.
        let path_info = match captures.wildcard() {
            None => String::new(),
            Some(w) => match (w.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{w}"),
                (false, true) => format!("/{w}/"),
            },
        };
        Some(RouteMatch {
            component: entry.component.clone(),
            based_route: entry.based_route.clone(),
            raw_route: entry.raw_route.clone(),
            named,
            path_info,
        })
    }
}

fn with_base(base: &str, route: &str) -> String {
    let route = if route.starts_with('/') {
        route.to_string()
    } else {
        format!("/{route}")
    };
    let strip = |s: &str| s.strip_suffix('/').unwrap_or(s).to_string();
    format!("{}{}", strip(base), strip(&route))
}
