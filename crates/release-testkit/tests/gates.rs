//! Promotion gates on the in-memory cloud, in simulated time: requires, soak, approvals and a deploy window hold a
//! promote (exit 4, nothing launched) until each opens; freezes and vetoes; break-glass recorded; rollback never held.

use std::path::Path;
use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::model::ledger::{Action, GateChange, Outcome};
use release_core::model::pipeline::{parse, Pipeline};
use release_core::ops::promote::PromoteOptions;
use release_core::ErrorKind;
use release_testkit::fixtures::{shop_pipeline, World};

/// Staging in place, prod in place behind `gates`. The memory cloud's clock starts on Friday 2026-11-20 03:49:50Z.
fn gated(gates: &str) -> Pipeline {
    gated_with(gates, "")
}

/// [`gated`] with `extra` appended (`[notify]`).
fn gated_with(gates: &str, extra: &str) -> Pipeline {
    shop_pipeline(
        "health_timeout = \"10m\"\ndrain = \"30s\"",
        &format!(
            r#"[env.staging]
[env.staging.clusters.staging]
load_balancer = "shop-staging"
count = 1
[env.prod]
{gates}
[env.prod.clusters.prod]
target_group = "shop-prod"
count = 2
{extra}"#
        ),
    )
}

fn promotes(records: &[release_core::model::ledger::Record]) -> usize {
    records.iter().filter(|r| matches!(r.action, Action::Promote(_))).count()
}

#[tokio::test(start_paused = true)]
async fn requires_soak_approvals_and_a_window_hold_prod_until_each_opens() {
    let w = World::with(gated(
        "requires = [\"staging\"]\nsoak = \"30m\"\napprovals = 2\nwindows = [\"mon-fri 09:00-16:00 Europe/Lisbon\"]",
    ))
    .await;
    let v1 = w.bake('1').await;
    let refused = |e: release_core::Error| {
        assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
        e.to_string()
    };

    // Friday 03:49 in Lisbon (UTC in November): every gate is closed.
    let msg = refused(w.promote("prod", &v1).await.unwrap_err());
    assert!(msg.starts_with(&format!("promote {} to prod is held by its gates: ", &v1.as_str()[..12])), "{msg}");
    for part in ["requires: not promoted to staging yet", "soak: not serving in staging yet (30m needed)", "approvals: 0 of 2", "window: closed, opens Fri 09:00 Europe/Lisbon"] {
        assert!(msg.contains(part), "{part:?} in {msg}");
    }
    assert!(w.instances("prod").is_empty(), "nothing launched");
    assert_eq!(promotes(&w.records("prod").await), 0, "no promote recorded");

    // Staging first; then the soak counts down on the clock.
    w.promote("staging", &v1).await.unwrap();
    w.cloud.clock.advance(Duration::from_secs(600));
    let msg = refused(w.promote("prod", &v1).await.unwrap_err());
    assert!(msg.contains("soak: 20m of 30m left in staging"), "{msg}");
    assert!(!msg.contains("requires"), "{msg}");

    // Approvals: alice twice counts once.
    w.release("alice").approve("prod", &v1, Some("looks good")).await.unwrap();
    let twice = w.release("alice").approve("prod", &v1, None).await.unwrap();
    assert_eq!(twice.approvals, Some((vec!["alice".to_owned()], 2)));
    let msg = refused(w.promote("prod", &v1).await.unwrap_err());
    assert!(msg.contains("approvals: 1 of 2 (alice)"), "{msg}");
    w.release("bob").approve("prod", &v1, None).await.unwrap();
    let approvals: Vec<_> = w.records("prod").await.into_iter().filter(|r| matches!(&r.action, Action::Gate(g) if g.change == GateChange::Approve)).collect();
    assert_eq!(approvals.len(), 3, "every approval is in the ledger");

    // 08:59 Lisbon: only the window is left.
    w.cloud.clock.advance(Duration::from_secs(5 * 3600 - 50));
    let msg = refused(w.promote("prod", &v1).await.unwrap_err());
    assert!(msg.ends_with("is held by its gates: window: closed, opens Fri 09:00 Europe/Lisbon; nothing was changed (`release plan` shows every gate; break glass with --override-gates --reason TEXT)"), "{msg}");
    let plan = w.release("alice").plan_gates(Some("prod")).await.unwrap();
    assert_eq!(plan[0].candidate.as_ref().map(|c| &c.commit), Some(&v1));
    assert!(!plan[0].eligible);
    w.cloud.clock.advance(Duration::from_secs(120));
    let r = w.promote("prod", &v1).await.unwrap();
    assert_eq!(r.new_instances.len(), 2);
    assert_eq!(w.commits("prod"), vec![v1.to_string()]);
    let rec = w.records("prod").await.into_iter().find(|r| matches!(r.action, Action::Promote(_))).unwrap();
    assert_eq!((rec.outcome, rec.gates_overridden.is_none()), (Outcome::Succeeded, true));
}

