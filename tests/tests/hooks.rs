//! Lifecycle hooks (`[env.NAME.hooks]`) against the emulator: what each hook sees, and what a failing, timed-out
//! or interrupted hook does to the world (instances, load balancer members, Route53 weights, the ledger), read
//! back from AWS with the SDK.

use std::collections::BTreeMap;
use std::time::Duration;

use release_e2e::{AwsView, Emulator, Project};

/// Appends a hooks section to the demo pipeline (promote and switch read the file of the checkout).
fn hooks(project: &Project, env: &str, body: &str) {
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &format!("{text}\n[env.{env}.hooks]\n{body}\n"));
}

/// `env | grep ^RELEASE_` of a hook, written by it to `<name>.env` in the project.
fn seen(project: &Project, name: &str) -> BTreeMap<String, String> {
    project
        .read(&format!("{name}.env"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn dump(name: &str) -> String {
    format!("env | grep ^RELEASE_ | sort > {name}.env; echo {name} says hello")
}

async fn weights(aws: &AwsView) -> Vec<(String, i64)> {
    aws.weighted_records("example.com.", "hello.example.com.").await.into_iter().map(|(c, w, _)| (c, w)).collect()
}

fn w(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(c, w)| (c.to_string(), *w)).collect()
}

async fn lb_dns(aws: &AwsView, name: &str) -> String {
    let out = aws.elb.describe_load_balancers().load_balancer_names(name).send().await.unwrap();
    out.load_balancer_descriptions()[0].dns_name().unwrap().to_owned()
}

fn json(a: &aws_sdk_dynamodb::types::AttributeValue) -> serde_json::Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match a {
        A::S(s) => s.clone().into(),
        A::N(n) => n.parse::<f64>().map(serde_json::Value::from).unwrap_or_default(),
        A::Bool(b) => (*b).into(),
        A::L(l) => l.iter().map(json).collect(),
        A::M(m) => m.iter().map(|(k, v)| (k.clone(), json(v))).collect::<serde_json::Map<_, _>>().into(),
        _ => serde_json::Value::Null,
    }
}

/// The newest ledger record of an environment, read from DynamoDB directly.
async fn last_record(aws: &AwsView, env: &str) -> serde_json::Value {
    let out = aws.dynamodb.scan().table_name("release-ledger").send().await.unwrap();
    let mut rows: Vec<serde_json::Value> = out
        .items()
        .iter()
        .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|s| s.starts_with("rec#")))
        .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|s| s == &format!("hello#{env}")))
        .map(|i| i.iter().map(|(k, v)| (k.clone(), json(v))).collect::<serde_json::Map<_, _>>().into())
        .collect();
    rows.sort_by(|a: &serde_json::Value, b| b["sk"].as_str().cmp(&a["sk"].as_str()));
    rows.into_iter().next().expect("a ledger record")
}

fn hook_rows(record: &serde_json::Value) -> Vec<(String, String)> {
    record["hooks"].as_array().map(|a| a.iter().map(|h| (h["name"].as_str().unwrap().to_owned(), h["status"].as_str().unwrap().to_owned())).collect()).unwrap_or_default()
}

fn ids(v: &[release_e2e::Ec2Instance]) -> Vec<String> {
    v.iter().map(|i| i.id.clone()).collect()
}

fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
    v.sort();
    v
}

