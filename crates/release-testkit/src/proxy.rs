//! A fault-injecting HTTP proxy in front of the emulator. The emulator never fails, never throttles and never
//! waits; this brings those to it. Per service and operation, a rule returns the service's real throttling error,
//! a 500/503, an authentication failure, a dropped connection, or added latency; always, for the next n matching
//! calls, or with a probability (seeded, so a failing run can be replayed).
//!
//! Faults are decided before the request is forwarded, so an injected failure never has a side effect in the
//! emulator: what the client retries was never done. Only loopback is listened on and forwarded to.
//!
//! An **AWS-realism mode** ([`Realism`], set with [`FaultProxy::realism`]) brings what real AWS does and the
//! emulator does not: fresh instance ids unknown for a while after RunInstances (`InvalidInstanceID.NotFound`,
//! ELB `InvalidInstance`, ELBv2 `InvalidTarget`), instance types not offered in a zone (`Unsupported`, and
//! DescribeInstanceTypeOfferings saying so), zones out of capacity (`InsufficientInstanceCapacity`), health that
//! takes time after registration, deregistered targets that stay `draining` for the target group's delay, and
//! RunInstances client tokens (the same token again: the same instances, or `IdempotentParameterMismatch`).
//! Every answer it makes up or rewrites is counted in [`Stats::injected`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    realism: Option<Realism>,
    world: Learned,
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
        let shared = Arc::new(Mutex::new(Shared { rules: Vec::new(), stats: Stats::default(), rng: seed | 1, realism: None, world: Learned::default() }));
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

    /// Turns the AWS-realism mode on (or replaces its settings). What it learned so far (fresh ids, subnets,
    /// registrations) is kept.
    pub fn realism(&self, realism: Realism) {
        self.shared.lock().unwrap().realism = Some(realism);
    }

    /// Turns the AWS-realism mode off.
    pub fn no_realism(&self) {
        self.shared.lock().unwrap().realism = None;
    }

    /// The RunInstances client tokens that launched something, as EC2 remembers them (realism mode).
    pub fn tokens(&self) -> Vec<String> {
        self.shared.lock().unwrap().world.tokens.keys().cloned().collect()
    }

    /// The calls that named an instance, in order: when, `service:Operation`, and whether it was forwarded
    /// (`false`: answered by the proxy). Recorded while the realism mode is on.
    pub fn calls_naming(&self, id: &str) -> Vec<(Instant, String, bool)> {
        let s = self.shared.lock().unwrap();
        s.world.named.iter().filter(|c| c.ids.iter().any(|i| i == id)).map(|c| (c.at, c.call.clone(), c.forwarded)).collect()
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
    // The realism mode decides before forwarding too: what it refuses never happens upstream.
    let realism = {
        let s = shared.lock().unwrap();
        s.realism.clone().filter(|r| r.user_agent.as_deref().is_none_or(|x| ua.contains(x)))
    };
    let call = realism.as_ref().map(|_| Call { service: service.clone(), op: op.clone(), params: form(&body), auth: header_value(&head, "authorization") });
    if let (Some(r), Some(c)) = (&realism, &call) {
        if let Some(answer) = realism_before(&shared, r, upstream, c).await {
            conn.write_all(&answer).await?;
            return conn.shutdown().await;
        }
    }
    let mut response = forward(upstream, &head, &body).await?;
    if let (Some(r), Some(c)) = (&realism, &call) {
        response = realism_after(&shared, r, upstream, c, response).await;
    }
    // The client may keep its connection alive; ours closes after this answer.
    conn.write_all(&response).await?;
    conn.shutdown().await
}

/// Sends one request upstream and returns the whole answer.
async fn forward(upstream: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
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
    up.write_all(body).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    Ok(response)
}

// ---------------------------------------------------------------------------------------------------------------
// AWS-realism mode

