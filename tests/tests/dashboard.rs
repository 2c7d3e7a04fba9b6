//! `release dashboard` against the emulator: every route over HTTP (the documents are the CLI's own), one poller
//! whatever the number of viewers, the token, and a real browser (Debian's headless Chromium) watching a promote
//! with slow health until the board shows the new commit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use release_e2e::{Background, Emulator, Project, Run};
use release_testkit::proxy::{FaultProxy, Realism};
use serde_json::Value;

/// A dashboard process, killed when dropped.
struct Dashboard {
    bg: Option<Background>,
    url: String,
}

impl Dashboard {
    fn start(project: &Project, endpoint: &str, extra: &[&str]) -> Self {
        let mut args = vec!["dashboard", "--listen", "127.0.0.1:0"];
        if !extra.contains(&"--interval") {
            args.extend_from_slice(&["--interval", "1s"]);
        }
        args.extend_from_slice(extra);
        let bg = project.background(endpoint, &[], &args);
        let start = Instant::now();
        loop {
            if let Some(line) = bg.stdout().lines().find(|l| l.starts_with("http://")) {
                let url = line.trim().trim_end_matches('/').to_owned();
                return Self { bg: Some(bg), url };
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the dashboard printed no address:\n{}", bg.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> Response {
        get(&format!("{}{path}", self.url), &[])
    }

    /// The JSON of `path` once the first poll has been published (503 before).
    fn json(&self, path: &str) -> Value {
        let start = Instant::now();
        loop {
            let r = self.get(path);
            if r.status != 503 {
                assert_eq!(r.status, 200, "GET {path}: {}", r.body);
                return r.json();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no snapshot after 30 s: {}", r.body);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the poller has published a snapshot read after now (so it sees what was just done).
    fn fresh(&self) {
        let polls = self.json("/api/health")["polls"].as_u64().unwrap();
        let start = Instant::now();
        while self.json("/api/health")["polls"].as_u64().unwrap() < polls + 2 {
            assert!(start.elapsed() < Duration::from_secs(30), "the poller stopped polling");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(mut bg) = self.bg.take() {
            let _ = bg.child.kill();
            let _ = bg.child.wait();
        }
    }
}

struct Response {
    status: u16,
    headers: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 GET over a plain socket (loopback only), `Connection: close`.
fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", url, headers)
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
    let rest = url.strip_prefix("http://127.0.0.1:").expect("a loopback URL");
    let (port, path) = rest.split_once('/').map(|(p, path)| (p, format!("/{path}"))).unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to the dashboard");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Response { status, headers: head.to_ascii_lowercase(), body: body.to_owned() }
}

/// Opens the event stream and returns it once its first `snapshot` event has arrived, with that event's data.
fn subscribe(url: &str) -> (BufReader<TcpStream>, Value) {
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
    let port = rest.split('/').next().unwrap();
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut event = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "the event stream ended");
        if line.starts_with("event: ") {
            event = line.trim().trim_start_matches("event: ").to_owned();
        }
        if let Some(data) = line.strip_prefix("data: ") {
            assert_eq!(event, "snapshot");
            return (r, serde_json::from_str(data.trim()).unwrap());
        }
    }
}

/// The CLI's document without what differs between two reads (its own call counts).
fn without_calls(mut v: Value) -> Value {
    for k in ["api_calls", "api_calls_total", "read_at"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

fn cli_json(project: &Project, emu: &Emulator, args: &[&str]) -> Value {
    let run: Run = project.release(emu, args);
    run.assert_ok();
    without_calls(run.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_the_api_documents_are_the_clis() {
    let emu = Emulator::start();
    let (project, a, _b) = Project::baked_demo(&emu);
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let d = Dashboard::start(&project, &emu.url(), &[]);
    d.fresh();

    // /api/status, /api/history, /api/images: the documents of `--output json`, read from the poller's snapshot.
    assert_eq!(without_calls(d.json("/api/status")), cli_json(&project, &emu, &["status", "--output", "json"]));
    let history = d.json("/api/history");
    assert_eq!(without_calls(history.clone()), cli_json(&project, &emu, &["history", "--limit", "200", "--output", "json"]));
    assert_eq!(without_calls(d.json("/api/images")), cli_json(&project, &emu, &["images", "--output", "json"]));
    assert_eq!(d.json("/api/status")["environments"][0]["clusters"][0]["commit"], a.as_str());

    // Filters: by environment and by outcome, each row still a record of the CLI's document.
    let staging = d.json("/api/history?app=hello&env=staging");
    let records = staging["records"].as_array().unwrap();
    assert!(!records.is_empty() && records.iter().all(|r| r["env"] == "staging"), "{staging:#}");
    let promotes = d.json("/api/history?outcome=succeeded&env=staging&limit=1")["records"].as_array().unwrap().clone();
    assert_eq!(promotes.len(), 1);
    assert_eq!(promotes[0]["action"], "promote");
    assert!(d.json("/api/history?outcome=failed")["records"].as_array().unwrap().is_empty());

    // /api/operation/APP/RELEASE: the record as history has it.
    let id = promotes[0]["release_id"].as_str().unwrap();
    let op = d.json(&format!("/api/operation/hello/{id}"));
    assert_eq!(op["record"], promotes[0]);
    assert_eq!(op["record"]["new_instances"].as_array().unwrap().len(), 2);
    assert!(op["operation"].is_null(), "finished: nothing under way");
    let missing = d.get("/api/operation/hello/r20000101T000000Z-000000");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["kind"], "not-found");
    let other = d.get("/api/images?app=nope");
    assert_eq!(other.status, 404);
    assert!(other.json()["error"]["message"].as_str().unwrap().contains("apps: hello"), "{}", other.body);
    // A bad query string is the same JSON error document as every other failure.
    let bad = d.get("/api/history?limit=abc");
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["error"]["kind"], "input");

    // /api/health: the poller's cost.
    let health = d.json("/api/health");
    assert!(health["polls"].as_u64().unwrap() >= 2, "{health:#}");
    assert!(health["api_calls_total"].as_u64().unwrap() > 0);
    assert!(health["api_calls"]["EC2:DescribeInstances"].as_u64().unwrap() > 0, "{health:#}");
    assert_eq!(health["interval_seconds"], 1.0);

    // /api/events: a snapshot event at once, carrying the status document.
    let (_stream, event) = subscribe(&d.url);
    assert!(event["version"].as_u64().unwrap() >= 1);
    assert_eq!(without_calls(event["status"].clone()), without_calls(d.json("/api/status")));
    assert_eq!(d.json("/api/health")["viewers"], 1);

    // The pages and their embedded assets.
    for page in ["/", "/?tv=1", "/history", "/images", &format!("/op/hello/{id}")] {
        let r = d.get(page);
        assert_eq!(r.status, 200, "{page}");
        assert!(r.headers.contains("content-type: text/html"), "{page}: {}", r.headers);
        assert!(r.body.contains("<script src=\"/assets/app.js\"></script>"), "{page}");
    }
    let js = d.get("/assets/app.js");
    assert!(js.headers.contains("content-type: text/javascript") && js.body.contains("EventSource"));
    assert!(d.get("/assets/app.css").headers.contains("content-type: text/css"));

    // Read-only: nothing but GET; unknown paths are a JSON 404.
    for method in ["POST", "PUT", "DELETE"] {
        assert_eq!(request(method, &format!("{}/api/status", d.url), &[]).status, 405, "{method}");
    }
    let nope = d.get("/api/nope");
    assert_eq!(nope.status, 404);
    assert_eq!(nope.json()["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_viewers_cost_no_aws_call_only_the_poller_does() {
    let emu = Emulator::start();
    let (project, a, _b) = Project::baked_demo(&emu);
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    // One poll at start, the next an hour later: every AWS call after the first poll would be a viewer's.
    let d = Dashboard::start(&project, &emu.url(), &["--interval", "1h"]);
    let status = d.json("/api/status");
    assert_eq!(status["environments"][0]["clusters"][0]["commit"], a.as_str());
    let h0 = d.json("/api/health");
    assert_eq!(h0["polls"], 1, "{h0:#}");
    let first_poll = h0["api_calls_total"].as_u64().unwrap();
    assert!(first_poll > 0);

    let viewers: Vec<_> = (0..50).map(|_| subscribe(&d.url)).collect();
    assert_eq!(d.json("/api/health")["viewers"], 50);
    for _ in 0..100 {
        for path in ["/api/status", "/api/history", "/api/images"] {
            assert_eq!(d.get(path).status, 200);
        }
    }
    for path in ["/", "/history", "/images", "/api/history?env=staging&outcome=succeeded", "/api/health"] {
        assert_eq!(d.get(path).status, 200, "{path}");
    }
    let h1 = d.json("/api/health");
    println!("first poll: {first_poll} AWS calls; then 50 event streams and 300 API reads: {} more", h1["api_calls_total"].as_u64().unwrap() - first_poll);
    assert_eq!(h1["polls"], 1);
    assert_eq!(h1["api_calls_total"].as_u64().unwrap(), first_poll, "viewers made AWS calls: {h1:#}");
    drop(viewers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_address_than_loopback_needs_a_token_and_every_request_must_carry_it() {
    let emu = Emulator::start();
    let project = Project::demo();
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    let refused = project.release(&emu, &["dashboard", "--listen", "0.0.0.0:0"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.error_line().contains("pass --token"), "{}", refused.stderr);
    let short = project.release(&emu, &["dashboard", "--listen", "0.0.0.0:0", "--token", "abc", "--output", "json"]);
    assert_eq!(short.code, 2);
    assert_eq!(short.json()["error"]["kind"], "input");
    for (flag, value, needle) in [("--listen", "nowhere", "not an address"), ("--interval", "0s", "too short"), ("--interval", "soon", "--interval soon")] {
        let bad = project.release(&emu, &["dashboard", flag, value]);
        assert_eq!(bad.code, 2, "{flag} {value}: {}", bad.stderr);
        assert!(bad.error_line().contains(needle), "{flag} {value}: {}", bad.stderr);
    }

    // Listening on every address with a token (only ever reached here through loopback).
    let token = "0123456789abcdef0123";
    let d = Dashboard::start(&project, &emu.url(), &["--token", token]);
    let port = d.url.rsplit(':').next().unwrap().to_owned();
    let url = format!("http://127.0.0.1:{port}");
    for path in ["/", "/api/status", "/api/health", "/api/events", "/assets/app.js"] {
        let r = get(&format!("{url}{path}"), &[]);
        assert_eq!(r.status, 401, "{path} without the token");
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("needs its token"));
        assert_eq!(get(&format!("{url}{path}?token=wrong-{token}"), &[]).status, 401, "{path} with a wrong token");
        assert_eq!(get(&format!("{url}{path}"), &[("Authorization", "Bearer 0123456789abcdef012")]).status, 401, "a prefix of it");
    }
    assert_eq!(get(&format!("{url}/api/health"), &[("Authorization", &format!("Bearer {token}"))]).status, 200);
    assert_eq!(get(&format!("{url}/api/health?token={token}"), &[]).status, 200);
    assert_eq!(get(&format!("{url}/?tv=1&token={token}"), &[]).status, 200);
}

/// Debian's Chromium; `make test` installs it (scripts/install-tools), so its absence is a failure, not a skip.
fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(c).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("chromium is not installed: run scripts/install-tools (make test does), or apt-get install chromium");
}

/// The page's DOM after its script ran, as headless Chromium renders it.
fn dom(browser: &Path, profile: &Path, url: &str) -> String {
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--timeout=2500", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(browser: &Path, profile: &Path, url: &str, to: &Path) {
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--timeout=2500", "--window-size=1600,900"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", to.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(to.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
}

/// Loads the board until `pred` holds for its DOM.
fn until(browser: &Path, profile: &Path, url: &str, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let html = dom(browser, profile, url);
        if let Some(at) = html.find("data-operation=") {
            println!("board while waiting for {what}: {}", &html[at..(at + 1500).min(html.len())]);
        }
        if pred(&html) {
            return html;
        }
        assert!(start.elapsed() < timeout, "the board never showed {what} within {timeout:?}; last DOM:\n{html}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The element whose opening tag carries `attr` (`data-cluster="prod1"`), up to its next sibling of that kind.
fn element<'a>(html: &'a str, attr: &str) -> &'a str {
    let at = html.find(attr).unwrap_or_else(|| panic!("no {attr} in:\n{html}"));
    let start = html[..at].rfind('<').unwrap();
    &html[start..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_a_running_promote_instance_by_instance_then_the_new_commit() {
    let browser = chromium();
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    for args in [&["promote", &a, "--env", "staging"][..], &["promote", &a, "--env", "prod", "--yes"], &["switch", "prod2", "--yes"]] {
        project.release(&emu, args).assert_ok();
    }
    // Health that takes 8 s after registration, for the promote and for the dashboard alike.
    let proxy = FaultProxy::start(&emu.url(), 1);
    proxy.realism(Realism::new().healthy_after(Duration::from_secs(8)));
    let d = Dashboard::start(&project, &proxy.url(), &[]);
    d.fresh();
    let profile = tempfile::tempdir().unwrap();
    let board = format!("{}/", d.url);
    let html = until(&browser, profile.path(), &board, "prod2 live with A", Duration::from_secs(30), |h| h.contains("data-cluster=\"prod2\""));
    assert!(element(&html, "data-cluster=\"prod2\"").starts_with(&format!("<div class=\"cluster live\" data-cluster=\"prod2\" data-commit=\"{a}\"")), "{html}");

    // prod1 is idle: the promote of B goes there (it was live moments ago: --force skips the settle wait).
    let promote = project.background(&proxy.url(), &[], &["promote", &b, "--env", "prod", "--yes", "--force"]);
    let html = until(&browser, profile.path(), &board, "the promote's instances", Duration::from_secs(60), |h| {
        h.contains("data-operation=") && h.matches("class=\"inst\" data-instance=").count() == 4 && h.contains("data-state=\"registered\"")
    });
    let op = element(&html, "data-operation=");
    assert!(op.contains("data-phase=\"waiting-healthy\""), "{op}");
    assert!(op.contains("healthy 0/4"), "{op}");
    assert!(op.contains(&b[..8]) && op.contains("to prod1"), "{op}");
    // The CLI's status tells the same from the ledger record.
    let status = release_e2e::release(project.path(), Some(&proxy.url()), &["status", "--env", "prod"]);
    status.assert_ok();
    assert!(status.stdout.contains("promote of ") && status.stdout.contains("in progress: healthy 0/4"), "{}", status.stdout);
    let json = release_e2e::release(project.path(), Some(&proxy.url()), &["status", "--env", "prod", "--output", "json"]).json();
    let progress = &json["environments"][0]["operation"]["progress"];
    assert_eq!(progress["phase"], "waiting-healthy", "{json:#}");
    assert_eq!(progress["instances"].as_object().unwrap().len(), 4, "{json:#}");
    assert!(progress["phase_started"].is_number(), "{json:#}");
    // The picture of a deploy in progress, for the README (docs/dashboard.png is a copy of one).
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-in-progress.png");
    let _ = std::fs::remove_file(&shot);
    screenshot(&browser, profile.path(), &board, &shot);
    println!("screenshot of the board with the promote under way: {}", shot.display());

    promote.finish(Duration::from_secs(120)).assert_ok();
    let html = until(&browser, profile.path(), &board, "prod1 on the new commit", Duration::from_secs(30), |h| {
        h.contains(&format!("data-cluster=\"prod1\" data-commit=\"{b}\"")) && !h.contains("data-operation=")
    });
    let prod1 = element(&html, "data-cluster=\"prod1\"");
    assert!(prod1.contains("4/4 healthy"), "{prod1}");
    assert!(prod1.starts_with("<div class=\"cluster idle\""), "promoted into the idle cluster, still idle: {prod1}");
    assert!(proxy.stats().injected.keys().any(|k| k.contains("registration in progress")), "health was slow: {:?}", proxy.stats());

    // History and the operation's page render from the same documents.
    let history = until(&browser, profile.path(), &format!("{}/history?env=prod", d.url), "the history", Duration::from_secs(10), |h| h.contains("id=\"history\""));
    let row = element(&history, "data-outcome=\"succeeded\"");
    assert!(row.contains("promote") && row.contains(&b[..8]), "{history}");
    let id = d.json("/api/history?env=prod&limit=1")["records"][0]["release_id"].as_str().unwrap().to_owned();
    let detail = until(&browser, profile.path(), &format!("{}/op/hello/{id}", d.url), "the operation's record", Duration::from_secs(10), |h| h.contains("id=\"record\""));
    assert!(detail.contains("data-key=\"outcome\">succeeded"), "{detail}");
    assert!(detail.contains("launched:"), "{detail}");
    let images = until(&browser, profile.path(), &format!("{}/images", d.url), "the images", Duration::from_secs(10), |h| h.contains("data-images=\"hello\""));
    assert!(images.contains("prod/prod1 ×4") && images.contains("prod/prod2 ×4"), "{images}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_of_the_pipelines_directory_is_on_one_board() {
    let emu = Emulator::start();
    let project = Project::demo();
    let hello = project.read("pipelines/hello.toml");
    let shop = hello
        .replace("app = \"hello\"", "app = \"shop\"")
        .replace("\"hello-", "\"shop-")
        .replace("record = \"hello.example.com.\"", "record = \"shop.example.com.\"")
        .replace("/hello/", "/shop/");
    project.write("pipelines/shop.toml", &shop);
    for app in ["hello", "shop"] {
        project.release(&emu, &["--app", app, "provision", "--env", "staging"]).assert_ok();
    }
    let d = Dashboard::start(&project, &emu.url(), &[]);
    let status = d.json("/api/status");
    let apps: Vec<&str> = status["apps"].as_array().unwrap().iter().map(|a| a["app"].as_str().unwrap()).collect();
    assert_eq!(apps, ["hello", "shop"]);
    assert_eq!(without_calls(status), cli_json(&project, &emu, &["status", "--output", "json"]));
    // With several apps, history and images are per app: asking without one says which there are.
    let several = d.get("/api/history");
    assert_eq!(several.status, 400);
    assert!(several.json()["error"]["message"].as_str().unwrap().contains("several apps (hello, shop); add ?app=NAME"), "{}", several.body);
    let shop_history = d.json("/api/history?app=shop");
    assert_eq!(shop_history["app"], "shop");
    assert_eq!(without_calls(shop_history), cli_json(&project, &emu, &["--app", "shop", "history", "--limit", "200", "--output", "json"]));
    assert_eq!(d.json("/api/images?app=hello")["images"].as_array().unwrap().len(), 0);
    // --app narrows the board to one app.
    let one = Dashboard::start(&project, &emu.url(), &["--app", "shop"]);
    assert_eq!(one.json("/api/health")["apps"], serde_json::json!(["shop"]));
    assert_eq!(one.json("/api/history")["app"], "shop");
}

/// A queue ticket cancelled while a promote runs leaves a record dated at its arrival, newer than the promote's:
/// `status` and the board still find the operation in progress through the lock's holder, not the newest record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_queue_ticket_does_not_hide_the_running_promote_from_status_or_the_board() {
    let long = Duration::from_secs(120);
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = release_e2e::AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    // The promote of b holds the lock in its before_traffic hook until the test creates `go`.
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &format!("{text}\n[env.staging.hooks]\nbefore_traffic = \"echo smoke starting; while [ ! -f go ]; do sleep 0.2; done\"\n"));
    let holder = project.background(&emu.url(), &[], &["promote", &b, "--env", "staging", "--output", "json"]);
    holder.wait_for("[hook before_traffic] smoke starting", long);
    let waiter = project.background(&emu.url(), &[], &["promote", &a, "--env", "staging", "--wait", "5m"]);
    waiter.wait_for("queued:", long);
    let queue = project.release(&emu, &["queue", "--env", "staging", "--output", "json"]);
    let ticket = queue.json()["queues"][0]["tickets"][0]["id"].as_str().unwrap().to_owned();
    project.release(&emu, &["queue", "cancel", &ticket]).assert_ok();
    assert_eq!(waiter.finish(long).code, 5);

    // The ledger: the cancelled ticket is the newest record, the promote of b is still open.
    let ledger = aws.ledger("release-ledger").await;
    assert_eq!((ledger[0]["release_id"].as_str(), ledger[0]["outcome"].as_str()), (ticket.as_str(), "cancelled"), "{ledger:#?}");
    let running = ledger.iter().find(|r| r["outcome"] == "started").expect("the promote's open record");
    assert_eq!(running["commit"], b);
    let release_id = running["release_id"].clone();

    let status = project.release(&emu, &["status", "--env", "staging", "--output", "json"]);
    status.assert_ok();
    let env = &status.json()["environments"][0];
    let op = &env["operation"];
    assert_eq!(op["release_id"], release_id.as_str(), "{env:#}");
    assert_eq!(op["commit"], b.as_str(), "{env:#}");
    assert_eq!(op["alive"], true, "{env:#}");
    assert_eq!(op["progress"]["phase"], "hook-before_traffic", "{env:#}");
    assert_eq!(env["last"]["outcome"], "cancelled", "the newest record is still the last action: {env:#}");
    let text = project.release(&emu, &["status", "--env", "staging"]);
    assert!(text.stdout.contains(&format!("promote of {} to staging in progress: hook before_traffic (release {release_id}", &b[..12])), "{}", text.stdout);

    let d = Dashboard::start(&project, &emu.url(), &[]);
    d.fresh();
    let board = d.json("/api/status");
    let staging = board["environments"].as_array().unwrap().iter().find(|e| e["env"] == "staging").unwrap();
    assert_eq!(staging["operation"]["release_id"], release_id.as_str(), "{staging:#}");
    assert_eq!(staging["operation"]["progress"]["phase"], "hook-before_traffic", "{staging:#}");
    let op_doc = d.json(&format!("/api/operation/hello/{release_id}"));
    assert_eq!(op_doc["operation"]["release_id"], release_id.as_str(), "{op_doc:#}");

    project.write("go", "");
    holder.finish(long).assert_ok();
    let commits: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.tags["release:commit"].clone()).collect();
    assert_eq!(commits, vec![b.clone(); 2], "the held promote finished; the cancelled one never ran");
}

const TG_PIPELINE: &str = r#"app = "hello"
region = "us-east-1"
[build]
command = "true"
artifact = "x"
[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "ami-0123456789abcdef0"
[env.staging]
[env.staging.clusters.stg]
target_group = "hello-stg"
count = 1
[env.prod]
dns = { zone = "example.com.", record = "hello.example.com." }
[env.prod.clusters.blue]
target_group = "hello-blue"
count = 2
[env.prod.clusters.green]
target_group = "hello-green"
count = 2
"#;

/// Only the ALB in front of a target group is deleted: status names the load balancer (not the target group,
/// which is still there), exits 3, and the board shows the same note.
#[tokio::test]
async fn a_deleted_alb_is_named_by_status_and_the_board_not_its_target_group() {
    let emu = Emulator::start();
    let project = Project::new(TG_PIPELINE);
    let aws = release_e2e::AwsView::new(&emu).await;
    for env in ["staging", "prod"] {
        project.release(&emu, &["provision", "--env", env]).assert_ok();
    }
    project.release(&emu, &["status"]).assert_ok();
    for name in ["hello-blue", "hello-stg"] {
        let albs = aws.elbv2.describe_load_balancers().names(name).send().await.unwrap();
        let arn = albs.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
        aws.elbv2.delete_load_balancer().load_balancer_arn(arn).send().await.unwrap();
    }
    let tgs = aws.elbv2.describe_target_groups().send().await.unwrap();
    let mut names: Vec<&str> = tgs.target_groups().iter().filter_map(|t| t.target_group_name()).collect();
    names.sort();
    assert_eq!(names, ["hello-blue", "hello-green", "hello-stg"], "the target groups are all still there");
    let before = emu.state();

    for (env, cluster, alb) in [("prod", "blue", "hello-blue"), ("staging", "stg", "hello-stg")] {
        let says = format!("load balancer {alb} of cluster {cluster} does not exist; run `release provision --env {env}`");
        let text = project.release(&emu, &["status", "--env", env]);
        assert_eq!(text.code, 3, "{text:?}");
        assert_eq!(text.error_line(), format!("error: {says}"), "{}", text.stderr);
        assert!(!text.stdout.contains("target group"), "the target group exists: {}", text.stdout);
        let json = project.release(&emu, &["status", "--env", env, "--output", "json"]);
        assert_eq!(json.code, 3, "{json:?}");
        let doc = json.json();
        assert_eq!((doc["ok"].as_bool(), doc["error"]["exit_code"].as_i64()), (Some(false), Some(3)), "{doc:#}");
        let e = &doc["environments"][0];
        assert_eq!(e["note"], says.as_str(), "{doc:#}");
        let c = e["clusters"].as_array().unwrap().iter().find(|c| c["cluster"] == cluster).unwrap();
        assert!(c["note"].as_str().unwrap_or("").contains(&format!("load balancer {alb} of cluster {cluster} does not exist")), "{doc:#}");
    }
    let all = project.release(&emu, &["status"]);
    assert_eq!(all.code, 3, "{all:?}");
    before.assert_same(&emu.state(), "status");

    let d = Dashboard::start(&project, &emu.url(), &[]);
    let board = d.json("/api/status");
    let prod = board["environments"].as_array().unwrap().iter().find(|e| e["env"] == "prod").unwrap();
    assert_eq!(prod["note"], "load balancer hello-blue of cluster blue does not exist; run `release provision --env prod`", "{board:#}");
    assert_eq!(board["error"]["exit_code"], 3, "{board:#}");
}

/// The ALB in front of a cluster that runs instances is deleted: nothing can reach them, so status counts none of
/// them healthy (the target group still says healthy: moto does not mark them unused as AWS does), names the
/// load balancer once, under its cluster, and exits 3; `--output json` and the board say the same.
#[tokio::test]
async fn a_deleted_alb_leaves_its_cluster_with_no_healthy_instance_and_one_note() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    project.write("pipelines/hello.toml", &TG_PIPELINE.replace("command = \"true\"\nartifact = \"x\"", "command = \"make -C pipelines/hello dist\"\nartifact = \"pipelines/hello/dist/hello.tar.gz\"").replace("base_ami = \"ami-0123456789abcdef0\"", "base_ami = \"al2023-ami-2023.*-x86_64\"\nbase_owners = [\"amazon\"]\nvars = { exec_start = \"/usr/bin/python3 /opt/hello/server.py\" }"));
    let sha = project.commit("target groups");
    project.release(&emu, &["provision", "--env", "prod"]).assert_ok();
    project.release(&emu, &["bake", &sha]).assert_ok();
    project.release(&emu, &["promote", &sha, "--env", "prod", "--yes"]).assert_ok();
    let aws = release_e2e::AwsView::new(&emu).await;
    assert_eq!(aws.running("hello", "green").await.len(), 2);
    let albs = aws.elbv2.describe_load_balancers().names("hello-green").send().await.unwrap();
    let arn = albs.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
    aws.elbv2.delete_load_balancer().load_balancer_arn(arn).send().await.unwrap();

    let says = "load balancer hello-green of cluster green does not exist; run `release provision --env prod`";
    let text = project.release(&emu, &["status", "--env", "prod"]);
    assert_eq!(text.code, 3, "{text:?}");
    assert_eq!(text.error_line(), format!("error: {says}"));
    let blue = text.stdout.lines().find(|l| l.split_whitespace().nth(1) == Some("green")).unwrap_or_else(|| panic!("{}", text.stdout));
    assert!(blue.ends_with(" 0/2"), "nothing reaches them through a deleted ALB: {}", text.stdout);
    assert_eq!(text.stdout.matches(says).count(), 1, "the note once, under green: {}", text.stdout);
    let note_at = text.stdout.lines().position(|l| l.contains(says)).unwrap();
    let blue_at = text.stdout.lines().position(|l| l == blue).unwrap();
    assert_eq!(note_at, blue_at + 1, "{}", text.stdout);

    let json = project.release(&emu, &["status", "--env", "prod", "--output", "json"]);
    assert_eq!(json.code, 3, "{json:?}");
    let doc = json.json();
    let c = doc["environments"][0]["clusters"].as_array().unwrap().iter().find(|c| c["cluster"] == "green").unwrap().clone();
    assert_eq!((c["healthy"].as_u64(), c["total"].as_u64(), c["note"].as_str()), (Some(0), Some(2), Some(says)), "{doc:#}");
    let d = Dashboard::start(&project, &emu.url(), &[]);
    let board = d.json("/api/status");
    let prod = board["environments"].as_array().unwrap().iter().find(|e| e["env"] == "prod").unwrap();
    assert_eq!(prod["note"], says, "{board:#}");
    let board_blue = prod["clusters"].as_array().unwrap().iter().find(|c| c["cluster"] == "green").unwrap();
    assert_eq!(board_blue["healthy"], 0, "{board:#}");
    println!("status after the ALB was deleted:\n{}", text.stdout);
}