fn ami_of(project: &Project, emu: &Emulator, sha: &str) -> String {
    let images = project.release(emu, &["images", "--output", "json"]).json();
    images["images"].as_array().unwrap().iter().find(|i| i["commit"] == sha).unwrap()["ami"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn blue_green_hooks_run_in_order_and_see_what_aws_holds() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    hooks(&project, "prod", &format!(
        "before_promote = \"{}\"\nbefore_traffic = \"{}\"\nafter_traffic = \"{}\"",
        dump("before_promote"), dump("before_traffic"), dump("after_traffic")
    ));
    project.release(&emu, &["validate"]).assert_ok();

    let run = project.release(&emu, &["promote", &a, "--env", "prod", "--yes", "--output", "json"]);
    run.assert_ok();
    let doc = run.json();
    let release_id = doc["release_id"].as_str().unwrap().to_owned();
    let prod2 = aws.running("hello", "prod2").await;
    assert_eq!(prod2.len(), 4);
    let dns2 = lb_dns(&aws, "hello-prod2").await;
    let ami_a = ami_of(&project, &emu, &a);

    let before = seen(&project, "before_promote");
    assert_eq!(before["RELEASE_APP"], "hello");
    assert_eq!(before["RELEASE_ENV"], "prod");
    assert_eq!(before["RELEASE_CLUSTER"], "prod2");
    assert_eq!(before["RELEASE_COMMIT"], a);
    assert_eq!(before["RELEASE_AMI"], ami_a);
    assert_eq!(before["RELEASE_ID"], release_id);
    assert_eq!(before["RELEASE_INSTANCE_IDS"], "", "nothing is launched before before_promote");
    assert_eq!(before["RELEASE_PREVIOUS_COMMIT"], "", "nothing was live");

    let bt = seen(&project, "before_traffic");
    assert_eq!(sorted(&bt["RELEASE_INSTANCE_IDS"]), ids(&prod2), "the new fleet");
    for i in &prod2 {
        assert_eq!(i.image, bt["RELEASE_AMI"]);
    }
    assert_eq!(bt["RELEASE_LB_DNS"], dns2, "the idle cluster's load balancer");
    assert_eq!(bt["RELEASE_LIVE_NAME"], "hello.example.com");
    assert_eq!(aws.elb_members("hello-prod2").await, ids(&prod2), "before_traffic ran with only the new fleet behind its load balancer");
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]), "a promote moves no traffic");
    assert!(!project.path().join("after_traffic.env").exists(), "after_traffic waits for the switch");

    let record = last_record(&aws, "prod").await;
    assert_eq!(record["release_id"], release_id.as_str());
    assert_eq!(hook_rows(&record), vec![("before_promote".into(), "succeeded".into()), ("before_traffic".into(), "succeeded".into())]);
    assert_eq!(record["hooks"][1]["exit_code"], 0.0);
    assert_eq!(record["hooks"][1]["output_tail"], serde_json::json!(["before_traffic says hello"]));
    assert!(run.stderr.contains("[hook before_traffic] before_traffic says hello"), "{}", run.stderr);
    assert_eq!(doc["hooks"].as_array().unwrap().len(), 2, "{}", run.stdout);

    let flip = project.release(&emu, &["switch", "prod2", "--yes", "--output", "json"]);
    flip.assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    let at = seen(&project, "after_traffic");
    assert_eq!(at["RELEASE_CLUSTER"], "prod2");
    assert_eq!(at["RELEASE_COMMIT"], a);
    assert_eq!(at["RELEASE_LB_DNS"], dns2);
    assert_eq!(at["RELEASE_AMI"], ami_a);
    assert_eq!(sorted(&at["RELEASE_INSTANCE_IDS"]), ids(&prod2));
    assert_eq!(at["RELEASE_ID"], flip.json()["release_id"].as_str().unwrap());
    assert_eq!(hook_rows(&last_record(&aws, "prod").await), vec![("after_traffic".into(), "succeeded".into())]);

    // The next release goes to prod1; the commit live before it is a, on prod2.
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes"]).assert_ok();
    let bt = seen(&project, "before_traffic");
    assert_eq!(bt["RELEASE_CLUSTER"], "prod1");
    assert_eq!(bt["RELEASE_COMMIT"], b);
    assert_eq!(bt["RELEASE_PREVIOUS_COMMIT"], a);
    assert_eq!(bt["RELEASE_LB_DNS"], lb_dns(&aws, "hello-prod1").await);
    assert_eq!(sorted(&bt["RELEASE_INSTANCE_IDS"]), ids(&aws.running("hello", "prod1").await));

    // A rollback runs no hooks: going back must not depend on the smoke tests of the release it leaves.
    std::fs::remove_file(project.path().join("after_traffic.env")).unwrap();
    project.release(&emu, &["switch", "prod1", "--yes"]).assert_ok();
    std::fs::remove_file(project.path().join("after_traffic.env")).unwrap();
    project.release(&emu, &["rollback", "--env", "prod", "--yes"]).assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    assert!(!project.path().join("after_traffic.env").exists());
}

