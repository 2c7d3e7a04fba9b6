//! The engine's promises with real processes against the emulator: one operator at a time (two `release`
//! processes at once), a broken lock noticed, Ctrl-C and SIGTERM as documented, the load balancer as the truth,
//! plans that write nothing, errors that keep their kind.

use std::time::Duration;

use release_e2e::{AwsView, Emulator, Project};
use release_testkit::proxy::{Fault, FaultProxy, Rule, When};

const LONG: Duration = Duration::from_secs(90);

fn set(project: &Project, from: &str, to: &str) {
    let text = project.read("pipelines/hello.toml");
    assert!(text.contains(from), "{from:?} not in the pipeline");
    project.write("pipelines/hello.toml", &text.replacen(from, to, 1));
}

async fn weights(aws: &AwsView) -> Vec<(String, i64)> {
    aws.weighted_records("example.com.", "hello.example.com.").await.into_iter().map(|(c, w, _)| (c, w)).collect()
}

fn newest(ledger: &[std::collections::BTreeMap<String, String>], action: &str) -> std::collections::BTreeMap<String, String> {
    ledger.iter().find(|r| r["action"] == action).cloned().unwrap_or_else(|| panic!("no {action} record: {ledger:#?}"))
}

#[tokio::test]
async fn a_switch_during_a_running_promote_is_refused_by_the_lock() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    // prod1 was live until now: the promote waits `settle` (5 s in the demo) under the lock before replacing it.
    let promote = project.background(&emu.url(), &[], &["promote", &b, "--env", "prod", "--yes"]);
    promote.wait_for("prod1 stopped taking traffic moments ago", LONG);
    let before = weights(&aws).await;
    let switch = project.release(&emu, &["switch", "prod1", "--yes", "--force"]);
    assert_eq!(switch.code, 5, "{switch:?}");
    assert!(switch.error_line().contains("environment prod is locked by ") && switch.error_line().contains(&format!("promote {} to prod", &b[..12])), "{}", switch.stderr);
    assert_eq!(weights(&aws).await, before, "traffic did not move under the promote");
    let done = promote.finish(LONG);
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(weights(&aws).await, vec![("prod1".into(), 0), ("prod2".into(), 100)], "a promote never switches");
    assert!(aws.running("hello", "prod1").await.iter().all(|i| i.tags["release:commit"] == b));
}

#[tokio::test]
async fn a_live_lock_is_not_unlocked_and_a_forced_break_stops_its_holder_who_cleans_up() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let old = aws.elb_members("hello-staging").await;
    // Health answers slowly, so the promote is still before its point of no return when the lock is broken.
    let proxy = FaultProxy::start(&emu.url(), 3);
    proxy.add(Rule::new(Fault::Latency(Duration::from_secs(3)), When::Always).operation("DescribeInstanceHealth"));
    let promote = project.background(&proxy.url(), &[], &["promote", &b, "--env", "staging", "--output", "json"]);
    promote.wait_for("registered 2 instance(s)", LONG);

    let refused = project.release(&emu, &["unlock", "--env", "staging"]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(refused.error_line().contains("the lock of env staging is alive"), "{}", refused.stderr);
    let broken = project.release(&emu, &["unlock", "--env", "staging", "--force"]);
    broken.assert_ok();
    assert!(broken.stdout.contains(&format!("promote {} to staging", &b[..12])), "unlock says what the holder was doing: {}", broken.stdout);

    let done = promote.finish(LONG);
    assert_eq!(done.code, 5, "the holder noticed: {done:?}");
    assert!(!done.stderr.contains("promoted "), "{}", done.stderr);
    let error = &done.json()["error"];
    assert_eq!((error["kind"].as_str(), error["rolled_back"].as_bool()), (Some("lock-held"), Some(true)), "{error}");
    assert!(error["message"].as_str().unwrap().contains("lost the lock of env staging: it was broken"), "{error}");
    assert_eq!(aws.elb_members("hello-staging").await, old, "the old fleet still serves");
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    assert_eq!(running, old, "the new instances were removed");
    let record = newest(&aws.ledger("release-ledger").await, "promote");
    assert_eq!(record["outcome"], "lost-lock", "{record:?}");
    println!("forced unlock: the holder stopped with: {}", done.error_line());
}

