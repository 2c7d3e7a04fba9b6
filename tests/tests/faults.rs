//! Faults brought to the emulator through the fault-injecting proxy: throttling and 5xx at random, a call that
//! fails for good, bad credentials. The commands must converge to the same world as without faults, or fail
//! cleanly with the environment as it was.

use release_e2e::{life, summary, AwsView, Emulator, Project};
use release_testkit::proxy::{Fault, FaultProxy, Rule, When};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifth_of_all_calls_throttled_or_failing_everything_still_converges() {
    // Without faults.
    let clean_emu = Emulator::start();
    let clean = Project::demo_repo();
    let (a, b) = life(&clean, &clean_emu.url());
    let expected = summary(&AwsView::new(&clean_emu).await, &a, &b).await;

    // The same life with 10% throttled and 10% 5xx, on release's own calls (Packer's SDK has its own retries).
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu.url(), 20261122);
    proxy.add(Rule::new(Fault::Throttle, When::Probability(0.10)).user_agent("aws-sdk-rust"));
    proxy.add(Rule::new(Fault::Status(503), When::Probability(0.06)).user_agent("aws-sdk-rust"));
    proxy.add(Rule::new(Fault::Status(500), When::Probability(0.05)).user_agent("aws-sdk-rust"));
    let project = Project::demo_repo();
    let (a2, b2) = life(&project, &proxy.url());
    let stats = proxy.stats();
    let got = summary(&AwsView::new(&emu).await, &a2, &b2).await;
    println!(
        "faults injected: {} of {} requests, leaks found: {}: {:#?}",
        stats.total_injected(),
        stats.requests,
        got["not terminated"].parse::<i32>().unwrap_or(-1) - 10,
        stats.injected
    );
    assert!(stats.total_injected() * 100 / stats.requests.max(1) >= 10, "too few faults to mean anything: {stats:?}");
    assert_eq!(got, expected, "the world differs from a run without faults");
    assert_eq!(got["not terminated"], "10", "nothing leaked: 2 staging + 4 + 4 prod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_failing_for_good_rolls_back_and_the_old_fleet_still_serves() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu.url(), 1);
    let project = Project::demo_repo();
    let run = |args: &[&str]| release_e2e::release_with(project.path(), Some(&proxy.url()), &[], args);
    run(&["provision", "--env", "staging"]).assert_ok();
    let a = project.git(&["rev-parse", "HEAD"]);
    run(&["bake", &a]).assert_ok();
    run(&["promote", &a, "--env", "staging"]).assert_ok();
    let aws = AwsView::new(&emu).await;
    let old = aws.elb_members("hello-staging").await;
    // A new setting forces a new fleet; every registration fails.
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("APP_ENV = \"staging\"", "APP_ENV = \"staging-2\""));
    proxy.add(Rule::new(Fault::Status(500), When::Always).operation("RegisterInstancesWithLoadBalancer"));
    let failed = run(&["promote", &a, "--env", "staging"]);
    // An AWS failure keeps its kind: exit 6, and the environment was put back.
    assert_eq!(failed.code, 6, "{failed:?}");
    assert!(failed.error_line().contains("the 2 new instance(s) were removed and staging serves what it served before"), "{}", failed.stderr);
    let json = run(&["promote", &a, "--env", "staging", "--output", "json"]);
    assert_eq!((json.code, json.json()["error"]["rolled_back"].as_bool(), json.json()["error"]["kind"].as_str()), (6, Some(true), Some("aws")), "{json:?}");
    assert!(failed.error_line().contains("elb RegisterInstancesWithLoadBalancer: InternalFailure"), "{}", failed.stderr);
    assert_eq!(aws.elb_members("hello-staging").await, old, "the old fleet is still registered");
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    assert_eq!(running, old, "the new instances are gone, the old ones run");
    let ledger = aws.ledger("release-ledger").await;
    assert_eq!(ledger[0]["outcome"], "failed");
    let lock = aws.dynamodb.get_item().table_name("release-ledger")
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("hello#staging".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("lock".into()))
        .send().await.unwrap();
    assert!(lock.item().is_none(), "the lock is released");
    let stats = proxy.stats();
    println!("faults injected: {:?}", stats.injected);
    assert_eq!(stats.injected.values().sum::<u64>(), 12, "the SDK tried 6 times before giving up, twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_fail_within_seconds_with_a_clear_error() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu.url(), 1);
    let project = Project::demo_repo();
    proxy.add(Rule::new(Fault::Auth, When::Always));
    let before = emu.state();
    let run = release_e2e::release_with(project.path(), Some(&proxy.url()), &[], &["provision", "--env", "staging"]);
    assert_eq!(run.code, 6, "{run:?}");
    assert_eq!(
        run.error_line(),
        "error: sts GetCallerIdentity: InvalidClientTokenId: The security token included in the request is invalid.; check the credentials and the IAM policy (`release iam-policy`)"
    );
    assert!(run.elapsed.as_secs() < 5, "took {:?}", run.elapsed);
    let status = release_e2e::release_with(project.path(), Some(&proxy.url()), &[], &["status"]);
    assert_eq!(status.code, 6);
    assert!(status.error_line().contains("AuthFailure: AWS was not able to validate the provided access credentials"), "{}", status.stderr);
    before.assert_same(&emu.state(), "calls with bad credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_and_latency_are_survived() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu.url(), 7);
    let project = Project::demo_repo();
    // Reads only: a dropped connection after a write could have done it (and RunInstances ignores ClientToken here).
    for op in ["DescribeInstances", "DescribeInstanceHealth", "DescribeImages", "Query", "ListResourceRecordSets"] {
        proxy.add(Rule::new(Fault::Drop, When::Count(1)).operation(op));
    }
    proxy.add(Rule::new(Fault::Latency(std::time::Duration::from_millis(300)), When::Probability(0.3)).user_agent("aws-sdk-rust"));
    let run = |args: &[&str]| release_e2e::release_with(project.path(), Some(&proxy.url()), &[], args);
    run(&["provision", "--env", "staging"]).assert_ok();
    let a = project.git(&["rev-parse", "HEAD"]);
    run(&["bake", &a]).assert_ok();
    run(&["promote", &a, "--env", "staging"]).assert_ok();
    run(&["status"]).assert_ok();
    let aws = AwsView::new(&emu).await;
    assert_eq!(aws.running("hello", "staging").await.len(), 2);
    let stats = proxy.stats();
    println!("faults injected: {:?}", stats.injected);
    assert!(stats.injected.keys().any(|k| k.ends_with("drop")), "{stats:?}");
}
