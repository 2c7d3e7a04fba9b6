//! Rollouts of the real binary against the emulator: CloudWatch alarms through moto (`put_metric_alarm`,
//! `set_alarm_state`), Route53 weights and the ledger read back, a hold ended from a second process, and a
//! `kill -9` in the middle resumed by a re-run.

use std::time::Duration;

use release_e2e::{AwsView, Emulator, Project};

async fn weights(aws: &AwsView) -> Vec<(String, i64)> {
    aws.weighted_records("example.com.", "hello.example.com.").await.into_iter().map(|(c, w, _)| (c, w)).collect()
}

fn w(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(c, w)| (c.to_string(), *w)).collect()
}

/// The baked demo with a rollout section: prod2 serves A (100 %), prod1 runs B healthy and idle.
async fn ready(emu: &Emulator, rollout: &str) -> (Project, AwsView) {
    let (project, a, b) = Project::baked_demo(emu);
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &format!("{text}\n[env.prod.rollout]\n{rollout}"));
    emu.put_metric_alarm("hello-5xx");
    emu.set_alarm_state("hello-5xx", "OK");
    project.release(emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok(); // -> prod2
    project.release(emu, &["switch", "prod2", "--weight", "100", "--yes"]).assert_ok();
    project.release(emu, &["promote", &b, "--env", "prod", "--yes", "--force"]).assert_ok(); // -> prod1
    let aws = AwsView::new(emu).await;
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    (project, aws)
}

fn rollout_records(ledger: &[std::collections::BTreeMap<String, String>]) -> Vec<&std::collections::BTreeMap<String, String>> {
    ledger.iter().filter(|r| r["action"] == "switch" && r.contains_key("rollout")).collect()
}

#[tokio::test]
async fn an_alarm_at_step_two_rolls_back_with_one_route53_change_per_step_plus_one() {
    let emu = Emulator::start();
    let (project, aws) = ready(&emu, "steps = [10, 50, 100]\npause = \"3s\"\nalarms = [\"hello-5xx\"]\n").await;
    let run = project.background(&emu.url(), &[], &["switch", "prod1", "--yes", "--output", "json"]);
    run.wait_for("step 2/3: 50% to prod1", Duration::from_secs(60));
    emu.set_alarm_state("hello-5xx", "ALARM");
    let run = run.finish(Duration::from_secs(60));
    assert_eq!(run.code, 8, "a rollout that went back is a failed deploy: {run:?}");
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["kind"], "deploy-failed");
    assert_eq!(doc["error"]["rolled_back"], true);
    assert_eq!(doc["rollout"]["reason"], "alarm hello-5xx went to ALARM at step 50%");
    assert_eq!(doc["api_calls"]["Route 53:ChangeResourceRecordSets"], 3, "10 %, 50 %, and one change back: {}", run.stdout);
    assert_eq!(doc["rollout"]["route53_changes"], 3);
    let polls = doc["api_calls"]["CloudWatch:DescribeAlarms"].as_u64().unwrap_or(0);
    assert!(polls >= 2, "the alarms are polled: {}", doc["api_calls"]);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]), "Route53 holds the weights from before the rollout");
    let ledger = aws.ledger("release-ledger").await;
    let rec = rollout_records(&ledger)[0];
    assert_eq!(rec["outcome"], "rolled-back", "{rec:?}");
    assert_eq!(rec["detail"], "alarm hello-5xx went to ALARM at step 50%");
    assert!(run.stderr.contains("rolling back: alarm hello-5xx went to ALARM at step 50%"), "{}", run.stderr);
    println!(
        "rollout rolled back by an alarm on the emulator: {} Route53 changes, {polls} DescribeAlarms calls, {:.1}s wall",
        doc["api_calls"]["Route 53:ChangeResourceRecordSets"],
        run.elapsed.as_secs_f64()
    );
    // The lock was released: the next rollout (alarm OK again) goes to 100 % in three changes.
    emu.set_alarm_state("hello-5xx", "OK");
    let ok = project.release(&emu, &["switch", "prod1", "--yes", "--output", "json"]);
    ok.assert_ok();
    assert_eq!(ok.json()["api_calls"]["Route 53:ChangeResourceRecordSets"], 3);
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    let ledger = aws.ledger("release-ledger").await;
    assert_eq!(rollout_records(&ledger)[0]["outcome"], "succeeded");
}

