//! The HTTP side: the page and its assets, `/api/...` (the CLI's JSON documents, read from the poller's
//! snapshot), `/api/events` (server-sent events, one per poll) and `/api/health` (the poller's AWS call counts).
//! GET only: nothing here changes AWS.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State as Extract};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use release::model::error::Internal;
use release::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use super::poller::{Poller, Snapshot};

const INDEX: &str = include_str!("assets/index.html");
const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

#[derive(Clone)]
pub struct State {
    poller: Arc<Poller>,
    token: Option<Arc<str>>,
    viewers: Arc<AtomicUsize>,
}

impl State {
    pub fn new(poller: Poller, token: Option<String>) -> Self {
        Self { poller: Arc::new(poller), token: token.map(Into::into), viewers: Arc::new(AtomicUsize::new(0)) }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.poller.snapshot.borrow().clone()
    }
}

pub async fn serve(listener: tokio::net::TcpListener, state: State) -> Result<()> {
    use std::future::IntoFuture;
    use tokio::signal::unix::{signal, SignalKind};
    let app = router(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .into_future();
    tokio::pin!(server);
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return Err(Internal::Signals.into());
    };
    let failed = |e: std::io::Error| Error::from(Internal::System { what: "the dashboard's server failed".into(), error: e.to_string() });
    tokio::select! {
        r = &mut server => return r.map_err(failed),
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
    // Event streams never end by themselves: give requests in flight a moment, then go.
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
    eprintln!("dashboard: stopped");
    Ok(())
}

fn router(state: State) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/history", get(page))
        .route("/images", get(page))
        .route("/op/{app}/{release}", get(page))
        .route("/assets/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route("/assets/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }))
        .route("/api/status", get(status))
        .route("/api/history", get(history))
        .route("/api/images", get(images))
        .route("/api/gates", get(gates))
        .route("/api/operation/{app}/{release}", get(operation))
        .route("/api/health", get(health))
        .route("/api/events", get(events))
        .fallback(|| async { not_found("no such page; try / (the board), /history, /images or /api/status") })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// With `--token`, every request must carry it: `Authorization: Bearer T` or `?token=T` (a wall screen's URL, and
/// EventSource cannot set headers). Compared in constant time.
async fn authorize(Extract(state): Extract<State>, req: Request, next: Next) -> Response {
    let Some(token) = &state.token else { return next.run(req).await };
    let bearer = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    let query = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))).map(percent_decode);
    let given = bearer.map(str::to_owned).or(query);
    let ok = given.is_some_and(|g| {
        use subtle::ConstantTimeEq;
        bool::from(g.as_bytes().ct_eq(token.as_bytes()))
    });
    if ok {
        return next.run(req).await;
    }
    let body = json!({ "ok": false, "error": { "kind": "input", "message": "this dashboard needs its token: send Authorization: Bearer <token>, or add ?token=<token> to the URL", "details": [], "exit_code": 2 } });
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body)).into_response()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%').then(|| b.get(i + 1..i + 3)).flatten();
        match hex.and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], INDEX)
}