#[tokio::test]
async fn a_failing_before_traffic_hook_removes_the_new_fleet_and_moves_no_traffic() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok(); // prod2, idle
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    let live = ids(&aws.running("hello", "prod2").await);
    hooks(&project, "prod", "before_traffic = \"echo checking $RELEASE_LB_DNS; echo smoke test failed >&2; exit 3\"");

    let run = project.release(&emu, &["promote", &b, "--env", "prod", "--yes", "--output", "json"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    let err = run.json();
    assert_eq!(err["ok"], false);
    assert_eq!(err["error"]["exit_code"], 8);
    assert_eq!(err["error"]["rolled_back"], true, "{}", run.stdout);
    // The failure document names the release and its hooks, as a rolled-back rollout's does.
    assert_eq!(err["release_id"], last_record(&aws, "prod").await["release_id"], "{}", run.stdout);
    assert_eq!(err["hooks"][0]["name"], "before_traffic", "{}", run.stdout);
    assert_eq!(err["hooks"][0]["status"], "failed");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("hook before_traffic") && msg.contains("exit status 3") && msg.contains("smoke test failed"), "{msg}");
    assert_eq!(run.error_line().matches('\n').count(), 0);

    // The new fleet is gone, prod1's load balancer is empty, the live cluster untouched, no traffic moved.
    assert!(aws.running("hello", "prod1").await.is_empty());
    let all = aws.app_instances("hello").await;
    assert!(all.iter().filter(|i| i.tags["release:commit"] == b).all(|i| i.state == "terminated" || i.state == "shutting-down"));
    assert_eq!(aws.elb_members("hello-prod1").await, Vec::<String>::new());
    assert_eq!(aws.elb_members("hello-prod2").await, live);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));

    let record = last_record(&aws, "prod").await;
    assert_eq!(record["outcome"], "failed");
    assert_eq!(record["rolled_back"], true);
    assert!(record["detail"].as_str().unwrap().contains("hook before_traffic"), "{record}");
    assert_eq!(hook_rows(&record), vec![("before_traffic".into(), "failed".into())]);
    assert_eq!(record["hooks"][0]["exit_code"], 3.0);
    let tail = &record["hooks"][0]["output_tail"];
    assert!(tail.as_array().unwrap().iter().any(|l| l == "smoke test failed"), "{tail}");
    assert!(tail[0].as_str().unwrap().starts_with("checking hello-prod1"), "{tail}");

    // The environment still works: without the hook the same promote succeeds.
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &text.replace("exit 3", "exit 0"));
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes"]).assert_ok();
    assert_eq!(aws.running("hello", "prod1").await.len(), 4);
}

