//! `release switch`, `status`, `rollback` and `history` against the emulator, reading Route53, ELB and the ledger back.

use release_e2e::{AwsView, Emulator, Project, Run};

async fn weights(aws: &AwsView) -> Vec<(String, i64)> {
    aws.weighted_records("example.com.", "hello.example.com.").await.into_iter().map(|(c, w, _)| (c, w)).collect()
}

fn w(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(c, w)| (c.to_string(), *w)).collect()
}

/// `status --output json` as (cluster, role, weight, commit, healthy/total) rows of prod.
fn prod_status(project: &Project, emu: &Emulator) -> Vec<(String, String, Option<u64>, Option<String>, String)> {
    let doc = project.release(emu, &["status", "--env", "prod", "--output", "json"]).json();
    doc["environments"][0]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_owned(),
                c["role"].as_str().unwrap().to_owned(),
                c["weight"].as_u64(),
                c["commit"].as_str().map(|s| s[..12].to_owned()),
                format!("{}/{}", c["healthy"], c["total"]),
            )
        })
        .collect()
}

fn one_change_batch(run: &Run) {
    let doc = run.json();
    assert_eq!(doc["api_calls"]["Route 53:ChangeResourceRecordSets"], 1, "{}", run.stdout);
    assert_eq!(doc["changed"], true);
}

/// An operator turned EvaluateTargetHealth off on one record by hand (Route53 then keeps sending that cluster its
/// share even when its load balancer has no healthy target). A switch and a provision keep it off, and the plan
/// says so; release never flips it silently (it used to write `true` on every record it changed).
#[tokio::test]
async fn evaluate_target_health_set_by_hand_is_kept_and_shown() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    let (zone, name) = ("example.com.", "hello.example.com.");
    assert_eq!(aws.evaluate_target_health(zone, name).await, vec![("prod1".into(), true), ("prod2".into(), true)], "provision writes it on");
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok(); // -> prod2
    aws.set_evaluate_target_health(zone, name, "prod2", false).await;

    let plan = project.release(&emu, &["switch", "prod2", "--plan", "--output", "json"]);
    plan.assert_ok();
    assert_eq!(plan.json()["health_not_evaluated"], serde_json::json!(["prod2"]), "{}", plan.stdout);
    let text = project.release(&emu, &["switch", "prod2", "--plan"]);
    assert!(text.stdout.contains("EvaluateTargetHealth is off on the record of prod2 (set by hand): kept so"), "{}", text.stdout);

    let flip = project.release(&emu, &["switch", "prod2", "--yes", "--output", "json"]);
    flip.assert_ok();
    one_change_batch(&flip);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    assert_eq!(aws.evaluate_target_health(zone, name).await, vec![("prod1".into(), true), ("prod2".into(), false)], "the switch kept the operator's value");

    project.release(&emu, &["provision", "--env", "prod", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes"]).assert_ok(); // -> prod1
    let back = project.release(&emu, &["switch", "prod1", "--yes"]);
    back.assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    assert_eq!(aws.evaluate_target_health(zone, name).await, vec![("prod1".into(), true), ("prod2".into(), false)], "provision and a switch back kept it too");
}

#[tokio::test]
async fn flips_change_exactly_the_weights_in_one_batch_and_status_tells_the_truth() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok(); // -> prod2

    let flip = project.release(&emu, &["switch", "prod2", "--yes", "--output", "json"]);
    flip.assert_ok();
    one_change_batch(&flip);
    println!("switch prod1 -> prod2 on the emulator: {:.3}s wall, {} AWS calls: {}", flip.elapsed.as_secs_f64(), flip.json()["api_calls_total"], flip.json()["api_calls"]);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    let sa = a[..12].to_owned();
    assert_eq!(prod_status(&project, &emu), vec![
        ("prod1".into(), "idle".into(), Some(0), None, "0/0".into()),
        ("prod2".into(), "live".into(), Some(100), Some(sa.clone()), "4/4".into()),
    ]);

    project.release(&emu, &["promote", &b, "--env", "prod", "--yes"]).assert_ok(); // -> prod1, now idle
    let flip = project.release(&emu, &["switch", "prod1", "--yes", "--output", "json"]);
    flip.assert_ok();
    one_change_batch(&flip);
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    assert_eq!(prod_status(&project, &emu), vec![
        ("prod1".into(), "live".into(), Some(100), Some(b[..12].to_owned()), "4/4".into()),
        ("prod2".into(), "idle".into(), Some(0), Some(sa.clone()), "4/4".into()),
    ]);

    let flip = project.release(&emu, &["switch", "prod2", "--yes", "--output", "json"]);
    flip.assert_ok();
    one_change_batch(&flip);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));

    // To the live one: nothing to do, nothing changed.
    let before = emu.state();
    let again = project.release(&emu, &["switch", "prod2", "--yes", "--output", "json"]);
    again.assert_ok();
    assert_eq!(again.json()["changed"], false);
    assert!(again.json()["api_calls"].get("Route 53:ChangeResourceRecordSets").is_none());
    before.assert_same(&emu.state(), "a switch to the live cluster");

    // status asks a bounded number of times: no call per instance.
    let status = project.release(&emu, &["status", "--output", "json"]).json();
    println!("status of 2 environments, 3 clusters: {} AWS calls: {}", status["api_calls_total"], status["api_calls"]);
    assert_eq!(status["api_calls"]["EC2:DescribeInstances"], 1);
    assert_eq!(status["api_calls"]["EC2:DescribeImages"], 1);

    // The ledger: from -> to and who, for each switch.
    let history = project.release(&emu, &["history", "--env", "prod", "--output", "json"]).json();
    let switches: Vec<&serde_json::Value> = history["records"].as_array().unwrap().iter().filter(|r| r["action"] == "switch").collect();
    assert_eq!(switches.len(), 3);
    assert_eq!((switches[0]["from"].clone(), switches[0]["to"].clone()), (serde_json::json!({"prod1": 100, "prod2": 0}), serde_json::json!({"prod1": 0, "prod2": 100})));
    assert_eq!(switches[0]["previous"]["cluster"], "prod1", "what was live before is recorded for rollback");
    assert!(switches.iter().all(|s| s["outcome"] == "succeeded" && !s["actor"].as_str().unwrap().is_empty()));
}

