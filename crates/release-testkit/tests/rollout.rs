//! Rollouts on the in-memory cloud with simulated time: steps watched for long pauses, alarms and lost health that
//! roll back, holds ended by `rollout continue` or `rollback` from another session, Ctrl-C, and a crash at every
//! step boundary followed by a re-run that resumes where Route53 is, never lower.

use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::model::ids::CommitSha;
use release_core::model::ledger::{Action, Outcome};
use release_core::ports::AlarmState;
use release_core::engine::lock::LOCK_LEASE;
use release_core::ops::switch::{SwitchOptions, SwitchReport};
use release_core::ErrorKind;
use release_testkit::fixtures::{shop, World};

const ROLLOUT: &str = r#"[env.prod.rollout]
steps = [10, 50, 100]
pause = "5m"
alarms = ["shop-5xx", "shop-p99"]
"#;

const HOLD: &str = r#"[env.prod.rollout]
steps = [10, "hold", 100]
pause = "5m"
alarms = ["shop-5xx"]
"#;

/// green serves v1 (100 %), blue runs v2 healthy and idle: ready for a rollout to blue.
async fn ready(extra: &str) -> (World, CommitSha) {
    let w = World::with(shop(2, extra)).await;
    w.cloud.put_alarm("shop-5xx");
    w.cloud.put_alarm("shop-p99");
    w.cloud.set_alarm("shop-5xx", AlarmState::Ok);
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.cloud.clock.advance(Duration::from_secs(600));
    let r = w.promote("prod", &v1).await.unwrap();
    w.release("alice").switch(r.cluster.as_str(), &SwitchOptions { weight: Some(100), ..Default::default() }, None).await.unwrap();
    assert_eq!(r.cluster.as_str(), "green");
    w.cloud.clock.advance(Duration::from_secs(600));
    w.promote("prod", &v2).await.unwrap();
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    (w, v2)
}

fn changes(w: &World) -> u64 {
    w.cloud.state().calls.get("route53:ChangeResourceRecordSets").copied().unwrap_or(0)
}

fn rollout_of(r: &SwitchReport) -> &release_core::ops::switch::rollout::RolloutOutcome {
    r.rollout.as_ref().expect("a rollout report")
}

#[tokio::test(start_paused = true)]
async fn a_rollout_takes_each_step_in_one_change_and_watches_each_pause() {
    let (w, v2) = ready(ROLLOUT).await;
    let before = changes(&w);
    let t0 = w.cloud.clock.now();
    let r = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap();
    let elapsed = w.cloud.clock.now().since(t0);
    assert!(!rollout_of(&r).rolled_back);
    assert_eq!(rollout_of(&r).route53_changes, 3);
    assert_eq!(changes(&w) - before, 3, "one Route53 change per step");
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
    assert!(elapsed >= Duration::from_secs(600), "two pauses of 5m were watched (simulated), took {elapsed:?}");
    let records = w.records("prod").await;
    let rec = r_ref(&records, &r);
    assert_eq!(rec.outcome, Outcome::Succeeded);
    assert_eq!(rec.commit(), Some(&v2));
    let Action::Switch(s) = &rec.action else { panic!() };
    assert_eq!(s.rollout.as_ref().and_then(|st| st.step), Some(2), "the journal says the last step was reached");
    // The pause polls: one DescribeAlarms per poll for both alarms (5 s polls over 10 minutes, plus the ends).
    let describe = w.cloud.state().calls.get("cloudwatch:DescribeAlarms").copied().unwrap_or(0);
    assert!((100..=260).contains(&describe), "one DescribeAlarms per poll, not one per alarm: {describe}");
    // A rollback afterwards goes back to v1 on green, as after a plain switch.
    let plan = w.release("alice").plan_rollback("prod", &Default::default()).await.unwrap();
    assert_eq!(plan.cluster.as_str(), "green");
    assert!(!w.locked());
}

fn r_ref<'a>(records: &'a [release_core::model::ledger::Record], r: &SwitchReport) -> &'a release_core::model::ledger::Record {
    records.iter().find(|x| x.release_id.to_string() == r.release_id).expect("the rollout's record")
}