/// What real AWS does that the emulator does not, per test. Build it with [`Realism::new`] and the methods below;
/// windows are measured in real time from the moment the proxy saw the call.
#[derive(Clone, Debug)]
pub struct Realism {
    /// EC2 eventual consistency: for this long after RunInstances answered, calls naming one of its instance ids
    /// (DescribeInstances, DescribeInstanceStatus, DescribeInstanceAttribute, TerminateInstances, CreateTags) fail
    /// with `InvalidInstanceID.NotFound`, the whole call as on AWS, without being forwarded.
    pub fresh_for: Duration,
    /// The same for the load balancers (`InvalidInstance`, `InvalidTarget`); `None`: `fresh_for`.
    pub elb_fresh_for: Option<Duration>,
    /// Whatever the time, the first this many calls naming a fresh id (per id, EC2 and load balancers apart) do
    /// not find it: a slow machine meets the realism as surely as a fast one.
    pub misses: u32,
    /// (zone, instance type) pairs not offered: RunInstances there answers `Unsupported`.
    pub unsupported: Vec<(String, String)>,
    /// Whether DescribeInstanceTypeOfferings leaves the unsupported pairs out (as AWS does); `false` models an
    /// offerings list that does not say so (the launch is then the first to tell).
    pub hide_unsupported_offerings: bool,
    /// Launch failures by zone: capacity shortfalls and other errors.
    pub zone_faults: Vec<ZoneFault>,
    /// For this long after the proxy forwarded a registration, health says registration is in progress.
    pub healthy_after: Duration,
    /// How long deregistered targets stay `draining`; `None`: the target group's
    /// `deregistration_delay.timeout_seconds`, asked upstream.
    pub draining_for: Option<Duration>,
    /// Only requests whose User-Agent contains this (e.g. `aws-sdk-rust`: release's, not Packer's).
    pub user_agent: Option<String>,
}

/// A launch failure in one zone.
#[derive(Clone, Debug)]
pub struct ZoneFault {
    pub zone: String,
    pub kind: ZoneFaultKind,
    pub when: When,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ZoneFaultKind {
    /// `InsufficientInstanceCapacity` (HTTP 500), with AWS's message.
    Capacity,
    /// Any other error: HTTP status, code, message.
    Error(u16, String, String),
}

impl Default for Realism {
    fn default() -> Self {
        Self::new()
    }
}

impl Realism {
    /// Nothing realistic yet, except that unsupported pairs (once added) are hidden from the offerings.
    pub fn new() -> Self {
        Self {
            fresh_for: Duration::ZERO,
            elb_fresh_for: None,
            misses: 0,
            unsupported: Vec::new(),
            hide_unsupported_offerings: true,
            zone_faults: Vec::new(),
            healthy_after: Duration::ZERO,
            draining_for: None,
            user_agent: None,
        }
    }

    pub fn fresh_for(mut self, d: Duration) -> Self {
        self.fresh_for = d;
        self
    }

    pub fn elb_fresh_for(mut self, d: Duration) -> Self {
        self.elb_fresh_for = Some(d);
        self
    }

    pub fn misses_at_least(mut self, n: u32) -> Self {
        self.misses = n;
        self
    }

    pub fn unsupported(mut self, zone: &str, instance_type: &str) -> Self {
        self.unsupported.push((zone.into(), instance_type.into()));
        self
    }

    /// DescribeInstanceTypeOfferings is left as the emulator answers it (it still lists unsupported pairs).
    pub fn offerings_lag(mut self) -> Self {
        self.hide_unsupported_offerings = false;
        self
    }

    pub fn insufficient_capacity(mut self, zone: &str, when: When) -> Self {
        self.zone_faults.push(ZoneFault { zone: zone.into(), kind: ZoneFaultKind::Capacity, when });
        self
    }

    /// Every RunInstances in `zone` fails with this error.
    pub fn launch_error(mut self, zone: &str, status: u16, code: &str, message: &str) -> Self {
        self.zone_faults.push(ZoneFault { zone: zone.into(), kind: ZoneFaultKind::Error(status, code.into(), message.into()), when: When::Always });
        self
    }

    pub fn healthy_after(mut self, d: Duration) -> Self {
        self.healthy_after = d;
        self
    }

    pub fn draining_for(mut self, d: Duration) -> Self {
        self.draining_for = Some(d);
        self
    }