#[tokio::test]
async fn unready_targets_are_refused_unless_forced() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    // No instances at all.
    let before = emu.state();
    let empty = project.release(&emu, &["switch", "prod2", "--yes"]);
    assert_eq!(empty.code, 4, "{empty:?}");
    assert_eq!(
        empty.error_line(),
        "error: cluster prod2 is not ready for traffic: cluster prod2 has no instances; promote a commit to it first; nothing was changed (--force to switch anyway)"
    );
    before.assert_same(&emu.state(), "a refused switch");

    // A stopped instance: OutOfService.
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    let victim = aws.running("hello", "prod2").await[0].id.clone();
    aws.ec2.stop_instances().instance_ids(&victim).send().await.unwrap();
    let before = emu.state();
    let stopped = project.release(&emu, &["switch", "prod2", "--yes"]);
    assert_eq!(stopped.code, 4, "{stopped:?}");
    assert!(stopped.error_line().contains(&format!("{victim} is Unhealthy in load balancer hello-prod2")), "{}", stopped.stderr);
    assert!(stopped.error_line().contains("3 of 4 instances running"), "{}", stopped.stderr);
    before.assert_same(&emu.state(), "a refused switch");
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));

    // --force goes through and the ledger says so.
    let forced = project.release(&emu, &["switch", "prod2", "--force", "--yes", "--output", "json"]);
    forced.assert_ok();
    assert_eq!(forced.json()["forced"], true);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    let ledger = aws.ledger("release-ledger").await;
    let sw = ledger.iter().find(|r| r["action"] == "switch").unwrap();
    assert_eq!(sw["forced"], "true");
    assert!(sw["detail"].contains("forced past"), "{sw:?}");
}

