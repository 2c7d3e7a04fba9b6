//! The sinks of `[notify]` that need no AWS: `webhook` and `slack` over HTTP(S), and `command`, a local program.
//!
//! Each function here makes ONE attempt and does not bound its own time: `release_core::engine::delivery::Delivery` runs it
//! with a timeout per attempt and retries, and drops the future when the time is up (a command is then killed,
//! with its whole process group). Errors are one line naming the sink by its label (`webhook
//! https://hooks.example.com/…: HTTP 500`), never the secret, nor the full URL (Slack's URLs are secrets).
//!
//! The HTTP client is hyper 1 with rustls (aws-lc-rs) and the system's root certificates: the stack the AWS SDK's
//! default HTTPS client already builds, so this crate compiles nothing new.

use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use release_core::model::event::Event;
use release_core::model::error::Aws;
use release_core::{Error, Result};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("release/", env!("CARGO_PKG_VERSION"));

/// The header carrying a webhook body's signature.
pub const SIGNATURE_HEADER: &str = "X-Release-Signature";

/// The header carrying the time a webhook request was sent: Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Release-Timestamp";

/// The header carrying the signature of the timestamp and the body, [`timestamped_signature`]: a receiver that checks
/// it and refuses a timestamp more than a few minutes from its clock cannot be fooled by a replayed request.
pub const TIMESTAMPED_SIGNATURE_HEADER: &str = "X-Release-Signature-V2";

/// How much of an error answer's body goes into the message.
const ANSWER_CHARS: usize = 120;

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`, the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2_hmac::Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with secret>`, the value of
/// [`TIMESTAMPED_SIGNATURE_HEADER`]; `timestamp` is the value of [`TIMESTAMP_HEADER`].
pub fn timestamped_signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signature(secret, &signed)
}

/// The event as every sink gets it: its JSON.
pub fn body(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).expect("an event always encodes")
}

/// The local sinks: one HTTP client (connections are reused across the events of a command).
#[derive(Clone)]
pub struct LocalSinks {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for LocalSinks {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalSinks {
    /// Trusting the system's root certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
    pub fn new() -> Self {
        Self::with_roots(Vec::new())
    }

    /// Trusting the system's roots and `extra` (tests: a loopback server's self-signed certificate).
    pub fn with_roots(extra: Vec<CertificateDer<'static>>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        // Certificates the system store holds that rustls cannot parse are skipped; with no roots at all, https
        // sinks fail their handshake with a clear error and http ones still work.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        roots.add_parsable_certificates(extra);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Self { http }
    }

    /// `webhook`: POSTs the event as JSON, signed with `secret` when given; 2xx is success.
    pub async fn webhook(&self, label: &str, url: &str, secret: Option<&[u8]>, event: &Event) -> Result<()> {
        let body = body(event);
        let mut headers = Vec::new();
        if let Some(secret) = secret {
            // Signed when sent: a retry is a new request with its own time.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            headers.push((TIMESTAMP_HEADER, now.to_string()));
            headers.push((TIMESTAMPED_SIGNATURE_HEADER, timestamped_signature(secret, now, &body)));
            // The body-only signature, for receivers written before the timestamped one.
            headers.push((SIGNATURE_HEADER, signature(secret, &body)));
        }
        self.post(label, url, body, headers).await
    }

    /// `slack`: POSTs [`slack_message`] to an incoming webhook; 2xx is success.
    pub async fn slack(&self, label: &str, url: &str, event: &Event) -> Result<()> {
        let body = serde_json::to_vec(&slack_message(event)).expect("a message always encodes");
        self.post(label, url, body, Vec::new()).await
    }

