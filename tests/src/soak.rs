//! The delivery soak: many deliveries from postbacks and call events against a running app
//! (the real `spin up`), to a loopback receiver that fails half the time with `503` and
//! `Retry-After: 30` while the load runs, then recovers; the retry sweep is driven on a
//! schedule, first on the real clock, then on a test clock that moves a minute per sweep
//! (`?at=`, allowed by the app's `allow_test_clock` variable), so hours of retries pass in
//! minutes. It counts, on the receiver's side, what every delivery became: delivered, failed
//! after all its attempts (read from the log), lost (neither: must be 0), and duplicates (a
//! delivery accepted more than once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use tokio::sync::Semaphore;

use funnelhooks_testhost::{Admin, Client};

/// How much load a soak makes.
#[derive(Debug, Clone, Copy)]
pub struct SoakConfig {
    /// Postbacks that move a new chat into a send-webhook step (one delivery each).
    pub postbacks: usize,
    /// Call events (one delivery per hook).
    pub events: usize,
    /// Hooks per call-tracking service.
    pub hooks: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// What a soak counted.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Deliveries the load should have created.
    pub created: usize,
    /// Deliveries the receiver accepted.
    pub delivered: usize,
    /// Deliveries the log says failed after all their attempts.
    pub failed: usize,
    /// Neither delivered nor failed.
    pub lost: usize,
    /// Accepted again after an accepted attempt.
    pub duplicates: usize,
    /// Requests the receiver answered (attempts, all in all).
    pub attempts: usize,
    /// Sweeps run.
    pub sweeps: usize,
    /// Wall time of the load, and in all.
    pub load_time: Duration,
    /// Wall time in all.
    pub total_time: Duration,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "created {} | delivered {} | failed after all attempts {} | lost {} | duplicates {} | attempts {} | sweeps {} | load {:.0} s, total {:.0} s",
            self.created,
            self.delivered,
            self.failed,
            self.lost,
            self.duplicates,
            self.attempts,
            self.sweeps,
            self.load_time.as_secs_f64(),
            self.total_time.as_secs_f64()
        )
    }
}

/// Per delivery (its path and query): requests seen, and requests accepted.
type Tally = HashMap<String, (usize, usize)>;

/// The receiver: fails every other request of a delivery at random-looking places while
/// `failing`, accepts everything after.
struct SoakReceiver {
    url: String,
    tally: Arc<Mutex<Tally>>,
    failing: Arc<AtomicBool>,
    _accept: tokio::task::JoinHandle<()>,
}

impl Drop for SoakReceiver {
    fn drop(&mut self) {
        self._accept.abort();
    }
}

async fn start_receiver() -> Result<SoakReceiver> {
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let failing = Arc::new(AtomicBool::new(true));
    let (t, f) = (tally.clone(), failing.clone());
    let (addr, accept) = funnelhooks_testhost::server::serve_loopback(move |req, _| {
        let (tally, failing) = (t.clone(), f.clone());
        async move {
            let key = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let mut tally = tally.lock().unwrap();
            let entry = tally.entry(key.clone()).or_default();
            entry.0 += 1;
            // Half of all answers fail, spread over deliveries and attempts.
            let fail = failing.load(Ordering::Relaxed) && mix(&key, entry.0).is_multiple_of(2);
            let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
            if fail {
                *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                response
                    .headers_mut()
                    .insert("retry-after", hyper::header::HeaderValue::from_static("30"));
            } else {
                entry.1 += 1;
            }
            response
        }
    })
    .await?;
    Ok(SoakReceiver {
        url: format!("http://{addr}"),
        tally,
        failing,
        _accept: accept,
    })
}

