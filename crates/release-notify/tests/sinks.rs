//! The local sinks against real loopback servers (plain HTTP and TLS with a test CA) and real commands: what
//! arrives (method, headers, body, signature), one-line errors that never hold the URL, and a command killed with
//! everything it started when its attempt is abandoned.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_core::model::clock::Timestamp;
use release_core::model::event::{Event, EventKind, InstanceCounts};
use release_notify::{signature, timestamped_signature, LocalSinks, SIGNATURE_HEADER, TIMESTAMPED_SIGNATURE_HEADER, TIMESTAMP_HEADER, USER_AGENT};
use release_testkit::http::{read_request, Request as Seen};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn event() -> Event {
    Event {
        event: EventKind::Failed,
        step: None,
        at: Timestamp::from_millis(1_790_000_000_000),
        app: "hello".into(),
        env: "staging".into(),
        cluster: Some("staging".into()),
        action: "promote".into(),
        commit: Some("3f2a1b2c3d4e5f60718293a4b5c6d7e8f9012345".into()),
        commit_short: Some("3f2a1b2c3d4e".into()),
        subject: Some("Fix <the> & bug".into()),
        ami: Some("ami-0123".into()),
        from: "9c1d00000000".into(),
        to: "3f2a1b2c3d4e".into(),
        actor: "alice".into(),
        caller: "arn:aws:iam::123456789012:user/alice".into(),
        host: "ci-1".into(),
        release_id: "r20261129T171442Z-ffbfe0".into(),
        outcome: "failed".into(),
        reason: Some("elb RegisterInstancesWithLoadBalancer: InternalFailure".into()),
        rolled_back: Some(true),
        seconds: [("total".to_owned(), 12.5)].into_iter().collect(),
        instances: InstanceCounts { launched: 2, retired: 0 },
        link: Some("http://deploys.internal:8080".into()),
        hooks: Vec::new(),
        gates_overridden: None,
    }
}


/// A loopback HTTP server answering every request with `status` and `answer`; what it received.
fn server(status: u16, answer: &'static str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            if let Some(req) = read_request(&mut stream) {
                seen.lock().unwrap().push(req);
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}", answer.len());
            }
        }
    });
    (format!("http://127.0.0.1:{port}"), out)
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A loopback HTTPS server with a certificate for 127.0.0.1 signed by the test CA (tests/fixtures); answers 204.
fn tls_server() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem")).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap().with_no_client_auth().with_single_cert(certs, key).unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(tcp) = stream else { continue };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            if let Some(req) = read_request(&mut tls) {
                seen.lock().unwrap().push(req);
                let _ = write!(tls, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    (format!("https://127.0.0.1:{port}"), out)
}

fn test_ca() -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap().map(|c| c.unwrap()).collect()
}

#[tokio::test]
async fn a_webhook_gets_the_event_as_json_signed_with_the_secret() {
    let (base, seen) = server(200, "ok");
    let sinks = LocalSinks::new();
    let url = format!("{base}/hooks/release?token=abc");
    let e = event();
    sinks.webhook("webhook x", &url, Some(b"s3cret"), &e).await.unwrap();
    sinks.webhook("webhook x", &url, None, &e).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (signed, unsigned) = (&seen[0], &seen[1]);
    assert_eq!((signed.method.as_str(), signed.path.as_str()), ("POST", "/hooks/release?token=abc"));
    assert_eq!(signed.header("content-type"), Some("application/json"));
    assert_eq!(signed.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("release/"));
    let back: Event = serde_json::from_slice(&signed.body).unwrap();
    assert_eq!(back, e);
    let json: serde_json::Value = serde_json::from_slice(&signed.body).unwrap();
    assert_eq!((json["event"].as_str(), json["rolled_back"].as_bool()), (Some("failed"), Some(true)));
    assert_eq!(signed.header(SIGNATURE_HEADER), Some(signature(b"s3cret", &signed.body).as_str()));
    assert!(signed.header(SIGNATURE_HEADER).unwrap().starts_with("sha256=") && signed.header(SIGNATURE_HEADER).unwrap().len() == 7 + 64);
    assert_eq!(unsigned.header(SIGNATURE_HEADER), None);
    // Replay protection: the time it was sent, and a signature over that time and the body, checked here the way
    // the README tells a receiver to (HMAC-SHA256 of "<timestamp>.<body>", then the timestamp against the clock).
    let ts: u64 = signed.header(TIMESTAMP_HEADER).unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(ts) <= 5, "sent at {ts}, now {now}");
    let mut mac = <hmac::Hmac<sha2_hmac::Sha256> as hmac::KeyInit>::new_from_slice(b"s3cret").unwrap();
    hmac::Mac::update(&mut mac, format!("{ts}.").as_bytes());
    hmac::Mac::update(&mut mac, &signed.body);
    let want = format!("sha256={}", hex::encode(hmac::Mac::finalize(mac).into_bytes()));
    assert_eq!(signed.header(TIMESTAMPED_SIGNATURE_HEADER), Some(want.as_str()));
    assert_eq!(timestamped_signature(b"s3cret", ts, &signed.body), want);
    // A replayed body with another time does not verify.
    assert_ne!(timestamped_signature(b"s3cret", ts + 600, &signed.body), want);
    assert_eq!((unsigned.header(TIMESTAMP_HEADER), unsigned.header(TIMESTAMPED_SIGNATURE_HEADER)), (None, None));
}