#[tokio::test(start_paused = true)]
async fn a_freeze_holds_break_glass_is_recorded_and_rollback_is_never_held() {
    let sink = "[notify]\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/release/abc\"\n";
    let w = World::with(gated_with("requires = [\"staging\"]", sink)).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    for v in [&v1, &v2] {
        w.promote("staging", v).await.unwrap();
    }
    w.promote("prod", &v1).await.unwrap();
    let until = w.cloud.clock.now().add(Duration::from_secs(86_400));
    w.release("bob").freeze("prod", "black friday", Some(until)).await.unwrap();
    let err = w.promote("prod", &v2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    let frozen = format!("frozen by bob: black friday (until {until})");
    assert!(err.to_string().contains(&frozen), "{err}");
    assert_eq!(w.commits("prod"), vec![v1.to_string()], "nothing changed");

    // Break glass: through, and the record says past what and why.
    let o = PromoteOptions { override_gates: Some("hotfix for the checkout outage".into()), ..Default::default() };
    let events = release_testkit::sinks::RecordingNotifier::default();
    let mut carol = w.release("carol");
    carol.session.notifier = std::sync::Arc::new(events.clone());
    carol.promote("prod", &v2, &o, None).await.unwrap();
    assert_eq!(w.commits("prod"), vec![v2.to_string()]);
    let rec = w.records("prod").await.into_iter().find(|r| matches!(r.action, Action::Promote(_))).unwrap();
    let over = rec.gates_overridden.expect("the override is recorded");
    assert_eq!(over.reason, "hotfix for the checkout outage");
    assert_eq!(over.closed, vec![frozen.clone()]);
    let sent = events.delivered("webhook https://hooks.example.com/release/…");
    assert_eq!(sent.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(), ["started", "succeeded"]);
    assert!(sent.iter().all(|e| e.gates_overridden.as_ref().is_some_and(|o| o.reason == "hotfix for the checkout outage" && o.closed == [frozen.clone()])), "{sent:?}");

    // The way back is open under the freeze.
    w.cloud.clock.advance(Duration::from_secs(600));
    let r = w.release("alice").rollback("prod", &PromoteOptions::default(), None).await.unwrap();
    assert_eq!(r.plan.to_commit, v1);
    assert_eq!(w.commits("prod"), vec![v1.to_string()]);

    // Unfrozen (or past `until`), the promote goes through.
    w.release("bob").unfreeze("prod").await.unwrap();
    let plan = w.release("alice").plan_gates(Some("prod")).await.unwrap();
    assert!(plan[0].gates.iter().all(|g| g.open), "{:?}", plan[0].gates);
}

#[tokio::test(start_paused = true)]
async fn a_vetoed_commit_is_refused_everywhere_and_rollback_steps_over_it() {
    let w = World::with(gated("requires = [\"staging\"]")).await;
    let (v1, v2, v3, v4) = (w.bake('1').await, w.bake('2').await, w.bake('3').await, w.bake('4').await);
    for v in [&v1, &v2, &v3] {
        w.promote("staging", v).await.unwrap();
    }
    w.release("dave").veto(&v2, "corrupts invoices").await.unwrap();
    w.release("dave").veto(&v4, "breaks login").await.unwrap();
    let err = w.promote("staging", &v4).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("vetoed: breaks login"), "{err}");
    let err = w.promote("prod", &v2).await.unwrap_err();
    assert!(err.to_string().contains("vetoed: corrupts invoices"), "{err}");
    assert!(w.instances("prod").is_empty());
    assert_eq!(w.commits("staging"), vec![v3.to_string()]);

    // Rolling back from v3 steps over the vetoed v2 to v1.
    let plan = w.release("alice").plan_rollback("staging", &PromoteOptions::default()).await.unwrap();
    assert_eq!(plan.to_commit, v1);
    w.release("alice").rollback("staging", &PromoteOptions::default(), None).await.unwrap();
    assert_eq!(w.commits("staging"), vec![v1.to_string()]);

    // Lifted, v4 goes.
    w.release("dave").unveto(&v4).await.unwrap();
    w.promote("staging", &v4).await.unwrap();
    assert_eq!(w.commits("staging"), vec![v4.to_string()]);
}