fn mix(key: &str, n: usize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (key, n).hash(&mut h);
    h.finish()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Step id of every soak bot's send-webhook step.
pub const STEP: &str = "7c1f4b9e-3d2a-4e8b-9f60-5a4b3c2d1e0f";
/// Deliveries per bot or service, well inside the log's retention per owner.
const PER_OWNER: usize = 5_000;

/// Runs the soak against the app at `base` (its `admin_token` is `token`); the app must
/// allow loopback webhooks, the test clock, and unlimited new dialogs per minute.
pub async fn run(base: &str, token: &str, config: SoakConfig) -> Result<SoakReport> {
    let started = Instant::now();
    let rx = start_receiver().await?;
    let admin = Admin::new(Client::new(base), token);
    let links = soak_bots(&admin, &rx.url, config.postbacks).await?;
    let services = soak_services(&admin, &rx.url, config).await?;
    let mut report = SoakReport {
        created: config.postbacks + config.events * config.hooks,
        ..SoakReport::default()
    };
    // The load, with a sweep on the real clock every few seconds meanwhile.
    let load = drive_load(&admin, &links, &services, config);
    let sweeping = Arc::new(AtomicBool::new(true));
    let sweeper = {
        let (admin, sweeping) = (admin.clone(), sweeping.clone());
        tokio::spawn(async move {
            let mut sweeps = 0;
            while sweeping.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if admin
                    .call("POST", "/api/deliveries/retry-due", None)
                    .await
                    .is_ok()
                {
                    sweeps += 1;
                }
            }
            sweeps
        })
    };
    load.await?;
    sweeping.store(false, Ordering::Relaxed);
    report.sweeps += sweeper.await?;
    report.load_time = started.elapsed();
    // The receiver recovers; the sweep runs a minute ahead each time, until a day has passed
    // (the whole retry schedule) with nothing more to send.
    rx.failing.store(false, Ordering::Relaxed);
    let mut ahead = 0i64;
    let mut quiet = 0;
    while ahead < 30 * 3_600_000 && quiet < 3 {
        ahead += 60_000;
        let at = now_ms() + ahead;
        let sweep = admin
            .call("POST", &format!("/api/deliveries/retry-due?at={at}"), None)
            .await?;
        report.sweeps += 1;
        let busy = sweep["attempted"].as_u64().unwrap_or(0) > 0
            || sweep["more"] == true
            || sweep["recovered"].as_u64().unwrap_or(0) > 0;
        quiet = if busy { 0 } else { quiet + 1 };
    }
    count(&admin, &rx, &mut report).await?;
    report.total_time = started.elapsed();
    Ok(report)
}

/// A bot with send-webhook step [`STEP`] delivering to `url` (signed with `secret`, if
/// any) and a postback link: returns the bot's id and the link's.
pub async fn bot_with_webhook_step(
    admin: &Admin,
    name: &str,
    url: &str,
    secret: Option<&str>,
) -> Result<(String, String)> {
    let bot = admin
        .call("POST", "/api/bots", Some(json!({"name": name})))
        .await?;
    let bot = bot["id"].as_str().unwrap_or_default().to_string();
    let mut webhook = json!({"url": url});
    if let Some(secret) = secret {
        webhook["signingSecret"] = json!(secret);
    }
    admin
        .call(
            "PUT",
            &format!("/api/bots/{bot}/steps/{STEP}"),
            Some(json!({"key": "lead", "kind": "send-webhook", "webhook": webhook})),
        )
        .await?;
    let link = admin
        .call("POST", &format!("/api/bots/{bot}/webhooks"), None)
        .await?;
    Ok((bot, link["id"].as_str().unwrap_or_default().to_string()))
}

/// A call-tracking service with `hooks` call-start hooks to `127.0.0.1:port`, at
/// `{path}/{n}` and passing the call id: returns its id and ingest key.
pub async fn service_with_hooks(
    admin: &Admin,
    name: &str,
    port: u16,
    path: &str,
    hooks: usize,
) -> Result<(String, String)> {
    let created = admin
        .call("POST", "/api/calls/services", Some(json!({"name": name})))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    for h in 0..hooks {
        let hook = json!({"protocol": "http", "host": "127.0.0.1", "port": port,
                          "path": format!("{path}/{h}"), "method": "GET", "event": "start",
                          "parameters": [{"name": "call", "param": "id"}]});
        admin
            .call(
                "POST",
                &format!("/api/calls/services/{id}/hooks"),
                Some(hook),
            )
            .await?;
    }
    let key = created["ingestKey"].as_str().unwrap_or_default();
    Ok((id, key.to_string()))
}