#[tokio::test]
async fn a_missing_alarm_is_refused_before_anything_changes() {
    let emu = Emulator::start();
    let (project, aws) = ready(&emu, "steps = [10, 100]\npause = \"1s\"\nalarms = [\"hello-5xx\", \"hello-nope\"]\n").await;
    let before = emu.state();
    let run = project.release(&emu, &["switch", "prod1", "--yes", "--output", "json"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.error_line().contains("alarm hello-nope of env prod's rollout does not exist in CloudWatch"), "{}", run.stderr);
    assert_eq!(run.json()["error"]["kind"], "not-found");
    before.assert_same(&emu.state(), "a rollout with a missing alarm");
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
}

#[tokio::test]
async fn a_hold_is_continued_from_a_second_process_and_status_shows_it() {
    let emu = Emulator::start();
    let (project, aws) = ready(&emu, "steps = [10, \"hold\", 100]\npause = \"1s\"\nalarms = [\"hello-5xx\"]\n").await;
    let holder = project.background(&emu.url(), &[], &["switch", "prod1", "--yes", "--output", "json"]);
    holder.wait_for("holding at 10%", Duration::from_secs(60));
    assert_eq!(weights(&aws).await, w(&[("prod1", 10), ("prod2", 90)]));
    let st = project.release(&emu, &["rollout", "status", "--env", "prod", "--output", "json"]);
    st.assert_ok();
    let doc = st.json();
    assert_eq!((doc["in_progress"].as_bool(), doc["holding"].as_bool(), doc["running"].as_bool()), (Some(true), Some(true), Some(true)), "{doc}");
    assert_eq!(doc["alarms"][0]["state"], "OK");
    assert_eq!(doc["healthy"], serde_json::json!([4, 4]));
    let text = project.release(&emu, &["rollout", "status", "--env", "prod"]);
    assert!(text.stdout.contains("holding: `release rollout continue --env prod` goes on"), "{}", text.stdout);
    // Another process cannot take the lock, but it can ask the holder to go on.
    let cont = project.release(&emu, &["rollout", "continue", "--env", "prod", "--output", "json"]);
    cont.assert_ok();
    assert!(cont.json()["request_id"].is_string(), "{}", cont.stdout);
    let done = holder.finish(Duration::from_secs(60));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    let ledger = aws.ledger("release-ledger").await;
    assert_eq!(rollout_records(&ledger)[0]["outcome"], "succeeded");
    assert!(ledger.iter().any(|r| r["action"] == "rollout-request" && r["request"] == "continue"), "the request is in the ledger");
}

#[tokio::test]
async fn rollback_during_a_hold_is_done_by_the_holder_and_kill_9_mid_rollout_resumes() {
    let emu = Emulator::start();
    let (project, aws) = ready(&emu, "steps = [10, \"hold\", 100]\npause = \"1s\"\n").await;
    let holder = project.background(&emu.url(), &[], &["switch", "prod1", "--yes"]);
    holder.wait_for("holding at 10%", Duration::from_secs(60));
    let rb = project.release(&emu, &["rollback", "--env", "prod", "--yes", "--output", "json"]);
    rb.assert_ok();
    assert_eq!(rb.json()["outcome"], "rolled-back", "{}", rb.stdout);
    let done = holder.finish(Duration::from_secs(60));
    assert_eq!(done.code, 8, "{done:?}");
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));

    // kill -9 at the 10 % step (Route53 has it, the record too), then a re-run with the steps on the command line
    // ignored: it resumes the recorded rollout past... its hold is still to be waited, so `rollout continue` resumes.
    let crashed = project.release_env(&emu, &[("RELEASE_TEST_CRASH_AT", "step-10")], &["switch", "prod1", "--yes"]);
    assert_ne!(crashed.code, 0);
    assert_eq!(weights(&aws).await, w(&[("prod1", 10), ("prod2", 90)]));
    project.release(&emu, &["unlock", "--env", "prod"]).assert_ok();
    let st = project.release(&emu, &["rollout", "status", "--env", "prod", "--output", "json"]).json();
    assert_eq!((st["in_progress"].as_bool(), st["running"].as_bool()), (Some(true), Some(false)), "{st}");
    let cont = project.release(&emu, &["rollout", "continue", "--env", "prod", "--output", "json"]);
    cont.assert_ok();
    let doc = cont.json();
    assert_eq!(doc["rollout"]["resumed"], true, "{doc}");
    assert_eq!(doc["api_calls"]["Route 53:ChangeResourceRecordSets"], 1, "only the 100 % step is left: {doc}");
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    let ledger = aws.ledger("release-ledger").await;
    assert!(ledger.iter().all(|r| r["outcome"] != "started"), "{ledger:#?}");
}