/// A complete bake of commit number `n` (as `World::bake`, for more than 16 commits).
async fn bake_n(w: &World, n: u32) -> release_core::model::ids::CommitSha {
    use release_core::ports::{tags, ImageState};
    let sha = release_core::model::ids::CommitSha::parse(&format!("{n:040x}")).unwrap();
    let ami = w.cloud.register_image(&format!("shop-{sha}"), ImageState::Available);
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    w.cloud.cloud().images.tag(&ami, &[], &[t(tags::APP, "shop"), t(tags::COMMIT, sha.as_str()), t(tags::BAKE_KEY, &format!("key{n}"))]).await.unwrap();
    sha
}

/// Staging, canary and prod in place, each `auto`: canary needs staging and an approval, prod needs canary.
fn three_envs() -> Pipeline {
    let src = r#"app = "shop"
[build]
command = "true"
artifact = "a.tgz"
[bake]
template = "t.pkr.hcl"
base_ami = "ami-0a1b2c3d4e5f60718"
[env.staging]
auto = true
[env.staging.clusters.staging]
load_balancer = "shop-staging"
count = 1
[env.canary]
auto = true
requires = ["staging"]
approvals = 1
[env.canary.clusters.canary]
load_balancer = "shop-canary"
count = 1
[env.prod]
auto = true
requires = ["canary"]
[env.prod.clusters.prod]
target_group = "shop-prod"
count = 1
"#;
    parse(Path::new("pipelines/shop.toml"), Path::new("."), src, false).unwrap()
}

#[tokio::test(start_paused = true)]
async fn plan_and_a_reconcile_cycle_make_the_same_calls_for_3_or_30_bakes() {
    let mut seen = Vec::new();
    for bakes in [3u8, 30] {
        let w = World::with(three_envs()).await;
        let mut last = None;
        for i in 0..bakes {
            last = Some(bake_n(&w, u32::from(i) + 1).await);
        }
        let newest = last.unwrap();
        w.promote("staging", &newest).await.unwrap();
        w.cloud.state().calls.clear();
        let plan = w.release("alice").plan_gates(None).await.unwrap();
        assert_eq!(plan.iter().map(|e| e.candidate.as_ref().map(|c| c.commit.clone())).collect::<Vec<_>>(), vec![Some(newest.clone()), Some(newest.clone()), None]);
        let plan_calls = std::mem::take(&mut w.cloud.state().calls);
        let decisions = w.release("reconciler").reconcile_once().await.unwrap();
        let kinds: Vec<&str> = decisions.iter().map(|d| d.decision).collect();
        assert_eq!(kinds, ["up-to-date", "held", "nothing"], "{decisions:?}");
        assert_eq!(decisions[1].reason, "approvals: 0 of 1");
        let cycle_calls = std::mem::take(&mut w.cloud.state().calls);
        println!("{bakes} bakes: plan {plan_calls:?}, reconcile --once {cycle_calls:?}");
        seen.push((plan_calls, cycle_calls));
    }
    assert_eq!(seen[0], seen[1], "flat in the number of bakes");
    let (plan, cycle) = &seen[0];
    assert_eq!(plan.values().sum::<u64>(), 4, "{plan:?}: one describe of the images, one ledger query per environment");
    assert_eq!(cycle.values().sum::<u64>(), 4, "{cycle:?}");
}