#[tokio::test]
async fn failures_are_one_line_naming_the_label_never_the_url() {
    let (base, seen) = server(500, "boom\nstack line 1\nstack line 2");
    let sinks = LocalSinks::new();
    let url = format!("{base}/services/T0/B0/SECRETPART");
    let label = format!("slack {base}/services/…");
    let e = sinks.slack(&label, &url, &event()).await.unwrap_err();
    assert_eq!(e.message(), format!("{label}: HTTP 500: boom stack line 1 stack line 2"));
    assert_eq!(e.kind(), release_core::ErrorKind::Aws);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/services/T0/B0/SECRETPART");
    let e = sinks.webhook("webhook http://127.0.0.1/services/…", &url, Some(b"k"), &event()).await.unwrap_err();
    println!("refused: {}", e.message());
    assert!(e.message().starts_with("webhook http://127.0.0.1/services/…: cannot connect: "), "{}", e.message());
    assert!(!e.message().contains("SECRETPART") && !e.message().contains('\n'), "{}", e.message());
}

#[tokio::test]
async fn https_works_with_a_trusted_root_and_an_unknown_issuer_is_refused() {
    let (base, seen) = tls_server();
    let url = format!("{base}/hook");
    LocalSinks::with_roots(test_ca()).webhook("webhook https://127.0.0.1/hook", &url, Some(b"k"), &event()).await.unwrap();
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/hook");
    assert_eq!(got[0].header(SIGNATURE_HEADER), Some(signature(b"k", &got[0].body).as_str()));
    // The system's roots do not know the test CA.
    let e = LocalSinks::new().webhook("webhook https://127.0.0.1/hook", &url, None, &event()).await.unwrap_err();
    println!("untrusted: {}", e.message());
    assert!(e.message().contains("certificate") || e.message().contains("UnknownIssuer"), "{}", e.message());
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing was sent to an untrusted server");
}

#[tokio::test]
async fn a_slack_message_reads_at_a_glance() {
    let m = release_notify::slack_message(&event());
    let text = m["text"].as_str().unwrap();
    assert_eq!(text, event().headline());
    assert!(text.contains("hello/staging") && text.contains("promote 3f2a1b2c3d4e on staging failed (alice)"), "{text}");
    let all = serde_json::to_string(&m["blocks"]).unwrap();
    for want in ["*Who*\\nalice", "*What*\\npromote `3f2a1b2c3d4e`", "*Where*\\nhello/staging on staging", "*Outcome*\\nfailed (rolled back)", "*Reason*\\nelb RegisterInstancesWithLoadBalancer: InternalFailure", "Fix &lt;the&gt; &amp; bug", "<http://deploys.internal:8080|details>"] {
        assert!(all.contains(want), "blocks lack {want}: {all}");
    }
}

#[tokio::test]
async fn a_long_failure_still_fits_slack_s_block_limits_and_keeps_its_beginning() {
    let mut e = event();
    // An AWS error with a long body, as a failed CloudFormation-style message or an HTML error page can be.
    e.reason = Some(format!("elb RegisterInstancesWithLoadBalancer: InternalFailure: {}", "<&> detail ".repeat(1_000)));
    e.subject = Some("a very long commit subject ".repeat(200));
    e.actor = "x".repeat(5_000);
    let m = release_notify::slack_message(&e);
    let texts = |v: &serde_json::Value| -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for b in v["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                out.push(("section".to_owned(), t.chars().count()));
            }
            for f in b["fields"].as_array().into_iter().flatten().chain(b["elements"].as_array().into_iter().flatten()) {
                out.push(("field or context".to_owned(), f["text"].as_str().unwrap().chars().count()));
            }
        }
        out
    };
    for (kind, n) in texts(&m) {
        let max = if kind == "section" { 3_000 } else { 2_000 };
        assert!(n <= max, "a {kind} text of {n} characters");
    }
    assert!(m["text"].as_str().unwrap().chars().count() <= 3_000);
    let reason = m["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(reason.starts_with("*Reason*\nelb RegisterInstancesWithLoadBalancer: InternalFailure: &lt;&amp;&gt; detail"), "{}", &reason[..100]);
    assert!(reason.contains("more characters; the full text is in the ledger: `release history`)"), "{reason}");
    // Cut between escapes, never inside one.
    let body = reason.split('…').next().unwrap();
    assert!(!body.ends_with("&am") && !body.ends_with("&") && !body.ends_with("&l") && !body.ends_with("&g"), "{body}");
    // A short message is untouched.
    assert!(!serde_json::to_string(&release_notify::slack_message(&event())).unwrap().contains("more characters"));
}

#[tokio::test]
async fn a_command_gets_the_event_on_stdin_and_its_failure_keeps_the_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    let sinks = LocalSinks::new();
    sinks.command("command `cat`", &format!("cat > {}", file.display()), &event()).await.unwrap();
    let back: Event = serde_json::from_str(std::fs::read_to_string(&file).unwrap().trim()).unwrap();
    assert_eq!(back, event());

    let e = sinks.command("command `x`", "echo one >&2; echo two >&2; echo three >&2; echo four >&2; exit 3", &event()).await.unwrap_err();
    assert_eq!(e.message(), "command `x`: exit status 3: two | three | four");
    // Not reading stdin is no failure.
    sinks.command("command `true`", "true", &event()).await.unwrap();
}

#[tokio::test]
async fn a_command_abandoned_by_its_timeout_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let sinks = LocalSinks::new();
    // A pipeline: bash stays the parent, and `sleep` is its child in the same process group.
    let cmd = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let e = event();
    let attempt = sinks.command("command `sleep`", &cmd, &e);
    assert!(tokio::time::timeout(Duration::from_millis(1500), attempt).await.is_err(), "it outlived the attempt");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let mut gone = false;
    for _ in 0..50 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its (killed) parent's reaper.
        if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "the command's child {pid} still runs");
}
