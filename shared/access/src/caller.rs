//! The caller of a management route and the rule that decides what it may do.

use funnelhooks_core::Error;
use funnelhooks_routes::{Access, Params, Target};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value as Json, json};

/// What a key may do within its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads what is in scope; changes nothing.
    Viewer,
    /// Reads and changes the bots and services in scope (creates new ones only when scoped to
    /// all of them).
    Editor,
    /// Everything, keys and the audit trail included; always scoped to everything.
    Admin,
}

impl Role {
    /// The role's name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Which bots (or services) a key reaches: `"all"`, or a list of ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every one, those made later included.
    All,
    /// Only these ids.
    Only(Vec<String>),
}

impl Scope {
    /// Whether `id` is in scope.
    pub fn reaches(&self, id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(ids) => ids.iter().any(|i| i == id),
        }
    }

    /// Whether nothing is in scope.
    pub fn is_empty(&self) -> bool {
        matches!(self, Scope::Only(ids) if ids.is_empty())
    }

    /// The scope as the API writes it.
    pub fn to_json(&self) -> Json {
        match self {
            Scope::All => json!("all"),
            Scope::Only(ids) => json!(ids),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::String(s) if s == "all" => Ok(Scope::All),
            v @ Json::Array(_) => serde_json::from_value(v)
                .map(Scope::Only)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom("a scope is \"all\" or a list of ids")),
        }
    }
}

/// Who is calling: the admin token (root) or an API key, with what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id; `None` for the admin token.
    pub key_id: Option<String>,
    /// The key's name (the admin token's is "admin token").
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The bots it reaches.
    pub bots: Scope,
    /// The call-tracking services it reaches.
    pub services: Scope,
}

impl Caller {
    /// The holder of the admin token: an admin of everything.
    pub fn root() -> Caller {
        Caller {
            key_id: None,
            name: "admin token".into(),
            role: Role::Admin,
            bots: Scope::All,
            services: Scope::All,
        }
    }

    /// The id the audit trail records: the key's, or `root` for the admin token.
    pub fn id(&self) -> &str {
        self.key_id.as_deref().unwrap_or("root")
    }

    /// Whether the caller may see bot `id`.
    pub fn sees_bot(&self, id: &str) -> bool {
        self.bots.reaches(id)
    }

    /// Whether the caller may see call-tracking service `id`.
    pub fn sees_service(&self, id: &str) -> bool {
        self.services.reaches(id)
    }

    /// Whether the caller may change what it sees.
    pub fn writes(&self) -> bool {
        self.role != Role::Viewer
    }

    /// Decides a route with `access` on `target` (its path parameters in `params`): a role
    /// that may not do it is a 403 whatever the target (that reveals nothing); a target out
    /// of scope is the 404 of a target that does not exist. Deliveries are decided once
    /// read (their owner is in the record), lists are filtered by the handler.
    pub fn check(&self, access: Access, target: Target, params: &Params) -> Result<(), Error> {
        let admin = self.role == Role::Admin;
        match access {
            Access::Public | Access::IngestKey | Access::Chained => return Ok(()),
            // The metrics are for the admin token and a scraper's own token: the health
            // component takes no API keys (which keeps the key store out of it).
            Access::AdminOrMetricsToken if self.key_id.is_some() => {
                return Err(Error::new(
                    funnelhooks_core::Kind::Unauthorized,
                    "unauthorized",
                    "the metrics take the admin token or the metrics_token, not an API key",
                )
                .at("Authorization"));
            }
            Access::Admin | Access::AdminOrSweepKey | Access::AdminOrMetricsToken => {
                return if admin {
                    Ok(())
                } else {
                    Err(Error::forbidden(
                        "admin_only",
                        "only an admin key (or the admin token) may do this",
                    ))
                };
            }
            Access::Write if !self.writes() => {
                return Err(Error::forbidden(
                    "read_only_key",
                    "this key is a viewer's: it may read, not change",
                ));
            }
            Access::Read | Access::Write => {}
        }
        let creates = access == Access::Write;
        match target {
            Target::Bot if !self.sees_bot(params.get("botId")) => Err(Error::unknown_bot()),
            Target::Service if !self.sees_service(params.get("serviceId")) => {
                Err(Error::unknown_service())
            }
            Target::Bots if creates && self.bots != Scope::All => Err(Error::forbidden(
                "scope_too_narrow",
                "creating a bot takes a key scoped to all bots",
            )),
            Target::Services if creates && self.services != Scope::All => Err(Error::forbidden(
                "scope_too_narrow",
                "creating a call-tracking service takes a key scoped to all services",
            )),
            _ => Ok(()),
        }
    }

    /// The caller as `GET /api/me` shows it: what the console needs to show only what the
    /// key may do.
    pub fn view(&self) -> Json {
        json!({
            "keyId": self.key_id,
            "name": self.name,
            "role": self.role.as_str(),
            "bots": self.bots.to_json(),
            "services": self.services.to_json(),
        })
    }
}