#[tokio::test]
async fn in_place_before_hooks_stop_before_any_traffic_moves() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let old = ids(&aws.running("hello", "staging").await);

    // before_promote fails: nothing is launched.
    hooks(&project, "staging", "before_promote = \"echo migration failed; exit 1\"\nbefore_traffic = \"env | grep ^RELEASE_ | sort > before_traffic.env; exit 4\"");
    // --plan names the hooks it would run, and runs none.
    let plan = project.release(&emu, &["promote", &b, "--env", "staging", "--plan", "--output", "json"]);
    plan.assert_ok();
    assert_eq!(plan.json()["hooks"], serde_json::json!([["before_promote", "echo migration failed; exit 1"], ["before_traffic", "env | grep ^RELEASE_ | sort > before_traffic.env; exit 4"]]));
    let text = project.release(&emu, &["promote", &b, "--env", "staging", "--plan"]);
    assert!(text.stdout.contains("\n  hook before_promote: echo migration failed; exit 1\n  hook before_traffic: env"), "{}", text.stdout);
    assert!(!project.path().join("before_traffic.env").exists());
    let run = project.release(&emu, &["promote", &b, "--env", "staging", "--output", "json"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("nothing was launched"), "{}", run.stdout);
    assert!(aws.app_instances("hello").await.iter().all(|i| i.tags["release:commit"] != b), "nothing of b was launched");
    assert_eq!(aws.elb_members("hello-staging").await, old);
    let record = last_record(&aws, "staging").await;
    assert_eq!((record["outcome"].as_str(), record["rolled_back"].as_bool()), (Some("failed"), Some(true)));
    assert_eq!(hook_rows(&record), vec![("before_promote".into(), "failed".into())]);
    assert_eq!(record["hooks"][0]["output_tail"], serde_json::json!(["migration failed"]));

    // before_traffic fails: the new instances ran but never joined the load balancer, and are gone.
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &text.replace("exit 1", "exit 0"));
    let run = project.release(&emu, &["promote", &b, "--env", "staging", "--output", "json"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    let bt = seen(&project, "before_traffic");
    let launched = sorted(&bt["RELEASE_INSTANCE_IDS"]);
    assert_eq!(launched.len(), 2);
    assert_eq!(bt["RELEASE_LB_DNS"], lb_dns(&aws, "hello-staging").await, "in place: the environment's load balancer, still serving the old fleet");
    assert_eq!(bt["RELEASE_PREVIOUS_COMMIT"], a);
    assert_eq!(bt["RELEASE_LIVE_NAME"], bt["RELEASE_LB_DNS"]);
    let all = aws.app_instances("hello").await;
    for id in &launched {
        let i = all.iter().find(|i| &i.id == id).unwrap();
        assert_eq!(i.tags["release:commit"], b);
        assert!(i.state == "terminated" || i.state == "shutting-down", "{id} is {}", i.state);
    }
    assert_eq!(aws.elb_members("hello-staging").await, old, "the load balancer never held the new instances at the end, and still holds the old");
    assert_eq!(ids(&aws.running("hello", "staging").await), old);
    let record = last_record(&aws, "staging").await;
    assert_eq!(hook_rows(&record), vec![("before_promote".into(), "succeeded".into()), ("before_traffic".into(), "failed".into())]);
    assert_eq!((record["outcome"].as_str(), record["rolled_back"].as_bool()), (Some("failed"), Some(true)));
}

#[tokio::test]
async fn a_failing_after_traffic_hook_switches_back_in_one_change_or_only_warns() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok(); // prod2
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes"]).assert_ok(); // prod1
    hooks(&project, "prod", "after_traffic = \"test -z \\\"$RELEASE_LIVE_NAME\\\" || { echo $RELEASE_LIVE_NAME is not answering; exit 22; }\"");
    // --plan names the after_traffic hook a full switch would run (as promote --plan names its hooks), and runs none.
    let cmd = "test -z \"$RELEASE_LIVE_NAME\" || { echo $RELEASE_LIVE_NAME is not answering; exit 22; }";
    let plan = project.release(&emu, &["switch", "prod1", "--plan", "--output", "json"]);
    plan.assert_ok();
    assert_eq!(plan.json()["hooks"], serde_json::json!([["after_traffic", cmd]]), "{}", plan.stdout);
    let text = project.release(&emu, &["switch", "prod1", "--plan"]);
    assert!(text.stdout.contains(&format!("\n  hook after_traffic: {cmd}\n")), "{}", text.stdout);
    // A partial switch runs no after_traffic, and its plan says so.
    let partial = project.release(&emu, &["switch", "prod1", "--weight", "50", "--plan", "--output", "json"]);
    partial.assert_ok();
    assert_eq!(partial.json()["hooks"], serde_json::json!([]), "{}", partial.stdout);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]), "--plan changed nothing");

    // Default for blue/green: back to the weights from before the switch.
    let run = project.release(&emu, &["switch", "prod1", "--yes", "--output", "json"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    let err = run.json();
    assert_eq!(err["error"]["rolled_back"], true);
    assert!(err["error"]["message"].as_str().unwrap().contains("traffic went back"), "{}", run.stdout);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]), "Route53 holds the weights from before the switch");
    let record = last_record(&aws, "prod").await;
    assert_eq!(err["release_id"], record["release_id"], "{}", run.stdout);
    assert_eq!(err["hooks"][0]["name"], "after_traffic", "{}", run.stdout);
    assert_eq!(err["hooks"][0]["status"], "failed");
    assert_eq!(record["action"], "switch");
    assert_eq!(record["outcome"], "rolled-back");
    assert_eq!(record["rolled_back"], true);
    assert_eq!(hook_rows(&record), vec![("after_traffic".into(), "failed".into())]);
    assert_eq!(record["hooks"][0]["output_tail"], serde_json::json!(["hello.example.com is not answering"]));
    // It was not live: a rollback from prod2 does not go "back" to prod1.
    let status = project.release(&emu, &["status", "--env", "prod", "--output", "json"]).json();
    let live: Vec<&str> = status["environments"][0]["clusters"].as_array().unwrap().iter().filter(|c| c["role"] == "live").map(|c| c["cluster"].as_str().unwrap()).collect();
    assert_eq!(live, vec!["prod2"]);

    // rollback_on_hook_failure = false: a warning on the record, exit 0, the switch stays.
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &format!("{text}rollback_on_hook_failure = false\n"));
    let run = project.release(&emu, &["switch", "prod1", "--yes", "--output", "json"]);
    run.assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    let record = last_record(&aws, "prod").await;
    assert_eq!(record["outcome"], "succeeded");
    assert!(record["detail"].as_str().unwrap().starts_with("warning: hook after_traffic"), "{record}");
    assert!(run.stderr.contains("warning: hook after_traffic"), "{}", run.stderr);
    assert_eq!(run.json()["hooks"][0]["status"], "failed");
}