#[tokio::test]
async fn a_gradual_shift_leaves_both_live_with_their_weights() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    let run = project.release(&emu, &["switch", "prod2", "--weight", "10", "--yes", "--output", "json"]);
    run.assert_ok();
    one_change_batch(&run);
    assert_eq!(weights(&aws).await, w(&[("prod1", 90), ("prod2", 10)]));
    let status = prod_status(&project, &emu);
    assert_eq!((status[0].1.as_str(), status[0].2), ("live", Some(90)));
    assert_eq!((status[1].1.as_str(), status[1].2), ("live", Some(10)));
    let text = project.release(&emu, &["status", "--env", "prod"]);
    assert!(text.stdout.contains("prod2      live 10%"), "{}", text.stdout);
    let bad = project.release(&emu, &["switch", "prod2", "--weight", "150", "--yes"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[tokio::test]
async fn rollback_flips_back_when_it_can_never_toggles_and_promotes_then_flips_when_it_must() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    // prod2 runs A and goes live; prod1 gets B and goes live.
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes", "--force"]).assert_ok();
    project.release(&emu, &["switch", "prod1", "--yes"]).assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));

    // Path 1: prod2 still runs A, healthy: flip back. The plan names where it goes and changes nothing.
    let before = emu.state();
    let plan = project.release(&emu, &["rollback", "--env", "prod", "--plan"]);
    plan.assert_ok();
    assert!(plan.stdout.starts_with(&format!("plan: roll prod back from {} on prod1 to {} on prod2 (it still runs there, healthy: one switch)", &b[..12], &a[..12])), "{}", plan.stdout);
    before.assert_same(&emu.state(), "rollback --plan");
    let back = project.release(&emu, &["rollback", "--env", "prod", "--yes", "--output", "json"]);
    back.assert_ok();
    assert_eq!(back.json()["path"], "switch-back");
    assert_eq!(back.json()["to_commit"], a.as_str());
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));

    // A second rollback never goes back to B, the release just rolled away from: there is nothing before A.
    let before = emu.state();
    let toggle = project.release(&emu, &["rollback", "--env", "prod", "--yes"]);
    assert_eq!(toggle.code, 3, "{toggle:?}");
    assert_eq!(toggle.error_line(), format!("error: nothing to roll back to in env prod: the ledger holds no release live before {} on prod2", &a[..12]));
    before.assert_same(&emu.state(), "a refused rollback");

    // Path 2: B goes live again by hand, prod2 is given B too; rolling back to A now needs a promote, then a flip.
    project.release(&emu, &["switch", "prod1", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes", "--force"]).assert_ok(); // prod2 <- B
    let again = project.release(&emu, &["rollback", "--env", "prod", "--yes", "--output", "json"]);
    again.assert_ok();
    let doc = again.json();
    assert_eq!(doc["path"], "promote-then-switch", "{}", again.stdout);
    assert_eq!(doc["to_commit"], a.as_str());
    assert_eq!(doc["cluster"], "prod2");
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    let prod2 = aws.running("hello", "prod2").await;
    assert_eq!(prod2.len(), 4);
    assert!(prod2.iter().all(|i| i.tags["release:commit"] == a));

    // The ledger: each rollback is one record, its promote inside it.
    let history = project.release(&emu, &["history", "--env", "prod", "--output", "json"]).json();
    let records = history["records"].as_array().unwrap();
    let steps: Vec<(String, String)> = records.iter().map(|r| (r["action"].as_str().unwrap().to_owned(), r["cluster"].as_str().unwrap_or("").to_owned())).collect();
    assert_eq!(&steps[..2], &[("rollback".into(), "prod2".into()), ("promote".into(), "prod2".into())]);
    assert_eq!(records[0]["path"], "promote-then-switch");
    assert_eq!(records[0]["promote"]["new_instances"].as_array().map(Vec::len), Some(4));
    assert!(records.iter().all(|r| r["outcome"] == "succeeded"), "{history}");
}

#[tokio::test]
async fn rollback_of_an_in_place_environment_promotes_the_previous_commit() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    let nothing = project.release(&emu, &["rollback", "--env", "staging", "--yes"]);
    assert_eq!(nothing.code, 3, "{nothing:?}");
    assert_eq!(nothing.error_line(), "error: nothing to roll back to in env staging: no release is live yet (cluster staging runs nothing)");
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "staging"]).assert_ok();
    let run = project.release(&emu, &["rollback", "--env", "staging", "--yes", "--output", "json"]);
    run.assert_ok();
    assert_eq!(run.json()["path"], "in-place");
    let live = aws.running("hello", "staging").await;
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|i| i.tags["release:commit"] == a));
    let text = project.release(&emu, &["history", "--env", "staging", "--limit", "2"]);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", text.stdout);
    assert!(lines[1].contains("rollback") && lines[1].contains(&format!("{} -> {}", &b[..12], &a[..12])) && lines[1].contains(" succeeded "), "recorded as a rollback: {}", text.stdout);
}

