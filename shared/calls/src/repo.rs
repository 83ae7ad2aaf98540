//! Services, their hooks and the call events already seen, in the key-value store.
//!
//! Keys: `callsvc:{id}` (a [`Service`] with its hooks: one read per event), `callsvcs:…` (the
//! services, in creation order), `callev:{serviceId}:{event}:{hash}` (the election counter
//! of the event's record) with `…:r` (the [`EventRecord`]: being delivered, or what the
//! delivery did), and
//! `callevs:{serviceId}:…` (the events remembered, oldest dropped beyond
//! [`MAX_REMEMBERED_EVENTS`]).

use funnelhooks_core::secret::{hash_hex, matches_hash, same_secret};
use funnelhooks_core::{Error, Kind, Page, Timestamp, is_uuid, new_id};
use funnelhooks_delivery::SigningSecret;
use funnelhooks_delivery::TargetPolicy;
use funnelhooks_store::{Cleanup, Index, Jobs, Kv, Modified, Records, Seen};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::event::EventKind;
use crate::hook::HookConfig;

/// Most hooks one service holds (they are one record, read on every event).
pub const MAX_HOOKS: usize = 50;
/// How many events per service are remembered to tell a repeat from a new event.
pub const MAX_REMEMBERED_EVENTS: u64 = 10_000;

/// A hook as stored: its form and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRecord {
    /// Random UUID.
    pub id: String,
    /// The form, checked, stored as written.
    pub config: HookConfig,
    /// The receiver answered 410 Gone: the hook sends nothing until it is saved again.
    #[serde(default)]
    pub gone: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl HookRecord {
    /// The hook as the API shows it.
    pub fn view(&self, service_id: &str) -> Json {
        let mut v = self.config.to_view_json();
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
    /// SHA-256 of the path key ([`path_key_of`]), hex; absent in services made before path
    /// keys were derived from the key itself (their path key is derived from `key_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_key_hash: Option<String>,
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
        matches_hash(key, &self.key_hash)
    }

    /// Whether `given`, the last segment of an ingest URL's path, opens this service: its
    /// path key, or its ingest key itself. A service made before path keys were derived
    /// from the key itself still takes its old path key (derived from the stored hash:
    /// rotating the key ends that).
    pub fn path_key_matches(&self, given: &str) -> bool {
        let path_key = match &self.path_key_hash {
            Some(hash) => matches_hash(given, hash),
            None => same_secret(given, &self.legacy_path_key()),
        };
        path_key || self.key_matches(given)
    }

    /// The old kind of path key, derived from the stored hash (a copy of the store can
    /// compute it).
    fn legacy_path_key(&self) -> String {
        let derived = hash_hex(format!("ingest-path:{}", self.key_hash).as_bytes());
        format!("pk_{}", &derived[..48])
    }

    /// Whether this service still has a path key of the old kind (see
    /// [`Service::path_key_matches`]).
    pub fn has_legacy_path_key(&self) -> bool {
        self.path_key_hash.is_none()
    }

    /// The hook `id`, or a 404.
    pub fn hook(&self, id: &str) -> Result<&HookRecord, Error> {
        self.hooks
            .iter()
            .find(|h| h.id == id)
            .ok_or_else(hook_missing)
    }
}

/// What the first delivery of an event did, for the answer to its repeats; while its
/// deliveries are being created, until when that copy holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Hooks of that event type that were enabled.
    pub matched: usize,
    /// `[hookId, deliveryId]` pairs.
    pub deliveries: Vec<(String, String)>,
    /// When it arrived.
    pub at: Timestamp,
    /// Set while a copy of the event is creating its deliveries: a repeat before this time
    /// is told to come back later; after it (that copy died or failed), a repeat takes over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_until: Option<Timestamp>,
}

/// How long the copy of an event that is creating its deliveries holds it (a request's
/// whole budget).
pub const EVENT_HOLD_MS: i64 = 30_000;

/// How a hook is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// The whole form is given (PUT).
    Replace,
    /// Only the members given change (PATCH).
    Patch,
}