#[tokio::test]
async fn in_place_after_traffic_failing_with_rollback_promotes_the_previous_commit() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    hooks(&project, "staging", "after_traffic = \"echo $RELEASE_COMMIT is broken; exit 1\"\nrollback_on_hook_failure = true");
    let run = project.release(&emu, &["promote", &b, "--env", "staging", "--output", "json"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    let err = run.json();
    assert!(err["error"]["message"].as_str().unwrap().contains("rolled back"), "{}", run.stdout);
    let running = aws.running("hello", "staging").await;
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|i| i.tags["release:commit"] == a), "the previous commit serves again");
    assert_eq!(aws.elb_members("hello-staging").await, ids(&running));
    let record = last_record(&aws, "staging").await;
    assert_eq!(record["action"], "rollback");
    assert_eq!(record["outcome"], "succeeded");
    assert!(record["hooks"].is_null(), "a rollback runs no hooks");
    let rollback_id = record["release_id"].as_str().unwrap().to_owned();
    assert!(err["error"]["message"].as_str().unwrap().contains(&rollback_id), "{}", run.stdout);

    // The promote's record says what the command did: rolled back, by that rollback; not succeeded.
    let promote_id = err["release_id"].as_str().expect("the failure document names the promote").to_owned();
    assert_ne!(promote_id, rollback_id);
    assert_eq!(hook_rows(&err), vec![("after_traffic".into(), "failed".into())], "{}", run.stdout);
    let history = project.release(&emu, &["history", "--env", "staging", "--output", "json"]).json();
    let rows = history["records"].as_array().or(history.as_array()).expect("history rows").clone();
    let promote = rows.iter().find(|r| r["release_id"] == promote_id.as_str()).unwrap_or_else(|| panic!("{history}"));
    assert_eq!(promote["outcome"], "rolled-back", "{promote}");
    assert_eq!(promote["rolled_back"], true, "{promote}");
    let detail = promote["detail"].as_str().unwrap();
    assert!(detail.contains("hook after_traffic") && detail.contains(&rollback_id), "{detail}");
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_everything_it_started() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    hooks(&project, "staging", "before_promote = \"sleep 300 & echo $! > sleeper.pid; echo started; wait\"\nhook_timeout = \"2s\"");
    let run = project.release(&emu, &["promote", &a, "--env", "staging", "--output", "json"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("timed out"), "{}", run.stdout);
    let pid = project.read("sleeper.pid").trim().to_owned();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z "), "the hook's child {pid} still runs");
    assert!(aws.app_instances("hello").await.is_empty(), "nothing launched");
    let record = last_record(&aws, "staging").await;
    assert_eq!(hook_rows(&record), vec![("before_promote".into(), "timed-out".into())]);
    assert_eq!(record["hooks"][0]["output_tail"], serde_json::json!(["started"]));
    assert!(record["hooks"][0]["seconds"].as_f64().unwrap() >= 2.0);
}