#[tokio::test]
async fn ctrl_c_before_the_point_of_no_return_puts_the_environment_back() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let old = aws.elb_members("hello-staging").await;
    let proxy = FaultProxy::start(&emu.url(), 3);
    proxy.add(Rule::new(Fault::Latency(Duration::from_secs(3)), When::Always).operation("DescribeInstanceHealth"));
    let promote = project.background(&proxy.url(), &[], &["promote", &b, "--env", "staging"]);
    promote.wait_for("registered 2 instance(s)", LONG);
    promote.signal("INT");
    let done = promote.finish(LONG);
    assert_eq!(done.code, 130, "{done:?}");
    assert!(done.stderr.contains("interrupted: stopping promote"), "{}", done.stderr);
    assert!(done.error_line().contains("the 2 new instance(s) were removed and staging serves what it served before"), "{}", done.stderr);
    assert_eq!(aws.elb_members("hello-staging").await, old);
    assert_eq!(aws.running("hello", "staging").await.len(), 2);
    assert_eq!(newest(&aws.ledger("release-ledger").await, "promote")["outcome"], "interrupted");
}

#[tokio::test]
async fn ctrl_c_while_draining_finishes_and_a_second_stops_at_once_for_a_rerun_to_finish() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    set(&project, "drain = \"2s\"", "drain = \"6s\"");

    // One signal past the point of no return: acknowledged, the promote finishes, exit 0.
    let promote = project.background(&emu.url(), &[], &["promote", &b, "--env", "staging"]);
    promote.wait_for("draining 2 instance(s)", LONG);
    promote.signal("INT");
    let done = promote.finish(LONG);
    assert_eq!(done.code, 0, "{done:?}");
    assert!(done.stderr.contains("the old fleet is already leaving: finishing; Ctrl-C again stops at once"), "{}", done.stderr);
    assert!(aws.running("hello", "staging").await.iter().all(|i| i.tags["release:commit"] == b));

    // Two signals: it stops at once, exit 130, the record stays open; a re-run adopts and finishes.
    set(&project, "drain = \"6s\"", "drain = \"30s\"");
    let promote = project.background(&emu.url(), &[], &["promote", &a, "--env", "staging"]);
    promote.wait_for("draining 2 instance(s)", LONG);
    promote.signal("INT");
    promote.wait_for("finishing", LONG);
    promote.signal("TERM");
    let stopped = promote.finish(Duration::from_secs(10));
    assert_eq!(stopped.code, 130, "{stopped:?}");
    assert!(stopped.stderr.contains("stopping at once"), "{}", stopped.stderr);
    let open = newest(&aws.ledger("release-ledger").await, "promote");
    assert_eq!(open["outcome"], "started", "resumable: {open:?}");
    assert_eq!(aws.app_instances("hello").await.iter().filter(|i| i.state == "running" && i.tags["release:env"] == "staging").count(), 4, "the old instances drain, not yet terminated");
    set(&project, "drain = \"30s\"", "drain = \"2s\"");
    // The config changed back: the re-run is for what runs now; make it the same again to adopt.
    set(&project, "drain = \"2s\"", "drain = \"30s\"");
    let rerun = project.release(&emu, &["promote", &a, "--env", "staging", "--output", "json"]);
    rerun.assert_ok();
    assert_eq!(rerun.json()["release_id"], open["release_id"].as_str(), "it adopted the interrupted release");
    let live = aws.running("hello", "staging").await;
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|i| i.tags["release:commit"] == a));
    assert_eq!(aws.elb_members("hello-staging").await.len(), 2);
    assert_eq!(newest(&aws.ledger("release-ledger").await, "promote")["outcome"], "succeeded");
}

