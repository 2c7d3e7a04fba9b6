//! Lifecycle hooks on the in-memory cloud with a scripted hook runner and simulated time: what the emulator tests
//! cannot show cheaply (a hook that never ends, a signal in the middle of one, a crash right after one).

use std::sync::Arc;
use std::time::Duration;

use release_core::model::hook::{HookName, HookStatus};
use release_core::model::ledger::Outcome;
use release_core::model::pipeline::LbTarget;
use release_core::engine::lock::LOCK_LEASE;
use release_core::{ErrorKind, Release};
use release_testkit::fixtures::{shop, World};
use release_testkit::hooks::{Script, ScriptedHooks};
use release_testkit::sinks::RecordingNotifier;
use release_core::ports::tags;

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
    assert_eq!(release_core::model::ledger::live_history(&w.records("prod").await).last().map(|l| l.commit.clone()), Some(a));
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
    let one_step = release_core::ops::switch::SwitchOptions { weight: Some(100), ..Default::default() };
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
    let release_core::model::ledger::Action::Switch(d) = &rec.action else { panic!("{rec:?}") };
    assert_eq!(d.previous.as_ref().map(|p| p.commit.clone()), Some(v1), "hook and record agree");
}

/// The webhook of [`SINK`], as its deliveries are labelled.
const WEBHOOK: &str = "webhook https://hooks.example.com/release/…";
const SINK: &str = "[notify]\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/release/abc\"\n";

/// staging (in place) serves a, then b is promoted with a failing `after_traffic`; `before_b` runs in between.
async fn in_place_after_traffic_fails_after(
    rollback: bool,
    before_b: impl AsyncFnOnce(&World),
) -> (World, RecordingNotifier, release_core::Result<release_core::ops::promote::PromoteReport>, String, String) {
    let conf = format!("[env.staging.hooks]\nafter_traffic = \"./smoke\"\nrollback_on_hook_failure = {rollback}\n{SINK}");
    let w = World::with(shop(2, &conf)).await;
    let hooks = ScriptedHooks::new(Arc::new(w.cloud.clock.clone()));
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let notifier = RecordingNotifier::default();
    let mut release = with_hooks(w.release("alice"), &hooks);
    release.session.notifier = Arc::new(notifier.clone());
    hooks.script(HookName::AfterTraffic, Script::exits(0, Duration::from_secs(1), &[]));
    release.promote("staging", &a, &Default::default(), None).await.unwrap();
    before_b(&w).await;
    notifier.clear();
    hooks.script(HookName::AfterTraffic, Script::exits(5, Duration::from_secs(3), &["checkout is broken"]));
    let result = release.promote("staging", &b, &Default::default(), None).await;
    (w, notifier, result, a.to_string(), b.to_string())
}

/// [`in_place_after_traffic_fails_after`] with nothing in between.
async fn in_place_after_traffic_fails(rollback: bool) -> (World, RecordingNotifier, release_core::Result<release_core::ops::promote::PromoteReport>, String, String) {
    in_place_after_traffic_fails_after(rollback, async |_| {}).await
}