#[tokio::test]
async fn switch_of_an_unknown_cluster_or_a_dnsless_env_is_bad_input() {
    let emu = Emulator::start();
    let (project, _, _) = Project::baked_demo(&emu);
    let before = emu.state();
    let unknown = project.release(&emu, &["switch", "prod3", "--yes"]);
    assert_eq!(unknown.code, 3);
    assert_eq!(unknown.error_line(), "error: no cluster `prod3` in pipelines/hello.toml; known: staging, prod1, prod2");
    let staging = project.release(&emu, &["switch", "staging", "--yes"]);
    assert_eq!(staging.code, 2);
    assert!(staging.error_line().starts_with("error: env staging has no dns, so there is nothing to switch"), "{}", staging.stderr);
    before.assert_same(&emu.state(), "bad switches");
}

#[tokio::test]
async fn kill_9_at_every_step_of_a_switch_then_a_rerun_converges() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    let mut table = vec![format!("{:<10} {:>10} {:<28} {}", "crash at", "first exit", "weights after re-run", "ledger")];
    let mut target = "prod2";
    for step in ["locked", "recorded", "changed"] {
        let crashed = project.release_env(&emu, &[("RELEASE_TEST_CRASH_AT", step)], &["switch", target, "--yes"]);
        assert_ne!(crashed.code, 0, "{step}: {crashed:?}");
        project.release(&emu, &["unlock", "--env", "prod"]).assert_ok();
        project.release(&emu, &["switch", target, "--yes"]).assert_ok();
        let got = weights(&aws).await;
        let want = if target == "prod2" { w(&[("prod1", 0), ("prod2", 100)]) } else { w(&[("prod1", 100), ("prod2", 0)]) };
        assert_eq!(got, want, "{step}");
        let ledger = aws.ledger("release-ledger").await;
        assert!(ledger.iter().all(|r| r["outcome"] != "started"), "{step}: {ledger:#?}");
        let outcomes: Vec<String> = ledger.iter().filter(|r| r["action"] == "switch").take(2).map(|r| r["outcome"].clone()).collect();
        table.push(format!("{step:<10} {:>10} {:<28} {}", crashed.code, format!("{got:?}"), outcomes.join(", ")));
        // Flip the other way next time, so that every step is tried on a real change (prod1 needs instances).
        if target == "prod2" {
            project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
            target = "prod1";
        } else {
            target = "prod2";
        }
    }
    println!("switch kill -9 points tried on the emulator: 3\n{}", table.join("\n"));
}