#[tokio::test]
async fn bad_rollout_input_is_one_line_with_its_exit_code_and_changes_nothing() {
    let emu = Emulator::start();
    let project = Project::demo();
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &format!("{text}\n[env.prod.rollout]\nsteps = [10, 100]\npause = \"1s\"\n"));
    project.release(&emu, &["provision", "--env", "prod"]).assert_ok();
    let before = emu.state();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["switch", "prod2", "--weight", "10", "--steps", "10,100"], 2, "cannot be used with"),
        (&["switch", "prod2", "--steps", "10,5,100"], 2, "--steps: step 5% does not increase on the step before it (10%)"),
        (&["switch", "prod2", "--steps", "10,50"], 2, "--steps: the last step of a rollout must be 100"),
        (&["switch", "prod2", "--steps", "hold,100"], 2, "--steps: a rollout cannot begin with \"hold\""),
        (&["switch", "prod2", "--steps", "10,later,100"], 2, "--steps: `later` is neither a percentage nor \"hold\""),
        (&["switch", "prod2", "--steps", "10,100", "--pause", "2x"], 2, "--pause 2x: `2x` has an unknown unit `x`"),
        (&["switch", "prod2", "--steps", "10,100", "--pause", "25h"], 2, "--pause is at most 24h"),
        (&["switch", "staging", "--steps", "10,100"], 2, "env staging has no dns"),
        (&["rollout", "continue", "--env", "prod"], 3, "env prod has no rollout under way"),
        (&["rollout", "status", "--env", "nope"], 3, "no environment `nope`"),
        (&["rollout", "continue", "--env", "staging"], 3, "env staging is in place and has no rollouts"),
    ];
    for (args, code, want) in cases {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--yes", "--output", "json"]);
        let run = project.release(&emu, &full);
        assert_eq!(run.code, *code, "{args:?}: {run:?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        let doc = run.json();
        assert_eq!(doc["ok"], false, "{args:?}: one JSON document, also for failures: {}", run.stdout);
    }
    // In place: status says so instead of an empty `traffic: `; the help of rollback and promote tells the rollout side.
    let st = project.release(&emu, &["rollout", "status", "--env", "staging"]);
    st.assert_ok();
    assert!(st.stdout.contains("env staging: in place, no rollouts") && !st.stdout.contains("traffic: )"), "{}", st.stdout);
    let help = project.release(&emu, &["rollback", "--help"]);
    assert!(help.stdout.contains("During a rollout"), "{}", help.stdout);
    let help = project.release(&emu, &["promote", "--help"]);
    assert!(help.stdout.contains("watched for its `pause` with its `alarms`"), "{}", help.stdout);
    before.assert_same(&emu.state(), "bad rollout input");
    println!("bad rollout inputs tried on the emulator: {}, AWS changes: 0", cases.len());
}

/// `kill -9` of the holder (its lock still within its lease): `rollout status` says it is not running, `rollout
/// continue` resumes at once and a later rollout's `rollback` restores at once; neither waits 2 minutes for the dead.
#[tokio::test]
async fn a_holder_killed_with_kill_9_is_judged_dead_at_once_by_continue_status_and_rollback() {
    let emu = Emulator::start();
    let (project, aws) = ready(&emu, "steps = [10, \"hold\", 100]\npause = \"1s\"\nalarms = [\"hello-5xx\"]\n").await;
    let holder = project.background(&emu.url(), &[], &["switch", "prod1", "--yes"]);
    holder.wait_for("holding at 10%", Duration::from_secs(60));
    holder.signal("KILL");
    let killed = holder.finish(Duration::from_secs(10));
    assert_ne!(killed.code, 0);
    assert_eq!(weights(&aws).await, w(&[("prod1", 10), ("prod2", 90)]));
    let st = project.release(&emu, &["rollout", "status", "--env", "prod", "--output", "json"]);
    st.assert_ok();
    let doc = st.json();
    assert_eq!((doc["in_progress"].as_bool(), doc["running"].as_bool()), (Some(true), Some(false)), "a dead holder is not running: {doc}");
    let cont = project.release(&emu, &["rollout", "continue", "--env", "prod", "--output", "json"]);
    cont.assert_ok();
    assert!(cont.elapsed < Duration::from_secs(60), "did not wait for the dead holder: {:?}", cont.elapsed);
    assert_eq!(cont.json()["rollout"]["resumed"], true, "{}", cont.stdout);
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));

    // Back to prod2 in steps, killed at its hold; `rollback` restores the weights from before it at once.
    let holder = project.background(&emu.url(), &[], &["switch", "prod2", "--yes"]);
    holder.wait_for("holding at 10%", Duration::from_secs(60));
    holder.signal("KILL");
    holder.finish(Duration::from_secs(10));
    assert_eq!(weights(&aws).await, w(&[("prod1", 90), ("prod2", 10)]));
    let rb = project.release(&emu, &["rollback", "--env", "prod", "--yes", "--output", "json"]);
    rb.assert_ok();
    assert!(rb.elapsed < Duration::from_secs(60), "did not wait for the dead holder: {:?}", rb.elapsed);
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    let ledger = aws.ledger("release-ledger").await;
    let rollouts = rollout_records(&ledger);
    assert!(rollouts.iter().any(|r| r["outcome"] == "rolled-back"), "{rollouts:#?}");
    assert!(ledger.iter().all(|r| r["outcome"] != "started"), "{ledger:#?}");
    assert!(!ledger.iter().any(|r| r["action"] == "rollout-request"), "no request was written for a dead holder");
}