#[tokio::test]
async fn ctrl_c_during_before_traffic_kills_the_hook_and_removes_the_new_fleet() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    hooks(&project, "prod", "before_traffic = \"sleep 300 & echo $! > sleeper.pid; echo smoke starting; wait\"");
    let bg = project.background(&emu.url(), &[], &["promote", &a, "--env", "prod", "--yes", "--output", "json"]);
    bg.wait_for("[hook before_traffic] smoke starting", Duration::from_secs(120));
    bg.signal("INT");
    let run = bg.finish(Duration::from_secs(60));
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert_eq!(run.json()["error"]["rolled_back"], true, "{}", run.stdout);
    let pid = project.read("sleeper.pid").trim().to_owned();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z "), "the hook's child {pid} still runs");
    assert!(aws.running("hello", "prod2").await.is_empty(), "the new fleet was removed");
    assert_eq!(aws.elb_members("hello-prod2").await, Vec::<String>::new());
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    let record = last_record(&aws, "prod").await;
    assert_eq!(record["outcome"], "interrupted");
    assert_eq!(hook_rows(&record), vec![("before_traffic".into(), "interrupted".into())]);
}

/// The lock item of an environment as DynamoDB holds it (every attribute), or `None`.
async fn lock_item(aws: &AwsView, env: &str) -> Option<serde_json::Value> {
    let out = aws.dynamodb.scan().table_name("release-ledger").send().await.unwrap();
    out.items()
        .iter()
        .find(|i| i.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|s| s == "lock") && i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|s| s == &format!("hello#{env}")))
        .map(|i| i.iter().map(|(k, v)| (k.clone(), json(v))).collect::<serde_json::Map<_, _>>().into())
}

