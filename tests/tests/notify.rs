//! Deploy notifications end to end: the real binary delivering to real receivers on 127.0.0.1 (webhook, Slack,
//! a command) and to SNS in the emulator, read back through SQS. Every test asserts what arrived (receiver
//! records, SQS messages) and what the ledger says, not only exit codes.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use release_e2e::{boto3, release_with, AwsView, Emulator, Project};
use release_testkit::proxy::{Fault, FaultProxy, Rule, When};
use serde_json::Value;

const SECRET: &str = "s3cret-for-tests";

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers (the connection stays open).
    Never,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A loopback HTTP server recording every request; stops accepting after 100 connections.
struct Receiver {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().take(100) {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let Some(hit) = read_request(&mut stream) else { continue };
                seen.lock().unwrap().push(hit);
                match answer {
                    Answer::Status(code) => {
                        let _ = write!(stream, "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                    }
                    Answer::Never => held.push(stream),
                }
            }
        });
        Self { base, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The events received, as JSON.
    fn events(&self) -> Vec<Value> {
        self.hits().iter().map(Hit::json).collect()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Hit> {
    let r = release_testkit::http::read_request(stream)?;
    let headers = r.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    Some(Hit { method: r.method, path: r.path, headers, body: r.body, at: Instant::now() })
}

/// `sha256=<hex>` computed here, independently of the code under test.
fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2_hmac::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The demo, with staging provisioned and one commit baked: (project, sha).
fn staged(emu: &Emulator) -> (Project, String) {
    let project = Project::demo_repo();
    project.release(emu, &["provision", "--env", "staging"]).assert_ok();
    let a = project.git(&["rev-parse", "HEAD"]);
    project.release(emu, &["bake", &a]).assert_ok();
    (project, a)
}

fn add_notify(project: &Project, section: &str) {
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &format!("{text}\n{section}"));
    project.commit("notify");
}

/// A fresh fleet for the same commit: a changed setting.
fn change_setting(project: &Project, value: &str) {
    let text = project.read("pipelines/hello.toml");
    let from = text.lines().find(|l| l.starts_with("vars = { APP_ENV = \"staging")).expect("staging vars").to_owned();
    project.write("pipelines/hello.toml", &text.replacen(&from, &format!("vars = {{ APP_ENV = \"{value}\", DATABASE_URL = \"ssm:/hello/staging/database-url\" }}"), 1));
}

/// The newest promote record of `env`, every attribute as JSON (lists and maps kept).
async fn newest_promote(aws: &AwsView, env: &str) -> Value {
    let out = aws.dynamodb.scan().table_name("release-ledger").send().await.unwrap();
    let mut records: Vec<Value> = out
        .items()
        .iter()
        .filter(|i| {
            let s = |k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            s("sk").starts_with("rec#") && s("action") == "promote" && s("env") == env
        })
        .map(|i| Value::Object(i.iter().map(|(k, v)| (k.clone(), attr(v))).collect()))
        .collect();
    records.sort_by(|a, b| b["sk"].as_str().cmp(&a["sk"].as_str()));
    records.into_iter().next().expect("a promote record")
}

fn attr(v: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => s.clone().into(),
        A::N(n) => serde_json::from_str(n).unwrap_or(Value::Null),
        A::Bool(b) => (*b).into(),
        A::L(l) => l.iter().map(attr).collect::<Vec<_>>().into(),
        A::M(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), attr(v))).collect()),
        _ => Value::Null,
    }
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_delivers_started_and_succeeded_to_every_kind_of_sink() {
    let emu = Emulator::start();
    let (project, a) = staged(&emu);
    let aws = AwsView::new(&emu).await;
    let hook = Receiver::start(Answer::Status(200));
    let slack = Receiver::start(Answer::Status(200));
    let spool = tempfile::tempdir().unwrap();
    let events_file = spool.path().join("events.jsonl");
    // SNS: a topic with an SQS queue subscribed, made with boto3 (the tests' own view of the emulator).
    let topic = boto3(
        &emu,
        "sns = client('sns'); sqs = client('sqs')\n\
         t = sns.create_topic(Name='deploys')['TopicArn']\n\
         q = sqs.create_queue(QueueName='deploys')['QueueUrl']\n\
         arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
         sns.subscribe(TopicArn=t, Protocol='sqs', Endpoint=arn)\n\
         print(t)",
    )
    .trim()
    .to_owned();
    add_notify(
        &project,
        &format!(
            r#"[notify]
link = "http://deploys.internal:8080"
[[notify.sinks]]
kind = "webhook"
url = "{hook}"
secret = "env:RELEASE_WEBHOOK_SECRET"
[[notify.sinks]]
kind = "slack"
url = "{slack}"
[[notify.sinks]]
kind = "command"
command = "cat >> {file}"
[[notify.sinks]]
kind = "sns"
topic = "{topic}"
"#,
            hook = hook.url("/hooks/release"),
            slack = slack.url("/services/T000/B000/XXXXXXXX"),
            file = events_file.display(),
        ),
    );

    let run = project.release_env(&emu, &[("RELEASE_WEBHOOK_SECRET", SECRET), ("RELEASE_ACTOR", "notify-tester")], &["promote", &a, "--env", "staging", "--output", "json"]);
    run.assert_ok();
    let report = run.json();
    let record = newest_promote(&aws, "staging").await;
    assert_eq!(record["outcome"], "succeeded");
    assert!(record.get("notify_failures").is_none(), "every sink took every event: {record}");
    let running = aws.running("hello", "staging").await;
    assert_eq!(running.len(), 2);

    // The webhook: started then succeeded, each signed with the secret of the environment.
    let hits = hook.hits();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    for h in &hits {
        assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", "/hooks/release"));
        assert_eq!(h.headers.get("content-type").map(String::as_str), Some("application/json"));
        assert!(h.headers["user-agent"].starts_with("release/"), "{:?}", h.headers);
        assert_eq!(h.headers.get("x-release-signature"), Some(&hmac_hex(SECRET, &h.body)), "a valid HMAC-SHA256 of the body");
        assert!(!String::from_utf8_lossy(&h.body).contains(SECRET));
    }
    let events = hook.events();
    assert_eq!(events.iter().map(|e| e["event"].as_str().unwrap()).collect::<Vec<_>>(), ["started", "succeeded"]);
    let done = &events[1];
    println!("succeeded event: {done:#}");
    assert_eq!(done["app"], "hello");
    assert_eq!(done["env"], "staging");
    assert_eq!(done["cluster"], "staging");
    assert_eq!(done["action"], "promote");
    assert_eq!(done["commit"], a.as_str());
    assert_eq!(done["commit_short"], &a[..12]);
    assert_eq!(done["ami"], running[0].image.as_str());
    assert_eq!(done["ami"], report["ami"]);
    assert_eq!(done["actor"], "notify-tester");
    assert_eq!(done["release_id"], record["release_id"]);
    assert_eq!(done["release_id"], report["release_id"]);
    assert_eq!(done["outcome"], "succeeded");
    assert!(done["reason"].is_null());
    assert!(done["seconds"]["total"].as_f64().unwrap() > 0.0, "{}", done["seconds"]);
    assert_eq!(done["instances"]["launched"], 2);
    assert_eq!(done["link"], "http://deploys.internal:8080");
    assert_eq!(events[0]["release_id"], done["release_id"]);
    assert_eq!(events[0]["outcome"], "started");

    // Slack: a message with text and blocks, the same two events.
    let messages = slack.events();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let text = messages[1]["text"].as_str().unwrap();
    assert_eq!(text, format!("hello/staging: promote {} on staging succeeded (notify-tester)", &a[..12]));
    let blocks = serde_json::to_string(&messages[1]["blocks"]).unwrap();
    assert!(messages[1]["blocks"].as_array().unwrap().len() >= 2, "{blocks}");
    for want in ["*Who*\\nnotify-tester", "*Where*\\nhello/staging on staging", "*Outcome*\\nsucceeded", "|details>"] {
        assert!(blocks.contains(want), "Slack blocks lack {want}: {blocks}");
    }
    assert!(slack.hits().iter().all(|h| h.headers.get("x-release-signature").is_none()));

    // The command: the same events, as JSON on its stdin, one per line.
    let lines: Vec<Value> = std::fs::read_to_string(&events_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, events, "the command got exactly what the webhook got");

    // SNS: two notifications in the subscribed queue, the event's JSON as the message, with its attributes.
    let received = boto3(
        &emu,
        "sqs = client('sqs'); q = sqs.get_queue_url(QueueName='deploys')['QueueUrl']\n\
         out = []\n\
         for _ in range(5):\n\
         \x20   r = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1)\n\
         \x20   out += [json.loads(m['Body']) for m in r.get('Messages', [])]\n\
         \x20   if len(out) >= 2: break\n\
         print(json.dumps(out))",
    );
    let notes: Vec<Value> = serde_json::from_str(received.trim()).unwrap();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    let mut by_kind: BTreeMap<String, &Value> = BTreeMap::new();
    for n in &notes {
        let message: Value = serde_json::from_str(n["Message"].as_str().unwrap()).unwrap();
        let attrs = &n["MessageAttributes"];
        assert_eq!(attrs["app"]["Value"], "hello", "{n:#}");
        assert_eq!(attrs["env"]["Value"], "staging");
        assert_eq!(attrs["event"]["Value"], message["event"]);
        assert_eq!(attrs["outcome"]["Value"], message["outcome"]);
        assert_eq!(attrs["app"]["Type"], "String");
        assert_eq!(n["TopicArn"], topic.as_str());
        let kind = message["event"].as_str().unwrap().to_owned();
        let expected = events.iter().find(|e| e["event"] == kind.as_str()).unwrap();
        assert_eq!(&message, expected, "SNS carried the same event");
        assert_eq!(n["Subject"].as_str().unwrap(), hook_headline(expected));
        by_kind.insert(kind, n);
    }
    assert_eq!(by_kind.keys().map(String::as_str).collect::<Vec<_>>(), ["started", "succeeded"]);
}