/// Bots with a signed send-webhook step to the receiver; returns each bot's link and how
/// many chats it gets.
async fn soak_bots(admin: &Admin, rx: &str, postbacks: usize) -> Result<Vec<(String, usize)>> {
    let mut links = Vec::new();
    let mut left = postbacks;
    let mut n = 0;
    while left > 0 {
        let chats = left.min(PER_OWNER);
        let (_, link) = bot_with_webhook_step(
            admin,
            &format!("soak {n}"),
            &format!("{rx}/step/{n}?c={{chatId}}"),
            Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        )
        .await?;
        links.push((link, chats));
        left -= chats;
        n += 1;
    }
    Ok(links)
}

/// Services with `hooks` hooks each to the receiver; returns each one's id, ingest key and
/// how many events it gets.
async fn soak_services(
    admin: &Admin,
    rx: &str,
    config: SoakConfig,
) -> Result<Vec<(String, String, usize)>> {
    let port = rx.rsplit(':').next().unwrap_or_default().parse::<u16>()?;
    let per_service = (PER_OWNER / config.hooks.max(1)).max(1);
    let mut services = Vec::new();
    let mut left = config.events;
    let mut n = 0;
    while left > 0 {
        let events = left.min(per_service);
        let name = format!("soak {n}");
        let (id, key) =
            service_with_hooks(admin, &name, port, &format!("/call/{n}"), config.hooks).await?;
        services.push((id, key, events));
        left -= events;
        n += 1;
    }
    Ok(services)
}

/// Every postback and call event, `concurrency` at a time; each must be accepted (a `503`
/// is retried, as trackers do).
async fn drive_load(
    admin: &Admin,
    links: &[(String, usize)],
    services: &[(String, String, usize)],
    config: SoakConfig,
) -> Result<()> {
    let gate = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks = Vec::new();
    let mut requests: Vec<(String, &'static str)> = Vec::new();
    for (link, chats) in links {
        for chat in 0..*chats {
            requests.push((
                format!("/api/bots/webhooks/{link}/updateDialog?chatId={chat}&stepId={STEP}"),
                "GET",
            ));
        }
    }
    for (id, key, events) in services {
        for call in 0..*events {
            requests.push((
                format!(
                    "/api/calls/services/{id}/events?key={key}&id={call}&hook_event=Call%20is%20processing"
                ),
                "POST",
            ));
        }
    }
    for (path, method) in requests {
        let permit = gate.clone().acquire_owned().await?;
        let client = admin.client.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            for _ in 0..50 {
                let reply = client.send(method, &path, &[], Bytes::new()).await?;
                match reply.status {
                    200 => return Ok(()),
                    503 | 429 => tokio::time::sleep(Duration::from_millis(200)).await,
                    s => anyhow::bail!("{method} {path}: {s} {}", reply.text()),
                }
            }
            anyhow::bail!("{method} {path}: still refused after 50 tries")
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Counts what the receiver saw and what the log says failed.
async fn count(admin: &Admin, rx: &SoakReceiver, report: &mut SoakReport) -> Result<()> {
    let tally = rx.tally.lock().unwrap().clone();
    report.attempts = tally.values().map(|(seen, _)| seen).sum();
    report.delivered = tally.values().filter(|(_, ok)| *ok > 0).count();
    report.duplicates = tally.values().map(|(_, ok)| ok.saturating_sub(1)).sum();
    let mut failed = 0;
    let mut cursor: Option<u64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/api/deliveries?status=failed&limit=100&cursor={c}"),
            None => "/api/deliveries?status=failed&limit=100".to_string(),
        };
        let page = admin.call("GET", &path, None).await?;
        failed += page["items"].as_array().map_or(0, Vec::len);
        match page["nextCursor"].as_str().and_then(|c| c.parse().ok()) {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    report.failed = failed;
    report.lost = report
        .created
        .saturating_sub(report.delivered + report.failed);
    Ok(())
}