#[tokio::test(start_paused = true)]
async fn reconcile_promotes_the_newest_eligible_bake_and_never_undoes_a_rollback() {
    let w = World::with(three_envs()).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.promote("staging", &v1).await.unwrap();
    let d = w.release("reconciler").reconcile_once().await.unwrap();
    assert_eq!((d[0].decision, d[0].commit.as_ref()), ("promoted", Some(&v2)), "{d:?}");
    assert_eq!(w.commits("staging"), vec![v2.to_string()]);
    w.release("alice").rollback("staging", &PromoteOptions::default(), None).await.unwrap();
    let d = w.release("reconciler").reconcile_once().await.unwrap();
    assert_eq!(d[0].decision, "up-to-date", "{d:?}");
    assert_eq!(w.commits("staging"), vec![v1.to_string()], "the rollback stands");
    // canary: v1 approved, so it goes; prod follows in the next cycle.
    w.release("alice").approve("canary", &v1, None).await.unwrap();
    let d = w.release("reconciler").reconcile_once().await.unwrap();
    assert_eq!((d[1].decision, d[1].commit.as_ref()), ("promoted", Some(&v1)), "{d:?}");
    assert_eq!(w.commits("canary"), vec![v1.to_string()]);
    let d = w.release("reconciler").reconcile_once().await.unwrap();
    assert_eq!((d[2].decision, d[2].commit.as_ref()), ("promoted", Some(&v1)), "{d:?}");
    assert_eq!(w.commits("prod"), vec![v1.to_string()]);
    let records = w.records("staging").await;
    assert_eq!(records.iter().filter(|r| r.action_name() == "promote").count(), 2, "v1 by hand, v2 by the reconciler, never v2 again");
}

#[tokio::test(start_paused = true)]
async fn a_soak_does_not_count_while_an_alarm_of_the_required_environment_fires() {
    // Staging watches an alarm (between the batches of an in-place promote); prod soaks there 30m.
    let mut p = gated("requires = [\"staging\"]\nsoak = \"30m\"");
    p.envs[0].rollout = Some(release_core::model::pipeline::Rollout { steps: Vec::new(), pause: Duration::from_secs(10), alarms: vec!["staging-5xx".into()] });
    let w = World::with(p).await;
    w.cloud.set_alarm("staging-5xx", release_core::ports::AlarmState::Ok);
    let v1 = w.bake('1').await;
    w.promote("staging", &v1).await.unwrap();
    w.cloud.clock.advance(Duration::from_secs(31 * 60));
    w.cloud.set_alarm("staging-5xx", release_core::ports::AlarmState::Alarm);
    let err = w.promote("prod", &v1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("held by its gates: soak: alarm staging-5xx firing in staging;"), "{err}");
    assert!(w.instances("prod").is_empty());
    w.cloud.set_alarm("staging-5xx", release_core::ports::AlarmState::Ok);
    w.promote("prod", &v1).await.unwrap();
    assert_eq!(w.commits("prod"), vec![v1.to_string()]);
}

#[tokio::test(start_paused = true)]
async fn rollback_goes_back_under_every_closed_gate_at_once() {
    // Friday 03:49 UTC: the Saturday window is closed; five approvals nobody gave; a day's soak; then a freeze.
    let w = World::with(gated("requires = [\"staging\"]\nsoak = \"1d\"\napprovals = 5\nwindows = [\"sat 10:00-11:00 UTC\"]")).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    let o = PromoteOptions { override_gates: Some("first deploys".into()), ..Default::default() };
    for v in [&v1, &v2] {
        w.promote("staging", v).await.unwrap();
        w.release("alice").promote("prod", v, &o, None).await.unwrap();
    }
    w.release("bob").freeze("prod", "incident", None).await.unwrap();
    let closed: Vec<String> = w.release("alice").plan_gates(Some("prod")).await.unwrap()[0].gates.iter().filter(|g| !g.open).map(|g| g.gate.to_owned()).collect();
    assert_eq!(closed, ["soak", "approvals", "window", "freeze"]);
    let r = w.release("alice").rollback("prod", &PromoteOptions::default(), None).await.unwrap();
    assert_eq!(r.plan.to_commit, v1);
    assert_eq!(w.commits("prod"), vec![v1.to_string()]);
    let rec = w.records("prod").await.into_iter().find(|r| r.action_name() == "rollback").unwrap();
    assert_eq!((rec.outcome, rec.gates_overridden.is_none()), (Outcome::Succeeded, true), "nothing to override: rollback asks no gate");
}
