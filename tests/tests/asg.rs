//! Auto Scaling group fleets (issue 22) against the emulator: the plumbing (launch template versions, groups, target
//! group membership, the ledger) as AWS holds it, asked through the SDK. Timing, failures and crashes are the
//! in-memory cloud's (`release-testkit/tests/asg.rs`): moto models no lifecycle states, health or failed activities.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use release_e2e::{AwsView, Emulator, Project};

const STAGING: &str = "load_balancer = \"hello-staging\"\ncount = 2";
const STAGING_ASG: &str = "target_group = \"hello-web\"\ncount = 2\nfleet = \"asg\"\nscaling = { min = 2, max = 4 }";

async fn autoscaling(emu: &Emulator) -> aws_sdk_autoscaling::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(emu.url())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    aws_sdk_autoscaling::Client::new(&config)
}

async fn tg_members(aws: &AwsView, name: &str) -> BTreeSet<String> {
    let tg = aws.elbv2.describe_target_groups().names(name).send().await.unwrap();
    let arn = tg.target_groups()[0].target_group_arn().unwrap().to_owned();
    let health = aws.elbv2.describe_target_health().target_group_arn(arn).send().await.unwrap();
    health.target_health_descriptions().iter().filter_map(|d| d.target().and_then(|t| t.id()).map(String::from)).collect()
}

/// The `groups` map of each promote record in the ledger, newest first.
async fn ledger_groups(aws: &AwsView) -> Vec<(String, std::collections::HashMap<String, AttributeValue>)> {
    let out = aws.dynamodb.scan().table_name("release-ledger").send().await.unwrap();
    let mut rows: Vec<(String, String, std::collections::HashMap<String, AttributeValue>)> = out
        .items()
        .iter()
        .filter(|i| i.get("action").and_then(|v| v.as_s().ok()).is_some_and(|a| a == "promote"))
        .map(|i| {
            let sk = i["sk"].as_s().unwrap().clone();
            let outcome = i["outcome"].as_s().unwrap().clone();
            let groups = i.get("groups").and_then(|g| g.as_m().ok()).cloned().unwrap_or_default();
            (sk, outcome, groups)
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    rows.into_iter().map(|(_, o, g)| (o, g)).collect()
}

fn s(m: &std::collections::HashMap<String, AttributeValue>, k: &str) -> String {
    match m.get(k) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{k}: {other:?} in {m:?}"),
    }
}

#[tokio::test]
async fn two_promotes_make_two_numbered_versions_and_groups_and_the_first_is_disabled_not_deleted() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace(STAGING, STAGING_ASG));
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    let aws = AwsView::new(&emu).await;
    let asg = autoscaling(&emu).await;

    let before = emu.state();
    let plan = project.release(&emu, &["promote", &a, "--env", "staging", "--plan", "--output", "json"]);
    plan.assert_ok();
    let doc = plan.json();
    let p = &doc["plan"];
    assert_eq!((p["asg"]["group"].as_str(), p["asg"]["version"].as_u64(), p["asg"]["desired"].as_u64()), (Some("hello-staging-v002"), Some(2), Some(2)), "{doc}");
    before.assert_same(&emu.state(), "--plan");

    project.release(&emu, &["promote", &a, "--env", "staging", "--yes"]).assert_ok();
    let run = project.release(&emu, &["promote", &b, "--env", "staging", "--yes", "--output", "json"]);
    run.assert_ok();
    assert_eq!(run.json()["from_commit"], a.as_str());

    // The launch template: the placeholder default version 1, then one numbered version per release.
    let lt = aws.ec2.describe_launch_templates().launch_template_names("hello-staging").send().await.unwrap();
    let lt = &lt.launch_templates()[0];
    assert_eq!((lt.default_version_number(), lt.latest_version_number()), (Some(1), Some(3)));
    let versions = aws.ec2.describe_launch_template_versions().launch_template_name("hello-staging").send().await.unwrap();
    let v3 = versions.launch_template_versions().iter().find(|v| v.version_number() == Some(3)).expect("version 3");
    let data = v3.launch_template_data().unwrap();
    assert_eq!(data.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str()), Some("required"), "IMDSv2");
    assert!(data.user_data().is_some(), "the release's user data is in its version");

    // The groups: each names its version by number; the new one serves, the old one is disabled, not deleted.
    let groups = asg.describe_auto_scaling_groups().auto_scaling_group_names("hello-staging-v002").auto_scaling_group_names("hello-staging-v003").send().await.unwrap();
    let by_name = |n: &str| groups.auto_scaling_groups().iter().find(|g| g.auto_scaling_group_name() == Some(n)).unwrap_or_else(|| panic!("group {n}"));
    let (old, new) = (by_name("hello-staging-v002"), by_name("hello-staging-v003"));
    assert_eq!(new.launch_template().and_then(|t| t.version()), Some("3"), "a number, never $Latest");
    assert_eq!(old.launch_template().and_then(|t| t.version()), Some("2"));
    assert_eq!(new.health_check_type(), Some("ELB"));
    assert!(new.health_check_grace_period().unwrap_or(0) > 0, "the grace period is set explicitly");
    assert_eq!((new.min_size(), new.desired_capacity(), new.max_size()), (Some(2), Some(2), Some(4)));
    let tag = |g: &aws_sdk_autoscaling::types::AutoScalingGroup, k: &str| g.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
    assert_eq!(tag(new, "release:commit").as_deref(), Some(b.as_str()));
    assert_eq!(tag(old, "release:commit").as_deref(), Some(a.as_str()));
    assert!(new.tags().iter().all(|t| t.propagate_at_launch() == Some(true)), "propagated at launch");
    assert_eq!(new.target_group_arns().len(), 1, "attached");
    assert!(old.target_group_arns().is_empty(), "the old group is detached");
    assert!(tag(old, "release:disabled-at").is_some(), "and tagged with when");
    let suspended: BTreeSet<&str> = old.suspended_processes().iter().filter_map(|p| p.process_name()).collect();
    assert_eq!(suspended, BTreeSet::from(["AZRebalance", "AlarmNotification", "InstanceRefresh", "ScheduledActions"]), "healing stays on");
    assert!(new.suspended_processes().is_empty(), "alarms resumed on the serving group");
    assert_eq!(old.min_size(), old.desired_capacity(), "min pinned");
    assert_eq!(old.instances().len(), 2, "its instances are kept");

    // The target group serves exactly the new group's instances; both groups' instances run.
    let new_ids: BTreeSet<String> = new.instances().iter().filter_map(|i| i.instance_id().map(String::from)).collect();
    let old_ids: BTreeSet<String> = old.instances().iter().filter_map(|i| i.instance_id().map(String::from)).collect();
    assert_eq!(tg_members(&aws, "hello-web").await, new_ids);
    let running: BTreeSet<String> = aws.running("hello", "staging").await.into_iter().map(|i| i.id).collect();
    assert_eq!(running, new_ids.union(&old_ids).cloned().collect(), "the old group's instances still run");
    for i in aws.running("hello", "staging").await.iter().filter(|i| new_ids.contains(&i.id)) {
        assert_eq!(i.tags["release:commit"], b, "the group's tags reach its instances");
    }

    // The ledger holds both groups of the second release.
    let rows = ledger_groups(&aws).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (outcome, g) = &rows[0];
    assert_eq!(outcome, "succeeded");
    assert_eq!((s(g, "group"), s(g, "version"), s(g, "replaced"), s(g, "replaced_min")), ("hello-staging-v003".into(), "3".into(), "hello-staging-v002".into(), "2".into()));
    assert_eq!(s(&rows[1].1, "group"), "hello-staging-v002");
    assert!(!rows[1].1.contains_key("replaced"), "the first group replaced none");
}