/// (action, event) of each delivery, in order.
fn events(n: &RecordingNotifier) -> Vec<(String, String)> {
    n.delivered(WEBHOOK).iter().map(|e| (e.action.clone(), e.event.as_str().to_owned())).collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(a, e)| (a.to_string(), e.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn in_place_after_traffic_rolled_back_leaves_the_promote_recorded_as_rolled_back() {
    let (w, notifier, result, a, b) = in_place_after_traffic_fails(true).await;
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
    assert_eq!(release_core::model::ledger::live_history(&records).last().map(|l| l.commit.to_string()), Some(a));
    assert!(!w.locked());
    // One run, one lock: the rollback ran inside the promote's run (its holder), with no window for anyone else.
    assert_eq!(rollback.holder, promote.holder, "the rollback is held by the promote's run");
    assert_ne!(rollback.release_id, promote.release_id, "a record of its own");
    // The promote's record was closed once, with its real outcome: the sinks never heard it succeeded.
    let want = [("promote", "started"), ("rollback", "started"), ("rollback", "rolled-back"), ("promote", "rolled-back")];
    assert_eq!(events(&notifier), pairs(&want));
    let closed = notifier.delivered(WEBHOOK).last().cloned().unwrap();
    assert_eq!((closed.release_id.as_str(), closed.rolled_back), (promote.release_id.as_str(), Some(true)));
}

#[tokio::test(start_paused = true)]
async fn in_place_after_traffic_whose_rollback_fails_too_leaves_the_promote_failed_and_the_new_release_live() {
    // a's AMI is deregistered by hand before b goes out: the rollback has nothing to go back to.
    let (w, notifier, result, _a, b) = in_place_after_traffic_fails_after(true, async |w: &World| {
        let s = w.cloud.state();
        let ids: Vec<_> = s.images.values().filter(|(_, i)| i.tags.get(tags::COMMIT).is_some_and(|c| c.starts_with('a'))).map(|(_, i)| i.id.clone()).collect();
        drop(s);
        for id in ids {
            w.cloud.cloud().images.deregister(&id).await.unwrap();
        }
    })
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "the rollback's error keeps its kind: {err}");
    assert_eq!(err.rolled_back(), Some(false));
    assert!(err.message().starts_with("hook after_traffic") && err.message().contains("the automatic rollback failed: "), "{err}");
    let records = w.records("staging").await;
    let promote = records.iter().find(|r| r.action_name() == "promote" && r.commit().map(|c| c.to_string()) == Some(b.clone())).unwrap();
    assert_eq!((promote.outcome, promote.rolled_back), (Outcome::Failed, Some(false)), "{promote:#?}");
    assert_eq!(promote.detail.as_deref(), Some(err.message()));
    assert!(records.iter().all(|r| r.action_name() != "rollback"), "the rollback failed before it opened a record: {records:#?}");
    assert_eq!(w.commits("staging"), vec![b], "b still serves");
    assert_eq!(events(&notifier), pairs(&[("promote", "started"), ("promote", "failed")]));
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn in_place_after_traffic_without_rollback_succeeds_with_the_warning_on_the_record() {
    let (w, _notifier, result, _a, b) = in_place_after_traffic_fails(false).await;
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
    let named = |plan: &release_core::ops::switch::SwitchPlan| release_core::model::pipeline::hooks::planned_for_switch(env, &plan.cluster, &plan.to);
    let full = release.plan_switch("green", &Default::default()).await.unwrap();
    assert_eq!(named(&full), vec![(HookName::AfterTraffic, "./smoke $RELEASE_LIVE_NAME".to_owned())]);
    let stepped = release_core::ops::switch::SwitchOptions { steps: Some([10, 50, 100].map(release_core::model::pipeline::RolloutStep::Percent).to_vec()), ..Default::default() };
    assert_eq!(named(&release.plan_switch("green", &stepped).await.unwrap()).len(), 1, "a rollout ends at 100 % and runs it");
    let partial = release_core::ops::switch::SwitchOptions { weight: Some(50), ..Default::default() };
    assert!(named(&release.plan_switch("green", &partial).await.unwrap()).is_empty(), "a --weight shift does not");
    assert!(hooks.started().iter().all(|h| *h != HookName::AfterTraffic), "planning runs nothing");
}

fn fleet(w: &World, cluster: &str) -> std::collections::BTreeSet<String> {
    w.instances(cluster).into_iter().map(|i| i.id.to_string()).collect()
}

fn members(w: &World, target: &LbTarget) -> std::collections::BTreeSet<String> {
    w.cloud.registered(target).into_iter().map(|i| i.to_string()).collect()
}

/// A user found this: a blue/green promote whose `before_traffic` hook failed left the idle cluster empty: its
/// previous release, what a switch back goes to, was retired before the new fleet had passed the hook. It is set
/// aside while the hook checks the new fleet alone, registered again when the hook fails, and retired only after
/// the hook passed.
#[tokio::test(start_paused = true)]
async fn the_idle_clusters_previous_release_is_retired_only_after_before_traffic_passed() {
    let (w, hooks) = world().await;
    let (a, b, c, d) = (w.bake('a').await, w.bake('b').await, w.bake('c').await, w.bake('d').await);
    let release = with_hooks(w.release("alice"), &hooks);
    for (sha, cluster) in [(&a, "green"), (&b, "blue")] {
        w.cloud.clock.advance(Duration::from_secs(600));
        release.promote("prod", sha, &Default::default(), None).await.unwrap();
        release.switch(cluster, &Default::default(), None).await.unwrap();
    }
    w.cloud.clock.advance(Duration::from_secs(600));
    let (green, blue) = (LbTarget::TargetGroup("shop-green".into()), LbTarget::TargetGroup("shop-blue".into()));
    let previous = fleet(&w, "green");
    assert_eq!(w.commits("green"), vec![a.to_string()], "green (idle) runs a");
    let weights = w.weights().await;

    // The hook fails: c's fleet goes, a's stays in green and registered.
    hooks.script(HookName::BeforeTraffic, Script::exits(3, Duration::from_secs(20), &["smoke failed"]));
    let err = release.promote("prod", &c, &Default::default(), None).await.unwrap_err();
    assert_eq!((err.kind(), err.rolled_back()), (ErrorKind::DeployFailed, Some(true)), "{err}");
    assert_eq!(fleet(&w, "green"), previous, "a's instances still run in green");
    assert_eq!(members(&w, &green), previous, "and are registered in its target group again");
    let of_c: Vec<_> = w.cloud.state().instances.iter().filter(|i| i.tags.get("release:commit").map(String::as_str) == Some(c.as_str())).cloned().collect();
    assert_eq!(of_c.len(), 2);
    assert!(of_c.iter().all(|i| i.state == "terminated"), "{of_c:?}");
    assert_eq!(w.weights().await, weights, "no traffic moved");
    let r = &w.records("prod").await[0];
    assert_eq!((r.outcome, r.rolled_back), (Outcome::Failed, Some(true)));
    let release_core::model::ledger::Action::Promote(p) = &r.action else { panic!("{r:?}") };
    assert!(p.retired_instances.is_empty() && p.draining.is_empty(), "{p:?}");
    // The switch back to a launches nothing (once c's deregistered targets stopped draining: switch counts a
    // draining target as a stray).
    w.cloud.clock.advance(Duration::from_secs(60));
    let launches = w.cloud.state().launches.len();
    release.switch("green", &Default::default(), None).await.expect("switch back to green");
    assert_eq!(w.cloud.state().launches.len(), launches);
    assert_eq!(fleet(&w, "green"), previous);

    // The hook passes: b's instances (blue, now idle) are out of the load balancer while it runs, still alive,
    // and terminated only after it passed.
    w.cloud.clock.advance(Duration::from_secs(600));
    hooks.script(HookName::BeforeTraffic, Script::exits(0, Duration::from_secs(20), &["smoke ok"]));
    let old = fleet(&w, "blue");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (mut watched, _) = w.release_with("alice", None);
    let (cloud, s2, o2, t2) = (w.cloud.clone(), seen.clone(), old.clone(), blue.clone());
    watched.session.checkpoint = Arc::new(move |step: &str| {
        let alive = cloud.live_instances().iter().filter(|i| o2.contains(i.id.as_str())).count();
        let registered: std::collections::BTreeSet<String> = cloud.registered(&t2).into_iter().map(|i| i.to_string()).collect();
        s2.lock().unwrap().push((step.to_owned(), alive, registered.iter().filter(|i| o2.contains(*i)).count()));
        Ok(())
    });
    let report = with_hooks(watched, &hooks).promote("prod", &d, &Default::default(), None).await.unwrap();
    assert_eq!(report.cluster.as_str(), "blue");
    let seen = seen.lock().unwrap().clone();
    let at = |step: &str| seen.iter().find(|(s, _, _)| s == step).cloned().unwrap_or_else(|| panic!("no step {step}: {seen:?}"));
    assert_eq!(at("hook-before-traffic"), ("hook-before-traffic".to_owned(), 2, 0), "when the hook passed, b's instances ran, out of the load balancer: {seen:?}");
    assert_eq!(at("terminated-old").1, 0, "{seen:?}");
    let order: Vec<&str> = seen.iter().map(|(s, _, _)| s.as_str()).filter(|s| ["hook-before-traffic", "terminated-old"].contains(s)).collect();
    assert_eq!(order, ["hook-before-traffic", "terminated-old"]);
    assert_eq!(w.commits("blue"), vec![d.to_string()]);
    assert_eq!(members(&w, &blue), fleet(&w, "blue"));
    assert_eq!(report.retired_instances.iter().map(ToString::to_string).collect::<std::collections::BTreeSet<_>>(), old);
}

/// A crash between `before_traffic` passing and the retirement of the idle cluster's previous release: the re-run
/// does not run the hook again, and retires what the crashed run had set aside (nothing leaks).
#[tokio::test(start_paused = true)]
async fn a_crash_after_before_traffic_passed_is_resumed_and_retires_the_previous_release() {
    let (w, hooks) = world().await;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    let release = with_hooks(w.release("alice"), &hooks);
    for (sha, cluster) in [(&a, "green"), (&b, "blue")] {
        w.cloud.clock.advance(Duration::from_secs(600));
        release.promote("prod", sha, &Default::default(), None).await.unwrap();
        release.switch(cluster, &Default::default(), None).await.unwrap();
    }
    w.cloud.clock.advance(Duration::from_secs(600));
    let green = LbTarget::TargetGroup("shop-green".into());
    let previous = fleet(&w, "green");
    let (dying, _) = w.release_with("alice", Some("hook-before-traffic"));
    let err = with_hooks(dying, &hooks).promote("prod", &c, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crash);
    let both = fleet(&w, "green");
    assert_eq!(both.len(), 4, "a's set aside but alive, c's serving the idle load balancer");
    assert!(previous.is_subset(&both));
    assert!(members(&w, &green).is_disjoint(&previous));
    let ran = hooks.started().len();
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    let report = with_hooks(w.release("alice"), &hooks).promote("prod", &c, &Default::default(), None).await.unwrap();
    assert_eq!(report.outcome, "succeeded");
    assert!(hooks.started()[ran..].is_empty(), "no hook runs again: {:?}", hooks.started());
    assert_eq!(w.commits("green"), vec![c.to_string()]);
    assert_eq!(fleet(&w, "green").len(), 2, "a's instances were retired");
    assert_eq!(members(&w, &green), fleet(&w, "green"));
    let records: Vec<_> = w.records("prod").await.into_iter().filter(|r| r.commit() == Some(&c)).collect();
    assert_eq!(records.len(), 1, "the re-run adopted the record");
    assert_eq!(records[0].outcome, Outcome::Succeeded);
    assert_eq!(report.retired_instances.iter().map(ToString::to_string).collect::<std::collections::BTreeSet<_>>(), previous);
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
    assert_eq!(running.deadline, running.started.add(release_core::model::hook::DEFAULT_TIMEOUT), "hook_timeout (staging: the default)");

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
    w.cloud.clock.advance(release_core::model::hook::DEFAULT_TIMEOUT);
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
