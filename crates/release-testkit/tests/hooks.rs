//! Lifecycle hooks on the in-memory cloud with a scripted hook runner and simulated time: what the emulator tests
//! cannot show cheaply (a hook that never ends, a signal in the middle of one, a crash right after one).

use std::sync::Arc;
use std::time::Duration;

use release_core::hooks::{HookName, HookStatus};
use release_core::ledger::Outcome;
use release_core::pipeline::LbTarget;
use release_core::runner::LOCK_LEASE;
use release_core::{ErrorKind, Release};
use release_testkit::fixtures::{shop, World};
use release_testkit::hooks::{Script, ScriptedHooks};

const HOOKS: &str = r#"
[env.staging.hooks]
before_promote = "./migrate"
before_traffic = "./smoke $RELEASE_LB_DNS"
[env.prod.hooks]
before_promote = "./migrate"
before_traffic = "./smoke $RELEASE_LB_DNS"
after_traffic = "./smoke $RELEASE_LIVE_NAME"
hook_timeout = "15m"
"#;

async fn world() -> (World, ScriptedHooks) {
    let w = World::with(shop(2, HOOKS)).await;
    let hooks = ScriptedHooks::new(Arc::new(w.cloud.clock.clone()));
    (w, hooks)
}

fn with_hooks(mut r: Release, hooks: &ScriptedHooks) -> Release {
    r.session.hooks = Arc::new(hooks.clone());
    r
}

