//! The real `release` binary through the fault proxy's AWS-realism mode: what real AWS does and the emulator does
//! not (fresh instance ids unknown for a while, instance types not offered in a zone, zones out of capacity,
//! health that takes time, targets that stay draining). Every test asserts the world read back from the emulator
//! AND that the realism actually fired (the proxy's `Stats`), so that none passes without being put to the test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use release_e2e::{life, summary, AwsView, Ec2Instance, Emulator, Project};
use release_testkit::proxy::{FaultProxy, Realism, Stats, When};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// How many answers of `key` (`service:Operation what`) the proxy made up or rewrote.
fn injected(stats: &Stats, key: &str) -> u64 {
    stats.injected.get(key).copied().unwrap_or(0)
}

/// Subnet id -> availability zone, as the emulator has them.
async fn zones(aws: &AwsView) -> BTreeMap<String, String> {
    let out = aws.ec2.describe_subnets().send().await.unwrap();
    out.subnets().iter().map(|s| (s.subnet_id().unwrap().to_owned(), s.availability_zone().unwrap().to_owned())).collect()
}

/// The cluster runs exactly `count` instances, all of `commit`, and exactly those are in its classic ELB.
#[track_caller]
fn assert_serves(running: &[Ec2Instance], members: &[String], commit: &str, count: usize) {
    assert_eq!(running.len(), count, "{running:#?}");
    assert!(running.iter().all(|i| i.tags["release:commit"] == commit), "all of the new commit: {running:#?}");
    let ids: Vec<String> = running.iter().map(|i| i.id.clone()).collect();
    assert_eq!(members, ids.as_slice(), "exactly the running fleet is in the load balancer");
}