#[tokio::test]
async fn in_place_rollbacks_walk_back_v3_v2_v1_and_stop() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let c = project.bake_new(&emu, "v3");
    let aws = AwsView::new(&emu).await;
    for sha in [&a, &b, &c] {
        project.release(&emu, &["promote", sha, "--env", "staging"]).assert_ok();
    }
    for want in [&b, &a] {
        let run = project.release(&emu, &["rollback", "--env", "staging", "--yes"]);
        run.assert_ok();
        let live = aws.running("hello", "staging").await;
        assert!(live.len() == 2 && live.iter().all(|i| &i.tags["release:commit"] == want), "{}", run.stdout);
    }
    let end = project.release(&emu, &["rollback", "--env", "staging", "--yes"]);
    assert_eq!(end.code, 3, "{end:?}");
    assert!(end.error_line().contains(&format!("no release live before {}", &a[..12])), "{}", end.stderr);
}

#[tokio::test]
async fn rollback_during_a_gradual_shift_restores_the_weights_and_touches_no_instance() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes", "--force"]).assert_ok();
    project.release(&emu, &["switch", "prod1", "--weight", "10", "--yes"]).assert_ok();
    project.release(&emu, &["switch", "prod1", "--weight", "50", "--yes"]).assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 50), ("prod2", 50)]));
    let instances = aws.app_instances("hello").await;
    let run = project.release(&emu, &["rollback", "--env", "prod", "--yes", "--output", "json"]);
    run.assert_ok();
    assert_eq!(run.json()["path"], "restore-weights");
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]), "the weights from before the shift");
    assert_eq!(aws.app_instances("hello").await.iter().map(|i| (&i.id, &i.state)).collect::<Vec<_>>(), instances.iter().map(|i| (&i.id, &i.state)).collect::<Vec<_>>(), "no instance touched");
    let calls = &run.json()["api_calls"];
    assert_eq!(calls["Route 53:ChangeResourceRecordSets"], 1);
    assert!(calls.get("EC2:RunInstances").is_none() && calls.get("EC2:TerminateInstances").is_none(), "{calls}");
}

/// Every record names the commit it made live: a promote its commit, a switch the commit its target runs, a
/// rollback the commit it went back to (blue/green and in place), in the ledger row itself (read from DynamoDB)
/// and in `history --output json`, not only in the text table.
#[tokio::test]
async fn every_record_names_the_commit_it_made_live_in_the_ledger_and_in_history_json() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok(); // -> prod2
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes", "--force"]).assert_ok(); // -> prod1
    project.release(&emu, &["switch", "prod1", "--yes"]).assert_ok();
    project.release(&emu, &["rollback", "--env", "prod", "--yes"]).assert_ok(); // back to A on prod2
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    project.release(&emu, &["promote", &b, "--env", "staging"]).assert_ok();
    project.release(&emu, &["rollback", "--env", "staging", "--yes"]).assert_ok(); // A again, in place

    let want = |env: &str| -> Vec<(String, String)> {
        let (a, b) = (a.clone(), b.clone());
        match env {
            "prod" => vec![("rollback".into(), a.clone()), ("switch".into(), b.clone()), ("promote".into(), b), ("switch".into(), a.clone()), ("promote".into(), a)],
            _ => vec![("rollback".into(), a.clone()), ("promote".into(), b), ("promote".into(), a)],
        }
    };
    let ledger = aws.ledger("release-ledger").await;
    for env in ["prod", "staging"] {
        let rows: Vec<(String, String)> = ledger
            .iter()
            .filter(|r| r["pk"] == format!("hello#{env}") && ["promote", "switch", "rollback"].contains(&r["action"].as_str()))
            .map(|r| (r["action"].clone(), r.get("commit").cloned().unwrap_or_else(|| "<none>".into())))
            .collect();
        assert_eq!(rows, want(env), "env {env}: each ledger row names the commit it made live");
        let doc = project.release(&emu, &["history", "--env", env, "--output", "json"]).json();
        let listed: Vec<(String, String)> = doc["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| ["promote", "switch", "rollback"].contains(&r["action"].as_str().unwrap_or("")))
            .map(|r| (r["action"].as_str().unwrap_or("").to_owned(), r["commit"].as_str().unwrap_or("<null>").to_owned()))
            .collect();
        assert_eq!(listed, want(env), "env {env}: history --output json names them too");
    }
}