/// Whether any process of group `pgid` still runs (not a zombie).
fn group_alive(pgid: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok()).any(|s| {
        let rest: Vec<&str> = s[s.rfind(')').unwrap() + 1..].split_whitespace().collect();
        rest[2] == pgid && rest[0] != "Z"
    })
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_hook_outliving_a_killed_release_holds_the_lock_and_is_never_started_twice() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    // Each start appends its pid (its process group's id) to `starts`; it runs until the file `go` exists.
    hooks(&project, "prod", "before_traffic = \"echo $$ >> starts; echo smoke starting; while [ ! -e go ]; do sleep 0.2; done\"");
    let bg = project.background(&emu.url(), &[], &["promote", &a, "--env", "prod", "--yes"]);
    bg.wait_for("[hook before_traffic] smoke starting", Duration::from_secs(120));
    // The kill must come once the hook's process is in the record (what this test is about). A kill before that
    // write leaves `hook_running` without a process, which a re-run waits out until the hook's deadline (the
    // hook is recorded before it starts): under load the hook's first line can come before that write.
    let start = std::time::Instant::now();
    while last_record(&aws, "prod").await["hook_running"]["process"]["pgid"].is_null() {
        assert!(start.elapsed() < Duration::from_secs(60), "the hook's process was never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bg.signal("KILL");
    let killed = bg.finish(Duration::from_secs(30));
    assert_ne!(killed.code, 0);
    let pgid = project.read("starts").trim().to_owned();
    assert!(group_alive(&pgid), "the hook outlives a kill -9 of release (nothing can stop that)");
    let fleet = ids(&aws.running("hello", "prod2").await);
    assert_eq!(fleet.len(), 4);
    let record = last_record(&aws, "prod").await;
    assert_eq!(record["outcome"], "started");
    assert_eq!(record["hook_running"]["name"], "before_traffic", "recorded before it was waited on: {record}");
    assert_eq!(record["hook_running"]["process"]["pgid"].as_f64(), Some(pgid.parse::<f64>().unwrap()), "{record}");
    let lock = lock_item(&aws, "prod").await.expect("the dead run's lock");

    // status: its process died, but its hook runs: not dead yet.
    let status = project.release(&emu, &["status", "--env", "prod", "--output", "json"]);
    status.assert_ok();
    let op = &status.json()["environments"][0]["operation"];
    assert_eq!(op["alive"], true, "{op}");
    assert!(op["holder"].as_str().unwrap().contains("is gone but its hook before_traffic"), "{op}");

    // unlock without --force refuses: the lease was renewed moments ago and the hook still runs.
    let refused = project.release(&emu, &["unlock", "--env", "prod", "--output", "json"]);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    let msg = refused.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("hook before_traffic") && msg.contains(&format!("process group {pgid}")) && msg.contains("lease renewed"), "{msg}");
    assert_eq!(lock_item(&aws, "prod").await, Some(lock.clone()), "the lock item is unchanged");

    // A re-run is refused by the lock, and says why nobody may take over.
    let rerun = project.release(&emu, &["promote", &a, "--env", "prod", "--yes", "--output", "json"]);
    assert_eq!(rerun.code, 5, "{}", rerun.stderr);
    assert!(rerun.json()["error"]["message"].as_str().unwrap().contains("hook before_traffic"), "{}", rerun.stdout);
    assert_eq!(lock_item(&aws, "prod").await, Some(lock.clone()));

    // Forced past the lock, a re-run still does not start a second copy: it refuses, naming the hook.
    project.release(&emu, &["unlock", "--env", "prod", "--force"]).assert_ok();
    let rerun = project.release(&emu, &["promote", &a, "--env", "prod", "--yes", "--output", "json"]);
    assert_eq!(rerun.code, 5, "{}", rerun.stderr);
    let msg = rerun.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("hook before_traffic") && msg.contains("still runs") && msg.contains(&format!("kill -- -{pgid}")), "{msg}");
    assert_eq!(project.read("starts").lines().count(), 1, "one copy only");
    assert_eq!(lock_item(&aws, "prod").await, None, "the refused run released the lock it took");
    assert_eq!(ids(&aws.running("hello", "prod2").await), fleet, "the refused run touched nothing");
    assert_eq!(last_record(&aws, "prod").await["hook_running"]["name"], "before_traffic");

    // Once the hook ended, the re-run proceeds: the hook runs again (its result died with its run), once.
    project.write("go", "");
    wait_until("the hook ends", || !group_alive(&pgid));
    let rerun = project.release(&emu, &["promote", &a, "--env", "prod", "--yes", "--output", "json"]);
    rerun.assert_ok();
    assert_eq!(project.read("starts").lines().count(), 2);
    let record = last_record(&aws, "prod").await;
    assert_eq!(record["outcome"], "succeeded", "{record}");
    assert!(record["hook_running"].is_null(), "{record}");
    assert_eq!(hook_rows(&record), vec![("before_traffic".into(), "interrupted".into()), ("before_traffic".into(), "succeeded".into())]);
    assert_eq!(ids(&aws.running("hello", "prod2").await), fleet);
    assert_eq!(aws.elb_members("hello-prod2").await, fleet);
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    assert_eq!(lock_item(&aws, "prod").await, None);
}

#[tokio::test]
async fn after_kill_9_status_shows_the_dead_holder_dead_and_unlock_breaks_its_lock() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    hooks(&project, "staging", "before_traffic = \"echo smoke starting; sleep 300\"");
    let bg = project.background(&emu.url(), &[], &["promote", &a, "--env", "staging"]);
    bg.wait_for("[hook before_traffic] smoke starting", Duration::from_secs(120));
    let record = last_record(&aws, "staging").await;
    let pgid = record["hook_running"]["process"]["pgid"].as_f64().expect("the hook's process in the record") as i64;
    bg.signal("KILL");
    bg.finish(Duration::from_secs(30));
    // The hook went too (as a machine reboot would take it): its run is dead.
    assert!(std::process::Command::new("kill").arg("-KILL").arg("--").arg(format!("-{pgid}")).status().unwrap().success());
    wait_until("the hook's group is gone", || !group_alive(&pgid.to_string()));
    let lock = lock_item(&aws, "staging").await.expect("the dead run's lock");

    let status = project.release(&emu, &["status", "--env", "staging", "--output", "json"]);
    let op = &status.json()["environments"][0]["operation"];
    assert_eq!(op["alive"], false, "{op}");
    assert!(op["holder"].as_str().unwrap().starts_with("holder pid ") && op["holder"].as_str().unwrap().ends_with(" is gone"), "{op}");
    let text = project.release(&emu, &["status", "--env", "staging"]);
    assert!(text.stdout.contains("in progress: hook before_traffic") && text.stdout.contains("its process is gone"), "{}", text.stdout);
    assert_eq!(lock_item(&aws, "staging").await, Some(lock), "status changed nothing");

    // unlock agrees, without --force, and says why.
    let unlock = project.release(&emu, &["unlock", "--env", "staging", "--output", "json"]);
    unlock.assert_ok();
    let doc = unlock.json();
    assert_eq!(doc["broken"], true);
    assert!(doc["holder"].as_str().unwrap().ends_with(" is gone"), "{doc}");
    assert_eq!(lock_item(&aws, "staging").await, None);
}

