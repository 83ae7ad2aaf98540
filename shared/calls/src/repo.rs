//! Services, their hooks and the call events already seen, in the key-value store.
//!
//! Keys: `callsvc:{id}` (a [`Service`] with its hooks: one read per event), `callsvcs:…` (the
//! services, in creation order), `callev:{serviceId}:{event}:{hash}` (the election counter
//! that makes a repeated event a duplicate) with `…:r` (what the first one did), and
//! `callevs:{serviceId}:…` (the events remembered, oldest dropped beyond
//! [`MAX_REMEMBERED_EVENTS`]).

use funnelhooks_delivery::TargetPolicy;
use funnelhooks_dialog::Timestamp;
use funnelhooks_dialog::bots::{is_uuid, new_id};
use funnelhooks_store::{Index, Kv, Records};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::error::CallError;
use crate::event::EventKind;
use crate::hook::HookConfig;

/// Most hooks one service holds (they are one record, read on every event).
pub const MAX_HOOKS: usize = 50;
/// How many events per service are remembered to tell a repeat from a new event.
pub const MAX_REMEMBERED_EVENTS: u64 = 10_000;
/// Most services one page lists.
const MAX_PAGE: usize = 200;

/// A hook as stored: its form and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRecord {
    /// Random UUID.
    pub id: String,
    /// The form, as stored by [`HookConfig::to_stored_json`].
    pub config: Json,
    /// The receiver answered 410 Gone: the hook sends nothing until it is saved again.
    #[serde(default)]
    pub gone: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl HookRecord {
    /// The hook's form, read back. Stored forms were valid when stored; `policy` may be
    /// stricter now (loopback turned off), which the error then says.
    pub fn hook(&self, policy: TargetPolicy) -> Result<HookConfig, CallError> {
        HookConfig::from_json(&self.config, policy)
    }

    /// The hook as the API shows it.
    pub fn view(&self, service_id: &str) -> Json {
        // Views never apply the SSRF policy: a stored hook is shown even when it no longer
        // passes it.
        let policy = TargetPolicy {
            allow_loopback: true,
        };
        let mut v = match self.hook(policy) {
            Ok(h) => h.to_view_json(),
            Err(e) => json!({"error": e.to_string()}),
        };
        v["id"] = Json::from(self.id.clone());
        v["serviceId"] = Json::from(service_id);
        v["gone"] = Json::from(self.gone);
        v["createdAt"] = serde_json::to_value(self.created_at).unwrap_or_default();
        v["updatedAt"] = serde_json::to_value(self.updated_at).unwrap_or_default();
        v
    }
}

/// A call-tracking account, site or widget: its ingest key and its hooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Random UUID.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// SHA-256 of the ingest key, hex; the key itself is shown once.
    pub key_hash: String,
    /// The key's last four characters, to tell keys apart.
    pub key_hint: String,
    /// The hooks, in the order they were added.
    pub hooks: Vec<HookRecord>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Its slot in the list of services.
    pub slot: u64,
}

impl Service {
    /// The service as the API shows it (no key).
    pub fn view(&self) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "ingestKeyHint": format!("…{}", self.key_hint),
            "hookCount": self.hooks.len(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }

    /// Whether `key` is this service's ingest key (compared as hashes, in constant time).
    pub fn key_matches(&self, key: &str) -> bool {
        let given = hash_hex(key.as_bytes());
        given.len() == self.key_hash.len()
            && given
                .bytes()
                .zip(self.key_hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The hook `id`, or a 404.
    pub fn hook(&self, id: &str) -> Result<&HookRecord, CallError> {
        self.hooks
            .iter()
            .find(|h| h.id == id)
            .ok_or_else(hook_missing)
    }
}

/// What the first delivery of an event did, for the answer to its repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Hooks of that event type that were enabled.
    pub matched: usize,
    /// `[hookId, deliveryId]` pairs.
    pub deliveries: Vec<(String, String)>,
    /// When it arrived.
    pub at: Timestamp,
}

/// Whether an event is new.
#[derive(Debug, Clone, PartialEq)]
pub enum EventClaim {
    /// The first time: deliver it.
    First,
    /// Seen before: send nothing; what the first one did, if it got that far.
    Repeat(Option<EventRecord>),
}

fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn service_key(id: &str) -> String {
    format!("callsvc:{id}")
}

/// `{event}:{hash}`: an event's name among its service's (call ids are the telephony side's
/// text; hashed, they make a safe, bounded key).
fn event_name(kind: EventKind, call_id: &str) -> String {
    let hash = hash_hex(call_id.as_bytes());
    format!("{}:{}", kind.as_str(), &hash[..32])
}

fn event_key(service: &str, event: &str) -> String {
    format!("callev:{service}:{event}")
}

fn service_missing() -> CallError {
    CallError::new(
        404,
        "unknown_service",
        Some("serviceId"),
        "no call-tracking service with this id",
    )
}

fn hook_missing() -> CallError {
    CallError::new(
        404,
        "unknown_hook",
        Some("hookId"),
        "no hook with this id in the service",
    )
}

/// A new ingest key: `ik_` and 64 hex digits (two random UUIDs' worth, 244 random bits).
fn new_key() -> String {
    format!(
        "ik_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Services, hooks and events in a key-value store.
pub struct CallRepo<'a, K: Kv> {
    kv: &'a K,
}

impl<'a, K: Kv> CallRepo<'a, K> {
    /// The repository over `kv`.
    pub fn new(kv: &'a K) -> Self {
        Self { kv }
    }

    fn records(&self) -> Records<'a> {
        Records::new(self.kv)
    }

    fn services_index(&self) -> Index<'a> {
        Index::new(self.kv, "callsvcs".into())
    }