/// Whether an event is new.
#[derive(Debug, Clone, PartialEq)]
pub enum EventClaim {
    /// Ours to deliver: the first copy, or a repeat taking over from a copy that failed or
    /// died before its deliveries were all created (creating them again finds those that
    /// exist: they have derived ids).
    Deliver,
    /// Delivered already: send nothing; what the first copy did.
    Repeat(EventRecord),
    /// Another copy is creating the deliveries right now: come back after this time.
    InProgress(Timestamp),
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

/// The keys an event's ingest reads first: its service and the event's record, for a
/// store that reads them in one round trip.
pub fn keys_read_by_event(service_id: &str, (kind, call_id): (EventKind, &str)) -> [String; 2] {
    let key = event_key(service_id, &event_name(kind, call_id));
    [service_key(service_id), format!("{key}:r")]
}

fn service_missing() -> Error {
    Error::unknown_service()
}

fn hook_missing() -> Error {
    Error::not_found("unknown_hook", "no hook with this id in the service").at("hookId")
}

/// A new ingest key: `ik_` and 64 hex digits (two random UUIDs' worth, 244 random bits).
/// The key that goes in an ingest URL's path, for call trackers whose webhook form has no
/// header and no `?`: `pk_` and 48 hex digits derived from the ingest key itself (not from
/// anything stored), so only who has the key can make it; shown with the key, once.
pub fn path_key_of(key: &str) -> String {
    let derived = hash_hex(format!("ingest-path:{key}").as_bytes());
    format!("pk_{}", &derived[..48])
}

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
    pub fn create_service(&self, name: String, now: Timestamp) -> Result<(Service, String), Error> {
        let id = new_id();
        let key = new_key();
        let slot = self.services_index().add(&id)?;
        let service = Service {
            id,
            name,
            key_hash: hash_hex(key.as_bytes()),
            key_hint: key[key.len() - 4..].to_string(),
            path_key_hash: Some(hash_hex(path_key_of(&key).as_bytes())),
            hooks: Vec::new(),
            created_at: now,
            updated_at: now,
            slot,
        };
        self.records().put(&service_key(&service.id), &service)?;
        Ok((service, key))
    }

    /// Whether service `id` exists (one read, the record not parsed: an API key's scope check).
    pub fn service_exists(&self, id: &str) -> Result<bool, Error> {
        Ok(is_uuid(id) && self.kv.get(&service_key(id))?.is_some())
    }

    /// The newest call events the service's ingest URLs refused
    /// ([`funnelhooks_core::refused`]), newest first, from position `before`.
    pub fn refused_events(
        &self,
        service: &Service,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<u64>), Error> {
        funnelhooks_core::refused::refused(self.kv, &refused_list(&service.id), before, limit)
    }

    /// The service, or a 404.
    pub fn service(&self, id: &str) -> Result<Service, Error> {
        if !is_uuid(id) {
            return Err(service_missing());
        }
        self.records()
            .get(&service_key(id))?
            .ok_or_else(service_missing)
    }