/// The headline as Slack's text and the SNS subject carry it (cut below 100 characters).
fn hook_headline(e: &Value) -> String {
    let line = format!(
        "{}/{}: {} {} on {} {} ({})",
        e["app"].as_str().unwrap(),
        e["env"].as_str().unwrap(),
        e["action"].as_str().unwrap(),
        e["commit_short"].as_str().unwrap(),
        e["cluster"].as_str().unwrap(),
        e["event"].as_str().unwrap(),
        e["actor"].as_str().unwrap()
    );
    assert!(line.chars().count() < 100);
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_promote_sends_one_failed_event_with_the_error_it_printed() {
    let emu = Emulator::start();
    let (project, a) = staged(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let old = aws.elb_members("hello-staging").await;
    let hook = Receiver::start(Answer::Status(200));
    add_notify(&project, &format!("[notify]\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"env:RELEASE_WEBHOOK_SECRET\"\n", hook.url("/hook")));
    // A new setting forces a new fleet; every registration with the load balancer fails.
    change_setting(&project, "staging-2");
    let proxy = FaultProxy::start(&emu.url(), 1);
    proxy.add(Rule::new(Fault::Status(500), When::Always).operation("RegisterInstancesWithLoadBalancer"));
    let run = release_with(project.path(), Some(&proxy.url()), &[("RELEASE_WEBHOOK_SECRET", SECRET)], &["promote", &a, "--env", "staging"]);
    assert_eq!(run.code, 6, "{run:?}");
    let printed = run.error_line().strip_prefix("error: ").unwrap().to_owned();
    println!("the promote failed with: {printed}");

    let record = newest_promote(&aws, "staging").await;
    assert_eq!((record["outcome"].as_str(), record["rolled_back"].as_bool()), (Some("failed"), Some(true)), "{record}");
    assert_eq!(aws.elb_members("hello-staging").await, old, "the old fleet still serves");
    let events = hook.events();
    let failed = of_kind(&events, "failed");
    assert_eq!(failed.len(), 1, "exactly one failed event: {events:#?}");
    assert_eq!(of_kind(&events, "started").len(), 1);
    assert_eq!(events.len(), 2, "started and failed only (no succeeded, no rolled-back): {events:#?}");
    let f = failed[0];
    assert_eq!(f["reason"].as_str(), Some(printed.as_str()), "the reason is the error's one-line message as printed");
    assert_eq!(f["rolled_back"], true);
    assert_eq!(f["outcome"], "failed");
    assert_eq!(f["release_id"], record["release_id"]);
    assert_eq!(f["commit"], a.as_str());
    assert_eq!(record["detail"].as_str(), Some(printed.as_str()));
    for h in hook.hits() {
        assert_eq!(h.headers.get("x-release-signature"), Some(&hmac_hex(SECRET, &h.body)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_that_fail_or_never_answer_cost_bounded_time_and_are_noted_on_the_record() {
    let emu = Emulator::start();
    let (project, a) = staged(&emu);
    let aws = AwsView::new(&emu).await;
    // A baseline: the same promote (a fresh fleet) with one healthy sink only.
    let good = Receiver::start(Answer::Status(200));
    let sinks_ok = format!("[notify]\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"{}\"\n", good.url("/good"));
    add_notify(&project, &sinks_ok);
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    change_setting(&project, "staging-2");
    let base = project.release(&emu, &["promote", &a, "--env", "staging"]);
    let base_end = Instant::now();
    base.assert_ok();
    let base_tail = base_end.duration_since(good.hits().iter().rev().find(|h| h.json()["event"] == "succeeded").expect("a succeeded event").at);

    // Now a sink answering 500 and one never answering beside it.
    let bad = Receiver::start(Answer::Status(500));
    let hang = Receiver::start(Answer::Never);
    let text = project.read("pipelines/hello.toml");
    project.write(
        "pipelines/hello.toml",
        &format!("{text}[[notify.sinks]]\nkind = \"webhook\"\nurl = \"{}\"\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"{}\"\n", bad.url("/bad"), hang.url("/hang")),
    );
    change_setting(&project, "staging-3");
    let before = good.hits().len();
    let start = Instant::now();
    let run = project.release(&emu, &["promote", &a, "--env", "staging", "--output", "json"]);
    let ended = Instant::now();
    run.assert_ok();
    assert!(run.json()["ok"].as_bool().unwrap());
    let running = aws.running("hello", "staging").await;
    assert_eq!(running.len(), 2);

    // The healthy sink still got both events; the failing one its three attempts of each.
    let fresh: Vec<Hit> = good.hits()[before..].to_vec();
    let kinds: Vec<String> = fresh.iter().map(|h| h.json()["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["started", "succeeded"]);
    let succeeded_at = fresh[1].at;
    let tail = ended.duration_since(succeeded_at);
    let bad_hits: Vec<String> = bad.events().iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bad_hits.iter().filter(|k| *k == "succeeded").count(), 3, "three attempts at the closing event: {bad_hits:?}");
    assert_eq!(bad_hits.iter().filter(|k| *k == "started").count(), 3, "{bad_hits:?}");
    assert!(!hang.hits().is_empty(), "the silent sink was asked");

    // Bounded: after the closing event the command waits at most one delivery timeout (5 s) for what is in
    // flight; the bound asked for is 2 x 5 s + 5 s.
    let extra = run.elapsed.saturating_sub(base.elapsed);
    println!(
        "promote with a 500 and a silent sink: {:.1}s (baseline with one good sink {:.1}s, +{:.1}s); \
         from the succeeded event to exit: {:.1}s (baseline {:.1}s); started {:.1}s before the end",
        run.elapsed.as_secs_f64(),
        base.elapsed.as_secs_f64(),
        extra.as_secs_f64(),
        tail.as_secs_f64(),
        base_tail.as_secs_f64(),
        ended.duration_since(start).as_secs_f64()
    );
    assert!(tail < Duration::from_secs(15), "after the operation the command waited {tail:?} for its sinks");
    assert!(extra < Duration::from_secs(15), "the sinks cost {extra:?}");

    // The ledger notes what did not go out.
    let record = newest_promote(&aws, "staging").await;
    assert_eq!(record["outcome"], "succeeded");
    let failures = record["notify_failures"].as_array().unwrap_or_else(|| panic!("no notify_failures on {record:#}")).clone();
    println!("notify_failures: {failures:#?}");
    let bad_label = format!("webhook {}", bad.url("/bad"));
    assert!(
        failures.iter().any(|f| f["sink"] == bad_label.as_str() && f["event"] == "succeeded" && f["error"] == "HTTP 500: ok"),
        "the 500 sink's failure is noted: {failures:#?}"
    );
    assert!(
        failures.iter().any(|f| f["sink"] == format!("webhook {}", hang.url("/hang")).as_str() || f["sink"] == "(unfinished)"),
        "the silent sink's failure is noted: {failures:#?}"
    );
    for f in &failures {
        assert!(!f["error"].as_str().unwrap().contains('\n'));
    }
    // And says so on stderr, one line per event and sink.
    let said = format!("notify: {bad_label} did not take the succeeded event after 3 attempts: HTTP 500: ok");
    assert!(run.stderr.contains(&said), "no `{said}` in:\n{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_one_event_to_every_sink_and_exits_6_naming_those_that_failed() {
    let emu = Emulator::start();
    let project = Project::demo();
    let ok = Receiver::start(Answer::Status(200));
    let bad = Receiver::start(Answer::Status(500));
    let hang = Receiver::start(Answer::Never);
    let unset = Receiver::start(Answer::Status(200));
    let from_ssm = Receiver::start(Answer::Status(200));
    boto3(&emu, "client('ssm').put_parameter(Name='/hello/notify/webhook-secret', Value='from-ssm-123', Type='SecureString')");
    let text = project.read("pipelines/hello.toml");
    project.write(
        "pipelines/hello.toml",
        &format!(
            r#"{text}
[notify]
link = "http://deploys.internal:8080"
[[notify.sinks]]
kind = "webhook"
url = "{ok}"
secret = "env:RELEASE_WEBHOOK_SECRET"
on = ["failed"]
[[notify.sinks]]
kind = "webhook"
url = "{bad}"
[[notify.sinks]]
kind = "webhook"
url = "{hang}"
[[notify.sinks]]
kind = "webhook"
url = "{unset}"
secret = "env:NOTIFY_TEST_UNSET_SECRET"
[[notify.sinks]]
kind = "webhook"
url = "{from_ssm}"
secret = "ssm:/hello/notify/webhook-secret"
[[notify.sinks]]
kind = "sns"
topic = "arn:aws:sns:us-east-1:123456789012:nobody-made-this"
"#,
            ok = ok.url("/ok"),
            bad = bad.url("/bad"),
            hang = hang.url("/hang"),
            unset = unset.url("/unset"),
            from_ssm = from_ssm.url("/ssm"),
        ),
    );
    let before = emu.state();
    let env = [("RELEASE_WEBHOOK_SECRET", SECRET), ("RELEASE_ACTOR", "notify-tester")];
    let run = project.release_env(&emu, &env, &["notify", "test", "--env", "staging", "--output", "json"]);
    println!("stderr: {}", run.stderr);
    assert_eq!(run.code, 6, "{run:?}");
    let doc = run.json();
    println!("{doc:#}");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["failed"], 4);
    assert_eq!((doc["ok"].as_bool(), doc["error"]["exit_code"].as_i64()), (Some(false), Some(6)), "the failure in the documented shape: {doc:#}");
    let sinks = doc["sinks"].as_array().unwrap();
    assert_eq!(sinks.len(), 6, "one result per sink");
    let result = |label: &str| sinks.iter().find(|s| s["sink"] == label).unwrap_or_else(|| panic!("no result for {label}: {doc:#}")).clone();
    let r_ok = result(&format!("webhook {}", ok.url("/ok")));
    assert_eq!((r_ok["ok"].as_bool(), r_ok["kind"].as_str()), (Some(true), Some("webhook")), "{r_ok}");
    let r_bad = result(&format!("webhook {}", bad.url("/bad")));
    assert_eq!(r_bad["ok"], false);
    assert_eq!(r_bad["error"].as_str().unwrap(), "HTTP 500: ok");
    let r_hang = result(&format!("webhook {}", hang.url("/hang")));
    assert_eq!(r_hang["error"].as_str().unwrap(), "no answer within 5s");
    assert!(r_hang["seconds"].as_f64().unwrap() < 6.0, "{r_hang}");
    let r_unset = result(&format!("webhook {}", unset.url("/unset")));
    assert!(r_unset["error"].as_str().unwrap().contains("env:NOTIFY_TEST_UNSET_SECRET is not set"), "{r_unset}");
    assert!(result(&format!("webhook {}", from_ssm.url("/ssm")))["ok"].as_bool().unwrap());
    let r_sns = result("sns arn:aws:sns:us-east-1:123456789012:nobody-made-this");
    assert!(r_sns["error"].as_str().unwrap().starts_with("sns Publish: NotFound"), "{r_sns}");
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET) && !run.stdout.contains("from-ssm-123"));

    // What arrived: one attempt each, the clearly marked test event, even where `on` does not take `started`.
    let got = ok.hits();
    assert_eq!(got.len(), 1);
    let e = got[0].json();
    assert_eq!((e["event"].as_str(), e["action"].as_str(), e["env"].as_str(), e["app"].as_str()), (Some("started"), Some("notify-test"), Some("staging"), Some("hello")));
    assert_eq!((e["actor"].as_str(), e["link"].as_str(), e["cluster"].as_str()), (Some("notify-tester"), Some("http://deploys.internal:8080"), Some("staging")));
    assert!(e["commit"].is_null());
    assert_eq!(got[0].headers.get("x-release-signature"), Some(&hmac_hex(SECRET, &got[0].body)));
    assert_eq!(bad.hits().len(), 1, "one attempt, no retries");
    assert_eq!(hang.hits().len(), 1);
    assert!(unset.hits().is_empty(), "nothing is sent unsigned when the secret is missing");
    let s = from_ssm.hits();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].headers.get("x-release-signature"), Some(&hmac_hex("from-ssm-123", &s[0].body)), "signed with the SSM parameter's value");
    // Nothing was deployed or recorded.
    before.assert_same(&emu.state(), "notify test");

    // Text: one line per sink; exit 6, and 0 once every sink answers.
    let text_run = project.release_env(&emu, &env, &["notify", "test", "--env", "staging"]);
    assert_eq!(text_run.code, 6);
    assert_eq!(text_run.stdout.lines().count(), 6, "{}", text_run.stdout);
    assert!(text_run.stdout.lines().any(|l| l.starts_with("ok      webhook ") && l.contains("/ok")), "{}", text_run.stdout);
    assert!(text_run.stdout.lines().any(|l| l == format!("failed  webhook {}: HTTP 500: ok", bad.url("/bad"))), "{}", text_run.stdout);
    assert_eq!(text_run.error_line(), "error: 4 of 6 sink(s) did not take the test event");
    let all = project.read("pipelines/hello.toml");
    let only_good = all[..all.find("[[notify.sinks]]\nkind = \"webhook\"\nurl = \"http").unwrap()].to_owned()
        + &format!("[[notify.sinks]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"env:RELEASE_WEBHOOK_SECRET\"\n", ok.url("/ok"));
    project.write("pipelines/hello.toml", &only_good);
    let fine = project.release_env(&emu, &env, &["notify", "test", "--env", "staging"]);
    fine.assert_ok();
    assert_eq!(ok.hits().len(), 3);
}