#[tokio::test]
async fn a_renamed_cluster_sees_the_old_instances_as_strays_and_its_promote_retires_them() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let old = aws.elb_members("hello-staging").await;
    set(&project, "[env.staging.clusters.staging]", "[env.staging.clusters.stage]");
    // A new cluster name means new security groups (same load balancer, which moves into the new one).
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();

    let status = project.release(&emu, &["status", "--env", "staging", "--output", "json"]).json();
    let strays = status["environments"][0]["clusters"][0]["strays"].as_array().unwrap().clone();
    assert_eq!(strays.len(), 2, "{status}");
    assert!(strays.iter().all(|s| s["this_app"] == true && s["cluster"] == "staging"), "{strays:?}");
    let text = project.release(&emu, &["status", "--env", "staging"]);
    assert!(text.stdout.contains(&format!("stray in load balancer hello-staging: {} (hello/staging/staging {})", old[0], &a[..12])), "{}", text.stdout);

    let run = project.release(&emu, &["promote", &b, "--env", "staging", "--output", "json"]);
    run.assert_ok();
    let doc = run.json();
    assert_eq!(doc["strays_retired"].as_array().unwrap().len(), 2, "{doc}");
    let members = aws.elb_members("hello-staging").await;
    let new: Vec<String> = aws.running("hello", "stage").await.iter().map(|i| i.id.clone()).collect();
    assert_eq!(members, new, "the load balancer serves exactly the new cluster's fleet");
    assert!(aws.running("hello", "staging").await.is_empty(), "the renamed cluster's old instances are gone");
    let after = project.release(&emu, &["status", "--env", "staging", "--output", "json"]).json();
    assert!(after["environments"][0]["clusters"][0]["strays"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_switch_to_a_cluster_serving_strays_is_refused_naming_them() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    // Someone registers a staging instance into prod2's load balancer by hand.
    let intruder = aws.running("hello", "staging").await[0].id.clone();
    aws.elb
        .register_instances_with_load_balancer()
        .load_balancer_name("hello-prod2")
        .instances(aws_sdk_elasticloadbalancing::types::Instance::builder().instance_id(&intruder).build())
        .send()
        .await
        .unwrap();
    let before = emu.state();
    let switch = project.release(&emu, &["switch", "prod2", "--yes"]);
    assert_eq!(switch.code, 4, "{switch:?}");
    assert!(switch.error_line().contains(&format!("serves instances that are not its current ones: {intruder} (hello/staging/staging {})", &a[..12])), "{}", switch.stderr);
    before.assert_same(&emu.state(), "a switch refused for strays");
    let status = project.release(&emu, &["status", "--env", "prod", "--output", "json"]).json();
    let prod2 = &status["environments"][0]["clusters"][1];
    assert_eq!(prod2["strays"][0]["id"], intruder.as_str(), "{status}");
    // Forced, it goes, and the ledger says so.
    project.release(&emu, &["switch", "prod2", "--yes", "--force"]).assert_ok();
    let record = newest(&aws.ledger("release-ledger").await, "switch");
    assert_eq!(record["forced"], "true");
    assert!(record["detail"].contains(&format!("stray {intruder}")), "{record:?}");
}

#[tokio::test]
async fn validate_refuses_a_load_balancer_used_by_two_apps() {
    let project = Project::demo_repo();
    let other = project.read("pipelines/hello.toml").replace("app = \"hello\"", "app = \"other\"").replace("hello-prod1", "other-prod1").replace("hello-prod2", "other-prod2");
    // `other` keeps hello's staging load balancer.
    project.write("pipelines/other.toml", &other);
    let run = release_e2e::release(project.path(), None, &["validate"]);
    assert_eq!(run.code, 2, "{run:?}");
    let line = other.lines().position(|l| l.starts_with("load_balancer = \"hello-staging\"")).unwrap() + 1;
    assert!(
        run.stderr.contains(&format!("pipelines/other.toml:{line}:17: load balancer hello-staging of cluster other/staging/staging is also used by cluster hello/staging/staging in pipelines/hello.toml")),
        "{}",
        run.stderr
    );
    let promote = release_e2e::release(project.path(), None, &["promote", "HEAD", "--env", "staging", "--app", "other"]);
    assert_eq!(promote.code, 2, "a command of the app refuses to start: {promote:?}");
}

#[tokio::test]
async fn plans_write_nothing_even_with_unfinished_records_around() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes", "--force"]).assert_ok();
    // A switch dies after recording itself: an unfinished record, and a lock held by a dead process.
    let crashed = project.release_env(&emu, &[("RELEASE_TEST_CRASH_AT", "recorded")], &["switch", "prod1", "--yes"]);
    assert_ne!(crashed.code, 0);
    let before = emu.state();
    for args in [
        vec!["promote", &a, "--env", "prod", "--plan"],
        vec!["promote", &b, "--env", "staging", "--plan"],
        vec!["switch", "prod1", "--plan"],
        vec!["switch", "prod1", "--weight", "10", "--plan"],
        vec!["rollback", "--env", "prod", "--plan"],
        vec!["provision", "--env", "prod", "--plan"],
        vec!["status"],
        vec!["history"],
    ] {
        let run = project.release(&emu, &args);
        // Refusals and "nothing to roll back to" are fine here; what matters is that nothing is written.
        assert!([0, 3, 4].contains(&run.code), "{args:?}: {run:?}");
        before.assert_same(&emu.state(), &format!("{args:?}"));
    }
}

#[tokio::test]
async fn a_deleted_load_balancer_is_not_found_naming_the_environment_and_nothing_is_launched() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    aws.elb.delete_load_balancer().load_balancer_name("hello-staging").send().await.unwrap();
    let run = project.release(&emu, &["promote", &a, "--env", "staging", "--output", "json"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.error_line(), "error: load balancer hello-staging of cluster staging does not exist; run `release provision --env staging`");
    assert_eq!(run.json()["error"]["kind"], "not-found");
    assert!(aws.app_instances("hello").await.is_empty(), "nothing launched");
    let plan = project.release(&emu, &["provision", "--env", "staging", "--plan"]);
    assert!(plan.stdout.contains("create classic ELB hello-staging"), "{}", plan.stdout);
}

