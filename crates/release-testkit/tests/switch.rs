//! Switch and rollback on the in-memory cloud: history that steps back, shifts undone, the Route53 wait on the
//! simulated clock, weights as a type.

use std::collections::BTreeSet;
use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::model::ledger::{Action, Outcome, RollbackPath};
use release_core::ops::promote::PromoteOptions;
use release_core::ops::switch::SwitchOptions;
use release_core::ErrorKind;
use release_testkit::fixtures::World;

fn ids(w: &World, cluster: &str) -> BTreeSet<String> {
    w.instances(cluster).into_iter().map(|i| i.id.to_string()).collect()
}

fn live(w: &release_core::model::weights::Weights) -> String {
    w.describe()
}

#[tokio::test(start_paused = true)]
async fn blue_green_rollbacks_walk_v3_v2_v1_and_never_come_back_to_v3() {
    let w = World::new(2).await;
    let (v1, v2, v3) = (w.bake('1').await, w.bake('2').await, w.bake('3').await);
    assert_eq!(w.deploy_prod(&v1).await.as_str(), "green");
    assert_eq!(w.deploy_prod(&v2).await.as_str(), "blue");
    assert_eq!(w.deploy_prod(&v3).await.as_str(), "green");
    let o = PromoteOptions::default();
    let first = w.release("alice").plan_rollback("prod", &o).await.unwrap();
    assert_eq!(first.summary, format!("roll prod back from {} on green to {} on blue (it still runs there, healthy: one switch)", &v3.as_str()[..12], &v2.as_str()[..12]));
    assert_eq!(first.path, RollbackPath::SwitchBack);
    assert_eq!(first.next.as_ref(), Some(&v1), "after this one, a further rollback goes to v1");
    w.cloud.clock.advance(Duration::from_secs(600));
    let r = w.release("alice").rollback("prod", &o, Some(&first)).await.unwrap();
    assert_eq!((r.plan.to_commit.clone(), r.plan.cluster.as_str()), (v2.clone(), "blue"));
    assert_eq!(live(&w.weights().await), "blue=100,green=0");

    // The second rollback goes to v1 (promoted again into green, which runs v3), never back to v3.
    w.cloud.clock.advance(Duration::from_secs(600));
    let second = w.release("alice").plan_rollback("prod", &o).await.unwrap();
    assert_eq!((second.to_commit.clone(), second.path), (v1.clone(), RollbackPath::PromoteThenSwitch));
    assert_eq!(second.next, None, "nothing before v1");
    assert!(second.summary.contains(&format!("to {} on green (promoting it there first", &v1.as_str()[..12])), "{}", second.summary);
    w.release("alice").rollback("prod", &o, Some(&second)).await.unwrap();
    assert_eq!(live(&w.weights().await), "blue=0,green=100");
    assert_eq!(w.commits("green"), vec![v1.to_string()]);
    assert_eq!(w.commits("blue"), vec![v2.to_string()], "the idle cluster keeps v2");

    // A third: nothing before v1.
    w.cloud.clock.advance(Duration::from_secs(600));
    let err = w.release("alice").plan_rollback("prod", &o).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains(&format!("no release live before {}", &v1.as_str()[..12])), "{err}");
    // One record per rollback, one lock for each of its steps.
    let records = w.records("prod").await;
    let rollbacks: Vec<_> = records.iter().filter(|r| r.action_name() == "rollback").collect();
    assert_eq!(rollbacks.len(), 2);
    assert!(rollbacks.iter().all(|r| r.outcome == Outcome::Succeeded));
    let Action::Rollback(d) = &rollbacks[0].action else { unreachable!() };
    assert_eq!((d.path, d.from.as_ref(), &d.to), (RollbackPath::PromoteThenSwitch, Some(&v2), &v1));
    assert_eq!(d.promote.as_ref().map(|p| p.new_instances.len()), Some(2), "its promote is in the same record");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn in_place_rollbacks_walk_back_and_are_recorded_as_rollbacks() {
    let w = World::new(2).await;
    let (v1, v2, v3) = (w.bake('1').await, w.bake('2').await, w.bake('3').await);
    for v in [&v1, &v2, &v3] {
        w.promote("staging", v).await.unwrap();
    }
    let o = PromoteOptions::default();
    for (want, path) in [(&v2, RollbackPath::InPlace), (&v1, RollbackPath::InPlace)] {
        let r = w.release("alice").rollback("staging", &o, None).await.unwrap();
        assert_eq!((&r.plan.to_commit, r.plan.path), (want, path));
        assert_eq!(w.commits("staging"), vec![want.to_string()]);
    }
    let err = w.release("alice").rollback("staging", &o, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let records = w.records("staging").await;
    assert_eq!(records.iter().filter(|r| r.action_name() == "rollback" && r.outcome == Outcome::Succeeded).count(), 2, "recorded as rollback, not promote");
    assert_eq!(records.iter().filter(|r| r.action_name() == "promote").count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_manual_switch_back_counts_as_going_back() {
    let w = World::new(2).await;
    let (v1, v2, v3) = (w.bake('1').await, w.bake('2').await, w.bake('3').await);
    w.deploy_prod(&v1).await; // green
    w.deploy_prod(&v2).await; // blue
    w.cloud.clock.advance(Duration::from_secs(600));
    w.release("alice").switch("green", &SwitchOptions::default(), None).await.unwrap(); // back to v1 by hand
    w.cloud.clock.advance(Duration::from_secs(600));
    let err = w.release("alice").plan_rollback("prod", &PromoteOptions::default()).await.unwrap_err();
    assert!(err.message().contains("no release live before"), "v2 was left by hand: no toggle to it: {err}");
    let _ = v3;
}

#[tokio::test(start_paused = true)]
async fn rollback_during_a_shift_restores_the_weights_from_before_it_and_touches_no_instance() {
    let w = World::new(2).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.deploy_prod(&v1).await; // green 100
    w.cloud.clock.advance(Duration::from_secs(600));
    w.promote("prod", &v2).await.unwrap(); // blue idle, runs v2
    for pct in [10, 50] {
        w.release("alice").switch("blue", &SwitchOptions { weight: Some(pct), force: false, ..Default::default() }, None).await.unwrap();
    }
    assert_eq!(live(&w.weights().await), "blue=50,green=50");
    let before: BTreeSet<String> = ids(&w, "blue").union(&ids(&w, "green")).cloned().collect();
    let plan = w.release("alice").plan_rollback("prod", &PromoteOptions::default()).await.unwrap();
    assert_eq!(plan.path, RollbackPath::RestoreWeights);
    assert!(plan.summary.contains("to the weights before it (blue 0%, green 100%)"), "{}", plan.summary);
    let calls_before = w.cloud.state().calls.clone();
    w.release("alice").rollback("prod", &PromoteOptions::default(), Some(&plan)).await.unwrap();
    assert_eq!(live(&w.weights().await), "blue=0,green=100");
    let after: BTreeSet<String> = ids(&w, "blue").union(&ids(&w, "green")).cloned().collect();
    assert_eq!(before, after, "no instance touched");
    let calls = w.cloud.state().calls.clone();
    for op in ["ec2:RunInstances", "ec2:TerminateInstances", "elb:Register", "elb:Deregister"] {
        assert_eq!(calls.get(op), calls_before.get(op), "{op} was called");
    }
    assert_eq!(calls["route53:ChangeResourceRecordSets"] - calls_before["route53:ChangeResourceRecordSets"], 1, "one change");
}

#[tokio::test(start_paused = true)]
async fn a_switch_waits_for_insync_on_the_clock_renewing_its_lease_and_a_timeout_reads_back_what_holds() {
    let w = World::new(2).await;
    let v1 = w.bake('1').await;
    w.promote("prod", &v1).await.unwrap();
    w.cloud.state().insync_after = Duration::from_secs(200);
    let t0 = w.cloud.clock.now();
    let (alice, so) = (w.release("alice"), SwitchOptions::default());
    let (r, intruder) = tokio::join!(alice.switch("green", &so, None), async {
        tokio::time::sleep(Duration::from_secs(150)).await;
        // Past the 120 s lease: renewed meanwhile, so still held.
        w.promote("prod", &v1).await.unwrap_err()
    });
    let r = r.unwrap();
    assert!(r.in_sync);
    assert_eq!(intruder.kind(), ErrorKind::LockHeld, "{intruder}");
    assert!(w.cloud.clock.now().since(t0) >= Duration::from_secs(200), "waited for INSYNC on the simulated clock");

    // A change that is not INSYNC within 5 minutes, but holds: succeeded, says so.
    w.cloud.state().insync_after = Duration::from_secs(3600);
    w.cloud.clock.advance(Duration::from_secs(600));
    let v2 = w.bake('2').await;
    w.promote("prod", &v2).await.unwrap();
    let r = w.release("alice").switch("blue", &SwitchOptions::default(), None).await.unwrap();
    assert!(!r.in_sync);
    let rec = &w.records("prod").await[0];
    assert_eq!(rec.outcome, Outcome::Succeeded);
    assert!(rec.detail.as_deref().unwrap_or("").contains("the records hold the new weights"), "{rec:?}");
}

#[tokio::test(start_paused = true)]
async fn switching_the_live_cluster_to_zero_is_refused_and_shares_are_weight_over_sum() {
    let w = World::new(2).await;
    let v1 = w.bake('1').await;
    w.deploy_prod(&v1).await; // green
    let err = w.release("alice").switch("green", &SwitchOptions { weight: Some(0), force: false, ..Default::default() }, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.message().contains("every cluster at weight 0"), "{err}");
    assert_eq!(live(&w.weights().await), "blue=0,green=100", "nothing changed");
    // Weights 0/50 (set by hand): green takes all the traffic, and status says 100 %.
    w.set_weights(&[("green", 50)]).await;
    let status = w.release("alice").status(Some("prod")).await.unwrap();
    let green = status[0].clusters.iter().find(|c| c.cluster == "green").unwrap();
    assert_eq!((green.role.as_str(), green.share, green.weight), ("live", Some(100), Some(50)));
    // All zero: Route53 splits evenly; no cluster is idle, so a promote has nowhere to go.
    w.set_weights(&[("green", 0)]).await;
    let err = w.promote("prod", &v1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.message().contains("every cluster of env prod takes live traffic (blue 50%, green 50%)"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_switch_under_a_running_promote_waits_for_nobody_it_is_refused() {
    let w = World::new(2).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.deploy_prod(&v1).await; // green live
    w.cloud.clock.advance(Duration::from_secs(600));
    w.cloud.state().healthy_after = Some(Duration::from_secs(120));
    let (promote, switch) = tokio::join!(w.promote("prod", &v2), async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        w.release("bob").switch("blue", &SwitchOptions { weight: None, force: true, ..Default::default() }, None).await
    });
    promote.unwrap();
    let err = switch.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert_eq!(live(&w.weights().await), "blue=0,green=100", "traffic did not move under the promote");
}

#[tokio::test(start_paused = true)]
async fn unfinished_switches_of_dead_runs_are_closed_under_the_lock() {
    let w = World::new(2).await;
    let v1 = w.bake('1').await;
    w.promote("prod", &v1).await.unwrap();
    let (r, _) = w.release_with("alice", Some("changed"));
    r.switch("green", &SwitchOptions::default(), None).await.unwrap_err();
    assert_eq!(w.records("prod").await[0].outcome, Outcome::Started);
    w.cloud.clock.advance(Duration::from_secs(200));
    // A plan writes nothing, even with an unfinished record around.
    w.release("bob").plan_switch("blue", &SwitchOptions { weight: None, force: true, ..Default::default() }).await.unwrap();
    assert_eq!(w.records("prod").await[0].outcome, Outcome::Started, "--plan wrote nothing");
    w.release("bob").switch("blue", &SwitchOptions { weight: Some(100), force: true, ..Default::default() }, None).await.unwrap();
    let records = w.records("prod").await;
    let dead = records.iter().find(|r| r.action_name() == "switch" && r.actor == "alice").unwrap();
    assert_eq!(dead.outcome, Outcome::Succeeded, "its change had landed: {dead:?}");
}

/// An operator rolling back in an emergency need not wait `settle` before the idle cluster is replaced.
#[tokio::test(start_paused = true)]
async fn a_forced_rollback_that_must_promote_does_not_wait_settle() {
    let w = World::new(2).await;
    let (v1, v2, v3) = (w.bake('1').await, w.bake('2').await, w.bake('3').await);
    w.deploy_prod(&v1).await;
    w.deploy_prod(&v2).await;
    w.deploy_prod(&v3).await;
    // The first rollback switches back to v2 (its cluster still runs it); the second must promote v1 into the
    // cluster that stopped taking traffic a moment ago, which settle would make it wait for.
    w.release("alice").rollback("prod", &Default::default(), None).await.unwrap();
    let t0 = w.cloud.clock.now();
    let forced = release_core::ops::promote::PromoteOptions { force: true, ..Default::default() };
    let r = w.release("alice").rollback("prod", &forced, None).await.unwrap();
    assert_eq!(r.plan.to_commit, v1);
    assert!(w.cloud.clock.now().since(t0) < Duration::from_secs(60), "did not wait settle: {:?}", w.cloud.clock.now().since(t0));
    let lines = w.lines.lock().unwrap().join("\n");
    assert!(lines.contains("--force: not waiting"), "{lines}");
    assert!(w.records("prod").await[0].forced, "the ledger marks it forced");
}

#[tokio::test(start_paused = true)]
async fn every_record_names_the_commit_it_made_live_rollbacks_too() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let (first, second) = (w.deploy_prod(&a).await, w.deploy_prod(&b).await);
    w.cloud.clock.advance(Duration::from_secs(600));
    w.release("alice").rollback("prod", &PromoteOptions::default(), None).await.unwrap();
    // As the ledger stores the records and `history --output json` prints them: every one names its commit.
    let rows: Vec<(String, Option<String>)> = w
        .records("prod")
        .await
        .iter()
        .filter(|r| r.action_name() != "provision")
        .map(|r| {
            let doc = serde_json::to_value(r).unwrap();
            (doc["action"].as_str().unwrap_or("").to_owned(), doc["commit"].as_str().map(str::to_owned))
        })
        .collect();
    let row = |action: &str, c: &release_core::model::ids::CommitSha| (action.to_owned(), Some(c.to_string()));
    assert_eq!(rows, vec![row("rollback", &a), row("switch", &b), row("promote", &b), row("switch", &a), row("promote", &a)], "{first} then {second}");
}

#[tokio::test(start_paused = true)]
async fn with_an_alarm_firing_a_weight_toward_a_cluster_is_refused_and_one_away_from_it_is_not() {
    let w = World::with(release_testkit::fixtures::shop(2, "[env.prod.rollout]\nalarms = [\"shop-5xx\"]\n")).await;
    w.cloud.set_alarm("shop-5xx", release_core::ports::AlarmState::Ok);
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let serving = w.deploy_prod(&a).await;
    w.cloud.clock.advance(Duration::from_secs(600));
    let idle = w.release("alice").promote("prod", &b, &PromoteOptions::default(), None).await.unwrap().cluster;
    let weight = |p: u8| SwitchOptions { weight: Some(p), ..Default::default() };
    w.release("alice").switch(idle.as_str(), &weight(40), None).await.unwrap();
    let before = w.weights().await;
    assert_eq!((before.weight(&idle), before.weight(&serving)), (40, 60));
    w.cloud.set_alarm("shop-5xx", release_core::ports::AlarmState::Alarm);
    let forced = SwitchOptions { force: true, ..Default::default() };
    for opts in [weight(100), weight(50), SwitchOptions::default(), forced] {
        let err = w.release("alice").switch(idle.as_str(), &opts, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused, "{opts:?}: {err}");
        assert!(err.message().starts_with("alarm shop-5xx of env prod is in ALARM now"), "{err}");
        assert_eq!(w.weights().await, before, "{opts:?}: nothing changed");
    }
    // Lowering the share of `idle` moves traffic away from it: never held.
    w.release("alice").switch(idle.as_str(), &weight(10), None).await.expect("moving traffic away is allowed");
    let after = w.weights().await;
    assert_eq!((after.weight(&idle), after.weight(&serving)), (10, 90));
    assert_eq!(w.records("prod").await[0].outcome, Outcome::Succeeded);
}

/// The stranger's incident: every instance of the live cluster terminated by hand behind a target group (which
/// forgets terminated targets at once, so nothing is left to name). `status` must fail with the commit to bring
/// back, and one `rollback` must switch back to the idle cluster still running the previous release.
#[tokio::test(start_paused = true)]
async fn a_live_cluster_emptied_by_hand_fails_status_and_rollback_switches_back() {
    let w = World::new(2).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    assert_eq!(w.deploy_prod(&v1).await.as_str(), "green");
    assert_eq!(w.deploy_prod(&v2).await.as_str(), "blue");
    let before = w.release("ops").status(Some("prod")).await.unwrap();
    assert!(before[0].problem().is_none(), "healthy before: {:?}", before[0].problem());

    let victims: Vec<_> = w.instances("blue").into_iter().map(|i| i.id).collect();
    w.cloud.cloud().fleet.terminate(&victims).await.unwrap();
    assert!(w.instances("blue").is_empty());
    let status = w.release("ops").status(Some("prod")).await.unwrap();
    let blue = status[0].clusters.iter().find(|c| c.cluster == "blue").unwrap();
    assert_eq!((blue.total, blue.healthy, blue.emptied.as_deref()), (0, 0, Some(v2.as_str())), "{blue:?}");
    let problem = status[0].problem().expect("a live cluster with nothing in it is a problem");
    assert_eq!(problem.exit_code(), 4, "{problem}");
    assert!(problem.message().starts_with("cluster blue of prod is live 0/2"), "{problem}");
    assert!(problem.message().contains(&format!("release promote {}", &v2.as_str()[..12])), "names the commit, no placeholder: {problem}");

    w.cloud.clock.advance(Duration::from_secs(600));
    let plan = w.release("alice").plan_rollback("prod", &PromoteOptions::default()).await.unwrap();
    assert_eq!((plan.path, plan.to_commit.clone(), plan.cluster.as_str()), (RollbackPath::SwitchBack, v1.clone(), "green"), "{}", plan.summary);
    w.release("alice").rollback("prod", &PromoteOptions::default(), Some(&plan)).await.unwrap();
    assert_eq!(live(&w.weights().await), "blue=0,green=100");
    assert_eq!(w.commits("green"), vec![v1.to_string()]);
    let after = w.release("ops").status(Some("prod")).await.unwrap();
    assert!(after[0].problem().is_none(), "the emptied cluster is idle now: {:?}", after[0].problem());
}

/// A fresh environment that was only provisioned is not short: nothing was ever deployed to its clusters.
#[tokio::test(start_paused = true)]
async fn a_cluster_never_deployed_is_not_short() {
    let w = World::new(2).await;
    let status = w.release("ops").status(None).await.unwrap();
    for env in &status {
        assert!(env.problem().is_none(), "{}: {:?}", env.env, env.problem());
        assert!(env.clusters.iter().all(|c| c.emptied.is_none()));
    }
}

/// Instances that run but are in no load balancer (it was made again, say): nothing answers, `status` says so.
#[tokio::test(start_paused = true)]
async fn a_serving_cluster_whose_instances_left_its_load_balancer_fails_status() {
    let w = World::new(2).await;
    let v1 = w.bake('1').await;
    w.promote("staging", &v1).await.unwrap();
    let ids: Vec<_> = w.instances("staging").into_iter().map(|i| i.id).collect();
    let env = w.pipeline.env("staging").unwrap();
    w.cloud.cloud().balancer.deregister(&env.clusters()[0].target, &ids).await.unwrap();
    let status = w.release("ops").status(Some("staging")).await.unwrap();
    let c = &status[0].clusters[0];
    assert_eq!((c.total, c.healthy), (2, 0), "{c:?}");
    let problem = status[0].problem().expect("a serving cluster with nothing healthy is a problem");
    assert_eq!(problem.exit_code(), 4);
    assert!(problem.message().contains("is in-place 2/2 and none of them is healthy in its load balancer"), "{problem}");
}

/// Phase seconds are whole milliseconds, the clock's resolution: laps summed as f64 showed as 4.2509999999999994
/// in `--output json`.
#[tokio::test(start_paused = true)]
async fn recorded_phase_seconds_are_whole_milliseconds() {
    let w = World::new(2).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.cloud.state().healthy_after = Some(Duration::from_millis(4251));
    w.promote("staging", &v1).await.unwrap();
    w.promote("staging", &v2).await.unwrap();
    let records = w.records("staging").await;
    let seconds: Vec<f64> = records.iter().flat_map(|r| r.seconds.values().copied()).collect();
    assert!(!seconds.is_empty());
    for s in seconds {
        assert_eq!(s, (s * 1000.0).round() / 1000.0, "{s} is not whole milliseconds");
    }
}