    pub fn user_agent(mut self, ua: &str) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    fn elb_window(&self) -> Duration {
        self.elb_fresh_for.unwrap_or(self.fresh_for)
    }
}

/// What the proxy learned from the traffic it saw.
#[derive(Default)]
struct Learned {
    /// Instance id -> when RunInstances answered it.
    launched: BTreeMap<String, Instant>,
    /// (`ec2` or `elb`, instance id) -> calls that did not find it.
    missed: BTreeMap<(&'static str, String), u32>,
    /// Subnet id -> availability zone.
    subnets: BTreeMap<String, String>,
    /// Instance type -> zones the emulator offers it in (from DescribeInstanceTypeOfferings answers).
    offered: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// (load balancer name or target group ARN, instance id) -> (registered at, port).
    registered: BTreeMap<(String, String), (Instant, Option<String>)>,
    /// (target group ARN, instance id) -> (deregistered at, draining for, port).
    draining: BTreeMap<(String, String), (Instant, Duration, Option<String>)>,
    /// Every call that named an instance id.
    named: Vec<Named>,
    /// `deregistration_delay.timeout_seconds` by target group ARN, asked upstream once.
    delays: BTreeMap<String, Duration>,
    /// RunInstances client tokens that launched: token -> (the call's other arguments, its answer).
    tokens: BTreeMap<String, (String, Vec<u8>)>,
}

struct Named {
    at: Instant,
    call: String,
    ids: Vec<String>,
    forwarded: bool,
}

/// One request as the realism mode sees it.
struct Call {
    service: String,
    op: String,
    params: Vec<(String, String)>,
    auth: Option<String>,
}

impl Call {
    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Values of keys `prefix` + anything + `suffix` (`InstanceId.1`, `Targets.member.2.Id`), in order.
    fn values(&self, prefix: &str, suffix: &str) -> Vec<String> {
        self.params.iter().filter(|(k, _)| k.starts_with(prefix) && k.ends_with(suffix)).map(|(_, v)| v.clone()).collect()
    }

    /// The instance ids this call names.
    fn instance_ids(&self) -> Vec<String> {
        let mut ids = match (self.service.as_str(), self.op.as_str()) {
            ("ec2", _) => {
                let mut v = self.values("InstanceId", "");
                v.extend(self.values("ResourceId", ""));
                v
            }
            ("elasticloadbalancing", "RegisterTargets" | "DeregisterTargets" | "DescribeTargetHealth") => self.values("Targets.member.", ".Id"),
            ("elasticloadbalancing", _) => self.values("Instances.member.", ".InstanceId"),
            _ => Vec::new(),
        };
        ids.retain(|i| i.starts_with("i-"));
        ids
    }