    async fn post(&self, label: &str, url: &str, body: Vec<u8>, headers: Vec<(&'static str, String)>) -> Result<()> {
        let fail = |what: String| sink_error(label, scrub(&what, url, label));
        let uri: Uri = url.parse().map_err(|_| fail("not a valid URL".into()))?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, USER_AGENT);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| fail(format!("cannot build the request: {e}")))?;
        let answer = self.http.request(req).await.map_err(|e| fail(client_error(&e)))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        // A little of what the server said (Slack: `invalid_payload`, `no_service`), bounded and on one line.
        let text = match Limited::new(answer.into_body(), 4096).collect().await {
            Ok(b) => one_line(&String::from_utf8_lossy(&b.to_bytes()), ANSWER_CHARS),
            Err(_) => String::new(),
        };
        Err(fail(match (status, text.is_empty()) {
            (s, true) => format!("HTTP {}", s.as_u16()),
            (s, false) => format!("HTTP {}: {text}", s.as_u16()),
        }))
    }

    /// `command`: runs `bash -c <command>` with the event's JSON on stdin; exit 0 is success. Dropping the future
    /// (the attempt's time is up) kills it and everything it started.
    pub async fn command(&self, label: &str, command: &str, event: &Event) -> Result<()> {
        run_command(label, command, &body(event)).await
    }
}

/// A Slack incoming-webhook message readable at a glance: the headline as `text` (notifications, clients without
/// blocks), then blocks: the headline; who, what, where, outcome; the reason; the commit's subject and the link.
pub fn slack_message(e: &Event) -> serde_json::Value {
    use serde_json::json;
    let icon = match e.event.as_str() {
        "succeeded" => ":white_check_mark:",
        "failed" | "lost-lock" => ":x:",
        "rolled-back" => ":leftwards_arrow_with_hook:",
        "interrupted" | "cancelled" | "superseded" | "refused" => ":warning:",
        "started" | "step" => ":arrow_forward:",
        _ => ":hourglass:",
    };
    let headline = e.headline();
    let mut what = e.action.clone();
    if let Some(c) = &e.commit_short {
        what.push_str(&format!(" `{c}`"));
    }
    if let Some(step) = &e.step {
        what.push_str(&format!(" (step {step})"));
    }
    let where_ = match &e.cluster {
        Some(c) => format!("{}/{} on {c}", e.app, e.env),
        None => format!("{}/{}", e.app, e.env),
    };
    let mut outcome = e.outcome.clone();
    if let Some(rb) = e.rolled_back {
        outcome.push_str(if rb { " (rolled back)" } else { " (not rolled back)" });
    }
    let field = |name: &str, value: &str| json!({ "type": "mrkdwn", "text": clip(format!("*{name}*\n{}", slack_escape(value)), SLACK_FIELD) });
    let mut blocks = vec![
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(format!("{icon} *{}*", slack_escape(&headline)), SLACK_SECTION) } }),
        json!({ "type": "section", "fields": [
            field("Who", &e.actor),
            field("What", &what),
            field("Where", &where_),
            field("Outcome", &outcome),
        ] }),
    ];
    if let Some(r) = &e.reason {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(format!("*Reason*\n{}", slack_escape(r)), SLACK_SECTION) } }));
    }
    let mut context = Vec::new();
    if let Some(s) = &e.subject {
        context.push(json!({ "type": "mrkdwn", "text": clip(slack_escape(s), SLACK_CONTEXT) }));
    }
    if e.from != e.to && !(e.from.is_empty() && e.to.is_empty()) {
        context.push(json!({ "type": "mrkdwn", "text": clip(slack_escape(&format!("{} → {}", e.from, e.to)), SLACK_CONTEXT) }));
    }
    context.push(json!({ "type": "mrkdwn", "text": format!("release {}", slack_escape(&e.release_id)) }));
    if let Some(link) = &e.link {
        context.push(json!({ "type": "mrkdwn", "text": format!("<{}|details>", link.replace(['<', '>', '|'], "")) }));
    }
    blocks.push(json!({ "type": "context", "elements": context }));
    json!({ "text": clip(headline, SLACK_SECTION), "blocks": blocks })
}

/// Slack refuses a whole message (`invalid_blocks`, HTTP 400) whose section text is over 3,000 characters or whose
/// field is over 2,000 (Block Kit reference: section, text object); a long AWS error in the reason must not cost the
/// failure's notification. The context elements and the fallback `text` are held to the same bounds.
const SLACK_SECTION: usize = 3_000;
const SLACK_FIELD: usize = 2_000;
const SLACK_CONTEXT: usize = 2_000;

