//! One moto server per test: a free port on 127.0.0.1, installed by `localstack/install` when missing,
//! killed when the handle drops. Only loopback is ever contacted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Emulator {
    child: Child,
    addr: SocketAddr,
}

/// The workspace root (the directory holding `localstack/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("crate lives in crates/<name>").to_path_buf()
}

fn moto_server() -> PathBuf {
    let root = workspace_root();
    let bin = root.join("localstack/.venv/bin/moto_server");
    if !bin.exists() {
        let status = Command::new("bash")
            .arg(root.join("localstack/install"))
            .status()
            .expect("run localstack/install");
        assert!(status.success(), "localstack/install failed; see its output above");
    }
    bin
}

impl Emulator {
    /// Starts a fresh, empty emulator. Panics with the server's log when it does not come up.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts one with extra environment for moto (e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to enforce IAM).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let bin = moto_server();
        // Picking a free port and moto binding it is a window in which another test process (cargo-nextest runs
        // each test in its own) can pick the same port; its health check would then be answered by our moto, and it
        // would share our emulator. One lock file across processes closes the window: held from the pick until our
        // own child answers.
        let lock_path = std::env::temp_dir().join("release-testkit-emulator-port.lock");
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).expect("open the emulator port lock");
        lock.lock().expect("take the emulator port lock");
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // Fixes to moto applied at its start (localstack/moto-fixes/sitecustomize.py), never to the installed package.
                .env("PYTHONPATH", workspace_root().join("localstack/moto-fixes"))
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn moto_server");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken in between: try another
                }
                // The answer must be our child's: one that died (the port was taken after all) is retried.
                if http(addr, "GET", "/moto-api/data.json").is_ok() && matches!(child.try_wait(), Ok(None)) {
                    drop(lock);
                    // moto logs every request (and a traceback for each operation it lacks) to stderr: a pipe
                    // nobody reads fills at 64 KiB and then blocks moto in the middle of a request, so drain it.
                    if let Some(mut err) = child.stderr.take() {
                        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
                    }
                    let emu = Self { child, addr };
                    emu.warm_up();
                    return emu;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let mut log = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut log);
            }
            eprintln!("moto_server on port {port} did not come up: {log}");
        }
        panic!("could not start moto_server after 5 attempts");
    }

    /// moto creates an account's default VPC, subnets and public AMIs on the first EC2 call. Making that call now
    /// keeps those defaults out of every before/after comparison a test makes.
    fn warm_up(&self) {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";
        let body = "Action=DescribeVpcs&Version=2016-11-15";
        request(self.addr, "POST", "/", &[("Authorization", auth), ("Content-Type", "application/x-www-form-urlencoded")], body)
            .expect("warm up the emulator's EC2 backend");
        // The demo pipeline's instance profile (its ssm: values need one, and EC2 checks that it exists). IAM is the
        // account owner's to set up, not release's: here the harness plays the owner.
        for body in [
            "Action=CreateRole&RoleName=hello-app&AssumeRolePolicyDocument=%7B%7D&Version=2010-05-08",
            "Action=CreateInstanceProfile&InstanceProfileName=hello-app&Version=2010-05-08",
            "Action=AddRoleToInstanceProfile&InstanceProfileName=hello-app&RoleName=hello-app&Version=2010-05-08",
        ] {
            let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
            request(self.addr, "POST", "/", &[("Authorization", auth), ("Content-Type", "application/x-www-form-urlencoded")], body)
                .expect("create the demo's instance profile");
        }
    }

    /// Requests the harness makes when it starts (moto counts them against `INITIAL_NO_AUTH_ACTION_COUNT`).
    pub const WARM_UP_REQUESTS: u32 = 4;

    /// Sends one EC2 Query API request (moto does not check signatures) and returns the XML answer.
    pub fn ec2_query(&self, params: &[(&str, &str)]) -> String {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";
        let mut body = String::from("Version=2016-11-15");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", encode(v)));
        }
        request(self.addr, "POST", "/", &[("Authorization", auth), ("Content-Type", "application/x-www-form-urlencoded")], &body)
            .unwrap_or_else(|e| panic!("EC2 {params:?}: {e}"))
    }

    /// An AMI of this account made as Packer makes one (run an instance of `base`, image it), without release's
    /// tags; returns its id.
    pub fn create_image(&self, name: &str, base: &str) -> String {
        let run = self.ec2_query(&[("Action", "RunInstances"), ("ImageId", base), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "t3.micro")]);
        let instance = between(&run, "<instanceId>", "</instanceId>").expect("RunInstances answers an instance id");
        let image = self.ec2_query(&[("Action", "CreateImage"), ("InstanceId", &instance), ("Name", name)]);
        let id = between(&image, "<imageId>", "</imageId>").expect("CreateImage answers an image id");
        self.ec2_query(&[("Action", "TerminateInstances"), ("InstanceId.1", &instance)]);
        id
    }

    /// Writes a record of `name` that release does not manage (a plain CNAME), through Route53's REST API.
    pub fn plant_cname(&self, zone_id: &str, name: &str, value: &str) {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=0";
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes><Change><Action>CREATE</Action><ResourceRecordSet><Name>{name}</Name><Type>CNAME</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>{value}</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
        );
        request(self.addr, "POST", &format!("/2013-04-01/hostedzone/{zone_id}/rrset/"), &[("Authorization", auth), ("Content-Type", "text/xml")], &body)
            .unwrap_or_else(|e| panic!("route53 CNAME {name}: {e}"));
    }

    /// Sends one CloudWatch Query API request and returns the answer.
    pub fn cloudwatch_query(&self, params: &[(&str, &str)]) -> String {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=0";
        let mut body = String::from("Version=2010-08-01");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", encode(v)));
        }
        request(self.addr, "POST", "/", &[("Authorization", auth), ("Content-Type", "application/x-www-form-urlencoded")], &body)
            .unwrap_or_else(|e| panic!("CloudWatch {params:?}: {e}"))
    }

    /// A metric alarm (as the account owner makes one); CloudWatch starts it in INSUFFICIENT_DATA.
    pub fn put_metric_alarm(&self, name: &str) {
        self.cloudwatch_query(&[
            ("Action", "PutMetricAlarm"),
            ("AlarmName", name),
            ("Namespace", "App"),
            ("MetricName", "Errors5xx"),
            ("Statistic", "Sum"),
            ("Period", "60"),
            ("EvaluationPeriods", "1"),
            ("Threshold", "1"),
            ("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
        ]);
    }

    /// Sets an alarm's state (`OK`, `ALARM`, `INSUFFICIENT_DATA`), as its metric would.
    pub fn set_alarm_state(&self, name: &str, state: &str) {
        self.cloudwatch_query(&[("Action", "SetAlarmState"), ("AlarmName", name), ("StateValue", state), ("StateReason", "set by a test")]);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Forgets every resource (POST /moto-api/reset).
    pub fn reset(&self) {
        http(self.addr, "POST", "/moto-api/reset").expect("reset emulator");
    }

    /// What the emulator holds of the services `release` uses, to compare before and after a command that must
    /// change nothing. moto loads a service's backend on first use and lists every model of it, empty or not, so
    /// only non-empty models count: the same world reads the same whether a backend was loaded or not.
    pub fn state(&self) -> Snapshot {
        let text = http(self.addr, "GET", "/moto-api/data.json").expect("read emulator state");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("data.json is JSON");
        let mut models = BTreeMap::new();
        for service in ["ec2", "elb", "elbv2", "route53", "dynamodb", "sts"] {
            let Some(obj) = doc.get(service).and_then(|v| v.as_object()) else { continue };
            for (model, items) in obj {
                // Reads leave empty `{}` entries in some models (a DynamoDB Query does in Item): not state.
                let Some(list) = items.as_array() else { continue };
                let real: Vec<&serde_json::Value> = list.iter().filter(|v| v.as_object().is_none_or(|o| !o.is_empty())).collect();
                if !real.is_empty() {
                    models.insert(format!("{service}.{model}"), serde_json::to_string(&real).unwrap_or_default());
                }
            }
        }
        Snapshot(models)
    }
}

/// The emulator's resources by `service.Model`, as JSON text.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot(pub BTreeMap<String, String>);

impl Snapshot {
    /// The models that differ between two snapshots.
    pub fn changed_models(&self, other: &Snapshot) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> = self.0.keys().chain(other.0.keys()).collect();
        keys.into_iter().filter(|k| self.0.get(*k) != other.0.get(*k)).cloned().collect()
    }

    /// Panics naming what changed, without dumping the whole world.
    #[track_caller]
    pub fn assert_same(&self, after: &Snapshot, what: &str) {
        let changed = self.changed_models(after);
        assert!(changed.is_empty(), "{what} changed AWS: {changed:?}");
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({:?})", self.0.keys().collect::<Vec<_>>())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    request(addr, method, path, &[], "")
}

/// A minimal HTTP/1.1 exchange, enough for moto's control API; returns the body of a 2xx answer.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ok = head.split_whitespace().nth(1).is_some_and(|c| c.starts_with('2'));
    if !ok {
        return Err(std::io::Error::other(format!("{method} {path}: {}", head.lines().next().unwrap_or(""))));
    }
    // moto answers data.json with chunked encoding at times; the tests only compare whole bodies, so dechunk.
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let i = text.find(start)? + start.len();
    let j = text[i..].find(end)? + i;
    Some(text[i..j].to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
