//! API keys: made, listed, changed, rotated and revoked by an admin; verified on every
//! management request.
//!
//! Keys: `apikey:{id}` holds a key's record (its secret only as a SHA-256), the index
//! `apikeys` lists their ids. A key is written after its id is listed and unlisted after its
//! record is gone, so a crash in between leaves an id that lists nothing, never a working
//! key that the list does not show.

use funnelhooks_core::json::Members;
use funnelhooks_core::secret::{hash_hex, matches_hash};
use funnelhooks_core::{Error, Timestamp, is_uuid, new_id};
use funnelhooks_routes::Target;
use funnelhooks_store::{Index, Kv, Records};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::caller::{Caller, Role, Scope};

/// Most keys an installation holds.
pub const MAX_KEYS: usize = 100;
/// Most bots (or services) a key's scope lists.
pub const MAX_SCOPE_IDS: usize = 200;
/// Longest key name, in characters.
pub const MAX_NAME: usize = 100;
/// What every key starts with, so a leaked one is recognised (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "fhk_";

/// An API key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Its id (a UUID; part of the key itself).
    pub id: String,
    /// What the admin called it ("agency: client A", "Keitaro sync").
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The bots it reaches.
    pub bots: Scope,
    /// The call-tracking services it reaches.
    pub services: Scope,
    /// SHA-256 of its secret part, hex.
    pub secret_hash: String,
    /// Its slot in the index (to unlist it).
    pub slot: u64,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was last changed or rotated.
    pub updated_at: Timestamp,
    /// When its secret was last replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<Timestamp>,
}

impl ApiKey {
    /// The key as the API shows it: never its secret, only how it starts.
    pub fn view(&self) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "role": self.role.as_str(),
            "bots": self.bots.to_json(),
            "services": self.services.to_json(),
            "startsWith": format!("{TOKEN_PREFIX}{}", &self.id.replace('-', "")[..8]),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "rotatedAt": self.rotated_at,
        })
    }

    /// The caller holding this key.
    pub fn caller(&self) -> Caller {
        Caller {
            key_id: Some(self.id.clone()),
            name: self.name.clone(),
            role: self.role,
            bots: self.bots.clone(),
            services: self.services.clone(),
        }
    }
}

/// What an admin sets on a key: name, role, scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its bots.
    pub bots: Scope,
    /// Its call-tracking services.
    pub services: Scope,
}

const MEMBERS: &[&str] = &["name", "role", "bots", "services"];

impl KeySettings {
    /// Reads a new key's settings from a request body: `name` and `role` required, `bots`
    /// and `services` `"all"` or lists of ids (absent: none; an admin's: all).
    pub fn read(body: &Json) -> Result<KeySettings, Error> {
        let m = Members::of(body, MEMBERS)?;
        let role = read_role(&m)?.ok_or_else(|| {
            Error::invalid("missing_field", "role", "required: viewer, editor or admin")
        })?;
        let default = if role == Role::Admin {
            Scope::All
        } else {
            Scope::Only(Vec::new())
        };
        KeySettings {
            name: read_name(&m)?.ok_or_else(|| {
                Error::invalid("missing_field", "name", "required, and must not be blank")
            })?,
            role,
            bots: read_scope(&m, "bots")?.unwrap_or_else(|| default.clone()),
            services: read_scope(&m, "services")?.unwrap_or(default),
        }
        .checked()
    }

    /// These settings with what a change body sets (absent members stay as they are).
    pub fn changed(&self, body: &Json) -> Result<KeySettings, Error> {
        let m = Members::of(body, MEMBERS)?;
        let given_role = read_role(&m)?;
        let role = given_role.unwrap_or(self.role);
        let all_if_admin = |s: Option<Scope>, was: &Scope| match s {
            Some(s) => s,
            // Made an admin without naming a scope: an admin's scope is everything.
            None if role == Role::Admin => Scope::All,
            None => was.clone(),
        };
        let changed = KeySettings {
            name: read_name(&m)?.unwrap_or_else(|| self.name.clone()),
            role,
            bots: all_if_admin(read_scope(&m, "bots")?, &self.bots),
            services: all_if_admin(read_scope(&m, "services")?, &self.services),
        };
        if given_role.is_none() && role == Role::Admin {
            // Narrowing an admin's scope conflicts with what the key is: say so as such.
            if let Err(e) = changed.clone().checked() {
                return Err(Error {
                    kind: funnelhooks_core::Kind::Conflict,
                    ..e
                });
            }
        }
        changed.checked()
    }