async fn not_terminated(aws: &AwsView) -> Vec<Ec2Instance> {
    aws.app_instances("hello").await.into_iter().filter(|i| i.state != "terminated").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_survives_instance_ids_unknown_right_after_launch() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let proxy = FaultProxy::start(&emu.url(), 1);
    // EC2 forgets fresh ids for 1.5 s, the load balancer for 3 s (and each at least once, however slow this
    // machine is); health takes 1 s after registration.
    proxy.realism(Realism::new().fresh_for(secs(1.5)).elb_fresh_for(secs(3.0)).misses_at_least(1).healthy_after(secs(1.0)));
    let run = |args: &[&str]| release_e2e::release_with(project.path(), Some(&proxy.url()), &[], args);
    let aws = AwsView::new(&emu).await;

    let first = run(&["promote", &a, "--env", "staging", "--output", "json"]);
    first.assert_ok();
    assert_serves(&aws.running("hello", "staging").await, &aws.elb_members("hello-staging").await, &a, 2);
    // In place: the new fleet replaces the first one.
    let second = run(&["promote", &b, "--env", "staging", "--output", "json"]);
    second.assert_ok();
    assert_eq!(second.json()["outcome"], "succeeded");
    let running = aws.running("hello", "staging").await;
    assert_serves(&running, &aws.elb_members("hello-staging").await, &b, 2);
    assert_eq!(not_terminated(&aws).await.len(), 2, "nothing leaked");
    // Registration waited until the load balancer knew the ids: the one that went through came >= 3 s after launch.
    for i in &running {
        let calls = proxy.calls_naming(&i.id);
        let refused = calls.iter().filter(|c| c.1 == "elasticloadbalancing:RegisterInstancesWithLoadBalancer" && !c.2).count();
        assert!(refused >= 1, "{} was registered at the first try: {calls:?}", i.id);
    }

    let stats = proxy.stats();
    println!("realism injected: {:#?}", stats.injected);
    assert!(injected(&stats, "ec2:DescribeInstances InvalidInstanceID.NotFound") >= 2, "{stats:?}");
    assert!(injected(&stats, "elasticloadbalancing:RegisterInstancesWithLoadBalancer InvalidInstance") >= 2, "{stats:?}");
    assert!(injected(&stats, "elasticloadbalancing:DescribeInstanceHealth registration in progress") >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_that_does_not_offer_the_instance_type_is_left_out() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let proxy = FaultProxy::start(&emu.url(), 1);
    let run = |args: &[&str]| release_e2e::release_with(project.path(), Some(&proxy.url()), &[], args);
    let aws = AwsView::new(&emu).await;
    let zone_of = zones(&aws).await;

    // us-east-1a does not offer t3.micro, and DescribeInstanceTypeOfferings says so: the plan leaves it out.
    proxy.realism(Realism::new().unsupported("us-east-1a", "t3.micro"));
    let plan = run(&["promote", &a, "--env", "staging", "--plan"]);
    plan.assert_ok();
    let subnet_a = zone_of.iter().find(|(_, z)| *z == "us-east-1a").unwrap().0;
    assert!(plan.stdout.contains(&format!("skipped {subnet_a} (us-east-1a): t3.micro is not offered there")), "{}", plan.stdout);
    run(&["promote", &a, "--env", "staging"]).assert_ok();
    let running = aws.running("hello", "staging").await;
    assert_serves(&running, &aws.elb_members("hello-staging").await, &a, 2);
    assert!(running.iter().all(|i| zone_of[&i.subnet] != "us-east-1a"), "{running:#?}");
    let stats = proxy.stats();
    assert!(injected(&stats, "ec2:DescribeInstanceTypeOfferings unsupported left out") >= 2, "{stats:?}");
    assert_eq!(injected(&stats, "ec2:RunInstances Unsupported"), 0, "the plan never tried the zone: {stats:?}");

    // Offerings that do not say so yet: RunInstances is the first to tell, and the launch goes elsewhere.
    proxy.realism(Realism::new().unsupported("us-east-1a", "t3.micro").unsupported("us-east-1b", "t3.micro").offerings_lag());
    let second = run(&["promote", &b, "--env", "staging"]);
    second.assert_ok();
    assert!(second.stderr.contains("(us-east-1a) cannot take 1 x t3.micro now: Unsupported; launching them in other zones"), "{}", second.stderr);
    assert!(second.stderr.contains("(us-east-1b) cannot take 1 x t3.micro now: Unsupported; launching them in other zones"), "{}", second.stderr);
    let running = aws.running("hello", "staging").await;
    assert_serves(&running, &aws.elb_members("hello-staging").await, &b, 2);
    let left = not_terminated(&aws).await;
    assert_eq!(left.len(), 2, "nothing leaked: {left:#?}");
    assert!(left.iter().all(|i| !["us-east-1a", "us-east-1b"].contains(&zone_of[&i.subnet].as_str())), "{left:#?}");
    let stats = proxy.stats();
    println!("realism injected: {:#?}", stats.injected);
    assert_eq!(injected(&stats, "ec2:RunInstances Unsupported"), 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_out_of_capacity_is_made_up_for_in_the_others() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let proxy = FaultProxy::start(&emu.url(), 1);
    // us-east-1c has no t3.micro at all; us-east-1b runs short once. Each is asked once (EC2 answers
    // InsufficientInstanceCapacity with HTTP 500, which the SDK would otherwise retry six times) and its share goes
    // at once to the zones holding the fewest.
    proxy.realism(
        Realism::new().insufficient_capacity("us-east-1c", When::Always).insufficient_capacity("us-east-1b", When::Count(1)).fresh_for(secs(1.0)),
    );
    let run = release_e2e::release_with(project.path(), Some(&proxy.url()), &[], &["promote", &a, "--env", "prod", "--yes", "--output", "json"]);
    run.assert_ok();
    assert!(run.stderr.contains("(us-east-1c) cannot take 1 x t3.micro now: InsufficientInstanceCapacity; launching them in other zones"), "{}", run.stderr);
    let aws = AwsView::new(&emu).await;
    let zone_of = zones(&aws).await;
    let running = aws.running("hello", "prod2").await;
    assert_serves(&running, &aws.elb_members("hello-prod2").await, &a, 4);
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &running {
        *per_zone.entry(zone_of[&i.subnet].as_str()).or_default() += 1;
    }
    assert!(!per_zone.contains_key("us-east-1c") && !per_zone.contains_key("us-east-1b"), "{per_zone:?}");
    // Three zones are left that offer t3.micro (us-east-1e does not): 2 + 1 + 1, as even as capacity allows.
    let (most, least) = (per_zone.values().max().copied(), per_zone.values().min().copied());
    assert_eq!((per_zone.len(), most, least), (3, Some(2), Some(1)), "{per_zone:?}");
    assert_eq!(not_terminated(&aws).await.len(), 4, "nothing leaked");
    assert!(aws.running("hello", "prod1").await.is_empty());
    let stats = proxy.stats();
    println!("realism injected: {:#?}", stats.injected);
    assert_eq!(injected(&stats, "ec2:RunInstances InsufficientInstanceCapacity us-east-1c"), 1, "no SDK retry: {stats:?}");
    assert_eq!(injected(&stats, "ec2:RunInstances InsufficientInstanceCapacity us-east-1b"), 1, "no SDK retry: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_failing_in_the_third_subnet_leaves_no_instance_and_says_rolled_back() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let proxy = FaultProxy::start(&emu.url(), 1);
    // A policy denies launches into the third subnet's zone; the two launched before it are unknown to EC2 for 2 s
    // (and at least once), so the rollback's first TerminateInstances fails and must be retried.
    proxy.realism(Realism::new().fresh_for(secs(2.0)).misses_at_least(1).launch_error(
        "us-east-1c",
        403,
        "UnauthorizedOperation",
        "You are not authorized to perform this operation. Encoded authorization failure message: realism-proxy",
    ));
    let run = release_e2e::release_with(project.path(), Some(&proxy.url()), &[], &["promote", &a, "--env", "prod", "--yes", "--output", "json"]);
    assert_eq!(run.code, 6, "{run:?}");
    let doc = run.json();
    assert_eq!((doc["error"]["rolled_back"].as_bool(), doc["error"]["kind"].as_str()), (Some(true), Some("aws")), "{doc}");
    let message = doc["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("UnauthorizedOperation") && message.contains("the 2 new instance(s) were removed"), "{message}");
    let aws = AwsView::new(&emu).await;
    assert!(not_terminated(&aws).await.is_empty(), "no instance at all: {:#?}", not_terminated(&aws).await);
    assert_eq!(aws.app_instances("hello").await.len(), 2, "two were launched (first and second subnet), and terminated");
    assert!(aws.elb_members("hello-prod2").await.is_empty() && aws.elb_members("hello-prod1").await.is_empty());
    let ledger = aws.ledger("release-ledger").await;
    assert_eq!((ledger[0]["action"].as_str(), ledger[0]["outcome"].as_str()), ("promote", "failed"), "{ledger:#?}");
    let stats = proxy.stats();
    println!("realism injected: {:#?}", stats.injected);
    assert_eq!(injected(&stats, "ec2:RunInstances UnauthorizedOperation us-east-1c"), 1, "{stats:?}");
    assert!(injected(&stats, "ec2:TerminateInstances InvalidInstanceID.NotFound") >= 1, "the rollback met fresh ids: {stats:?}");
}

const TG_STAGING: &str = r#"app = "hello"
region = "us-east-1"
[build]
command = "make -C pipelines/hello dist"
artifact = "pipelines/hello/dist/hello.tar.gz"
[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "al2023-ami-2023.*-x86_64"
base_owners = ["amazon"]
vars = { exec_start = "/usr/bin/python3 /opt/hello/server.py" }
[deploy]
drain = "2s"
[env.staging]
vars = { APP_ENV = "staging" }
[env.staging.clusters.staging]
target_group = "hello-staging"
count = 2
"#;

/// When `call` first went through for `id`.
fn first_forwarded(proxy: &FaultProxy, id: &str, call: &str) -> Instant {
    proxy.calls_naming(id).into_iter().find(|c| c.1 == call && c.2).unwrap_or_else(|| panic!("no {call} of {id}: {:?}", proxy.calls_naming(id))).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_health_is_waited_for_and_old_targets_drain_before_they_are_terminated() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    project.write("pipelines/hello.toml", TG_STAGING);
    let a = project.commit("target group staging");
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    project.release(&emu, &["bake", &a]).assert_ok();
    let b = project.bake_new(&emu, "v2");
    let c = project.bake_new(&emu, "v3");
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let aws = AwsView::new(&emu).await;
    let old: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    let tg = aws.elbv2.describe_target_groups().names("hello-staging").send().await.unwrap().target_groups()[0].target_group_arn().unwrap().to_owned();
    let targets = |health: &aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput, state: &str| -> Vec<String> {
        let mut v: Vec<String> = health
            .target_health_descriptions()
            .iter()
            .filter(|d| d.target_health().and_then(|h| h.state()).is_some_and(|s| s.as_str() == state))
            .filter_map(|d| d.target()?.id().map(String::from))
            .collect();
        v.sort();
        v
    };

    // Health takes 2 s after registration; the group's deregistration delay (2 s, from `drain`) is read upstream.
    let proxy = FaultProxy::start(&emu.url(), 1);
    proxy.realism(Realism::new().healthy_after(secs(2.0)));
    let seen = AwsView::at(&proxy.url(), "test", "test").await;
    let mut bg = project.background(&proxy.url(), &[], &["promote", &b, "--env", "staging", "--output", "json"]);
    let mut drained_while_running: BTreeSet<String> = BTreeSet::new();
    let start = Instant::now();
    while bg.child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        // What an operator (or release) sees through AWS: old targets draining, while they still run.
        let health = seen.elbv2.describe_target_health().target_group_arn(&tg).send().await.unwrap();
        let draining = targets(&health, "draining");
        if !draining.is_empty() {
            let states = aws.app_instances("hello").await;
            for id in draining {
                if states.iter().any(|i| i.id == id && i.state == "running") {
                    drained_while_running.insert(id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = bg.finish(Duration::from_secs(5));
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert!(doc["seconds"]["wait-healthy"].as_f64().unwrap() >= 1.5, "waited for health: {}", doc["seconds"]);
    assert_eq!(drained_while_running, old.iter().cloned().collect::<BTreeSet<_>>(), "the old targets drained while they ran");
    for id in &old {
        let gap = first_forwarded(&proxy, id, "ec2:TerminateInstances").duration_since(first_forwarded(&proxy, id, "elasticloadbalancing:DeregisterTargets"));
        assert!(gap >= secs(2.0), "{id} terminated {gap:?} after deregistration, before the 2 s delay");
    }
    let running = aws.running("hello", "staging").await;
    let ids: Vec<String> = running.iter().map(|i| i.id.clone()).collect();
    assert!(running.iter().all(|i| i.tags["release:commit"] == b) && running.len() == 2, "{running:#?}");
    let health = aws.elbv2.describe_target_health().target_group_arn(&tg).send().await.unwrap();
    assert_eq!(targets(&health, "healthy"), ids, "exactly the new fleet is registered");
    assert_eq!(not_terminated(&aws).await.len(), 2, "nothing leaked");
    let stats = proxy.stats();
    assert!(injected(&stats, "elasticloadbalancing:DescribeTargetHealth initial") >= 1, "{stats:?}");
    assert!(injected(&stats, "elasticloadbalancing:DescribeTargetHealth draining") >= 1, "{stats:?}");

    // Draining that outlasts release's own `drain` wait (4 s against 2 s): termination waits for the load balancer.
    let old = ids;
    let before = injected(&stats, "elasticloadbalancing:DescribeTargetHealth draining");
    proxy.realism(Realism::new().healthy_after(secs(1.0)).draining_for(secs(4.0)));
    release_e2e::release_with(project.path(), Some(&proxy.url()), &[], &["promote", &c, "--env", "staging"]).assert_ok();
    for id in &old {
        let gap = first_forwarded(&proxy, id, "ec2:TerminateInstances").duration_since(first_forwarded(&proxy, id, "elasticloadbalancing:DeregisterTargets"));
        assert!(gap >= secs(4.0), "{id} terminated {gap:?} after deregistration, while still draining");
    }
    let running = aws.running("hello", "staging").await;
    let ids: Vec<String> = running.iter().map(|i| i.id.clone()).collect();
    assert!(running.iter().all(|i| i.tags["release:commit"] == c) && running.len() == 2, "{running:#?}");
    let health = aws.elbv2.describe_target_health().target_group_arn(&tg).send().await.unwrap();
    assert_eq!(targets(&health, "healthy"), ids);
    assert_eq!(not_terminated(&aws).await.len(), 2, "nothing leaked");
    let stats = proxy.stats();
    println!("realism injected: {:#?}", stats.injected);
    assert!(injected(&stats, "elasticloadbalancing:DescribeTargetHealth draining") > before, "release itself saw them draining: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_life_through_aws_realism_ends_in_the_same_world() {
    // Without realism.
    let clean_emu = Emulator::start();
    let clean = Project::demo_repo();
    let (a, b) = life(&clean, &clean_emu.url());
    let expected = summary(&AwsView::new(&clean_emu).await, &a, &b).await;

    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu.url(), 1);
    proxy.realism(
        Realism::new()
            .fresh_for(secs(1.0))
            .elb_fresh_for(secs(2.0))
            .misses_at_least(1)
            .healthy_after(secs(1.0))
            .unsupported("us-east-1b", "t3.micro")
            .insufficient_capacity("us-east-1c", When::Always),
    );
    let project = Project::demo_repo();
    let (a2, b2) = life(&project, &proxy.url());
    let got = summary(&AwsView::new(&emu).await, &a2, &b2).await;
    let stats = proxy.stats();
    println!("realism injected: {} of {} requests: {:#?}", stats.total_injected(), stats.requests, stats.injected);
    assert_eq!(got, expected, "the world differs from a run without realism");
    assert_eq!(got["not terminated"], "10", "nothing leaked: 2 staging + 4 + 4 prod");
    let aws = AwsView::new(&emu).await;
    let zone_of = zones(&aws).await;
    let used: BTreeSet<String> = not_terminated(&aws).await.iter().map(|i| zone_of[&i.subnet].clone()).collect();
    assert!(!used.contains("us-east-1b") && !used.contains("us-east-1c"), "{used:?}");
    for key in [
        "ec2:DescribeInstances InvalidInstanceID.NotFound",
        "elasticloadbalancing:RegisterInstancesWithLoadBalancer InvalidInstance",
        "elasticloadbalancing:DescribeInstanceHealth registration in progress",
        "ec2:DescribeInstanceTypeOfferings unsupported left out",
        "ec2:RunInstances InsufficientInstanceCapacity us-east-1c",
    ] {
        assert!(injected(&stats, key) >= 1, "{key} never fired: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_resumed_after_a_crash_past_its_launch_never_gets_old_instances_back() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let proxy = FaultProxy::start(&emu.url(), 1);
    // EC2's client token rules: a token seen before answers with its instances, or IdempotentParameterMismatch.
    proxy.realism(Realism::new());
    let run = |env: &[(&str, &str)], args: &[&str]| release_e2e::release_with(project.path(), Some(&proxy.url()), env, args);
    let aws = AwsView::new(&emu).await;
    run(&[], &["promote", &a, "--env", "staging"]).assert_ok();
    // One at a time: the first batch's instance is launched, then the process dies.
    let crashed = run(&[("RELEASE_TEST_CRASH_AT", "launched")], &["promote", &b, "--env", "staging", "--batch", "1"]);
    assert_ne!(crashed.code, 0, "the hook fired: {crashed:?}");
    run(&[], &["unlock", "--env", "staging"]).assert_ok();
    // The re-run adopts that instance and launches the second batch: the same arguments as the first batch's call.
    let rerun = run(&[], &["promote", &b, "--env", "staging", "--batch", "1", "--output", "json"]);
    rerun.assert_ok();
    let doc = rerun.json();
    assert_eq!(doc["adopted"].as_array().map(Vec::len), Some(1), "{doc}");
    let running = aws.running("hello", "staging").await;
    assert_serves(&running, &aws.elb_members("hello-staging").await, &b, 2);
    assert_eq!(not_terminated(&aws).await.len(), 2, "a's fleet retired, nothing leaked");
    let stats = proxy.stats();
    println!("realism injected: {:#?}\ntokens: {:?}", stats.injected, proxy.tokens());
    assert_eq!(injected(&stats, "ec2:RunInstances replayed") + injected(&stats, "ec2:RunInstances IdempotentParameterMismatch"), 0, "{stats:?}");
    // a's two calls, the crashed run's one and the re-run's one: four launches, four tokens EC2 remembers.
    assert_eq!(proxy.tokens().len(), 4, "{:?}", proxy.tokens());
}