#[tokio::test]
async fn history_keeps_showing_an_environment_removed_from_the_file() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let pristine = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &format!("{pristine}\n[env.qa.clusters.qa]\nload_balancer = \"hello-qa\"\ncount = 1\n"));
    project.release(&emu, &["provision", "--env", "qa"]).assert_ok();
    project.release(&emu, &["promote", &a, "--env", "qa"]).assert_ok();
    project.write("pipelines/hello.toml", &pristine);
    let all = project.release(&emu, &["history", "--output", "json"]).json();
    assert!(all["records"].as_array().unwrap().iter().any(|r| r["env"] == "qa" && r["action"] == "promote"), "{all}");
    let qa = project.release(&emu, &["history", "--env", "qa"]);
    qa.assert_ok();
    assert!(qa.stdout.lines().any(|l| l.contains(" promote ") && l.contains(" qa ")), "{}", qa.stdout);
}

#[tokio::test]
async fn status_counts_against_count_and_never_panics_on_odd_tags() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let victim = aws.running("hello", "staging").await[0].id.clone();
    aws.ec2.stop_instances().instance_ids(&victim).send().await.unwrap();
    // Someone tags an instance with a short commit by hand and registers it.
    aws.ec2
        .create_tags()
        .resources(&victim)
        .tags(aws_sdk_ec2::types::Tag::builder().key("release:commit").value("abc").build())
        .send()
        .await
        .unwrap();
    let text = project.release(&emu, &["status", "--env", "staging"]);
    text.assert_ok();
    assert!(text.stdout.lines().any(|l| l.starts_with("staging    staging") && l.ends_with(" 1/2")), "healthy of count: {}", text.stdout);
    let json = project.release(&emu, &["status", "--env", "staging", "--output", "json"]);
    json.assert_ok();
    let c = &json.json()["environments"][0]["clusters"][0];
    assert_eq!((c["healthy"].as_u64(), c["count"].as_u64(), c["total"].as_u64()), (Some(1), Some(2), Some(2)));
    project.release(&emu, &["history"]).assert_ok();
}

#[tokio::test]
async fn an_instance_terminated_by_hand_is_named_as_such_not_a_stray_status_fails_and_a_promote_replaces_it() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let fleet: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    let victim = fleet[0].clone();
    aws.ec2.terminate_instances().instance_ids(&victim).send().await.unwrap();
    assert!(!aws.running("hello", "staging").await.iter().any(|i| i.id == victim), "EC2 says it is gone");
    assert!(aws.elb_members("hello-staging").await.contains(&victim), "still registered in the load balancer");

    let text = project.release(&emu, &["status", "--env", "staging"]);
    assert_eq!(text.code, 4, "a live cluster below its count: {text:?}");
    assert!(text.stdout.contains(&format!("{victim} of this cluster: terminated (by hand?)")), "{}", text.stdout);
    assert!(!text.stdout.contains("stray"), "its own instance is no stray: {}", text.stdout);
    assert!(text.error_line().contains("1/2") && text.error_line().contains(&victim), "{}", text.stderr);
    let json = project.release(&emu, &["status", "--env", "staging", "--output", "json"]);
    assert_eq!(json.code, 4, "{json:?}");
    let doc = json.json();
    assert_eq!((doc["ok"].as_bool(), doc["error"]["exit_code"].as_i64()), (Some(false), Some(4)), "{doc:#}");
    let cluster = &doc["environments"][0]["clusters"][0];
    assert_eq!(cluster["terminated"], serde_json::json!([victim]), "{doc:#}");
    assert_eq!(cluster["strays"], serde_json::json!([]), "{doc:#}");
    assert_eq!((cluster["total"].as_u64(), cluster["count"].as_u64()), (Some(1), Some(2)), "{doc:#}");

    let promote = project.release(&emu, &["promote", &b, "--env", "staging", "--output", "json"]);
    promote.assert_ok();
    let report = promote.json();
    assert_eq!(report["terminated_by_hand"], serde_json::json!([victim]), "{report:#}");
    assert_eq!(report["strays_retired"], serde_json::json!([]), "{report:#}");
    let running = aws.running("hello", "staging").await;
    assert_eq!(running.iter().map(|i| i.tags["release:commit"].clone()).collect::<Vec<_>>(), vec![b.clone(); 2]);
    let mut members = aws.elb_members("hello-staging").await;
    members.sort();
    let mut ids: Vec<String> = running.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(members, ids, "the terminated one is deregistered with the old fleet");
    let history = project.release(&emu, &["history", "--env", "staging", "--output", "json"]).json();
    assert_eq!(history["records"][0]["terminated_by_hand"], serde_json::json!([victim]), "{history:#}");
    project.release(&emu, &["status", "--env", "staging"]).assert_ok();
}