/// Every path that moves traffic toward a cluster runs the same pre-flight (`preflight::check`): with a watched
/// alarm in ALARM, a rollout, `--weight 100` and `--weight 30` are refused alike (exit 4, `--force` or not) and
/// Route53 keeps its weights; lowering a cluster's share (moving traffic away from it) is never held.
#[tokio::test]
async fn with_an_alarm_firing_every_weight_toward_a_cluster_is_refused_and_moving_away_is_not() {
    let emu = Emulator::start();
    let (project, aws) = ready(&emu, "steps = [10, 100]\npause = \"1s\"\nalarms = [\"hello-5xx\"]\n").await;
    aws.set_alarm_state("hello-5xx", "ALARM").await;
    let before = emu.state();
    let toward: &[&[&str]] = &[&["switch", "prod1"], &["switch", "prod1", "--weight", "100"], &["switch", "prod1", "--weight", "30"], &["switch", "prod1", "--weight", "100", "--force"]];
    for args in toward {
        let mut full = args.to_vec();
        full.extend(["--yes", "--output", "json"]);
        let run = project.release(&emu, &full);
        assert_eq!(run.code, 4, "{args:?}: {run:?}");
        assert!(run.error_line().contains("alarm hello-5xx of env prod is in ALARM now"), "{args:?}: {}", run.stderr);
        assert!(run.error_line().contains("--force does not skip this"), "{args:?}: {}", run.stderr);
        assert_eq!(run.json()["error"]["kind"], "refused", "{args:?}");
        assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]), "{args:?}: Route53 keeps its weights");
    }
    before.assert_same(&emu.state(), "switches toward a cluster with an alarm firing");
    assert!(aws.ledger("release-ledger").await.iter().all(|r| r["action"] != "switch" || r["cluster"] != "prod1"), "no switch to prod1 was recorded");

    // prod1 at 40 %, then the alarm fires: raising it is refused, lowering it (traffic away from it) is not.
    aws.set_alarm_state("hello-5xx", "OK").await;
    project.release(&emu, &["switch", "prod1", "--weight", "40", "--yes"]).assert_ok();
    assert_eq!(weights(&aws).await, w(&[("prod1", 40), ("prod2", 60)]));
    aws.set_alarm_state("hello-5xx", "ALARM").await;
    let up = project.release(&emu, &["switch", "prod1", "--weight", "50", "--yes", "--output", "json"]);
    assert_eq!(up.code, 4, "{up:?}");
    assert_eq!(weights(&aws).await, w(&[("prod1", 40), ("prod2", 60)]));
    let down = project.release(&emu, &["switch", "prod1", "--weight", "10", "--yes", "--output", "json"]);
    assert_eq!(down.code, 0, "moving traffic away from prod1 is always allowed: {down:?}");
    assert_eq!(weights(&aws).await, w(&[("prod1", 10), ("prod2", 90)]));
    let ledger = aws.ledger("release-ledger").await;
    let last = ledger.iter().find(|r| r["action"] == "switch").expect("a switch record");
    assert_eq!((last["cluster"].as_str(), last["outcome"].as_str()), ("prod1", "succeeded"), "{last:?}");
}