/// `s` cut to at most `max` characters, saying how much was left out; never inside an escape (`&amp;`).
fn clip(s: String, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s;
    }
    let note = format!("… ({} more characters; the full text is in the ledger: `release history`)", n - max);
    let keep = max.saturating_sub(note.chars().count());
    let mut cut: String = s.chars().take(keep).collect();
    // An escape cut in two would show as a stray `&am`.
    if let Some(amp) = cut.rfind('&').filter(|&i| !cut[i..].contains(';')) {
        cut.truncate(amp);
    }
    cut + &note
}

/// Slack's mrkdwn escapes: `&`, `<`, `>`.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The message of a hyper client error: what failed, then its causes (`cannot connect: Connection refused`),
/// without repeating itself.
fn client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    let head = if e.is_connect() { "cannot connect" } else { "request failed" };
    match parts.is_empty() {
        true => format!("{head}: {e}"),
        false => format!("{head}: {}", parts.join(": ")),
    }
}

/// A sink's failure, named by its label (`webhook https://hooks.example.com/…: HTTP 500`).
fn sink_error(label: &str, what: String) -> Error {
    Aws::Sink { sink: Some(label.to_owned()), what }.into()
}

/// `what` with every trace of `url` replaced by `label` (an error text may quote what it was given), on one line
/// of at most 400 characters with the label in front of it.
fn scrub(what: &str, url: &str, label: &str) -> String {
    one_line(&unquote(what, url, label), 400usize.saturating_sub(label.chars().count() + 2))
}

fn unquote(message: &str, url: &str, label: &str) -> String {
    let bare = label.split_once(' ').map(|(_, u)| u).unwrap_or(label);
    let mut m = message.replace(url, bare);
    if let Some((base, _)) = url.split_once('?') {
        m = m.replace(base, bare);
    }
    m
}

/// One line, at most `max` characters (an ellipsis when cut).
fn one_line(s: &str, max: usize) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        joined
    } else {
        joined.chars().take(max).collect::<String>() + "…"
    }
}

/// Kills a process group when dropped, unless disarmed: a command abandoned mid-attempt, and whatever it started.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

async fn run_command(label: &str, command: &str, input: &[u8]) -> Result<()> {
    let fail = |what: String| sink_error(label, what);
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        // The CLI's stdout is its result (one JSON document with --output json): the command's is not mixed in.
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run bash: {e}")))?;
    let mut group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let input = input.to_vec();
    let feed = async move {
        // A command that does not read its input may exit first: a broken pipe is not its failure.
        let _ = stdin.write_all(&input).await;
        let _ = stdin.write_all(b"\n").await;
        drop(stdin);
    };
    let mut tail: Vec<u8> = Vec::new();
    let status = {
        let drain = async {
            // All of stderr is read (a full pipe would block the command); only the tail is kept.
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 8192 {
                            tail.drain(..tail.len() - 4096);
                        }
                    }
                }
            }
        };
        let ended = async { tokio::join!(feed, child.wait()).1 };
        tokio::pin!(drain, ended);
        let mut drained = false;
        let status = loop {
            tokio::select! {
                _ = &mut drain, if !drained => drained = true,
                s = &mut ended => break s,
            }
        };
        // Something it started in the background may hold stderr open: what came so far is enough.
        if !drained {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), &mut drain).await;
        }
        status
    };
    let status = status.map_err(|e| fail(format!("cannot wait for it: {e}")))?;
    // It ended by itself: what it left running in the background is its business.
    group.0 = None;
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "failed".to_owned(),
    };
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    Err(fail(if tail.is_empty() { how } else { format!("{how}: {}", one_line(&tail, 300)) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn error_texts_never_hold_the_url() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXsecret";
        let label = "slack https://hooks.slack.com/services/…";
        let m = sink_error(label, scrub(&format!("cannot connect: error trying to connect to {url}"), url, label)).to_string();
        assert!(!m.contains("XXXXsecret"), "{m}");
        assert_eq!(one_line("a\n b\t c", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