    /// An admin's scope is everything. (A viewer's or editor's may be empty for now: a key
    /// made before its bots are, say; it reaches nothing until given some.)
    fn checked(self) -> Result<KeySettings, Error> {
        if self.role == Role::Admin {
            for (field, scope) in [("bots", &self.bots), ("services", &self.services)] {
                if *scope != Scope::All {
                    return Err(Error::invalid(
                        "admin_scope",
                        field,
                        "an admin key manages keys and the whole installation: its scope is \
                         \"all\"; give a narrower key the editor or viewer role",
                    ));
                }
            }
        }
        Ok(self)
    }

    /// Checks that every id these settings add to `before`'s scope (all of them for a new
    /// key) exists (`known` answers for a bot or a service), naming the first that does not.
    /// Ids the key had already are not checked again: a bot deleted since stays harmless in
    /// a scope, and the key can still be renamed or narrowed.
    pub fn check_known(
        &self,
        before: Option<&KeySettings>,
        known: &dyn Fn(Target, &str) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        for (field, target, scope, had) in [
            ("bots", Target::Bot, &self.bots, before.map(|b| &b.bots)),
            (
                "services",
                Target::Service,
                &self.services,
                before.map(|b| &b.services),
            ),
        ] {
            if let Scope::Only(ids) = scope {
                for (i, id) in ids.iter().enumerate() {
                    let added = !had.is_some_and(|had| had.reaches(id));
                    if added && !known(target, id)? {
                        let what = if target == Target::Bot {
                            "bot"
                        } else {
                            "call-tracking service"
                        };
                        return Err(Error::not_found(
                            "unknown_id",
                            format!("no {what} with id {id}"),
                        )
                        .at(&format!("{field}[{i}]")));
                    }
                }
            }
        }
        Ok(())
    }
}

fn read_name(m: &Members) -> Result<Option<String>, Error> {
    let Some(name) = m.string("name")? else {
        return Ok(None);
    };
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "bad_name",
            "name",
            format!("1 to {MAX_NAME} characters, no control characters"),
        ));
    }
    Ok(Some(name.trim().to_string()))
}

fn read_role(m: &Members) -> Result<Option<Role>, Error> {
    m.text("role")?
        .map(|r| {
            Role::parse(r)
                .ok_or_else(|| Error::invalid("bad_role", "role", "viewer, editor or admin"))
        })
        .transpose()
}

fn read_scope(m: &Members, field: &str) -> Result<Option<Scope>, Error> {
    let Some(value) = m.get(field) else {
        return Ok(None);
    };
    let bad = |at: &str, msg: &str| Error::invalid("bad_scope", at, msg.to_string());
    match value {
        Json::String(s) if s == "all" => Ok(Some(Scope::All)),
        Json::Array(items) => {
            if items.len() > MAX_SCOPE_IDS {
                return Err(bad(field, &format!("at most {MAX_SCOPE_IDS} ids")));
            }
            let mut ids: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(id) if is_uuid(id) => {
                        let id = id.to_ascii_lowercase();
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    _ => return Err(bad(&format!("{field}[{i}]"), "an id (a UUID)")),
                }
            }
            Ok(Some(Scope::Only(ids)))
        }
        _ => Err(bad(field, "\"all\" or a list of ids")),
    }
}

fn unknown_key() -> Error {
    Error::not_found("unknown_key", "no API key with this id").at("keyId")
}

fn key_record(id: &str) -> String {
    format!("apikey:{id}")
}

/// A new secret: 64 hex digits (two random UUIDs' worth, 244 random bits).
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The key a caller sends: `fhk_`, the id's 32 hex digits, the secret's 64.
fn token(id: &str, secret: &str) -> String {
    format!("{TOKEN_PREFIX}{}{secret}", id.replace('-', ""))
}

/// The id and secret in a sent key, if it has the shape of one.
fn parse_token(token: &str) -> Option<(String, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    if rest.len() != 96 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (id, secret) = rest.split_at(32);
    let id = format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..]
    )
    .to_ascii_lowercase();
    Some((id, secret))
}

/// The API keys in a key-value store.
pub struct Keys<'a> {
    kv: &'a dyn Kv,
}

impl<'a> Keys<'a> {
    /// The keys in `kv`.
    pub fn new(kv: &'a dyn Kv) -> Self {
        Self { kv }
    }