#[tokio::test(start_paused = true)]
async fn an_alarm_at_step_two_rolls_back_in_one_change_and_the_ledger_says_why() {
    let (w, _) = ready(ROLLOUT).await;
    let before = changes(&w);
    // 10 % at t=0, 50 % after the 5m pause: the alarm fires two minutes into the second pause.
    w.cloud.set_alarm_at("shop-p99", AlarmState::Alarm, Duration::from_secs(7 * 60));
    let r = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap();
    let o = rollout_of(&r);
    assert!(o.rolled_back);
    assert_eq!(o.reason.as_deref(), Some("alarm shop-p99 went to ALARM at step 50%"));
    assert_eq!(changes(&w) - before, 3, "10 %, 50 %, and one change back");
    assert_eq!(w.weights().await.describe(), "blue=0,green=100", "the weights from before the rollout");
    let records = w.records("prod").await;
    let rec = r_ref(&records, &r);
    assert_eq!(rec.outcome, Outcome::RolledBack);
    assert_eq!(rec.detail.as_deref(), Some("alarm shop-p99 went to ALARM at step 50%"));
    assert_eq!(rec.rolled_back, Some(true));
    assert!(!w.locked());
    // Rolled back: not history; a rollback now has no partial shift to undo and blue is idle again.
    assert!(release_core::model::ledger::live_history(&records).iter().all(|l| l.cluster.as_ref().map(|c| c.as_str()) != Some("blue")));
}

#[tokio::test(start_paused = true)]
async fn an_alarm_already_in_alarm_or_missing_stops_before_any_change() {
    let (w, _) = ready(ROLLOUT).await;
    w.cloud.delete_alarm("shop-p99");
    let before = changes(&w);
    let err = w.release("alice").plan_switch("blue", &SwitchOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("alarm shop-p99 of env prod's rollout does not exist"), "{err}");
    let err = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(changes(&w), before, "nothing changed");
    // An alarm already in ALARM: refused before 10 % goes out (it would only come back at once).
    w.cloud.put_alarm("shop-p99");
    w.cloud.set_alarm("shop-5xx", AlarmState::Alarm);
    let err = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert_eq!(changes(&w), before, "nothing changed");
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
}

#[tokio::test(start_paused = true)]
async fn the_target_losing_health_during_a_pause_rolls_back() {
    let (w, _) = ready(ROLLOUT).await;
    let sick = w.instances("blue")[0].id.clone();
    let release = w.release("alice");
    let opts = SwitchOptions::default();
    let run = release.switch("blue", &opts, None);
    let cloud = w.cloud.clone();
    let harm = async move {
        tokio::time::sleep(Duration::from_secs(8 * 60)).await;
        cloud.state().sick.push(sick);
    };
    let (r, ()) = tokio::join!(run, harm);
    let r = r.unwrap();
    let reason = rollout_of(&r).reason.clone().unwrap();
    assert!(reason.starts_with("cluster blue lost health at step 50%"), "{reason}");
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
}

