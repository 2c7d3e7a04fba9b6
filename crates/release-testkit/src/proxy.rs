//! A fault-injecting HTTP proxy in front of the emulator. The emulator never fails, never throttles and never
//! waits; this brings those to it. Per service and operation, a rule returns the service's real throttling error,
//! a 500/503, an authentication failure, a dropped connection, or added latency; always, for the next n matching
//! calls, or with a probability (seeded, so a failing run can be replayed).
//!
//! Faults are decided before the request is forwarded, so an injected failure never has a side effect in the
//! emulator: what the client retries was never done. Only loopback is listened on and forwarded to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The service's own throttling error: EC2 `RequestLimitExceeded` (503), ELB/STS/Route53 `Throttling` (400),
    /// DynamoDB `ThrottlingException` (400).
    Throttle,
    /// An internal error with this HTTP status (500 or 503).
    Status(u16),
    /// Invalid credentials: EC2 `AuthFailure`, DynamoDB `UnrecognizedClientException`, others `InvalidClientTokenId`.
    Auth,
    /// Close the connection without answering.
    Drop,
    /// Wait, then forward.
    Latency(Duration),
}

#[derive(Clone, Debug, PartialEq)]
pub enum When {
    Always,
    /// The next n matching calls.
    Count(u32),
    Probability(f64),
}

#[derive(Clone, Debug)]
pub struct Rule {
    /// The signing name (`ec2`, `elasticloadbalancing`, `route53`, `dynamodb`, `sts`); `None`: any.
    pub service: Option<String>,
    /// The operation (`RunInstances`, `PutItem`, ...); `None`: any.
    pub operation: Option<String>,
    pub fault: Fault,
    pub when: When,
    /// Only requests whose User-Agent contains this (e.g. `aws-sdk-rust`, leaving Packer's calls alone).
    pub user_agent: Option<String>,
}

impl Rule {
    pub fn new(fault: Fault, when: When) -> Self {
        Self { service: None, operation: None, fault, when, user_agent: None }
    }

    pub fn service(mut self, s: &str) -> Self {
        self.service = Some(s.into());
        self
    }

    pub fn operation(mut self, o: &str) -> Self {
        self.operation = Some(o.into());
        self
    }

    pub fn user_agent(mut self, ua: &str) -> Self {
        self.user_agent = Some(ua.into());
        self
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub requests: u64,
    /// Faults injected, by `service:Operation fault`.
    pub injected: BTreeMap<String, u64>,
}

impl Stats {
    pub fn total_injected(&self) -> u64 {
        self.injected.values().sum()
    }
}

struct Shared {
    rules: Vec<Rule>,
    stats: Stats,
    rng: u64,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    _thread: std::thread::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (a loopback URL like `http://127.0.0.1:4566`).
    pub fn start(upstream: &str, seed: u64) -> Self {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").trim_end_matches('/').parse().expect("upstream host:port");
        assert!(upstream.ip().is_loopback(), "the proxy only forwards to loopback");
        let shared = Arc::new(Mutex::new(Shared { rules: Vec::new(), stats: Stats::default(), rng: seed | 1 }));
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
                tx.send(listener.local_addr().expect("addr")).ok();
                loop {
                    let Ok((conn, _)) = listener.accept().await else { continue };
                    let shared = s2.clone();
                    tokio::spawn(async move {
                        let _ = handle(conn, upstream, shared).await;
                    });
                }
            });
        });
        let addr = rx.recv().expect("proxy started");
        Self { addr, shared, _thread: thread }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add(&self, rule: Rule) {
        self.shared.lock().unwrap().rules.push(rule);
    }

    pub fn clear(&self) {
        self.shared.lock().unwrap().rules.clear();
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().unwrap().stats.clone()
    }
}

/// What a request is: signing service, operation, user agent.
fn identify(head: &str, body: &[u8]) -> (String, String, String) {
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let service = header("authorization")
        .and_then(|a| a.split("Credential=").nth(1).map(|c| c.split('/').nth(3).unwrap_or("").to_owned()))
        .unwrap_or_default();
    let ua = header("user-agent").unwrap_or_default();
    let first = head.lines().next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    let op = if let Some(target) = header("x-amz-target") {
        target.rsplit('.').next().unwrap_or("").to_owned()
    } else if service == "route53" {
        let p = path.trim_end_matches('/');
        match method {
            "POST" if p.ends_with("/rrset") => "ChangeResourceRecordSets",
            "GET" if p.ends_with("/rrset") => "ListResourceRecordSets",
            "GET" if p.ends_with("/hostedzonesbyname") => "ListHostedZonesByName",
            "POST" if p.ends_with("/hostedzone") => "CreateHostedZone",
            "GET" if p.contains("/change/") => "GetChange",
            _ => "Other",
        }
        .to_owned()
    } else {
        let text = String::from_utf8_lossy(body);
        text.split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or("").to_owned()
    };
    (service, op, ua)
}