/// A query string that does not parse (`?limit=abc`): the same JSON error document as every other route.
fn bad_query(e: &QueryRejection) -> Response {
    let body = json!({ "ok": false, "error": { "kind": "input", "message": format!("bad query string: {}", e.body_text()), "details": [], "exit_code": 2 } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn not_found(message: &str) -> Response {
    let body = json!({ "ok": false, "error": { "kind": "not-found", "message": message, "details": [], "exit_code": 3 } });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Before the first poll has finished there is nothing to show yet.
fn warming(s: &Snapshot) -> Option<Response> {
    (s.version == 0).then(|| {
        let body = json!({ "ok": false, "error": { "kind": "aws", "message": "the first read of AWS is under way; try again in a moment", "details": [], "exit_code": 6 } });
        (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], Json(body)).into_response()
    })
}

fn with_freshness(mut doc: Value, s: &Snapshot) -> Value {
    if let Some(o) = doc.as_object_mut() {
        o.insert("read_at".into(), json!(s.at));
        if let Some(e) = &s.error {
            o.insert("stale".into(), json!(e));
        }
    }
    doc
}

async fn status(Extract(state): Extract<State>) -> Response {
    let s = state.snapshot();
    if let Some(r) = warming(&s) {
        return r;
    }
    Json(with_freshness(s.status.clone(), &s)).into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    app: Option<String>,
    env: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
}

/// One app's `history` document (the only app's when there is one), its records filtered by env and outcome.
async fn history(Extract(state): Extract<State>, q: std::result::Result<Query<HistoryQuery>, QueryRejection>) -> Response {
    let (q, s, app) = match begin(&state, q, |q| q.app.as_deref()) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(mut doc) = s.history.get(&app).cloned() else { return not_found(&format!("no history of app `{app}` yet")) };
    let keep = |v: &Value| {
        q.env.as_deref().filter(|e| !e.is_empty()).is_none_or(|e| v["env"] == e)
            && q.outcome.as_deref().filter(|o| !o.is_empty()).is_none_or(|o| v["outcome"] == o)
    };
    if let Some(records) = doc.get_mut("records").and_then(Value::as_array_mut) {
        records.retain(keep);
        records.truncate(q.limit.unwrap_or(usize::MAX));
    }
    if let Some(queued) = doc.get_mut("queued").and_then(Value::as_array_mut) {
        // Waiting tickets have no outcome yet: an outcome filter leaves them out.
        if q.outcome.as_deref().is_some_and(|o| !o.is_empty()) {
            queued.clear();
        }
        queued.retain(|t| q.env.as_deref().filter(|e| !e.is_empty()).is_none_or(|e| t["env"] == e));
    }
    Json(with_freshness(doc, &s)).into_response()
}

#[derive(Deserialize)]
struct AppQuery {
    app: Option<String>,
}

async fn images(Extract(state): Extract<State>, q: std::result::Result<Query<AppQuery>, QueryRejection>) -> Response {
    let (_, s, app) = match begin(&state, q, |q| q.app.as_deref()) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.images.get(&app) {
        Some(doc) => Json(with_freshness(doc.clone(), &s)).into_response(),
        None => not_found(&format!("no images of app `{app}` yet")),
    }
}

/// One app's `plan` document: per environment the live commit, the candidate and every promotion gate.
async fn gates(Extract(state): Extract<State>, q: std::result::Result<Query<AppQuery>, QueryRejection>) -> Response {
    let (_, s, app) = match begin(&state, q, |q| q.app.as_deref()) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.gates.get(&app) {
        Some(doc) => Json(with_freshness(doc.clone(), &s)).into_response(),
        None => not_found(&format!("no gates of app `{app}` yet")),
    }
}

/// One ledger record, as `history --output json` has it, plus the environment's operation under way when it is
/// this one (its live progress).
async fn operation(Extract(state): Extract<State>, Path((app, release)): Path<(String, String)>) -> Response {
    let s = state.snapshot();
    if let Some(r) = warming(&s) {
        return r;
    }
    if let Err(r) = pick_app(&state, Some(&app)) {
        return r;
    }
    let record = s.history.get(&app).and_then(|h| h["records"].as_array()).and_then(|rs| rs.iter().find(|r| r["release_id"] == release.as_str())).cloned();
    let Some(record) = record else {
        return not_found(&format!("no release {release} among the newest {} records of {app}", super::poller::HISTORY));
    };
    let running = s.status["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["app"] == app.as_str()))
        .and_then(|a| a["environments"].as_array())
        .and_then(|envs| envs.iter().find_map(|e| e["operation"].as_object().filter(|o| o["release_id"] == release.as_str()).cloned()));
    let doc = json!({ "ok": true, "app": app, "record": record, "operation": running });
    Json(with_freshness(doc, &s)).into_response()
}

/// The poller's health and cost: polls, the last error, current viewers and every AWS call made so far.
async fn health(Extract(state): Extract<State>) -> Response {
    let s = state.snapshot();
    let calls = state.poller.app.api_calls();
    let up = state.poller.started.elapsed().as_secs_f64();
    let total: u64 = calls.values().sum();
    Json(json!({
        "ok": true,
        "apps": state.poller.apps,
        "interval_seconds": state.poller.interval.as_secs_f64(),
        "polls": state.poller.polls.load(Ordering::Relaxed),
        "read_at": s.at,
        "last_error": s.error,
        "viewers": state.viewers.load(Ordering::Relaxed),
        "uptime_seconds": up,
        "api_calls_total": total,
        "api_calls_per_minute": if up > 0.0 { total as f64 * 60.0 / up } else { 0.0 },
        "api_calls": calls,
    }))
    .into_response()
}

/// Counts a connected event stream for as long as it lives.
struct Viewer(Arc<AtomicUsize>);

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Server-sent events: a `snapshot` event with the status document at once and after every poll.
async fn events(Extract(state): Extract<State>) -> Sse<impl futures_util::Stream<Item = std::result::Result<Event, Infallible>>> {
    state.viewers.fetch_add(1, Ordering::Relaxed);
    let viewer = Viewer(state.viewers.clone());
    let mut rx = state.poller.snapshot.clone();
    rx.mark_changed();
    let stream = futures_util::stream::unfold((rx, viewer), |(mut rx, viewer)| async move {
        loop {
            rx.changed().await.ok()?;
            let s = rx.borrow_and_update().clone();
            if s.version == 0 {
                continue;
            }
            let data = json!({ "version": s.version, "read_at": s.at, "stale": s.error, "status": s.status });
            let event = Event::default().event("snapshot").id(s.version.to_string()).data(data.to_string());
            return Some((Ok(event), (rx, viewer)));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// What an app's route starts from: its query string parsed, the poller's snapshot once it has one, and the app
/// asked for; or the JSON error response saying which of them is wrong.
fn begin<T>(
    state: &State,
    q: std::result::Result<Query<T>, QueryRejection>,
    app: impl FnOnce(&T) -> Option<&str>,
) -> std::result::Result<(T, Arc<Snapshot>, String), Response> {
    let Query(q) = q.map_err(|e| bad_query(&e))?;
    let s = state.snapshot();
    if let Some(r) = warming(&s) {
        return Err(r);
    }
    let app = pick_app(state, app(&q))?;
    Ok((q, s, app))
}

/// The app a request is about: the one named, or the only one.
fn pick_app(state: &State, app: Option<&str>) -> std::result::Result<String, Response> {
    let apps = &state.poller.apps;
    match app.filter(|a| !a.is_empty()) {
        Some(a) if apps.iter().any(|x| x == a) => Ok(a.to_owned()),
        Some(a) => Err(not_found(&format!("no app `{a}` on this dashboard; apps: {}", apps.join(", ")))),
        None if apps.len() == 1 => Ok(apps[0].clone()),
        None => {
            let body = json!({ "ok": false, "error": { "kind": "input", "message": format!("there are several apps ({}); add ?app=NAME", apps.join(", ")), "details": [], "exit_code": 2 } });
            Err((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
    }
}