    fn key(&self) -> String {
        format!("{}:{}", self.service, self.op)
    }
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A form-encoded body (the Query APIs of EC2 and ELB) as decoded pairs.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An error answer as the service writes it.
fn aws_error(service: &str, op: &str, status: u16, code: &str, message: &str) -> Vec<u8> {
    let message = xml_escape(message);
    let body = if service == "ec2" {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>realism-proxy</RequestID></Response>")
    } else {
        // Classic ELB and ELBv2 share the signing name; their namespaces differ.
        let v2 = matches!(op, "RegisterTargets" | "DeregisterTargets" | "DescribeTargetHealth" | "CreateListener");
        let ns = if v2 { "2015-12-01" } else { "2012-06-01" };
        format!("<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/{ns}/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>realism-proxy</RequestId></ErrorResponse>")
    };
    let reason = match status { 400 => "Bad Request", 403 => "Forbidden", 503 => "Service Unavailable", _ => "Internal Server Error" };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn count(s: &mut Shared, key: String) {
    *s.stats.injected.entry(key).or_default() += 1;
}

fn fires(s: &mut Shared, when: &When) -> bool {
    match when {
        When::Always => true,
        When::Count(n) => *n > 0,
        When::Probability(p) => {
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 7;
            s.rng ^= s.rng << 17;
            (s.rng % 1_000_000) as f64 / 1_000_000.0 < *p
        }
    }
}

/// The `<tag>` values of `text`, in order.
fn all_between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// Subnet -> zone pairs of a DescribeSubnets answer: each `<subnetId>` with the first `<availabilityZone>` before
/// the next subnet.
fn subnet_zones(xml: &str) -> Vec<(String, String)> {
    let starts: Vec<usize> = xml.match_indices("<subnetId>").map(|(i, _)| i).collect();
    let mut out = Vec::new();
    for (n, &i) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(xml.len());
        let item = &xml[i..end];
        if let (Some(id), Some(zone)) = (all_between(item, "<subnetId>", "</subnetId>").first(), all_between(item, "<availabilityZone>", "</availabilityZone>").first()) {
            out.push(((*id).to_owned(), (*zone).to_owned()));
        }
    }
    out
}

/// Splits an HTTP answer into head and (de-chunked) body.
fn split_response(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let i = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..i]).into_owned();
    let mut body = raw[i..].to_vec();
    if header_value(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(j) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&rest[..j]).ok().and_then(|t| usize::from_str_radix(t.split(';').next().unwrap_or("").trim(), 16).ok());
            let Some(n) = size.filter(|n| *n > 0 && rest.len() >= j + 2 + n) else { break };
            out.extend_from_slice(&rest[j + 2..j + 2 + n]);
            rest = &rest[(j + 4 + n).min(rest.len())..];
        }
        body = out;
    }
    Some((head, body))
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// An answer with a new body (Content-Length set, no chunking).
fn rebuild(head: &str, body: &str) -> Vec<u8> {
    let mut out = String::new();
    for line in head.trim_end_matches("\r\n\r\n").split("\r\n") {
        let l = line.to_ascii_lowercase();
        if !(l.starts_with("content-length:") || l.starts_with("transfer-encoding:")) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Asks upstream itself (the emulator does not check signatures; the caller's Authorization names the account,
/// region and service).
async fn ask_upstream(upstream: SocketAddr, auth: Option<&str>, body: &str) -> Option<String> {
    let mut head = format!("POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    let raw = forward(upstream, &head, body.as_bytes()).await.ok()?;
    let (head, body) = split_response(&raw)?;
    (status_of(&head) / 100 == 2).then(|| String::from_utf8_lossy(&body).into_owned())
}

fn encode(v: &str) -> String {
    v.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn log_named(s: &mut Shared, c: &Call, forwarded: bool) {
    let ids = c.instance_ids();
    if !ids.is_empty() {
        s.world.named.push(Named { at: Instant::now(), call: c.key(), ids, forwarded });
    }
}

/// EC2's client token rule for RunInstances: a token that launched before answers, with the same arguments, that
/// launch's answer again (nothing new is launched), and with other arguments `IdempotentParameterMismatch`. AWS
/// remembers a token for at least 24 hours after its instances are terminated: longer than any test, so the proxy
/// never forgets one.
fn token_rule(s: &mut Shared, c: &Call) -> Option<Vec<u8>> {
    if c.service != "ec2" || c.op != "RunInstances" {
        return None;
    }
    let token = c.param("ClientToken").filter(|t| !t.is_empty())?;
    let (args, answer) = s.world.tokens.get(token).cloned()?;
    if args == token_arguments(c) {
        count(s, format!("{} replayed", c.key()));
        return Some(answer);
    }
    count(s, format!("{} IdempotentParameterMismatch", c.key()));
    Some(aws_error("ec2", &c.op, 400, "IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s)."))
}

/// A RunInstances call's arguments but its token, in a stable order.
fn token_arguments(c: &Call) -> String {
    let mut args: Vec<String> = c.params.iter().filter(|(k, _)| k != "ClientToken").map(|(k, v)| format!("{k}={v}")).collect();
    args.sort();
    args.join("&")
}

/// The zone of a RunInstances call: its placement, or its subnet's zone (learned, or asked upstream once).
async fn launch_zone(shared: &Mutex<Shared>, upstream: SocketAddr, c: &Call) -> Option<String> {
    if let Some(z) = c.param("Placement.AvailabilityZone") {
        return Some(z.to_owned());
    }
    let subnet = c.param("SubnetId").or_else(|| c.param("NetworkInterface.1.SubnetId"))?.to_owned();
    if let Some(z) = shared.lock().unwrap().world.subnets.get(&subnet) {
        return Some(z.clone());
    }
    let xml = ask_upstream(upstream, c.auth.as_deref(), "Action=DescribeSubnets&Version=2016-11-15").await?;
    let mut s = shared.lock().unwrap();
    for (id, zone) in subnet_zones(&xml) {
        s.world.subnets.insert(id, zone);
    }
    s.world.subnets.get(&subnet).cloned()
}

/// The ids among `ids` that `family` does not know yet: launched less than `window` ago, or missed fewer than
/// `misses` times so far (each counts as missed once more).
fn unknown(s: &mut Shared, r: &Realism, family: &'static str, window: Duration, ids: &[String], now: Instant) -> Vec<String> {
    let fresh: Vec<String> = ids
        .iter()
        .filter(|i| {
            s.world.launched.get(*i).is_some_and(|t| {
                now.duration_since(*t) < window || s.world.missed.get(&(family, (*i).clone())).copied().unwrap_or(0) < r.misses
            })
        })
        .cloned()
        .collect();
    for i in &fresh {
        *s.world.missed.entry((family, i.clone())).or_default() += 1;
    }
    fresh
}

/// A target group a new listener would forward to that another load balancer already forwards to: AWS refuses
/// the listener (`TargetGroupAssociationLimit`: a target group belongs to at most one load balancer); the emulator
/// allows it.
async fn taken_group(upstream: SocketAddr, c: &Call) -> Option<String> {
    let lb = c.param("LoadBalancerArn")?.to_owned();
    // Plain forwards and weighted ones (`...ForwardConfig.TargetGroups.member.M.TargetGroupArn`) alike.
    let mut arns: Vec<String> = c.values("DefaultActions.member.", ".TargetGroupArn");
    arns.dedup();
    for arn in arns {
        let body = format!("Action=DescribeTargetGroups&Version=2015-12-01&TargetGroupArns.member.1={}", encode(&arn));
        let xml = ask_upstream(upstream, c.auth.as_deref(), &body).await.unwrap_or_default();
        let served: Vec<String> = all_between(&xml, "<LoadBalancerArns>", "</LoadBalancerArns>")
            .into_iter()
            .flat_map(|m| all_between(m, "<member>", "</member>").into_iter().map(|v| v.trim().to_owned()).collect::<Vec<_>>())
            .collect();
        if served.iter().any(|x| *x != lb) {
            return Some(arn);
        }
    }
    None
}

/// An answer made up instead of forwarding, if the realism mode has one for this call.
async fn realism_before(shared: &Mutex<Shared>, r: &Realism, upstream: SocketAddr, c: &Call) -> Option<Vec<u8>> {
    let zone = if c.service == "ec2" && c.op == "RunInstances" && (!r.unsupported.is_empty() || !r.zone_faults.is_empty()) {
        launch_zone(shared, upstream, c).await
    } else {
        None
    };
    let taken = if c.service == "elasticloadbalancing" && c.op == "CreateListener" { taken_group(upstream, c).await } else { None };
    let mut s = shared.lock().unwrap();
    if let Some(answer) = token_rule(&mut s, c) {
        return Some(answer);
    }
    if let Some(arn) = taken {
        count(&mut s, format!("{} TargetGroupAssociationLimit", c.key()));
        let msg = format!("The following target groups cannot be associated with more than one load balancer: {arn}");
        return Some(aws_error("elasticloadbalancing", &c.op, 400, "TargetGroupAssociationLimit", &msg));
    }
    let now = Instant::now();
    let answer = match (c.service.as_str(), c.op.as_str()) {
        ("ec2", "RunInstances") => zone.and_then(|zone| {
            let itype = c.param("InstanceType").unwrap_or("m1.small").to_owned();
            // The zones a message suggests instead: those offering the type, as far as the proxy knows.
            let others = |s: &Shared, except: &str| -> String {
                let known: std::collections::BTreeSet<String> = match s.world.offered.get(&itype) {
                    Some(z) => z.clone(),
                    None => s.world.subnets.values().cloned().collect(),
                };
                known.into_iter().filter(|z| z != except && !r.unsupported.contains(&(z.clone(), itype.clone()))).collect::<Vec<_>>().join(", ")
            };
            if r.unsupported.contains(&(zone.clone(), itype.clone())) {
                let msg = format!(
                    "Your requested instance type ({itype}) is not supported in your requested Availability Zone ({zone}). Please retry your request by not specifying an Availability Zone or choosing {}.",
                    others(&s, &zone)
                );
                count(&mut s, format!("{} Unsupported", c.key()));
                return Some(aws_error("ec2", &c.op, 400, "Unsupported", &msg));
            }
            for i in 0..r.zone_faults.len() {
                let f = &r.zone_faults[i];
                if f.zone != zone {
                    continue;
                }
                // `Count` is kept in the shared settings, so that it goes down across calls.
                let when = s.realism.as_ref().and_then(|x| x.zone_faults.get(i)).map_or_else(|| f.when.clone(), |x| x.when.clone());
                if !fires(&mut s, &when) {
                    continue;
                }
                if let Some(When::Count(n)) = s.realism.as_mut().and_then(|x| x.zone_faults.get_mut(i)).map(|x| &mut x.when) {
                    *n -= 1;
                }
                let (status, code, msg) = match &f.kind {
                    ZoneFaultKind::Capacity => (
                        500,
                        "InsufficientInstanceCapacity".to_owned(),
                        format!(
                            "We currently do not have sufficient {itype} capacity in the Availability Zone you requested ({zone}). Our system will be working on provisioning additional capacity. You can currently get {itype} capacity by not specifying an Availability Zone in your request or choosing {}.",
                            others(&s, &zone)
                        ),
                    ),
                    ZoneFaultKind::Error(st, code, msg) => (*st, code.clone(), msg.clone()),
                };
                count(&mut s, format!("{} {code} {zone}", c.key()));
                return Some(aws_error("ec2", &c.op, status, &code, &msg));
            }
            None
        }),
        // The calls that look an instance up by id (not CreateImage, StopInstances, ...: real AWS is eventually
        // consistent there too, but Packer, which goes through here as well, calls them at once on the emulator).
        ("ec2", "DescribeInstances" | "DescribeInstanceStatus" | "DescribeInstanceAttribute" | "TerminateInstances" | "CreateTags") => {
            let fresh = unknown(&mut s, r, "ec2", r.fresh_for, &c.instance_ids(), now);
            (!fresh.is_empty()).then(|| {
                let msg = if fresh.len() == 1 {
                    format!("The instance ID '{}' does not exist", fresh[0])
                } else {
                    format!("The instance IDs '{}' do not exist", fresh.join(", "))
                };
                count(&mut s, format!("{} InvalidInstanceID.NotFound", c.key()));
                aws_error("ec2", &c.op, 400, "InvalidInstanceID.NotFound", &msg)
            })
        }
        ("elasticloadbalancing", "RegisterInstancesWithLoadBalancer" | "RegisterTargets") => {
            let fresh = unknown(&mut s, r, "elb", r.elb_window(), &c.instance_ids(), now);
            (!fresh.is_empty()).then(|| {
                let (code, msg) = if c.op == "RegisterTargets" {
                    ("InvalidTarget", "The specified target does not exist, is not in the same VPC as the target group, or has an unsupported instance type.".to_owned())
                } else {
                    ("InvalidInstance", format!("Could not find EC2 instance {}.", fresh[0]))
                };
                count(&mut s, format!("{} {code}", c.key()));
                aws_error("elasticloadbalancing", &c.op, 400, code, &msg)
            })
        }
        _ => None,
    };
    log_named(&mut s, c, answer.is_none());
    answer
}

/// Learns from a forwarded answer and rewrites it where real AWS would answer otherwise.
async fn realism_after(shared: &Mutex<Shared>, r: &Realism, upstream: SocketAddr, c: &Call, raw: Vec<u8>) -> Vec<u8> {
    let Some((head, body)) = split_response(&raw) else { return raw };
    if status_of(&head) / 100 != 2 {
        return raw;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    // A deregistered target drains for its group's delay: asked upstream once per group.
    let delay = if c.op == "DeregisterTargets" {
        let arn = c.param("TargetGroupArn").unwrap_or("").to_owned();
        match r.draining_for {
            Some(d) => Some(d),
            None => {
                let known = shared.lock().unwrap().world.delays.get(&arn).copied();
                match known {
                    Some(d) => Some(d),
                    None => {
                        let body = format!("Action=DescribeTargetGroupAttributes&Version=2015-12-01&TargetGroupArn={}", encode(&arn));
                        let xml = ask_upstream(upstream, c.auth.as_deref(), &body).await.unwrap_or_default();
                        let secs = xml
                            .split("<member>")
                            .find(|m| m.contains("<Key>deregistration_delay.timeout_seconds</Key>"))
                            .and_then(|m| all_between(m, "<Value>", "</Value>").first().and_then(|v| v.parse::<u64>().ok()))
                            .unwrap_or(300);
                        let d = Duration::from_secs(secs);
                        shared.lock().unwrap().world.delays.insert(arn, d);
                        Some(d)
                    }
                }
            }
        }
    } else {
        None
    };
    let mut s = shared.lock().unwrap();
    let now = Instant::now();
    let mut rewritten: Option<String> = None;
    match (c.service.as_str(), c.op.as_str()) {
        ("ec2", "RunInstances") => {
            for id in all_between(&text, "<instanceId>", "</instanceId>") {
                s.world.launched.entry(id.to_owned()).or_insert(now);
            }
            if let Some(token) = c.param("ClientToken").filter(|t| !t.is_empty()) {
                s.world.tokens.insert(token.to_owned(), (token_arguments(c), raw.clone()));
            }
        }
        ("ec2", "DescribeSubnets") => {
            for (id, zone) in subnet_zones(&text) {
                s.world.subnets.insert(id, zone);
            }
        }
        ("ec2", "DescribeInstanceTypeOfferings") if c.param("LocationType") == Some("availability-zone") => {
            let parts: Vec<&str> = text.split("<item>").collect();
            let mut kept = String::from(parts[0]);
            let mut dropped = 0;
            for part in &parts[1..] {
                let itype = all_between(part, "<instanceType>", "</instanceType>").first().map(|v| v.to_string()).unwrap_or_default();
                let zone = all_between(part, "<location>", "</location>").first().map(|v| v.to_string()).unwrap_or_default();
                s.world.offered.entry(itype.clone()).or_default().insert(zone.clone());
                if r.hide_unsupported_offerings && r.unsupported.contains(&(zone, itype)) {
                    // The item ends at its `</item>`; what follows it (the set's end) stays.
                    let end = part.find("</item>").map(|i| i + "</item>".len()).unwrap_or(part.len());
                    kept.push_str(&part[end..]);
                    dropped += 1;
                } else {
                    kept.push_str("<item>");
                    kept.push_str(part);
                }
            }
            if dropped > 0 {
                count(&mut s, format!("{} unsupported left out", c.key()));
                rewritten = Some(kept);
            }
        }
        ("elasticloadbalancing", "RegisterInstancesWithLoadBalancer" | "RegisterTargets") => {
            let lb = c.param("LoadBalancerName").or_else(|| c.param("TargetGroupArn")).unwrap_or("").to_owned();
            let ports = c.values("Targets.member.", ".Port");
            for (n, id) in c.instance_ids().into_iter().enumerate() {
                s.world.draining.remove(&(lb.clone(), id.clone()));
                s.world.registered.insert((lb.clone(), id), (now, ports.get(n).cloned()));
            }
        }
        ("elasticloadbalancing", "DeregisterInstancesFromLoadBalancer" | "DeregisterTargets") => {
            let lb = c.param("LoadBalancerName").or_else(|| c.param("TargetGroupArn")).unwrap_or("").to_owned();
            for id in c.instance_ids() {
                let port = s.world.registered.remove(&(lb.clone(), id.clone())).and_then(|(_, p)| p);
                if let Some(d) = delay.filter(|d| !d.is_zero()) {
                    s.world.draining.insert((lb.clone(), id), (now, d, port));
                }
            }
        }
        ("elasticloadbalancing", "DescribeInstanceHealth") if !r.healthy_after.is_zero() => {
            let lb = c.param("LoadBalancerName").unwrap_or("").to_owned();
            let mut changed = false;
            let out: Vec<String> = text
                .split("<member>")
                .enumerate()
                .map(|(n, m)| {
                    let id = all_between(m, "<InstanceId>", "</InstanceId>").first().map(|v| v.to_string()).unwrap_or_default();
                    let young = s.world.registered.get(&(lb.clone(), id)).is_some_and(|(t, _)| now.duration_since(*t) < r.healthy_after);
                    if n == 0 || !young || !m.contains("<State>InService</State>") {
                        return m.to_owned();
                    }
                    changed = true;
                    replace_between(
                        &replace_between(&m.replace("<State>InService</State>", "<State>OutOfService</State>"), "<ReasonCode>", "</ReasonCode>", "ELB"),
                        "<Description>",
                        "</Description>",
                        "Instance registration is still in progress.",
                    )
                })
                .collect();
            if changed {
                count(&mut s, format!("{} registration in progress", c.key()));
                rewritten = Some(out.join("<member>"));
            }
        }
        ("elasticloadbalancing", "DescribeTargetHealth") => {
            let arn = c.param("TargetGroupArn").unwrap_or("").to_owned();
            let asked = c.instance_ids();
            let mut initial = false;
            let mut out: Vec<String> = text
                .split("<member>")
                .enumerate()
                .map(|(n, m)| {
                    let id = all_between(m, "<Id>", "</Id>").first().map(|v| v.to_string()).unwrap_or_default();
                    let young = s.world.registered.get(&(arn.clone(), id)).is_some_and(|(t, _)| now.duration_since(*t) < r.healthy_after);
                    if n == 0 || !young || !m.contains("<State>healthy</State>") {
                        return m.to_owned();
                    }
                    initial = true;
                    let i = m.find("<TargetHealth>").unwrap_or(0);
                    let j = m.find("</TargetHealth>").map(|j| j + "</TargetHealth>".len()).unwrap_or(m.len());
                    format!(
                        "{}<TargetHealth><State>initial</State><Reason>Elb.RegistrationInProgress</Reason><Description>Target registration is in progress</Description></TargetHealth>{}",
                        &m[..i],
                        &m[j..]
                    )
                })
                .collect();
            s.world.draining.retain(|_, (t, d, _)| now.duration_since(*t) < *d);
            let listed: std::collections::BTreeSet<String> = all_between(&text, "<Id>", "</Id>").into_iter().map(str::to_owned).collect();
            let mut extra = String::new();
            for ((tg, id), (_, _, port)) in &s.world.draining {
                if tg != &arn || listed.contains(id) || (!asked.is_empty() && !asked.contains(id)) {
                    continue;
                }
                let port = port.as_ref().map(|p| format!("<Port>{p}</Port>")).unwrap_or_default();
                extra.push_str(&format!(
                    "<member><Target><Id>{id}</Id>{port}</Target><HealthCheckPort>traffic-port</HealthCheckPort><TargetHealth><State>draining</State><Reason>Target.DeregistrationInProgress</Reason><Description>Target deregistration is in progress</Description></TargetHealth></member>"
                ));
            }
            if initial {
                count(&mut s, format!("{} initial", c.key()));
            }
            if !extra.is_empty() {
                count(&mut s, format!("{} draining", c.key()));
                out = vec![append_members(&out.join("<member>"), "TargetHealthDescriptions", &extra)];
            }
            if initial || !extra.is_empty() {
                rewritten = Some(out.join("<member>"));
            }
        }
        _ => {}
    }
    match rewritten {
        Some(body) => rebuild(&head, &body),
        None => raw,
    }
}

/// `xml` with `members` added at the end of its `<list>` (written `<list/>` when empty).
fn append_members(xml: &str, list: &str, members: &str) -> String {
    let empty = format!("<{list}/>");
    if xml.contains(&empty) {
        xml.replacen(&empty, &format!("<{list}>{members}</{list}>"), 1)
    } else {
        xml.replacen(&format!("</{list}>"), &format!("{members}</{list}>"), 1)
    }
}

/// `text` with the content of its first `<open>…<close>` replaced (or unchanged without one).
fn replace_between(text: &str, open: &str, close: &str, with: &str) -> String {
    let Some(i) = text.find(open).map(|i| i + open.len()) else { return text.to_owned() };
    let Some(j) = text[i..].find(close).map(|j| j + i) else { return text.to_owned() };
    format!("{}{}{}", &text[..i], xml_escape(with), &text[j..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bodies_are_decoded() {
        let f = form(b"Action=RegisterTargets&TargetGroupArn=arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A1%3Atargetgroup%2Ftg%2F1&Targets.member.1.Id=i-1&Targets.member.1.Port=8080&Targets.member.2.Id=i-2");
        let c = Call { service: "elasticloadbalancing".into(), op: "RegisterTargets".into(), params: f, auth: None };
        assert_eq!(c.param("TargetGroupArn"), Some("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/tg/1"));
        assert_eq!(c.instance_ids(), vec!["i-1", "i-2"]);
        assert_eq!(c.values("Targets.member.", ".Port"), vec!["8080"]);
        let ec2 = Call { service: "ec2".into(), op: "CreateTags".into(), params: form(b"Action=CreateTags&ResourceId.1=i-9&ResourceId.2=ami-1&Tag.1.Key=a+b"), auth: None };
        assert_eq!(ec2.instance_ids(), vec!["i-9"]);
        assert_eq!(ec2.param("Tag.1.Key"), Some("a b"));
    }

    #[test]
    fn subnets_map_to_their_zones() {
        let xml = "<subnetSet><item><availabilityZoneId>use1-az6</availabilityZoneId><tagSet><item><key>k</key></item></tagSet><subnetId>subnet-1</subnetId><availabilityZone>us-east-1a</availabilityZone></item><item><subnetId>subnet-2</subnetId><availabilityZone>us-east-1b</availabilityZone></item></subnetSet>";
        assert_eq!(subnet_zones(xml), vec![("subnet-1".into(), "us-east-1a".into()), ("subnet-2".into(), "us-east-1b".into())]);
    }

    #[test]
    fn chunked_answers_are_rebuilt_with_a_length() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/xml\r\n\r\n5\r\n<a>b<\r\n3\r\n/a>\r\n0\r\n\r\n";
        let (head, body) = split_response(raw).unwrap();
        assert_eq!((status_of(&head), body.as_slice()), (200, b"<a>b</a>".as_slice()));
        let out = String::from_utf8(rebuild(&head, "<a>c</a>")).unwrap();
        assert!(out.ends_with("Content-Length: 8\r\n\r\n<a>c</a>") && !out.to_lowercase().contains("chunked"), "{out}");
    }

    #[test]
    fn members_are_appended_to_empty_and_full_lists() {
        assert_eq!(append_members("<R><L/></R>", "L", "<member>x</member>"), "<R><L><member>x</member></L></R>");
        assert_eq!(append_members("<R><L><member>a</member></L></R>", "L", "<member>x</member>"), "<R><L><member>a</member><member>x</member></L></R>");
        assert_eq!(replace_between("<m><Description>N/A</Description></m>", "<Description>", "</Description>", "a <b>"), "<m><Description>a &lt;b&gt;</Description></m>");
    }
}