    /// A page of services, oldest first, and the cursor of the next.
    pub fn services(&self, after: u64, limit: usize) -> Result<Page<Service>, Error> {
        let page = self
            .services_index()
            .page(after, limit.min(funnelhooks_core::MAX_PAGE))?;
        let mut items = Vec::with_capacity(page.items.len());
        for id in page.items {
            if let Some(s) = self.records().get(&service_key(&id))? {
                items.push(s);
            }
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Changes the service with `change` (retried on concurrent writes), or a 404. When
    /// `change` fails nothing is written.
    pub fn modify_service<R>(
        &self,
        id: &str,
        now: Timestamp,
        mut change: impl FnMut(&mut Service) -> Result<R, Error>,
    ) -> Result<R, Error> {
        if !is_uuid(id) {
            return Err(service_missing());
        }
        self.records()
            .modify(&service_key(id), |s: &mut Service| {
                let r = change(s)?;
                s.updated_at = now;
                Ok::<_, Error>(r)
            })?
            .ok_or_else(service_missing)
    }

    /// Replaces the service's ingest key; returns the new key. The old one stops at once.
    pub fn rotate_key(&self, id: &str, now: Timestamp) -> Result<String, Error> {
        let key = new_key();
        self.modify_service(id, now, |s| {
            s.key_hash = hash_hex(key.as_bytes());
            s.key_hint = key[key.len() - 4..].to_string();
            s.path_key_hash = Some(hash_hex(path_key_of(&key).as_bytes()));
            Ok(())
        })?;
        Ok(key)
    }

    /// Deletes the service (its hooks with it, so events stop at once); the events it
    /// remembers go in the background (a cleanup job the retry sweep runs), so deleting
    /// takes the same few writes however many events there were.
    pub fn delete_service(&self, id: &str) -> Result<(), Error> {
        let service = self.service(id)?;
        let event = event_key(id, "{}");
        // Each hook's delivery state and rate limit, and its place among what needs attention.
        let extra = service
            .hooks
            .iter()
            .flat_map(|h| funnelhooks_core::senders::keys("hook", id, &h.id))
            .collect();
        funnelhooks_core::senders::unlist(self.kv, "hook", id)?;
        Jobs::new(self.kv).add(&Cleanup {
            what: format!("call-tracking service {id}"),
            extra,
            index: format!("callevs:{id}"),
            keys: vec![format!("{event}:r"), event],
            listed: Vec::new(),
            done: 0,
        })?;
        Jobs::new(self.kv).add(&funnelhooks_core::refused::refused_cleanup(
            self.kv,
            &refused_list(id),
            format!("refused call events of service {id}"),
        )?)?;
        self.kv.delete(&service_key(id))?;
        self.services_index().remove(service.slot)?;
        Ok(())
    }

    /// Adds a hook read from `form`, which must pass the target rules under `policy`;
    /// returns it.
    pub fn add_hook(
        &self,
        service_id: &str,
        form: &Json,
        policy: TargetPolicy,
        now: Timestamp,
    ) -> Result<HookRecord, Error> {
        let hook = HookConfig::from_json(form)?;
        hook.check_target(policy)?;
        let record = HookRecord {
            id: new_id(),
            config: hook,
            gone: false,
            created_at: now,
            updated_at: now,
        };
        self.modify_service(service_id, now, |s| {
            if s.hooks.len() >= MAX_HOOKS {
                return Err(Error::conflict(
                    "too_many_hooks",
                    format!("a service has at most {MAX_HOOKS} hooks"),
                ));
            }
            s.hooks.push(record.clone());
            Ok(())
        })?;
        Ok(record)
    }

    /// Replaces hook `hook_id` with `config` (PUT, [`Edit::Replace`]), or changes the
    /// members `config` names ([`Edit::Patch`]); either way the whole hook is checked again
    /// (target rules under `policy` included) and the 410 mark is cleared.
    pub fn edit_hook(
        &self,
        service_id: &str,
        hook_id: &str,
        (edit, config): (Edit, &Json),
        policy: TargetPolicy,
        now: Timestamp,
    ) -> Result<HookRecord, Error> {
        // Merged inside the compare-and-swap: two PATCHes of different members at once both
        // land.
        self.modify_service(service_id, now, |s| {
            let hook = s
                .hooks
                .iter_mut()
                .find(|h| h.id == hook_id)
                .ok_or_else(hook_missing)?;
            let checked = match edit {
                Edit::Patch => hook.config.patched(config)?,
                Edit::Replace => hook.config.replaced(config)?,
            };
            checked.check_target(policy)?;
            hook.config = checked;
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
    ) -> Result<(), Error> {
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
    ) -> Result<(), Error> {
        let marked = self.modify_service(service_id, now, |s| {
            if let Some(h) = s.hooks.iter_mut().find(|h| h.id == hook_id) {
                h.gone = true;
            }
            Ok(())
        });
        match marked {
            // Deleted meanwhile: nothing to mark.
            Err(e) if e.kind == Kind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Whether `kind` of call `call_id` is this caller's to deliver. The first copy wins an
    /// election and holds the event for [`EVENT_HOLD_MS`]; repeats meanwhile are told to come
    /// back; repeats after the event is done get what it did; a repeat after a hold that
    /// ended without the event done (that copy failed or died) takes it over. So every event
    /// is delivered at least once, however its processing fails.
    pub fn claim_event(
        &self,
        service_id: &str,
        (kind, call_id): (EventKind, &str),
        now: Timestamp,
    ) -> Result<EventClaim, Error> {
        let name = event_name(kind, call_id);
        let key = event_key(service_id, &name);
        let hold = Timestamp(now.0 + EVENT_HOLD_MS);
        let fresh = std::cell::Cell::new(false);
        let events = self.events_index(service_id);
        let mut listed = None;
        let record_key = format!("{key}:r");
        // Read with the service where the store reads ahead (see `keys_read_by_event`): a
        // new event then goes straight to its election.
        let ahead = self.kv.take_read_ahead(&record_key);
        let seen = match &ahead {
            Some(Some(record)) => Seen::Bytes(record),
            Some(None) => Seen::Absent,
            None => Seen::Unknown,
        };
        let (claim, modified) = self.records().upsert_born(
            &record_key,
            &key,
            seen,
            || {
                fresh.set(true);
                EventRecord {
                    matched: 0,
                    deliveries: Vec::new(),
                    at: now,
                    processing_until: Some(hold),
                }
            },
            |r: &mut EventRecord| {
                if fresh.replace(false) {
                    return Ok::<_, Error>(EventClaim::Deliver);
                }
                Ok(match r.processing_until {
                    None => EventClaim::Repeat(r.clone()),
                    Some(until) if until > now => EventClaim::InProgress(until),
                    Some(_) => {
                        r.processing_until = Some(hold);
                        EventClaim::Deliver
                    }
                })
            },
            // A new event takes its place in the service's list in the claim's own write.
            |_| {
                let slot = events.reserve()?;
                listed = Some(slot);
                Ok::<_, Error>(vec![(events.slot_key(slot), name.clone().into_bytes())])
            },
        )?;
        if let (Modified::Created, Some(slot)) = (modified, listed) {
            self.forget_events_before(service_id, slot)?;
        }
        Ok(claim)
    }

    /// With a new event in `slot` of the service's list, forgets the oldest beyond the cap
    /// (its call will not come back).
    fn forget_events_before(&self, service_id: &str, slot: u64) -> Result<(), Error> {
        let events = self.events_index(service_id);
        if slot > MAX_REMEMBERED_EVENTS {
            let old = slot - MAX_REMEMBERED_EVENTS;
            if let Some(old_event) = events.get(old)? {
                let old_key = event_key(service_id, &old_event);
                self.kv.delete(&format!("{old_key}:r"))?;
                self.kv.delete(&old_key)?;
            }
            events.remove(old)?;
        }
        Ok(())
    }

    /// Ends this copy's hold on an event it could not finish, so the tracker's next retry
    /// takes over at once instead of waiting for the hold to run out.
    pub fn release_event(
        &self,
        service_id: &str,
        (kind, call_id): (EventKind, &str),
        now: Timestamp,
    ) -> Result<(), Error> {
        let key = event_key(service_id, &event_name(kind, call_id));
        self.records()
            .modify(&format!("{key}:r"), |r: &mut EventRecord| {
                if r.processing_until.is_some() {
                    r.processing_until = Some(now);
                }
                Ok::<_, Error>(())
            })?;
        Ok(())
    }

    /// The id of the delivery of event `kind` of call `call_id` to hook `hook_id`: derived,
    /// so a retried event creates each of its deliveries once.
    pub fn event_delivery_id(
        service_id: &str,
        (kind, call_id): (EventKind, &str),
        hook_id: &str,
    ) -> String {
        funnelhooks_core::derived_id(&["call-event", service_id, kind.as_str(), call_id, hook_id])
    }

    /// The signing secret hook `hook_id` has now, if the hook exists and signs: read at each
    /// retry of its deliveries, so none of them stores a copy.
    pub fn hook_secret(
        &self,
        service_id: &str,
        hook_id: &str,
    ) -> Result<Option<SigningSecret>, Error> {
        // Read as plain JSON: a typed reader for this one member would cost the
        // send-webhook component kilobytes.
        let service = self.records().get::<Json>(&service_key(service_id))?;
        let hook = service
            .as_ref()
            .and_then(|s| s.get("hooks"))
            .and_then(Json::as_array)
            .and_then(|hooks| hooks.iter().find(|h| h["id"] == hook_id));
        Ok(hook
            .and_then(|h| h["config"]["signingSecret"].as_str())
            .and_then(|text| SigningSecret::parse(text).ok()))
    }
}

/// The write that records event `kind` of `call_id` as done, `record` saying what it did
/// (key and value, to write with the event's deliveries in one round trip).
pub fn event_done(
    service_id: &str,
    (kind, call_id): (EventKind, &str),
    record: &EventRecord,
) -> (String, Vec<u8>) {
    let key = event_key(service_id, &event_name(kind, call_id));
    let done = EventRecord {
        processing_until: None,
        ..record.clone()
    };
    (format!("{key}:r"), Records::encode(&done))
}

/// The list of service `id`'s refused call events (`refused-calls:{id}`).
pub fn refused_list(id: &str) -> String {
    format!("refused-calls:{id}")
}