    fn index(&self) -> Index<'a> {
        Index::new(self.kv, "apikeys".into())
    }

    fn records(&self) -> Records<'a> {
        Records::new(self.kv)
    }

    /// The caller holding `token`, if it is a key that exists (one read; compared in
    /// constant time).
    pub fn verify(&self, token: &str) -> Result<Option<Caller>, Error> {
        let Some((id, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let Some(key) = self.records().get::<ApiKey>(&key_record(&id))? else {
            return Ok(None);
        };
        Ok(matches_hash(secret, &key.secret_hash).then(|| key.caller()))
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Result<Vec<ApiKey>, Error> {
        let index = self.index();
        let mut keys = Vec::new();
        let mut after = 0;
        loop {
            let page = index.page(after, MAX_KEYS)?;
            for id in &page.items {
                if let Some(key) = self.records().get::<ApiKey>(&key_record(id))? {
                    keys.push(key);
                }
            }
            match page.next {
                Some(next) => after = next,
                None => return Ok(keys),
            }
        }
    }

    /// Key `id`.
    pub fn get(&self, id: &str) -> Result<ApiKey, Error> {
        if !is_uuid(id) {
            return Err(unknown_key());
        }
        self.records()
            .get(&key_record(&id.to_ascii_lowercase()))?
            .ok_or_else(unknown_key)
    }

    /// Makes a key; returns it with the key itself, which is never shown again.
    pub fn create(&self, settings: KeySettings, now: Timestamp) -> Result<(ApiKey, String), Error> {
        if self.list()?.len() >= MAX_KEYS {
            return Err(Error::conflict(
                "too_many_keys",
                format!("an installation holds at most {MAX_KEYS} keys; revoke one first"),
            ));
        }
        let id = new_id();
        let secret = new_secret();
        let slot = self.index().add(&id)?;
        let key = ApiKey {
            id: id.clone(),
            name: settings.name,
            role: settings.role,
            bots: settings.bots,
            services: settings.services,
            secret_hash: hash_hex(secret.as_bytes()),
            slot,
            created_at: now,
            updated_at: now,
            rotated_at: None,
        };
        self.records().put(&key_record(&id), &key)?;
        Ok((key, token(&id, &secret)))
    }

    /// Changes key `id`'s settings with `change` (given the current ones).
    pub fn change(
        &self,
        id: &str,
        now: Timestamp,
        change: impl Fn(&KeySettings) -> Result<KeySettings, Error>,
    ) -> Result<ApiKey, Error> {
        let id = self.get(id)?.id;
        self.records()
            .modify(&key_record(&id), |key: &mut ApiKey| {
                let new = change(&KeySettings {
                    name: key.name.clone(),
                    role: key.role,
                    bots: key.bots.clone(),
                    services: key.services.clone(),
                })?;
                key.name = new.name;
                key.role = new.role;
                key.bots = new.bots;
                key.services = new.services;
                key.updated_at = now;
                Ok::<_, Error>(key.clone())
            })?
            .ok_or_else(unknown_key)
    }

    /// Gives key `id` a new secret: the old key stops working at once.
    pub fn rotate(&self, id: &str, now: Timestamp) -> Result<(ApiKey, String), Error> {
        let id = self.get(id)?.id;
        let secret = new_secret();
        let hash = hash_hex(secret.as_bytes());
        let key = self
            .records()
            .modify(&key_record(&id), |key: &mut ApiKey| {
                key.secret_hash = hash.clone();
                key.rotated_at = Some(now);
                key.updated_at = now;
                Ok::<_, Error>(key.clone())
            })?
            .ok_or_else(unknown_key)?;
        Ok((key, token(&id, &secret)))
    }

    /// Revokes key `id`: it stops working at once, on every instance.
    pub fn revoke(&self, id: &str) -> Result<ApiKey, Error> {
        let key = self.get(id)?;
        self.kv.delete(&key_record(&key.id))?;
        self.index().remove(key.slot)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_its_id_and_secret_and_nothing_else_parses() {
        let id = new_id();
        let secret = new_secret();
        let t = token(&id, &secret);
        assert_eq!(parse_token(&t), Some((id.clone(), secret.as_str())));
        assert_eq!(parse_token(&t.to_uppercase()), None, "the prefix is exact");
        assert_eq!(parse_token(&t[..t.len() - 1]), None);
        assert_eq!(parse_token(&format!("{t}0")), None);
        assert_eq!(parse_token("fhk_"), None);
        assert_eq!(parse_token(&t.replace(&secret[..2], "zz")), None);
    }
}