    fn events_index(&self, service: &str) -> Index<'a> {
        Index::new(self.kv, format!("callevs:{service}"))
    }

    /// Creates a service; returns it and its ingest key (the only time the key is shown).
    pub fn create_service(
        &self,
        name: String,
        now: Timestamp,
    ) -> Result<(Service, String), CallError> {
        let id = new_id();
        let key = new_key();
        let slot = self.services_index().add(&id)?;
        let service = Service {
            id,
            name,
            key_hash: hash_hex(key.as_bytes()),
            key_hint: key[key.len() - 4..].to_string(),
            hooks: Vec::new(),
            created_at: now,
            updated_at: now,
            slot,
        };
        self.records().put(&service_key(&service.id), &service)?;
        Ok((service, key))
    }

    /// The service, or a 404.
    pub fn service(&self, id: &str) -> Result<Service, CallError> {
        if !is_uuid(id) {
            return Err(service_missing());
        }
        self.records()
            .get(&service_key(id))?
            .ok_or_else(service_missing)
    }

    /// A page of services, oldest first, and the cursor of the next.
    pub fn services(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Service>, Option<u64>), CallError> {
        let page = self.services_index().page(after, limit.min(MAX_PAGE))?;
        let mut items = Vec::with_capacity(page.items.len());
        for id in page.items {
            if let Some(s) = self.records().get(&service_key(&id))? {
                items.push(s);
            }
        }
        Ok((items, page.next))
    }

    /// Changes the service with `change` (retried on concurrent writes), or a 404. When
    /// `change` fails nothing is written.
    pub fn modify_service<R>(
        &self,
        id: &str,
        now: Timestamp,
        mut change: impl FnMut(&mut Service) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        if !is_uuid(id) {
            return Err(service_missing());
        }
        self.records()
            .modify(&service_key(id), |s: &mut Service| {
                let r = change(s)?;
                s.updated_at = now;
                Ok::<_, CallError>(r)
            })?
            .ok_or_else(service_missing)
    }

    /// Replaces the service's ingest key; returns the new key. The old one stops at once.
    pub fn rotate_key(&self, id: &str, now: Timestamp) -> Result<String, CallError> {
        let key = new_key();
        self.modify_service(id, now, |s| {
            s.key_hash = hash_hex(key.as_bytes());
            s.key_hint = key[key.len() - 4..].to_string();
            Ok(())
        })?;
        Ok(key)
    }

    /// Deletes the service (its hooks with it, so events stop at once) and the events it
    /// remembers.
    pub fn delete_service(&self, id: &str) -> Result<(), CallError> {
        let service = self.service(id)?;
        self.kv.delete(&service_key(id))?;
        self.services_index().remove(service.slot)?;
        let events = self.events_index(id);
        for (_, event) in events.all()? {
            let key = event_key(id, &event);
            self.kv.delete(&format!("{key}:r"))?;
            self.kv.delete(&key)?;
        }
        events.clear()?;
        Ok(())
    }

    /// Adds a hook read from `config`; returns it.
    pub fn add_hook(
        &self,
        service_id: &str,
        config: &Json,
        policy: TargetPolicy,
        now: Timestamp,
    ) -> Result<HookRecord, CallError> {
        let hook = HookConfig::from_json(config, policy)?;
        let record = HookRecord {
            id: new_id(),
            config: hook.to_stored_json(),
            gone: false,
            created_at: now,
            updated_at: now,
        };
        self.modify_service(service_id, now, |s| {
            if s.hooks.len() >= MAX_HOOKS {
                return Err(CallError::new(
                    409,
                    "too_many_hooks",
                    None,
                    format!("a service has at most {MAX_HOOKS} hooks"),
                ));
            }
            s.hooks.push(record.clone());
            Ok(())
        })?;
        Ok(record)
    }

    /// Replaces hook `hook_id` with `config` (PUT), or changes the members `config` names
    /// (PATCH, `merge`); either way the whole hook is checked again and the 410 mark is
    /// cleared.
    pub fn edit_hook(
        &self,
        service_id: &str,
        hook_id: &str,
        config: &Json,
        merge: bool,
        policy: TargetPolicy,
        now: Timestamp,
    ) -> Result<HookRecord, CallError> {
        // Merged inside the compare-and-swap: two PATCHes of different members at once both
        // land.
        self.modify_service(service_id, now, |s| {
            let hook = s
                .hooks
                .iter_mut()
                .find(|h| h.id == hook_id)
                .ok_or_else(hook_missing)?;
            let wanted = match (merge, config, &hook.config) {
                (true, Json::Object(patch), Json::Object(base)) => {
                    let mut merged = base.clone();
                    merged.extend(patch.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Json::Object(merged)
                }
                _ => config.clone(),
            };
            hook.config = HookConfig::from_json(&wanted, policy)?.to_stored_json();
            hook.gone = false;
            hook.updated_at = now;
            Ok(hook.clone())
        })
    }

    /// Deletes hook `hook_id`.
    pub fn delete_hook(
        &self,
        service_id: &str,
        hook_id: &str,
        now: Timestamp,
    ) -> Result<(), CallError> {
        self.modify_service(service_id, now, |s| {
            let before = s.hooks.len();
            s.hooks.retain(|h| h.id != hook_id);
            if s.hooks.len() == before {
                return Err(hook_missing());
            }
            Ok(())
        })
    }

    /// Marks hook `hook_id` gone (its receiver answered 410).
    pub fn mark_hook_gone(
        &self,
        service_id: &str,
        hook_id: &str,
        now: Timestamp,
    ) -> Result<(), CallError> {
        let marked = self.modify_service(service_id, now, |s| {
            if let Some(h) = s.hooks.iter_mut().find(|h| h.id == hook_id) {
                h.gone = true;
            }
            Ok(())
        });
        match marked {
            // Deleted meanwhile: nothing to mark.
            Err(e) if e.status == 404 => Ok(()),
            other => other,
        }
    }

    /// Whether `kind` of call `call_id` is new to the service. The first caller wins an
    /// atomic election; repeats (the telephony side retrying, at the same time or later)
    /// get [`EventClaim::Repeat`].
    pub fn claim_event(
        &self,
        service_id: &str,
        kind: EventKind,
        call_id: &str,
    ) -> Result<EventClaim, CallError> {
        let name = event_name(kind, call_id);
        let key = event_key(service_id, &name);
        if self.kv.increment(&key, 1)? > 1 {
            let record = self.records().get(&format!("{key}:r"))?;
            return Ok(EventClaim::Repeat(record));
        }
        let events = self.events_index(service_id);
        let slot = events.add(&name)?;
        // Forget the oldest event beyond the cap; its call will not come back.
        if slot > MAX_REMEMBERED_EVENTS {
            let old = slot - MAX_REMEMBERED_EVENTS;
            if let Some(old_event) = events.get(old)? {
                let old_key = event_key(service_id, &old_event);
                self.kv.delete(&format!("{old_key}:r"))?;
                self.kv.delete(&old_key)?;
            }
            events.remove(old)?;
        }
        Ok(EventClaim::First)
    }

    /// Remembers what the first delivery of an event did.
    pub fn record_event(
        &self,
        service_id: &str,
        kind: EventKind,
        call_id: &str,
        record: &EventRecord,
    ) -> Result<(), CallError> {
        let key = event_key(service_id, &event_name(kind, call_id));
        Ok(self.records().put(&format!("{key}:r"), record)?)
    }
}