#[tokio::test(start_paused = true)]
async fn a_long_pause_keeps_the_lock_renewed_and_status_counts_down() {
    let (w, _) = ready(&ROLLOUT.replace("5m", "6h")).await;
    let release = w.release("alice");
    let opts = SwitchOptions::default();
    let run = release.switch("blue", &opts, None);
    let observe = async {
        tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
        let st = w.release("bob").rollout_status("prod").await.unwrap();
        // Another operator cannot take the lock meanwhile: it is renewed all along.
        let err = w.release("bob").switch("green", &SwitchOptions { weight: Some(100), ..Default::default() }, None).await.unwrap_err();
        (st, err)
    };
    let (r, (st, err)) = tokio::join!(run, observe);
    assert!(!rollout_of(&r.unwrap()).rolled_back);
    assert!(st.in_progress && st.running, "{st:?}");
    assert_eq!((st.step.as_str(), st.step_number), ("10%", Some(1)));
    let left = st.seconds_left.unwrap();
    assert!((3.9 * 3600.0..=4.0 * 3600.0).contains(&left), "about 4h of the 6h pause left: {left}");
    assert_eq!(st.weights, "blue 10%, green 90%");
    assert_eq!(st.healthy, Some((2, 2)));
    assert_eq!(st.alarms.len(), 2);
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_hold_waits_until_rollout_continue_from_another_session() {
    let (w, _) = ready(HOLD).await;
    let release = w.release("alice");
    let opts = SwitchOptions::default();
    let run = release.switch("blue", &opts, None);
    let operator = async {
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        let st = w.release("bob").rollout_status("prod").await.unwrap();
        let weights = w.weights().await.describe();
        let cont = w.release("bob").rollout_continue("prod", Default::default()).await.unwrap();
        (st, weights, cont)
    };
    let (r, (st, weights, cont)) = tokio::join!(run, operator);
    let r = r.unwrap();
    assert!(st.holding && st.running, "held three hours later: {st:?}");
    assert_eq!(weights, "blue=10,green=90", "the hold keeps the 10 % step");
    assert!(cont.request_id.is_some(), "asked through the ledger: {cont:?}");
    assert!(!rollout_of(&r).rolled_back);
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
    let records = w.records("prod").await;
    assert!(records.iter().any(|x| matches!(&x.action, Action::RolloutRequest(q) if q.request.as_str() == "continue") && x.actor == "bob"), "who continued is in the ledger");
    assert!(w.lines.lock().unwrap().iter().any(|l| l.starts_with("holding at 10% (the lock of env prod stays taken and is renewed)")));
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn rollback_during_a_hold_is_carried_out_by_the_holder() {
    let (w, _) = ready(HOLD).await;
    let before = changes(&w);
    let release = w.release("alice");
    let opts = SwitchOptions::default();
    let run = release.switch("blue", &opts, None);
    let operator = async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        w.release("bob").rollout_rollback("prod").await.unwrap()
    };
    let (r, asked) = tokio::join!(run, operator);
    let r = r.unwrap();
    assert_eq!(asked.unwrap().outcome, "rolled-back");
    assert_eq!(rollout_of(&r).reason.as_deref(), Some("rolled back by bob (`release rollback`) during the hold at 10%"));
    assert_eq!(changes(&w) - before, 2, "10 %, then one change back");
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    assert_eq!(r_ref(&w.records("prod").await, &r).outcome, Outcome::RolledBack);
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_a_pause_puts_the_weights_back() {
    let (w, _) = ready(ROLLOUT).await;
    let (release, signals) = w.release_with("alice", None);
    let opts = SwitchOptions::default();
    let run = release.switch("blue", &opts, None);
    let press = async {
        tokio::time::sleep(Duration::from_secs(7 * 60)).await;
        signals.signal();
    };
    let (r, ()) = tokio::join!(run, press);
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert_eq!(err.rolled_back(), Some(true));
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    assert_eq!(w.records("prod").await[0].outcome, Outcome::Interrupted);
    assert!(!w.locked());
}

/// (crash point, Route53 changes the re-run makes): never a step lower than where Route53 was left.
const CRASHES: &[(&str, u32)] = &[
    ("locked", 3),
    ("recorded", 3),
    ("changed-10", 2),
    ("step-10", 2),
    ("changed-50", 1),
    ("step-50", 1),
    ("changed-100", 0),
    ("step-100", 0),
    ("finished", 0),
];

#[tokio::test(start_paused = true)]
async fn a_crash_at_every_step_boundary_then_a_rerun_resumes_from_the_recorded_step() {
    let mut table = vec![format!("{:<12} {:<20} {:>14} {:>10}", "crash at", "left at", "re-run changes", "records")];
    for (step, want) in CRASHES.iter().copied() {
        let (w, _) = ready(ROLLOUT).await;
        let (release, _) = w.release_with("alice", Some(step));
        let first = release.switch("blue", &SwitchOptions::default(), None).await;
        assert!(first.as_ref().is_err_and(|e| e.kind() == ErrorKind::Crash) || step == "finished", "crash at {step}: {first:?}");
        let left = w.weights().await.describe();
        // A killed process keeps its lock until the lease runs out.
        w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
        let r = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap_or_else(|e| panic!("re-run after a crash at {step}: {e}"));
        assert_eq!(w.weights().await.describe(), "blue=100,green=0", "crash at {step}");
        let made = r.rollout.as_ref().map_or(0, |o| o.route53_changes);
        assert_eq!(made, want, "crash at {step} (left at {left}): the re-run resumes, never restarting lower");
        let records = w.records("prod").await;
        let rollouts: Vec<_> = records.iter().filter(|x| matches!(&x.action, Action::Switch(s) if s.rollout.is_some())).collect();
        assert!(rollouts.iter().all(|x| x.outcome == Outcome::Succeeded), "crash at {step}: {rollouts:#?}");
        assert_eq!(rollouts.len(), 1, "crash at {step}: the re-run adopts the record, it does not open another");
        assert!(!w.locked());
        table.push(format!("{step:<12} {left:<20} {made:>14} {:>10}", rollouts.len()));
    }
    println!("rollout crash points tried in memory: {}\n{}", CRASHES.len(), table.join("\n"));
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_a_hold_is_continued_by_rollout_continue_in_another_process() {
    let (w, _) = ready(HOLD).await;
    let (release, _) = w.release_with("alice", Some("hold"));
    release.switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(w.weights().await.describe(), "blue=10,green=90");
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    let st = w.release("bob").rollout_status("prod").await.unwrap();
    assert!(st.in_progress && !st.running, "its run is gone: {st:?}");
    let c = w.release("bob").rollout_continue("prod", Default::default()).await.unwrap();
    assert!(c.resumed.is_some() && c.request_id.is_none(), "resumed here: {c:?}");
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_rollback_after_a_dead_rollout_restores_the_weights_from_before_it_and_closes_it() {
    let (w, _) = ready(ROLLOUT).await;
    let (release, _) = w.release_with("alice", Some("step-50"));
    release.switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(w.weights().await.describe(), "blue=50,green=50");
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    w.release("bob").rollback("prod", &Default::default(), None).await.unwrap();
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    let records = w.records("prod").await;
    let dead = records.iter().find(|x| matches!(&x.action, Action::Switch(s) if s.rollout.is_some())).unwrap();
    assert_eq!(dead.outcome, Outcome::RolledBack, "{dead:?}");
    // A switch now starts a new rollout instead of resuming the closed one.
    let r = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap();
    assert_eq!(rollout_of(&r).route53_changes, 3);
}

#[tokio::test(start_paused = true)]
async fn command_line_steps_override_the_file_and_weight_stays_one_step() {
    let (w, _) = ready("").await;
    let before = changes(&w);
    let opts = SwitchOptions { steps: Some(vec![release_core::model::pipeline::RolloutStep::Percent(25), release_core::model::pipeline::RolloutStep::Percent(100)]), pause: Some(Duration::from_secs(60)), ..Default::default() };
    let plan = w.release("alice").plan_switch("blue", &opts).await.unwrap();
    let steps: Vec<String> = plan.rollout.as_ref().unwrap().steps.iter().map(|s| s.weights.as_ref().unwrap().describe()).collect();
    assert_eq!(steps, ["blue=25,green=75", "blue=100,green=0"]);
    let r = w.release("alice").switch("blue", &opts, None).await.unwrap();
    assert_eq!(rollout_of(&r).route53_changes, 2);
    assert_eq!(changes(&w) - before, 2);
    let err = w.release("alice").plan_switch("green", &SwitchOptions { weight: Some(50), pause: Some(Duration::from_secs(1)), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input);
    // Without a rollout section and without --steps, a switch stays one step.
    let r = w.release("alice").switch("green", &SwitchOptions { weight: None, ..Default::default() }, None).await.unwrap();
    assert!(r.rollout.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_alarm_between_in_place_batches_stops_the_promote_serving_and_rollback_promotes_the_previous_commit() {
    let w = World::with(shop(3, "[env.staging.rollout]\npause = \"2m\"\nalarms = [\"shop-staging-5xx\"]\n")).await;
    w.cloud.put_alarm("shop-staging-5xx");
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.promote("staging", &v1).await.unwrap();
    let opts = release_core::ops::promote::PromoteOptions { batch: Some(1), ..Default::default() };
    // A missing alarm is refused before anything is launched.
    w.cloud.delete_alarm("shop-staging-5xx");
    let launched = w.cloud.state().launches.len();
    let err = w.release("alice").promote("staging", &v2, &opts, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(w.cloud.state().launches.len(), launched, "nothing launched");
    w.cloud.put_alarm("shop-staging-5xx");
    // The alarm fires during the watch after the first batch (each batch takes well under a minute here).
    let release = w.release("alice");
    let run = release.promote("staging", &v2, &opts, None);
    let cloud = w.cloud.clone();
    let fire = async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if cloud.live_instances().iter().filter(|i| i.tags.get("release:commit").map(String::as_str) == Some(v2_str())).count() >= 1 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        cloud.set_alarm("shop-staging-5xx", AlarmState::Alarm);
    };
    let (r, ()) = tokio::join!(run, fire);
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed, "{err}");
    assert_eq!(err.rolled_back(), Some(false));
    assert!(err.message().starts_with("alarm shop-staging-5xx went to ALARM after batch 1 of 3"), "{err}");
    let registered = w.cloud.registered(&release_core::model::pipeline::LbTarget::ClassicElb("shop-staging".into()));
    assert_eq!(registered.len(), 3, "the environment still serves at full capacity");
    let mut commits = w.commits("staging");
    commits.sort();
    assert_eq!(commits, vec![v1.to_string(), v2.to_string()], "one batch of v2, the rest v1");
    let records = w.records("staging").await;
    let rec = &records[0];
    assert_eq!(rec.outcome, Outcome::Failed, "closed, not left open for a re-run to finish: {rec:?}");
    assert_eq!(rec.promote_details().map(|d| d.batches_done), Some(1), "the ledger says which batches were done");
    assert!(!w.locked());
    // rollback promotes the previous commit: v1 everywhere again.
    w.cloud.set_alarm("shop-staging-5xx", AlarmState::Ok);
    let rb = w.release("alice").rollback("staging", &Default::default(), None).await.unwrap();
    assert_eq!(rb.plan.to_commit, v1);
    assert_eq!(w.commits("staging"), vec![v1.to_string()]);
}

fn v2_str() -> &'static str {
    "2222222222222222222222222222222222222222"
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_rollout_is_an_event_with_its_reason() {
    let extra = format!("{ROLLOUT}\n[notify]\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/release\"\n");
    let (w, _) = ready(&extra).await;
    let n = release_testkit::sinks::RecordingNotifier::default();
    let mut release = w.release("alice");
    release.session.notifier = std::sync::Arc::new(n.clone());
    w.cloud.set_alarm_at("shop-5xx", AlarmState::Alarm, Duration::from_secs(60));
    release.switch("blue", &SwitchOptions::default(), None).await.unwrap();
    let events = n.delivered("webhook https://hooks.example.com/release");
    let last = events.last().expect("events were sent");
    assert_eq!(last.event.as_str(), "rolled-back", "{events:#?}");
    assert_eq!(last.reason.as_deref(), Some("alarm shop-5xx went to ALARM at step 10%"));
}

#[tokio::test(start_paused = true)]
async fn weights_changed_by_hand_or_a_switch_elsewhere_during_a_dead_rollout_are_refused() {
    let (w, _) = ready(ROLLOUT).await;
    let (release, _) = w.release_with("alice", Some("step-10"));
    release.switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    let err = w.release("bob").switch("green", &SwitchOptions { weight: None, ..Default::default() }, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.message().contains("is unfinished (its process died at 10%); resume it with `release switch blue` or go back with `release rollback --env prod`"), "{err}");
    w.set_weights(&[("blue", 30), ("green", 70)]).await;
    let before = changes(&w);
    let err = w.release("bob").switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.message().contains("the live name's weights (blue 30%, green 70%) are none of the rollout's steps"), "{err}");
    assert!(err.message().contains("`release rollback --env prod`") && !err.message().contains("<env>"), "the env is named, no placeholder: {err}");
    assert_eq!(changes(&w), before, "nothing changed");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn rollout_continue_during_a_pause_ends_that_pause_and_reports_the_step_it_moved_to() {
    let (w, _) = ready(&ROLLOUT.replace("5m", "1h")).await;
    let release = w.release("alice");
    let opts = SwitchOptions::default();
    let run = release.switch("blue", &opts, None);
    let operator = async {
        tokio::time::sleep(Duration::from_secs(600)).await;
        let cont = w.release("bob").rollout_continue("prod", Default::default()).await.unwrap();
        let st = w.release("bob").rollout_status("prod").await.unwrap();
        (cont, st)
    };
    let (r, (cont, st)) = tokio::join!(run, operator);
    assert!(!rollout_of(&r.unwrap()).rolled_back);
    assert_eq!(cont.ended.as_deref(), Some("10%"), "it ended the pause of step 10%, not a hold: {cont:?}");
    assert_eq!(cont.step, "50%", "it reports the step the holder moved to: {cont:?}");
    assert_eq!((st.step.as_str(), st.step_number), ("50%", Some(2)), "status agrees right after: {st:?}");
    assert_eq!(st.weights, "blue 50%, green 50%");
}

#[tokio::test(start_paused = true)]
async fn rollout_status_shows_a_deleted_alarm_as_missing() {
    let (w, _) = ready(ROLLOUT).await;
    let st = w.release("bob").rollout_status("prod").await.unwrap();
    assert_eq!(st.alarms.len(), 2, "{st:?}");
    w.cloud.delete_alarm("shop-p99");
    let st = w.release("bob").rollout_status("prod").await.unwrap();
    let names: Vec<(&str, &str)> = st.alarms.iter().map(|a| (a.name.as_str(), a.state.as_str())).collect();
    assert_eq!(names, [("shop-5xx", "OK"), ("shop-p99", "missing")]);
    let doc = serde_json::to_value(&st).unwrap();
    assert_eq!(doc["alarms"][1]["state"], "missing", "{doc}");
}

#[tokio::test(start_paused = true)]
async fn a_load_balancer_deleted_during_a_hold_rolls_back_and_records_rolled_back() {
    let (w, _) = ready(HOLD).await;
    let release = w.release("alice");
    let opts = SwitchOptions::default();
    let run = release.switch("blue", &opts, None);
    let vandal = async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let t = w.pipeline.env("prod").unwrap().cluster("blue").unwrap().target.clone();
        w.cloud.state().load_balancers.remove(&t);
    };
    let (r, ()) = tokio::join!(run, vandal);
    let r = r.unwrap();
    assert!(rollout_of(&r).rolled_back, "{r:?}");
    assert!(rollout_of(&r).reason.as_deref().unwrap_or_default().starts_with("cluster blue lost its load balancer during the hold at 10%"), "{r:?}");
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    let rec = r_ref(&w.records("prod").await, &r).clone();
    assert_eq!((rec.outcome, rec.rolled_back), (Outcome::RolledBack, Some(true)));
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn rollout_continue_in_place_says_there_are_no_rollouts_there() {
    let (w, _) = ready(ROLLOUT).await;
    let err = w.release("bob").rollout_continue("staging", Default::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("env staging is in place and has no rollouts") && !err.message().contains("<cluster>"), "{err}");
    let err = w.release("bob").rollout_continue("prod", Default::default()).await.unwrap_err();
    assert!(err.message().contains("`release switch blue|green`"), "{err}");
}

/// bob's session judges alice's lock provably dead (as the CLI does for a pid gone on the same host).
fn judging_alice_dead(w: &World) -> release_core::Release {
    let mut s = w.session("bob");
    s.holder_gone = std::sync::Arc::new(|l: &release_core::model::ledger::LockInfo| l.holder == "alice");
    release_core::Release::new(s, w.pipeline.clone())
}

#[tokio::test(start_paused = true)]
async fn rollout_continue_resumes_at_once_when_the_holder_is_provably_dead() {
    let (w, _) = ready(HOLD).await;
    let (release, _) = w.release_with("alice", Some("hold"));
    release.switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert!(w.locked(), "a killed process keeps its lock");
    let st = w.release("bob").rollout_status("prod").await.unwrap();
    assert!(st.running, "not judged dead, the lease still runs: {st:?}");
    let bob = judging_alice_dead(&w);
    let st = bob.rollout_status("prod").await.unwrap();
    assert!(st.in_progress && !st.running, "a provably dead holder is not running: {st:?}");
    assert!(w.locked(), "judging the holder is a read: its lock is broken only by the command that takes over");
    let t0 = w.cloud.clock.now();
    let c = bob.rollout_continue("prod", Default::default()).await.unwrap();
    assert!(c.resumed.is_some() && c.request_id.is_none(), "resumed here, no request to a dead run: {c:?}");
    assert!(w.cloud.clock.now().since(t0) < release_core::ops::switch::rollout::REQUEST_WAIT, "did not wait for the dead holder");
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
    assert!(!w.records("prod").await.iter().any(|x| matches!(x.action, Action::RolloutRequest(_))), "no request was written");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn rollback_restores_the_weights_at_once_when_the_rollout_holder_is_provably_dead() {
    let (w, _) = ready(HOLD).await;
    let (release, _) = w.release_with("alice", Some("hold"));
    release.switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(w.weights().await.describe(), "blue=10,green=90");
    let bob = judging_alice_dead(&w);
    let t0 = w.cloud.clock.now();
    assert!(bob.rollout_rollback("prod").await.unwrap().is_none(), "no live run to ask");
    bob.rollback("prod", &Default::default(), None).await.unwrap();
    assert!(w.cloud.clock.now().since(t0) < release_core::ops::switch::rollout::REQUEST_WAIT, "did not wait for the dead holder");
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    let records = w.records("prod").await;
    let dead = records.iter().find(|x| matches!(&x.action, Action::Switch(s) if s.rollout.is_some())).unwrap();
    assert_eq!((dead.outcome, dead.rolled_back), (Outcome::RolledBack, Some(true)), "{dead:?}");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_rollout_with_a_watched_alarm_already_in_alarm_is_refused_before_any_change() {
    let (w, _) = ready(ROLLOUT).await;
    w.cloud.set_alarm("shop-p99", AlarmState::Alarm);
    let before = changes(&w);
    let records = w.records("prod").await.len();
    let err = w.release("alice").plan_switch("blue", &SwitchOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "--plan refuses as the run would: {err}");
    for force in [false, true] {
        let err = w.release("alice").switch("blue", &SwitchOptions { force, ..Default::default() }, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused, "force {force}: {err}");
        assert_eq!(err.kind().exit_code(), 4);
        assert!(
            err.message().starts_with("alarm shop-p99 of env prod is in ALARM now, so a rollout would go back at its first step; fix it or remove it from `alarms` in [env.prod.rollout]"),
            "{err}"
        );
    }
    assert_eq!(changes(&w), before, "no Route53 change");
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    assert_eq!(w.records("prod").await.len(), records, "no record opened");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_batch_promote_with_an_alarm_already_in_alarm_is_refused_before_launching() {
    let w = World::with(shop(3, "[env.staging.rollout]\npause = \"2m\"\nalarms = [\"shop-staging-5xx\"]\n")).await;
    w.cloud.put_alarm("shop-staging-5xx");
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.promote("staging", &v1).await.unwrap();
    w.cloud.set_alarm("shop-staging-5xx", AlarmState::Alarm);
    let opts = release_core::ops::promote::PromoteOptions { batch: Some(1), ..Default::default() };
    let launched = w.cloud.state().launches.len();
    let err = w.release("alice").plan_promote("staging", &v2, &opts).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "--plan refuses as the run would: {err}");
    let err = w.release("alice").promote("staging", &v2, &opts, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().starts_with("alarm shop-staging-5xx of env staging is in ALARM now, so a promote in batches would stop after its first batch; fix it"), "{err}");
    assert_eq!(w.cloud.state().launches.len(), launched, "nothing launched");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_resumed_rollout_watches_its_current_step_for_a_full_fresh_pause() {
    let (w, _) = ready(ROLLOUT).await;
    let (release, _) = w.release_with("alice", Some("step-50"));
    release.switch("blue", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(w.weights().await.describe(), "blue=50,green=50");
    // Dead for longer than the 5m pause: the pause ran out with nobody watching.
    w.cloud.clock.advance(Duration::from_secs(20 * 60));
    let t0 = w.cloud.clock.now();
    let r = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap();
    let watched = w.cloud.clock.now().since(t0);
    assert!(rollout_of(&r).resumed && !rollout_of(&r).rolled_back, "{r:?}");
    assert!(watched >= Duration::from_secs(300), "the 50% step was watched a full 5m again before 100%: {watched:?}");
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
}

/// A rollout whose lock was broken (`unlock --force`) stops where it is, traffic split, its record closed
/// `lost-lock`: one `rollback` must restore the weights from before it, which that record holds.
#[tokio::test(start_paused = true)]
async fn rollback_restores_the_weights_of_a_rollout_that_lost_its_lock() {
    let (w, _) = ready(HOLD).await;
    let release = w.release("alice");
    let bob = w.release("bob");
    let opts = SwitchOptions::default();
    let (run, broken) = tokio::join!(release.switch("blue", &opts, None), async {
        tokio::time::sleep(Duration::from_secs(600)).await;
        bob.unlock("prod", true).await
    });
    assert!(broken.unwrap().broken);
    let err = run.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert_eq!(w.weights().await.describe(), "blue=10,green=90", "left where it was");
    let lost = w.records("prod").await.into_iter().find(|x| matches!(&x.action, Action::Switch(s) if s.rollout.is_some())).unwrap();
    assert_eq!(lost.outcome, Outcome::LostLock, "{lost:?}");

    let plan = bob.plan_rollback("prod", &Default::default()).await.unwrap();
    assert_eq!(plan.to_weights.as_ref().map(|w| w.describe()).as_deref(), Some("blue=0,green=100"), "{}", plan.summary);
    bob.rollback("prod", &Default::default(), Some(&plan)).await.unwrap();
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    assert!(!w.locked());
}
