//! The one poller of a dashboard process: reads every app's status, history and images every interval and
//! publishes the snapshot. Viewers never call AWS; they read the latest snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use release::model::error::Internal;
use release::App;
use serde_json::Value;
use tokio::sync::watch;

/// How many ledger records per app the board keeps (history page and operation details).
pub const HISTORY: u32 = 200;

/// What every viewer sees, as of one poll.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Counts polls that published something (0: nothing read yet).
    pub version: u64,
    /// When it was read (RFC 3339); after a failed poll, still the last good read.
    pub at: Option<String>,
    /// `release status --output json` over every app.
    pub status: Value,
    /// App -> `release history --output json`.
    pub history: BTreeMap<String, Value>,
    /// App -> `release images --output json`.
    pub images: BTreeMap<String, Value>,
    /// App -> `release plan --output json`: per environment the candidate and its gates.
    pub gates: BTreeMap<String, Value>,
    /// The last poll's error, when it failed (the data is then the previous poll's).
    pub error: Option<String>,
}

pub struct Poller {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// The connection: its call counter.
    pub app: App,
    pub interval: Duration,
    pub polls: Arc<AtomicU64>,
    pub started: std::time::Instant,
    pub apps: Vec<String>,
}

impl Poller {
    pub fn start(releases: Arc<Vec<App>>, app: App, interval: Duration) -> Self {
        let cloud = app.session().cloud.clone();
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let polls = Arc::new(AtomicU64::new(0));
        let apps = releases.iter().map(|r| r.pipeline().app.to_string()).collect();
        let counter = polls.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            // A slow poll delays the next one rather than bunching them up.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut version = 0;
            loop {
                tick.tick().await;
                let previous = tx.borrow().clone();
                // Every FULL_EVERY-th poll reads everything; the others only what the status says changed.
                let full = counter.load(Ordering::Relaxed) % FULL_EVERY == 0 || previous.error.is_some();
                let read = poll(&releases, &cloud, &previous, full).await;
                counter.fetch_add(1, Ordering::Relaxed);
                version += 1;
                let next = match read {
                    Ok(mut s) => {
                        s.version = version;
                        s
                    }
                    Err(e) => {
                        // Once per distinct failure, not once per poll.
                        if previous.error.as_deref() != Some(e.message()) {
                            tracing::warn!("dashboard: reading AWS failed: {}; the board shows the last good read as stale", e.message());
                        }
                        Snapshot { version, error: Some(e.message().to_owned()), ..(*previous).clone() }
                    }
                };
                if tx.send(Arc::new(next)).is_err() {
                    return;
                }
            }
        });
        Self { snapshot: rx, app, interval, polls, started: std::time::Instant::now(), apps }
    }
}

/// History and images are read again only when the status shows a change they would show (a new record, an
/// operation's progress, the lock or queue; what the clusters run), and on every `FULL_EVERY`-th poll in any case
/// (a bake, or a record of an environment no longer in the file): status is most of a poll's calls.
pub const FULL_EVERY: u64 = 12;

async fn poll(releases: &[App], cloud: &release::ports::Cloud, previous: &Snapshot, full: bool) -> release::Result<Snapshot> {
    let pipelines: Vec<_> = releases.iter().map(|r| r.pipeline().clone()).collect();
    let Some(first) = releases.first() else { return Err(Internal::Invariant { what: "the dashboard has no pipeline".into() }.into()) };
    let (status, _) = crate::documents::status(first, &pipelines, None).await?;
    let mut history = BTreeMap::new();
    let mut images = BTreeMap::new();
    let mut gates = BTreeMap::new();
    for r in releases {
        let app = r.pipeline().app.to_string();
        let ledger_changed = full || changed(&previous.status, &status, &app, &["last", "operation", "queue", "lock"]);
        let fleet_changed = full || changed(&previous.status, &status, &app, &["clusters"]);
        // One app's missing ledger table (not provisioned yet) must not blank the others: its error is its document.
        let h = match previous.history.get(&app) {
            Some(h) if !ledger_changed => h.clone(),
            _ => crate::documents::history(r.release(), None, HISTORY, None).await.map(|d| d.0).unwrap_or_else(|e| error_doc(&e)),
        };
        let i = match previous.images.get(&app) {
            Some(i) if !fleet_changed => i.clone(),
            _ => crate::documents::images(r).await.unwrap_or_else(|e| error_doc(&e)),
        };
        // The gates read the same ledger and images; soak and windows move with the clock, so full polls read them too.
        let g = match previous.gates.get(&app) {
            Some(g) if !ledger_changed && !fleet_changed => g.clone(),
            _ => match r.release().plan_gates(None).await {
                Ok(envs) => serde_json::json!({ "ok": true, "app": app, "envs": envs }),
                Err(e) => error_doc(&e),
            },
        };
        history.insert(app.clone(), h);
        images.insert(app.clone(), i);
        gates.insert(app, g);
    }
    Ok(Snapshot { version: 0, at: Some(cloud.clock.now().to_string()), status, history, images, gates, error: None })
}

/// Whether any of `keys` of any environment of `app` differs between two status documents.
fn changed(before: &Value, now: &Value, app: &str, keys: &[&str]) -> bool {
    let pick = |doc: &Value| -> Option<Vec<Value>> {
        let envs = doc["apps"].as_array()?.iter().find(|a| a["app"] == app)?["environments"].as_array()?.clone();
        Some(envs.iter().map(|e| Value::Array(keys.iter().map(|k| e[*k].clone()).collect())).collect())
    };
    match (pick(before), pick(now)) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

/// The CLI's JSON error document.
pub fn error_doc(e: &release::Error) -> Value {
    serde_json::json!({ "ok": false, "error": { "kind": e.kind().as_str(), "message": e.message(), "details": e.details(), "exit_code": e.kind().exit_code() } })
}