fn decide(shared: &Mutex<Shared>, service: &str, op: &str, ua: &str) -> Option<Fault> {
    let mut s = shared.lock().unwrap();
    s.stats.requests += 1;
    let mut chosen = None;
    for i in 0..s.rules.len() {
        let r = &s.rules[i];
        if r.service.as_deref().is_some_and(|x| x != service)
            || r.operation.as_deref().is_some_and(|x| x != op)
            || r.user_agent.as_deref().is_some_and(|x| !ua.contains(x))
        {
            continue;
        }
        let fire = match r.when {
            When::Always => true,
            When::Count(0) => false,
            When::Count(_) => true,
            When::Probability(p) => {
                // xorshift64: deterministic for a seed.
                s.rng ^= s.rng << 13;
                s.rng ^= s.rng >> 7;
                s.rng ^= s.rng << 17;
                (s.rng % 1_000_000) as f64 / 1_000_000.0 < p
            }
        };
        if fire {
            if let When::Count(n) = &mut s.rules[i].when {
                *n -= 1;
            }
            chosen = Some(s.rules[i].fault.clone());
            break;
        }
    }
    if let Some(f) = &chosen {
        let kind = match f {
            Fault::Throttle => "throttle".to_owned(),
            Fault::Status(c) => c.to_string(),
            Fault::Auth => "auth".into(),
            Fault::Drop => "drop".into(),
            Fault::Latency(d) => format!("latency {}ms", d.as_millis()),
        };
        *s.stats.injected.entry(format!("{service}:{op} {kind}")).or_default() += 1;
    }
    chosen
}

fn error_response(service: &str, fault: &Fault) -> Vec<u8> {
    let (status, code, message) = match (fault, service) {
        (Fault::Throttle, "ec2") => (503, "RequestLimitExceeded", "Request limit exceeded."),
        (Fault::Throttle, "dynamodb") => (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
        (Fault::Throttle, _) => (400, "Throttling", "Rate exceeded"),
        (Fault::Auth, "ec2") => (401, "AuthFailure", "AWS was not able to validate the provided access credentials"),
        (Fault::Auth, "dynamodb") => (400, "UnrecognizedClientException", "The security token included in the request is invalid."),
        (Fault::Auth, _) => (403, "InvalidClientTokenId", "The security token included in the request is invalid."),
        (Fault::Status(c), "ec2") => (*c, if *c == 503 { "Unavailable" } else { "InternalError" }, "injected by the fault proxy"),
        (Fault::Status(c), "dynamodb") => (*c, "InternalServerError", "injected by the fault proxy"),
        (Fault::Status(c), _) => (*c, if *c == 503 { "ServiceUnavailable" } else { "InternalFailure" }, "injected by the fault proxy"),
        _ => (500, "InternalFailure", "injected by the fault proxy"),
    };
    let (ctype, body) = match service {
        "dynamodb" => ("application/x-amz-json-1.0", format!("{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{code}\",\"message\":\"{message}\"}}")),
        "ec2" => ("text/xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>")),
        _ => ("text/xml", format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>")),
    };
    let reason = match status { 400 => "Bad Request", 401 => "Unauthorized", 403 => "Forbidden", 503 => "Service Unavailable", _ => "Internal Server Error" };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    if service == "dynamodb" {
        out.push_str(&format!("x-amzn-ErrorType: {code}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

async fn handle(mut conn: TcpStream, upstream: SocketAddr, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    let Some((head, body)) = read_request(&mut conn).await? else { return Ok(()) };
    let (service, op, ua) = identify(&head, &body);
    match decide(&shared, &service, &op, &ua) {
        Some(Fault::Drop) => return Ok(()),
        Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
        Some(f) => {
            conn.write_all(&error_response(&service, &f)).await?;
            return conn.shutdown().await;
        }
        None => {}
    }
    // One request per connection: ask upstream to close, so the whole answer is what it sends before EOF.
    let mut out = String::new();
    for line in head.trim_end_matches("\r\n\r\n").split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(out.as_bytes()).await?;
    up.write_all(&body).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    // The client may keep its connection alive; ours closes after this answer.
    conn.write_all(&response).await?;
    conn.shutdown().await
}