#[tokio::test]
async fn a_rollback_inside_the_window_enables_the_previous_group_and_launches_nothing() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace(STAGING, STAGING_ASG));
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    let aws = AwsView::new(&emu).await;
    let asg = autoscaling(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "staging", "--yes"]).assert_ok();
    let launched: BTreeSet<String> = aws.app_instances("hello").await.into_iter().map(|i| i.id).collect();

    let run = project.release(&emu, &["rollback", "--env", "staging", "--yes", "--output", "json"]);
    run.assert_ok();
    let doc = run.json();
    assert_eq!((doc["path"].as_str(), doc["to_commit"].as_str()), (Some("enable-group"), Some(a.as_str())), "{doc}");
    assert_eq!(doc["groups"]["enable"], "hello-staging-v002", "{doc}");

    let after: BTreeSet<String> = aws.app_instances("hello").await.into_iter().map(|i| i.id).collect();
    assert_eq!(after, launched, "no instance launched");
    let groups = asg.describe_auto_scaling_groups().auto_scaling_group_names("hello-staging-v002").auto_scaling_group_names("hello-staging-v003").send().await.unwrap();
    let by_name = |n: &str| groups.auto_scaling_groups().iter().find(|g| g.auto_scaling_group_name() == Some(n)).unwrap_or_else(|| panic!("group {n}"));
    let (back, current) = (by_name("hello-staging-v002"), by_name("hello-staging-v003"));
    assert_eq!(back.target_group_arns().len(), 1, "the previous group is attached again");
    assert!(current.target_group_arns().is_empty(), "the current one is detached");
    assert!(back.suspended_processes().is_empty(), "its processes resumed");
    assert!(!back.tags().iter().any(|t| t.key() == Some("release:disabled-at")), "no longer tagged disabled");
    assert!(current.tags().iter().any(|t| t.key() == Some("release:disabled-at")));
    let back_ids: BTreeSet<String> = back.instances().iter().filter_map(|i| i.instance_id().map(String::from)).collect();
    assert_eq!(tg_members(&aws, "hello-web").await, back_ids, "the target group serves the previous release's instances");
    let ledger = aws.ledger("release-ledger").await;
    let r = ledger.iter().find(|r| r["action"] == "rollback").expect("a rollback record");
    assert_eq!((r["outcome"].as_str(), r["path"].as_str()), ("succeeded", "enable-group"));
    // status: the serving group and the disabled one with its window.
    let st = project.release(&emu, &["status", "--env", "staging"]);
    st.assert_ok();
    assert!(st.stdout.contains("group hello-staging-v002 serving: 2 desired (min 2, max 4), 2 InService"), "{}", st.stdout);
    assert!(st.stdout.contains("group hello-staging-v003 disabled ") && st.stdout.contains("left of its rollback window"), "{}", st.stdout);
}