/// A user found this: a promote into the idle cluster whose `before_traffic` hook failed left that cluster empty,
/// destroying the release a switch back (rollback) goes to. Its previous release stays running and registered, and
/// the way back launches nothing.
#[tokio::test]
async fn a_failing_before_traffic_hook_keeps_the_idle_clusters_previous_release_for_the_way_back() {
    let emu = Emulator::start();
    let (project, v1, v2) = Project::baked_demo(&emu);
    let v3 = project.bake_new(&emu, "v3");
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &v1, "--env", "prod", "--yes"]).assert_ok(); // prod2
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &v2, "--env", "prod", "--yes"]).assert_ok(); // prod1
    project.release(&emu, &["switch", "prod1", "--yes"]).assert_ok();
    let previous = aws.running("hello", "prod2").await;
    assert!(!previous.is_empty() && previous.iter().all(|i| i.tags["release:commit"] == v1), "prod2 (idle) runs v1");
    let previous = ids(&previous);
    assert_eq!(aws.elb_members("hello-prod2").await, previous);
    let live = ids(&aws.running("hello", "prod1").await);
    hooks(&project, "prod", "before_traffic = \"echo smoke test failed >&2; exit 3\"");

    let run = project.release(&emu, &["promote", &v3, "--env", "prod", "--yes", "--output", "json"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    let err = run.json();
    assert_eq!(err["error"]["rolled_back"], true, "{}", run.stdout);
    assert_eq!(run.error_line().matches('\n').count(), 0);
    assert_eq!(ids(&aws.running("hello", "prod2").await), previous, "v1's instances still run in prod2");
    assert_eq!(aws.elb_members("hello-prod2").await, previous, "and are registered in its load balancer");
    let of_v3: Vec<_> = aws.app_instances("hello").await.into_iter().filter(|i| i.tags["release:commit"] == v3).collect();
    assert!(!of_v3.is_empty() && of_v3.iter().all(|i| i.state == "terminated" || i.state == "shutting-down"), "{of_v3:?}");
    assert_eq!(aws.elb_members("hello-prod1").await, live, "the live cluster untouched");
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    let record = last_record(&aws, "prod").await;
    assert_eq!((record["outcome"].as_str(), record["rolled_back"].as_bool()), (Some("failed"), Some(true)), "{record}");
    assert_eq!(hook_rows(&record), vec![("before_traffic".into(), "failed".into())]);
    assert!(record["retired_instances"].as_array().is_none_or(|a| a.is_empty()), "{record}");

    // The way back: rollback switches to prod2's v1 and launches nothing.
    let before: Vec<String> = aws.app_instances("hello").await.into_iter().map(|i| i.id).collect();
    project.release(&emu, &["rollback", "--env", "prod", "--yes"]).assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    let after: Vec<String> = aws.app_instances("hello").await.into_iter().map(|i| i.id).collect();
    assert_eq!(after, before, "nothing launched");
    assert_eq!(ids(&aws.running("hello", "prod2").await), previous);
    assert_eq!(aws.elb_members("hello-prod2").await, previous);
    assert_eq!(last_record(&aws, "prod").await["action"], "rollback");
}