#[tokio::test(start_paused = true)]
async fn each_hook_runs_once_in_order_with_the_release_variables() {
    let (w, hooks) = world().await;
    let a = w.bake('a').await;
    hooks.script(HookName::BeforeTraffic, Script::exits(0, Duration::from_secs(30), &["smoke ok"]));
    let release = with_hooks(w.release("alice"), &hooks);
    w.cloud.clock.advance(Duration::from_secs(600));
    let report = release.promote("prod", &a, &Default::default(), None).await.unwrap();
    assert_eq!(report.cluster.as_str(), "green");
    release.switch("green", &Default::default(), None).await.unwrap();
    assert_eq!(hooks.started(), vec![HookName::BeforePromote, HookName::BeforeTraffic, HookName::AfterTraffic]);

    let started = hooks.seen.lock().unwrap().started.clone();
    let bt = &started[1];
    assert_eq!(bt.command, "./smoke $RELEASE_LB_DNS");
    assert_eq!(bt.dir, w.pipeline.root);
    let mut ids: Vec<String> = report.new_instances.iter().map(ToString::to_string).collect();
    ids.sort();
    let mut got: Vec<String> = bt.vars["RELEASE_INSTANCE_IDS"].split(' ').map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, ids);
    let green = w.cloud.state().load_balancers[&LbTarget::TargetGroup("shop-green".into())].0.dns_name.clone();
    assert_eq!(bt.vars["RELEASE_LB_DNS"], green);
    assert_eq!(bt.vars["RELEASE_LIVE_NAME"], "www.shop.test");
    assert_eq!(bt.vars["RELEASE_ID"], report.release_id);
    assert_eq!(bt.vars["RELEASE_AMI"], report.ami.to_string());
    assert_eq!(started[0].vars["RELEASE_INSTANCE_IDS"], "");
    assert_eq!(started[2].vars["RELEASE_CLUSTER"], "green");

    let records = w.records("prod").await;
    let promote = records.iter().find(|r| r.release_id.to_string() == report.release_id).unwrap();
    assert_eq!(promote.hooks.len(), 2);
    assert_eq!(promote.hooks[1].status, HookStatus::Succeeded);
    assert_eq!(promote.hooks[1].seconds.round(), 30.0, "simulated seconds");
    assert_eq!(promote.hooks[1].output_tail, vec!["smoke ok".to_owned()]);
    assert_eq!(promote.seconds.get("hook-before_traffic").map(|s| s.round()), Some(30.0));
    assert!(w.lines.lock().unwrap().iter().any(|l| l == "[hook before_traffic] smoke ok"));
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_never_ends_is_killed_at_hook_timeout_and_the_new_fleet_removed() {
    let (w, hooks) = world().await;
    let a = w.bake('a').await;
    hooks.script(HookName::BeforeTraffic, Script::hangs(&["waiting for the database"]));
    let release = with_hooks(w.release("alice"), &hooks);
    w.cloud.clock.advance(Duration::from_secs(600));
    let before = w.weights().await;
    let err = release.promote("prod", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed, "{err}");
    assert!(err.message().contains("timed out"), "{err}");
    assert_eq!(err.rolled_back(), Some(true));
    assert_eq!(hooks.seen.lock().unwrap().killed, vec![HookName::BeforeTraffic]);
    assert!(w.instances("green").is_empty(), "the new fleet is gone");
    assert!(w.cloud.registered(&LbTarget::TargetGroup("shop-green".into())).is_empty());
    assert_eq!(w.weights().await, before, "no traffic moved");
    let r = &w.records("prod").await[0];
    assert_eq!((r.outcome, r.rolled_back), (Outcome::Failed, Some(true)));
    assert_eq!(r.hooks[1].status, HookStatus::TimedOut);
    assert!((900.0..960.0).contains(&r.hooks[1].seconds), "killed at hook_timeout (15m), not later: {}", r.hooks[1].seconds);
    assert_eq!(r.hooks[1].output_tail, vec!["waiting for the database".to_owned()]);
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_a_hook_kills_it_and_puts_the_environment_back() {
    let (w, hooks) = world().await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let release = with_hooks(w.release("alice"), &hooks);
    release.promote("staging", &a, &Default::default(), None).await.unwrap();
    let old = w.instances("staging");
    hooks.script(HookName::BeforeTraffic, Script::hangs(&[]));
    let (release, tx) = w.release_with("alice", None);
    let release = with_hooks(release, &hooks);
    let run = tokio::spawn(async move { release.promote("staging", &b, &Default::default(), None).await });
    while hooks.started().len() < 4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    tx.signal();
    let err = run.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert_eq!(hooks.seen.lock().unwrap().killed, vec![HookName::BeforeTraffic]);
    assert_eq!(w.instances("staging"), old, "only the old fleet runs");
    let r = &w.records("staging").await[0];
    assert_eq!(r.outcome, Outcome::Interrupted);
    assert_eq!(r.hooks.last().map(|h| h.status), Some(HookStatus::Interrupted));
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_crash_right_after_before_promote_is_resumed_without_running_it_again() {
    let (w, hooks) = world().await;
    let a = w.bake('a').await;
    let (release, _) = w.release_with("alice", Some("hook-before-promote"));
    let release = with_hooks(release, &hooks);
    let first = release.promote("staging", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(first.kind(), ErrorKind::Crash);
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    let release = with_hooks(w.release("alice"), &hooks);
    let report = release.promote("staging", &a, &Default::default(), None).await.unwrap();
    assert_eq!(report.outcome, "succeeded");
    assert_eq!(hooks.started(), vec![HookName::BeforePromote, HookName::BeforeTraffic], "the migration ran once");
    let records: Vec<_> = w.records("staging").await.into_iter().filter(|r| r.action_name() == "promote").collect();
    let summary: Vec<_> = records.iter().map(|r| (r.outcome, r.detail.clone(), r.hooks.len())).collect();
    assert_eq!(records.len(), 1, "the re-run adopted the record: {summary:?}");
    assert_eq!(records[0].hooks.iter().map(|h| h.name).collect::<Vec<_>>(), vec![HookName::BeforePromote, HookName::BeforeTraffic]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_after_traffic_hook_restores_the_weights_in_one_route53_change() {
    let (w, hooks) = world().await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let release = with_hooks(w.release("alice"), &hooks);
    w.cloud.clock.advance(Duration::from_secs(600));
    release.promote("prod", &a, &Default::default(), None).await.unwrap();
    release.switch("green", &Default::default(), None).await.unwrap();
    w.cloud.clock.advance(Duration::from_secs(600));
    release.promote("prod", &b, &Default::default(), None).await.unwrap();
    let before = w.weights().await;
    let changes = w.cloud.state().calls.get("route53:ChangeResourceRecordSets").copied().unwrap_or(0);
    hooks.script(HookName::AfterTraffic, Script::exits(7, Duration::from_secs(5), &["500 from /health"]));
    let err = release.switch("blue", &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed);
    assert_eq!(w.weights().await, before, "back to the weights from before the switch");
    assert_eq!(w.cloud.state().calls.get("route53:ChangeResourceRecordSets").copied().unwrap_or(0) - changes, 2, "the switch and its revert");
    let r = &w.records("prod").await[0];
    assert_eq!((r.outcome, r.rolled_back), (Outcome::RolledBack, Some(true)));
    assert_eq!(r.hooks[0].exit_code, Some(7));
    // A later rollback is not fooled: green (b's promote left it idle) is still what is live.
    assert_eq!(release_core::ledger::live_history(&w.records("prod").await).last().map(|l| l.commit.clone()), Some(a));
}

#[tokio::test(start_paused = true)]
async fn sinks_hear_that_a_hook_failed_and_what_it_did() {
    let sinks = "[notify]\n[[notify.sinks]]\nkind = \"command\"\ncommand = \"./notify.sh\"\non = [\"step\", \"failed\", \"rolled-back\"]\n";
    let w = World::with(shop(2, &format!("{HOOKS}{sinks}"))).await;
    let hooks = ScriptedHooks::new(Arc::new(w.cloud.clock.clone()));
    let n = release_testkit::sinks::RecordingNotifier::default();
    let mut release = with_hooks(w.release("alice"), &hooks);
    release.session.notifier = Arc::new(n.clone());
    let a = w.bake('a').await;
    w.cloud.clock.advance(Duration::from_secs(600));
    release.promote("prod", &a, &Default::default(), None).await.unwrap();
    hooks.script(HookName::AfterTraffic, Script::exits(1, Duration::from_secs(2), &["checkout is broken"]));
    release.switch("green", &Default::default(), None).await.unwrap_err();
    let events = n.delivered("command `./notify.sh`");
    let steps: Vec<String> = events.iter().filter_map(|e| e.step.clone()).filter(|s| s.starts_with("hook-")).collect();
    assert_eq!(steps, vec!["hook-before-promote", "hook-before-traffic", "hook-after-traffic-failed"]);
    let last = events.last().unwrap();
    assert_eq!(last.event.as_str(), "rolled-back");
    assert!(last.reason.as_deref().unwrap_or("").contains("hook after_traffic (`./smoke $RELEASE_LIVE_NAME`) failed with exit status 1 after 2.0s: checkout is broken"), "{:?}", last.reason);
    assert_eq!(last.hooks.iter().map(|h| (h.name, h.status)).collect::<Vec<_>>(), vec![(HookName::AfterTraffic, HookStatus::Failed)]);
    assert!(last.hooks[0].output_tail.is_empty(), "the output stays in the ledger");
}

#[tokio::test(start_paused = true)]
async fn a_signal_just_before_a_hook_stops_the_run_instead_of_waiting_for_the_hook() {
    let (w, hooks) = world().await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    with_hooks(w.release("alice"), &hooks).promote("staging", &a, &Default::default(), None).await.unwrap();
    let old = w.instances("staging");
    hooks.script(HookName::BeforeTraffic, Script::hangs(&[]));
    let (mut release, tx) = w.release_with("alice", None);
    // Ctrl-C lands between the new instances running and the hook starting.
    release.session.checkpoint = Arc::new(move |step: &str| {
        if step == "running" {
            tx.signal();
        }
        Ok(())
    });
    let release = with_hooks(release, &hooks);
    let err = release.promote("staging", &b, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert_eq!(hooks.started(), vec![HookName::BeforePromote, HookName::BeforeTraffic, HookName::BeforePromote], "the second before_traffic never started");
    assert_eq!(w.instances("staging"), old);
    assert_eq!(w.records("staging").await[0].outcome, Outcome::Interrupted);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_rollout_gives_after_traffic_the_commit_live_before_it() {
    let rollout = "[env.prod.rollout]\nsteps = [10, 50, 100]\npause = \"5m\"\n";
    let w = World::with(shop(2, &format!("{HOOKS}{rollout}"))).await;
    let hooks = ScriptedHooks::new(Arc::new(w.cloud.clock.clone()));
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    let release = with_hooks(w.release("alice"), &hooks);
    w.cloud.clock.advance(Duration::from_secs(600));
    release.promote("prod", &v1, &Default::default(), None).await.unwrap();
    let one_step = release_core::switch::SwitchOptions { weight: Some(100), ..Default::default() };
    release.switch("green", &one_step, None).await.unwrap();
    w.cloud.clock.advance(Duration::from_secs(600));
    release.promote("prod", &v2, &Default::default(), None).await.unwrap();
    // Killed at 50 %, then resumed by the same switch.
    let (dying, _) = w.release_with("alice", Some("step-50"));
    let first = with_hooks(dying, &hooks).switch("blue", &Default::default(), None).await.unwrap_err();
    assert_eq!(first.kind(), ErrorKind::Crash);
    assert_eq!(w.weights().await.describe(), "blue=50,green=50");
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    let r = with_hooks(w.release("alice"), &hooks).switch("blue", &Default::default(), None).await.unwrap();
    assert!(r.rollout.as_ref().is_some_and(|o| o.resumed), "{:?}", r.rollout);
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");

    let started = hooks.seen.lock().unwrap().started.clone();
    let after: Vec<_> = started.iter().filter(|h| h.name == HookName::AfterTraffic).collect();
    let last = after.last().expect("after_traffic ran after the resumed rollout");
    assert_eq!(last.vars["RELEASE_COMMIT"], v2.to_string());
    assert_eq!(last.vars["RELEASE_PREVIOUS_COMMIT"], v1.to_string(), "the commit live before the rollout, not the target's");
    let records = w.records("prod").await;
    let rec = records.iter().find(|x| x.release_id.to_string() == r.release_id).unwrap();
    let release_core::ledger::Action::Switch(d) = &rec.action else { panic!("{rec:?}") };
    assert_eq!(d.previous.as_ref().map(|p| p.commit.clone()), Some(v1), "hook and record agree");
}

/// staging (in place) serves a, then b is promoted with a failing `after_traffic`.
async fn in_place_after_traffic_fails(rollback: bool) -> (World, ScriptedHooks, release_core::Result<release_core::promote::PromoteReport>, String, String) {
    let conf = format!("[env.staging.hooks]\nafter_traffic = \"./smoke\"\nrollback_on_hook_failure = {rollback}\n");
    let w = World::with(shop(2, &conf)).await;
    let hooks = ScriptedHooks::new(Arc::new(w.cloud.clock.clone()));
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let release = with_hooks(w.release("alice"), &hooks);
    hooks.script(HookName::AfterTraffic, Script::exits(0, Duration::from_secs(1), &[]));
    release.promote("staging", &a, &Default::default(), None).await.unwrap();
    hooks.script(HookName::AfterTraffic, Script::exits(5, Duration::from_secs(3), &["checkout is broken"]));
    let result = release.promote("staging", &b, &Default::default(), None).await;
    (w, hooks, result, a.to_string(), b.to_string())
}

#[tokio::test(start_paused = true)]
async fn in_place_after_traffic_rolled_back_leaves_the_promote_recorded_as_rolled_back() {
    let (w, _hooks, result, a, b) = in_place_after_traffic_fails(true).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed, "{err}");
    assert_eq!(err.rolled_back(), Some(true));
    let records = w.records("staging").await;
    let rollback = records.iter().find(|r| r.action_name() == "rollback").expect("a rollback record");
    assert_eq!(rollback.outcome, Outcome::Succeeded);
    assert_eq!(rollback.commit().map(|c| c.to_string()), Some(a.clone()));
    let promote = records.iter().find(|r| r.action_name() == "promote" && r.commit().map(|c| c.to_string()) == Some(b.clone())).unwrap();
    assert_eq!((promote.outcome, promote.rolled_back), (Outcome::RolledBack, Some(true)), "{promote:#?}");
    let detail = promote.detail.clone().unwrap_or_default();
    assert!(detail.contains("hook after_traffic") && detail.contains(&rollback.release_id.to_string()), "{detail}");
    assert_eq!(promote.hooks.iter().map(|h| (h.name, h.status)).collect::<Vec<_>>(), vec![(HookName::AfterTraffic, HookStatus::Failed)]);
    // The error carries what the promote did, for its JSON document.
    let report = err.report().expect("a partial report on the error");
    assert_eq!(report["release_id"], promote.release_id.to_string());
    assert_eq!(report["hooks"][0]["name"], "after_traffic");
    // a is live again, and the history says so.
    assert_eq!(release_core::ledger::live_history(&records).last().map(|l| l.commit.to_string()), Some(a));
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn in_place_after_traffic_without_rollback_succeeds_with_the_warning_on_the_record() {
    let (w, _hooks, result, _a, b) = in_place_after_traffic_fails(false).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, "succeeded");
    assert_eq!(report.hooks.last().map(|h| h.status), Some(HookStatus::Failed));
    let records = w.records("staging").await;
    assert!(records.iter().all(|r| r.action_name() != "rollback"), "no rollback");
    let promote = &records[0];
    assert_eq!(promote.commit().map(|c| c.to_string()), Some(b));
    assert_eq!(promote.outcome, Outcome::Succeeded);
    assert!(promote.detail.as_deref().unwrap_or("").starts_with("warning: hook after_traffic"), "{:?}", promote.detail);
}

#[tokio::test(start_paused = true)]
async fn a_failed_after_traffic_switch_error_names_its_release_and_hooks() {
    let (w, hooks) = world().await;
    let a = w.bake('a').await;
    let release = with_hooks(w.release("alice"), &hooks);
    w.cloud.clock.advance(Duration::from_secs(600));
    release.promote("prod", &a, &Default::default(), None).await.unwrap();
    hooks.script(HookName::AfterTraffic, Script::exits(1, Duration::from_secs(2), &["checkout is broken"]));
    let err = release.switch("green", &Default::default(), None).await.unwrap_err();
    let r = &w.records("prod").await[0];
    assert_eq!(r.action_name(), "switch");
    let report = err.report().expect("a partial report on the error");
    assert_eq!(report["release_id"], r.release_id.to_string());
    assert_eq!(report["hooks"][0]["status"], "failed");
}

#[tokio::test(start_paused = true)]
async fn a_failed_before_traffic_promote_error_names_its_release_and_hooks() {
    let (w, hooks) = world().await;
    let a = w.bake('a').await;
    let release = with_hooks(w.release("alice"), &hooks);
    hooks.script(HookName::BeforeTraffic, Script::exits(3, Duration::from_secs(2), &["smoke failed"]));
    let err = release.promote("staging", &a, &Default::default(), None).await.unwrap_err();
    let r = &w.records("staging").await[0];
    let report = err.report().expect("a partial report on the error");
    assert_eq!(report["release_id"], r.release_id.to_string());
    let names: Vec<_> = report["hooks"].as_array().unwrap().iter().map(|h| (h["name"].as_str().unwrap().to_owned(), h["status"].as_str().unwrap().to_owned())).collect();
    assert_eq!(names, vec![("before_promote".to_owned(), "succeeded".to_owned()), ("before_traffic".to_owned(), "failed".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn switch_plans_name_after_traffic_only_when_the_cluster_would_take_all_the_traffic() {
    let (w, hooks) = world().await;
    let a = w.bake('a').await;
    let release = with_hooks(w.release("alice"), &hooks);
    w.cloud.clock.advance(Duration::from_secs(600));
    release.promote("prod", &a, &Default::default(), None).await.unwrap();
    let env = w.pipeline.env("prod").unwrap();
    let named = |plan: &release_core::switch::SwitchPlan| release_core::hooks::planned_for_switch(env, plan);
    let full = release.plan_switch("green", &Default::default()).await.unwrap();
    assert_eq!(named(&full), vec![(HookName::AfterTraffic, "./smoke $RELEASE_LIVE_NAME".to_owned())]);
    let stepped = release_core::switch::SwitchOptions { steps: Some([10, 50, 100].map(release_core::pipeline::RolloutStep::Percent).to_vec()), ..Default::default() };
    assert_eq!(named(&release.plan_switch("green", &stepped).await.unwrap()).len(), 1, "a rollout ends at 100 % and runs it");
    let partial = release_core::switch::SwitchOptions { weight: Some(50), ..Default::default() };
    assert!(named(&release.plan_switch("green", &partial).await.unwrap()).is_empty(), "a --weight shift does not");
    assert!(hooks.started().iter().all(|h| *h != HookName::AfterTraffic), "planning runs nothing");
}

#[tokio::test(start_paused = true)]
async fn a_hook_of_a_run_dead_on_another_machine_is_waited_out_to_its_deadline_never_started_twice() {
    let (w, hooks) = world().await;
    let a = w.bake('a').await;
    hooks.script(HookName::BeforePromote, Script::exits(0, Duration::from_secs(3600), &["migrating"]));
    let mut first = with_hooks(w.release("alice"), &hooks);
    first.session.actor.host = "build-1".into();
    let commit = a.clone();
    let run = tokio::spawn(async move { first.promote("staging", &commit, &Default::default(), None).await });
    while hooks.started().is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    // build-1 dies (its hook may live on there: nothing here can tell).
    run.abort();
    let _ = run.await;
    let r = &w.records("staging").await[0];
    let running = r.hook_running.clone().expect("the hook is in the record while it runs");
    assert_eq!((running.name, running.host.as_str()), (HookName::BeforePromote, "build-1"));
    assert_eq!(running.deadline, running.started.add(release_core::hooks::DEFAULT_TIMEOUT), "hook_timeout (staging: the default)");

    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    let mut second = with_hooks(w.release("bob"), &hooks);
    second.session.actor.host = "build-2".into();
    let err = second.promote("staging", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert!(err.message().contains("hook before_promote") && err.message().contains("build-1") && err.message().contains("another machine"), "{err}");
    assert_eq!(hooks.started().len(), 1, "no second copy");
    assert!(!w.locked(), "the refused run released the lock");
    assert!(w.instances("staging").is_empty(), "nothing launched");

    // Past its deadline its run would have killed it: the re-run goes on and runs it again, once.
    w.cloud.clock.advance(release_core::hooks::DEFAULT_TIMEOUT);
    hooks.script(HookName::BeforePromote, Script::exits(0, Duration::from_secs(1), &[]));
    let report = second.promote("staging", &a, &Default::default(), None).await.unwrap();
    assert_eq!(report.outcome, "succeeded");
    assert_eq!(hooks.started(), vec![HookName::BeforePromote, HookName::BeforePromote, HookName::BeforeTraffic]);
    let r = w.records("staging").await.into_iter().find(|r| r.action_name() == "promote").unwrap();
    assert_eq!(r.hooks.iter().map(|h| (h.name, h.status)).collect::<Vec<_>>(), vec![
        (HookName::BeforePromote, HookStatus::Interrupted),
        (HookName::BeforePromote, HookStatus::Succeeded),
        (HookName::BeforeTraffic, HookStatus::Succeeded)
    ]);
    assert!(r.hook_running.is_none());
}
