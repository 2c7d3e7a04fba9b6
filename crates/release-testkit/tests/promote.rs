//! The promote engine on the in-memory cloud, where time is simulated and faults and crashes are scripted:
//! the invariants of DESIGN §5 that the emulator cannot exercise.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::model::error::Cause;
use release_core::model::ids::CommitSha;
use release_core::model::ledger::{Action, Outcome};
use release_core::model::pipeline::LbTarget;
use release_core::ports::{tags, HealthState};
use release_core::ops::promote::PromoteOptions;
use release_core::engine::lock::LOCK_LEASE;
use release_core::ErrorKind;
use release_testkit::fixtures::World;

fn staging_target() -> LbTarget {
    LbTarget::ClassicElb("shop-staging".into())
}

fn ids(w: &World, cluster: &str) -> BTreeSet<String> {
    w.instances(cluster).into_iter().map(|i| i.id.to_string()).collect()
}

fn healthy_registered(w: &World, target: &LbTarget) -> usize {
    let s = w.cloud.state();
    let running: BTreeSet<String> = s.instances.iter().filter(|i| i.state == "running").map(|i| i.id.to_string()).collect();
    let now = w.cloud.clock.now();
    s.registered
        .get(target)
        .map(|r| r.iter().filter(|(id, since)| running.contains(id.as_str()) && s.healthy_after.is_some_and(|d| now.since(**since) >= d)).count())
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn in_place_replacement_never_drops_below_full_healthy_capacity() {
    let w = World::new(3).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    w.cloud.clock.advance(Duration::from_secs(120));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (mut release, _) = w.release_with("alice", None);
    let (m, s2) = (w.cloud.clone(), seen.clone());
    let probe = World { cloud: m, pipeline: w.pipeline.clone(), lines: Default::default() };
    release.session.checkpoint = Arc::new(move |step: &str| {
        let healthy = healthy_registered(&probe, &staging_target());
        let s = probe.cloud.state();
        let running: BTreeSet<String> = s.instances.iter().filter(|i| i.state == "running").map(|i| i.id.to_string()).collect();
        let bad = s.registered.get(&staging_target()).map(|r| r.keys().filter(|id| !running.contains(id.as_str())).count()).unwrap_or(0);
        s2.lock().unwrap().push((step.to_owned(), healthy, bad));
        Ok(())
    });
    let report = release.promote("staging", &b, &Default::default(), None).await.unwrap();
    assert_eq!((report.outcome.as_str(), report.new_instances.len(), report.retired_instances.len()), ("succeeded", 3, 3));
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 8, "every step was observed: {seen:?}");
    for (step, healthy, bad) in seen.iter() {
        assert!(*healthy >= 3, "capacity fell to {healthy} healthy at {step}");
        assert_eq!(*bad, 0, "a registered instance was not running at {step}");
    }
    assert_eq!(w.commits("staging"), vec![b.to_string()]);
    let registered: BTreeSet<String> = w.cloud.registered(&staging_target()).iter().map(ToString::to_string).collect();
    assert_eq!(registered, ids(&w, "staging"));
    let records: Vec<_> = w.records("staging").await.into_iter().filter(|r| r.action_name() == "promote").collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].outcome, Outcome::Succeeded);
    let Action::Promote(p) = &records[0].action else { panic!("a promote record") };
    assert_eq!((p.from.as_ref(), &p.commit, p.new_instances.len(), p.retired_instances.len()), (Some(&a), &b, 3, 3));
    assert!(!w.locked(), "lock released");
}

#[tokio::test(start_paused = true)]
async fn health_that_never_arrives_times_out_and_rolls_back_with_old_capacity_untouched() {
    let w = World::new(3).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let old = ids(&w, "staging");
    w.cloud.state().healthy_after = None;
    let start = w.cloud.clock.now();
    let err = w.promote("staging", &b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed, "{err}");
    assert_eq!(err.rolled_back(), Some(true));
    assert!(err.message().contains("only 0 of 3 new instances healthy in load balancer shop-staging after 10m"), "{err}");
    assert!(err.message().ends_with("the 3 new instance(s) were removed and staging serves what it served before"), "{err}");
    assert!(w.cloud.clock.now().since(start) >= Duration::from_secs(600), "waited the whole health_timeout");
    assert_eq!(ids(&w, "staging"), old, "exactly the old fleet is left");
    let registered: BTreeSet<String> = w.cloud.registered(&staging_target()).iter().map(ToString::to_string).collect();
    assert_eq!(registered, old, "the old fleet is still registered");
    let r = &w.records("staging").await[0];
    assert_eq!((r.outcome, r.rolled_back), (Outcome::Failed, Some(true)));
    assert!(r.detail.as_deref().unwrap_or("").contains("healthy"), "{:?}", r.detail);
    assert!(!w.locked(), "lock released");
}

#[tokio::test(start_paused = true)]
async fn a_call_failing_for_good_keeps_its_kind_rolls_back_and_releases_the_lock() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let old = ids(&w, "staging");
    w.cloud.fail("elb:Register", -1);
    let err = w.promote("staging", &b).await.unwrap_err();
    // An AWS failure stays an AWS failure (exit 6), not a generic deploy failure.
    assert_eq!((err.kind(), err.rolled_back()), (ErrorKind::Aws, Some(true)), "{err}");
    assert!(err.message().contains("the 2 new instance(s) were removed"), "{err}");
    assert_eq!(ids(&w, "staging"), old);
    assert_eq!(w.records("staging").await[0].outcome, Outcome::Failed);
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_launch_failing_before_anything_runs_says_nothing_was_launched() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    w.cloud.fail("ec2:RunInstances", -1);
    let err = w.promote("staging", &b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Aws);
    assert!(err.message().contains("nothing was launched"), "it does not claim to have removed anything: {err}");
    assert!(!err.message().contains("were removed"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_missing_load_balancer_is_not_found_naming_the_environment_to_provision() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    w.cloud.state().load_balancers.remove(&staging_target());
    let err = w.promote("staging", &a).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.message(), "load balancer shop-staging of cluster staging does not exist; run `release provision --env staging`");
    assert!(w.cloud.live_instances().is_empty(), "nothing launched");
}

#[tokio::test(start_paused = true)]
async fn the_first_signal_before_the_point_of_no_return_rolls_back() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let old = ids(&w, "staging");
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    w.cloud.clock.advance(Duration::from_secs(1));
    let (release, signals) = w.release_with("alice", None);
    let opts = PromoteOptions::default();
    let run = release.promote("staging", &b, &opts, None);
    let interrupt = async {
        // While it waits for health (simulated time), Ctrl-C.
        tokio::time::sleep(Duration::from_secs(20)).await;
        signals.signal();
    };
    let (result, ()) = tokio::join!(run, interrupt);
    let err = result.unwrap_err();
    assert_eq!((err.kind(), err.rolled_back()), (ErrorKind::Interrupted, Some(true)), "{err}");
    assert_eq!(ids(&w, "staging"), old);
    assert_eq!(w.records("staging").await[0].outcome, Outcome::Interrupted);
    let lines = w.lines.lock().unwrap().join("\n");
    assert!(lines.contains("interrupted: stopping promote"), "{lines}");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn after_the_point_of_no_return_one_signal_finishes_and_a_second_stops_at_once_resumably() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    // Finish after one signal: the drain (30 s) runs to its end and the promote succeeds.
    let (release, signals) = w.release_with("alice", None);
    let opts = PromoteOptions::default();
    let (result, ()) = tokio::join!(release.promote("staging", &b, &opts, None), async {
        tokio::time::sleep(Duration::from_secs(12)).await;
        signals.signal();
    });
    result.expect("one signal past the point of no return lets it finish");
    let lines = w.lines.lock().unwrap().join("\n");
    assert!(lines.contains("the old fleet is already leaving: finishing; Ctrl-C again stops at once"), "{lines}");
    assert_eq!(w.commits("staging"), vec![b.to_string()]);

    // Two signals: it stops in the drain, the record stays open, the old instances stay deregistered but alive;
    // a re-run finishes.
    let c = w.bake('c').await;
    let (release, signals) = w.release_with("alice", None);
    let (result, ()) = tokio::join!(release.promote("staging", &c, &opts, None), async {
        tokio::time::sleep(Duration::from_secs(12)).await;
        signals.signal();
        tokio::time::sleep(Duration::from_secs(2)).await;
        signals.signal();
    });
    let err = result.unwrap_err();
    assert_eq!((err.kind(), err.rolled_back()), (ErrorKind::Interrupted, Some(false)), "{err}");
    let r = &w.records("staging").await[0];
    assert_eq!(r.outcome, Outcome::Started, "resumable");
    assert_eq!(w.instances("staging").len(), 4, "new serving, old not yet terminated");
    assert!(!w.locked(), "the lock is released even so");
    let again = w.promote("staging", &c).await.expect("a re-run finishes");
    assert_eq!(again.release_id, r.release_id.to_string(), "it adopted the interrupted release");
    assert_eq!(w.commits("staging"), vec![c.to_string()]);
    assert_eq!(w.instances("staging").len(), 2);
    assert_eq!(w.records("staging").await[0].outcome, Outcome::Succeeded);
}

const STEPS: &[&str] = &["locked", "recorded", "launched", "running", "registered", "healthy", "deregistered-old", "drained", "terminated-old"];

#[tokio::test(start_paused = true)]
async fn a_crash_at_every_step_boundary_then_a_rerun_converges_with_nothing_leaked() {
    let mut table = vec![format!("{:<18} {:<28} {:<10} {:>6} {:>7} {:>6}", "crash at", "first run", "re-run", "live", "leaked", "dupes")];
    for step in STEPS.iter().copied() {
        let w = World::new(3).await;
        let (a, b) = (w.bake('a').await, w.bake('b').await);
        w.promote("staging", &a).await.unwrap();
        let (release, _) = w.release_with("alice", Some(step));
        let first = release.promote("staging", &b, &Default::default(), None).await;
        let first_text = match &first {
            Ok(r) => r.outcome.as_str().to_owned(),
            Err(e) => e.message().to_owned(),
        };
        // A killed process keeps its lock until the lease runs out.
        w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
        let rerun = w.promote("staging", &b).await.unwrap_or_else(|e| panic!("re-run after a crash at {step}: {e}"));
        let live = w.instances("staging");
        let registered: BTreeSet<String> = w.cloud.registered(&staging_target()).iter().map(ToString::to_string).collect();
        let leaked = live.iter().filter(|i| !registered.contains(i.id.as_str())).count() + live.iter().filter(|i| i.tags[tags::COMMIT] != b.as_str()).count();
        let releases: BTreeSet<String> = w.cloud.live_instances().iter().filter_map(|i| i.tags.get(tags::RELEASE_ID).cloned()).collect();
        table.push(format!("{step:<18} {first_text:<28} {:<10} {:>6} {:>7} {:>6}", rerun.outcome, live.len(), leaked, releases.len() - 1));
        assert_eq!(live.len(), 3, "crash at {step}: {live:?}");
        assert_eq!(leaked, 0, "crash at {step}: leaked {live:?} vs registered {registered:?}");
        assert_eq!(releases.len(), 1, "crash at {step}: one fleet, not several: {releases:?}");
        let records = w.records("staging").await;
        let of_b: Vec<_> = records.iter().filter(|r| r.commit() == Some(&b)).collect();
        assert!(of_b.iter().any(|r| r.outcome == Outcome::Succeeded), "crash at {step}: the ledger tells the story: {of_b:#?}");
        assert!(of_b.iter().all(|r| r.outcome != Outcome::Started), "crash at {step}: nothing left unfinished");
        assert!(!w.locked());
    }
    println!("promote crash points tried in memory: {}, leaks found: 0\n{}", STEPS.len(), table.join("\n"));
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_the_commit_already_running_is_not_replaced_and_leftovers_are_cleaned() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let serving = ids(&w, "staging");
    // A promote of b dies after launching its instances.
    let (release, _) = w.release_with("alice", Some("launched"));
    release.promote("staging", &b, &Default::default(), None).await.unwrap_err();
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
    assert_eq!(w.instances("staging").len(), 4);
    // Now a promote of a, which staging still runs healthy: nothing is replaced; b's instances go.
    let r = w.promote("staging", &a).await.unwrap();
    assert_eq!(r.outcome, release_core::ops::promote::PromoteOutcome::Noop, "{r:?}");
    assert_eq!(r.cleaned.len(), 2);
    assert_eq!(ids(&w, "staging"), serving, "the healthy fleet of a is untouched");
    assert_eq!(w.records("staging").await.iter().find(|r| r.commit() == Some(&b)).map(|r| r.outcome), Some(Outcome::Abandoned));
}

/// A user found this: a promote of b dies past its point of no return (b serves, a is deregistered but running);
/// a promote of another commit must keep b serving until its own fleet is healthy, not clean b up first.
#[tokio::test(start_paused = true)]
async fn after_a_crash_past_the_point_of_no_return_a_promote_of_another_commit_keeps_capacity() {
    for step in ["deregistered-old", "drained"] {
        let w = World::new(2).await;
        let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
        w.promote("staging", &a).await.unwrap();
        let (release, _) = w.release_with("alice", Some(step));
        release.promote("staging", &b, &Default::default(), None).await.unwrap_err();
        w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(1));
        w.cloud.state().healthy_after = Some(Duration::from_secs(30));
        w.cloud.clock.advance(Duration::from_secs(60));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut release, _) = w.release_with("bob", None);
        let (m, s2) = (w.cloud.clone(), seen.clone());
        let probe = World { cloud: m, pipeline: w.pipeline.clone(), lines: Default::default() };
        release.session.checkpoint = Arc::new(move |step: &str| {
            s2.lock().unwrap().push((step.to_owned(), healthy_registered(&probe, &staging_target())));
            Ok(())
        });
        let r = release.promote("staging", &c, &Default::default(), None).await.unwrap_or_else(|e| panic!("after a crash at {step}: {e}"));
        assert!(r.cleaned.is_empty(), "after a crash at {step}: the serving fleet was cleaned up first: {:?}", r.cleaned);
        for (at, healthy) in seen.lock().unwrap().iter() {
            assert!(*healthy >= 2, "after a crash at {step}: capacity fell to {healthy} healthy at {at}");
        }
        assert_eq!(w.commits("staging"), vec![c.to_string()], "after a crash at {step}");
        assert_eq!(w.instances("staging").len(), 2, "after a crash at {step}: a's and b's fleets are both retired");
        let registered: BTreeSet<String> = w.cloud.registered(&staging_target()).iter().map(ToString::to_string).collect();
        assert_eq!(registered, ids(&w, "staging"));
    }
}

#[tokio::test(start_paused = true)]
async fn two_concurrent_promotes_exactly_one_proceeds() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.cloud.state().healthy_after = Some(Duration::from_secs(30));
    let (first, second) = tokio::join!(w.promote("staging", &a), w.promote("staging", &b));
    let results = [first, second];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    let held: Vec<&release_core::Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(held[0].kind(), ErrorKind::LockHeld);
    assert!(held[0].message().starts_with("environment staging is locked by alice since "), "{}", held[0]);
    assert_eq!(w.instances("staging").len(), 2, "one fleet");
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_while_a_long_wait_goes_on() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    // Health takes 9 minutes: far longer than the 2-minute lease.
    w.cloud.state().healthy_after = Some(Duration::from_secs(540));
    let (promote, intruder) = tokio::join!(w.promote("staging", &a), async {
        for minute in 1..=8u64 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let err = w.promote("staging", &a).await.expect_err("the lock is alive");
            assert_eq!(err.kind(), ErrorKind::LockHeld, "minute {minute}: {err}");
        }
    });
    promote.expect("the long promote finishes under its lock");
    let _ = intruder;
    let renewals = w.cloud.state().calls.get("dynamodb:PutItem").copied().unwrap_or(0);
    assert!(renewals >= 16, "renewed from its own task, about every 30 s: {renewals} puts");
}

#[tokio::test(start_paused = true)]
async fn a_broken_lock_is_noticed_the_holder_cleans_up_records_lost_lock_and_exits_5() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let old = ids(&w, "staging");
    w.cloud.state().healthy_after = Some(Duration::from_secs(300));
    let bob = w.release("bob");
    let (first, refused, broken) = tokio::join!(w.promote("staging", &b), async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        // A live lock is not broken without --force.
        bob.unlock("staging", false).await
    }, async {
        tokio::time::sleep(Duration::from_secs(40)).await;
        bob.unlock("staging", true).await
    });
    let refused = refused.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::LockHeld);
    assert!(refused.message().contains("the lock of env staging is alive: alice holds it"), "{refused}");
    assert!(broken.unwrap().broken);
    let err = first.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert!(err.message().contains("lost the lock of env staging: it was broken"), "{err}");
    assert_eq!(ids(&w, "staging"), old, "its new instances were removed, the old ones serve");
    let r = &w.records("staging").await[0];
    assert_eq!(r.outcome, Outcome::LostLock, "{r:?}");
    assert!(r.detail.as_deref().unwrap_or("").contains("lost the lock"), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn blue_green_goes_to_the_idle_cluster_and_refuses_the_live_one() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    let report = w.promote("prod", &a).await.unwrap();
    assert_eq!(report.cluster.as_str(), "green", "blue is live after provision");
    assert!(w.instances("blue").is_empty(), "the live cluster is untouched");
    let o = PromoteOptions { cluster: Some("blue".into()), ..Default::default() };
    let err = w.release("alice").promote("prod", &a, &o, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.message().starts_with("cluster blue is live"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_cluster_switched_away_from_moments_ago_is_replaced_only_after_settle() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.deploy_prod(&a).await; // green live
    let before = w.cloud.clock.now();
    // blue was live until now (the switch): a promote to it waits settle (2m) first.
    let r = w.promote("prod", &b).await.unwrap();
    assert_eq!(r.cluster.as_str(), "blue");
    let records = w.records("prod").await;
    let started = records[0].started;
    assert!(started.since(before) >= Duration::from_secs(0));
    let launched_after = w.cloud.clock.now().since(before);
    assert!(launched_after >= Duration::from_secs(120), "waited settle: {launched_after:?}");
    let lines = w.lines.lock().unwrap().join("\n");
    assert!(lines.contains("blue stopped taking traffic moments ago"), "{lines}");
    // With --force it does not wait, and the record says so.
    let c = w.bake('c').await;
    w.release("alice").switch("blue", &Default::default(), None).await.unwrap();
    let t0 = w.cloud.clock.now();
    let o = PromoteOptions { force: true, ..Default::default() };
    let r = w.release("alice").promote("prod", &c, &o, None).await.unwrap();
    assert_eq!(r.cluster.as_str(), "green");
    assert!(r.forced);
    assert!(w.cloud.clock.now().since(t0) < Duration::from_secs(60), "did not wait");
    assert!(w.records("prod").await[0].forced);
}

#[tokio::test(start_paused = true)]
async fn batches_replace_n_at_a_time_without_losing_capacity() {
    let w = World::new(4).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let peak = Arc::new(Mutex::new((usize::MAX, 0usize)));
    let (mut release, _) = w.release_with("alice", None);
    let probe = World { cloud: w.cloud.clone(), pipeline: w.pipeline.clone(), lines: Default::default() };
    let pk = peak.clone();
    release.session.checkpoint = Arc::new(move |_: &str| {
        let healthy = healthy_registered(&probe, &staging_target());
        let live = probe.cloud.live_instances().len();
        let mut p = pk.lock().unwrap();
        *p = (p.0.min(healthy), p.1.max(live));
        Ok(())
    });
    let o = PromoteOptions { batch: Some(2), ..Default::default() };
    let report = release.promote("staging", &b, &o, None).await.unwrap();
    assert_eq!((report.new_instances.len(), report.retired_instances.len()), (4, 4));
    let (min_healthy, max_live) = *peak.lock().unwrap();
    assert!(min_healthy >= 4, "capacity fell to {min_healthy}");
    assert_eq!(max_live, 6, "at most count + batch instances at once");
    let health = w.cloud.cloud().balancer.health(&staging_target()).await.unwrap();
    assert!(health.iter().all(|h| h.state == HealthState::Healthy) && health.len() == 4);
}

#[tokio::test(start_paused = true)]
async fn calls_do_not_grow_with_the_fleet() {
    let mut counts = Vec::new();
    for n in [10u32, 200, 500] {
        let w = World::new(n).await;
        let (a, b) = (w.bake('a').await, w.bake('b').await);
        w.promote("staging", &a).await.unwrap();
        w.cloud.state().calls.clear();
        w.promote("staging", &b).await.unwrap();
        let calls = w.cloud.state().calls.clone();
        counts.push((n, calls.values().sum::<u64>(), calls));
    }
    println!("port calls of a promote replacing N instances: {counts:#?}");
    assert_eq!(counts[0].1, counts[1].1, "calls grew with N: {counts:#?}");
    assert_eq!(counts[0].2, counts[2].2, "calls grew with N: {counts:#?}");
}

#[tokio::test(start_paused = true)]
async fn no_ami_for_the_commit_is_not_found_and_changes_nothing() {
    let w = World::new(2).await;
    let sha = CommitSha::parse(&"c".repeat(40)).unwrap();
    let err = w.promote("staging", &sha).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.message(), format!("no AMI for cccccccccccc; run `release bake {sha}`"));
    assert!(w.cloud.live_instances().is_empty());
    assert!(w.records("staging").await.iter().all(|r| r.action_name() != "promote"), "no record for a promote that never started");
}

#[tokio::test(start_paused = true)]
async fn user_data_carries_the_variables_and_only_references_to_secrets() {
    let w = World::new(1).await;
    let a = w.bake('a').await;
    w.promote("staging", &a).await.unwrap();
    let s = w.cloud.state();
    let ud = s.user_data.values().next().unwrap();
    assert!(ud.contains("APP_ENV=\"staging\""), "{ud}");
    assert!(ud.contains(&format!("RELEASE_COMMIT=\"{a}\"")), "{ud}");
    assert!(ud.contains("--name '/shop/secret'"), "the ssm reference is resolved at boot: {ud}");
    assert!(!ud.contains("ssm:/shop/secret"), "{ud}");
}

#[tokio::test(start_paused = true)]
async fn progress_is_written_into_the_record_at_each_poll_not_per_instance() {
    let w = World::new(50).await;
    let a = w.bake('a').await;
    w.cloud.state().healthy_after = Some(Duration::from_secs(30));
    let (promote, seen) = tokio::join!(w.promote("staging", &a), async {
        tokio::time::sleep(Duration::from_secs(12)).await;
        w.records("staging").await.into_iter().next()
    });
    promote.unwrap();
    let r = seen.expect("a record while it runs");
    assert_eq!(r.outcome, Outcome::Started);
    let p = r.progress.expect("progress in the record");
    assert_eq!(p.phase, release_core::model::phase::Phase::WaitingHealthy);
    assert_eq!(p.instances.len(), 50, "each instance's state");
    assert!(p.instances.values().all(|s| s == "registered"), "{:?}", p.instances);
    assert_eq!(p.waiting_for.as_deref(), Some("healthy 0/50"));
    // The finished record carries no stale progress.
    assert!(w.records("staging").await[0].progress.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stray_of_another_app_in_the_load_balancer_is_refused() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    let cloud = w.cloud.cloud();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let base = release_core::model::ids::AmiId::parse("ami-0a1b2c3d4e5f60718").unwrap();
    let spec = release_core::ports::LaunchSpec {
        ami: base,
        instance_type: "t3.micro".into(),
        subnet: net.subnets[0].id.clone(),
        security_groups: vec![],
        count: 1,
        user_data: String::new(),
        tags: vec![(tags::APP.into(), "other".into())],
        client_token: "x".into(),
        instance_profile: None,
        key_name: None,
        metadata_tokens: release_core::model::pipeline::MetadataTokens::Required,
        root_volume: None,
    };
    let foreign = cloud.fleet.launch(&spec).await.unwrap();
    cloud.balancer.register(&staging_target(), &foreign, 8080).await.unwrap();
    let err = w.promote("staging", &a).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.message().contains(&format!("serves instances that are not shop's: {} (app other)", foreign[0])), "{err}");
    assert!(w.instances("staging").is_empty(), "nothing launched");
    let _ = Cause::Missing;
}

/// A user found this: an instance terminated by hand stays registered. It is the cluster's own, terminated (not a
/// stray, issue 20 item 6), and a promote takes it out of the load balancer once the new fleet is healthy.
#[tokio::test(start_paused = true)]
async fn an_instance_terminated_by_hand_is_named_so_not_a_stray_and_a_promote_heals_the_cluster() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    w.promote("staging", &a).await.unwrap();
    let dead = w.instances("staging")[0].id.clone();
    w.cloud.state().instances.iter_mut().find(|i| i.id == dead).unwrap().state = release_core::ports::InstanceState::Terminated;
    assert!(w.cloud.registered(&staging_target()).contains(&dead), "still registered, as a hand-terminated instance is");
    let status = w.release("alice").status(Some("staging")).await.unwrap();
    let cluster = &status[0].clusters[0];
    assert!(cluster.strays.is_empty(), "{:?}", cluster.strays);
    assert_eq!(cluster.terminated, vec![dead.clone()], "{:?}", cluster.terminated);
    let r = w.promote("staging", &a).await.expect("the cluster is healed");
    assert_eq!(r.outcome, "succeeded", "{r:?}");
    assert!(r.strays_retired.is_empty(), "{r:?}");
    assert_eq!(r.terminated_by_hand, vec![dead.clone()], "{r:?}");
    let registered: BTreeSet<String> = w.cloud.registered(&staging_target()).iter().map(ToString::to_string).collect();
    assert!(!registered.contains(dead.as_str()), "the dead instance was deregistered");
    assert_eq!(registered, ids(&w, "staging"));
    assert_eq!(registered.len(), 2);
}

/// A user found this: with the load balancer gone mid-promote, the rollback's deregister fails; the new instances
/// must still be terminated (and a removal that does fail must not claim the environment was put back).
#[tokio::test(start_paused = true)]
async fn a_rollback_whose_deregister_fails_still_terminates_and_says_so_when_it_cannot() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let old = ids(&w, "staging");
    w.cloud.state().healthy_after = None;
    w.cloud.fail("elb:Deregister", -1);
    let err = w.promote("staging", &b).await.unwrap_err();
    assert_eq!(err.rolled_back(), Some(true), "{err}");
    assert!(err.message().contains("the 2 new instance(s) were removed"), "{err}");
    assert_eq!(ids(&w, "staging"), old, "the new instances were terminated although deregistering failed");

    w.cloud.fail("ec2:TerminateInstances", -1);
    let err = w.promote("staging", &b).await.unwrap_err();
    assert_eq!(err.rolled_back(), Some(false), "{err}");
    assert!(err.message().contains("removing the 2 new instance(s) failed") && err.message().contains("so they still run"), "{err}");
}

/// Promotes `sha` to `env` and stops it with two signals `into` the drain (past the point of no return: the first
/// is acknowledged, the second stops at once). Returns when the old instances' deregistration began.
async fn interrupted_mid_drain(w: &World, env: &str, sha: &CommitSha, into: Duration) -> release_core::model::clock::Timestamp {
    let deregistered = Arc::new(Mutex::new(None));
    let (mut release, signals) = w.release_with("alice", None);
    let (clock, at) = (w.cloud.clock.clone(), deregistered.clone());
    release.session.checkpoint = Arc::new(move |step: &str| {
        if step == "deregistered-old" {
            *at.lock().unwrap() = Some(clock.now());
        }
        Ok(())
    });
    let opts = PromoteOptions::default();
    let (first, ()) = tokio::join!(release.promote(env, sha, &opts, None), async {
        while deregistered.lock().unwrap().is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(into).await;
        signals.signal();
        signals.signal();
    });
    let err = first.unwrap_err();
    assert_eq!((err.kind(), err.rolled_back()), (ErrorKind::Interrupted, Some(false)), "{err}");
    let at = *deregistered.lock().unwrap();
    at.expect("the old instances were deregistered")
}

/// Re-runs the promote, noting at each step boundary the simulated time and how many of `old` still run.
async fn rerun_watching(w: &World, env: &str, sha: &CommitSha, old: &BTreeSet<String>) -> (release_core::ops::promote::PromoteReport, Vec<(String, release_core::model::clock::Timestamp, usize)>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (mut release, _) = w.release_with("alice", None);
    let (cloud, s2, old) = (w.cloud.clone(), seen.clone(), old.clone());
    release.session.checkpoint = Arc::new(move |step: &str| {
        let running = cloud.live_instances().iter().filter(|i| i.state == "running" && old.contains(i.id.as_str())).count();
        s2.lock().unwrap().push((step.to_owned(), cloud.clock.now(), running));
        Ok(())
    });
    let report = release.promote(env, sha, &PromoteOptions::default(), None).await.expect("the re-run finishes");
    let seen = seen.lock().unwrap().clone();
    (report, seen)
}

/// A user found this: with `drain = "20s"`, interrupted mid-drain and re-run, the old instances were terminated at
/// once. The re-run waits out what is left of `drain`, measured from when the deregistration began.
#[tokio::test(start_paused = true)]
async fn a_drain_interrupted_midway_is_resumed_for_what_is_left_of_it_before_terminating() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let old = ids(&w, "staging");
    let drain = Duration::from_secs(30);
    let deregistered = interrupted_mid_drain(&w, "staging", &b, Duration::from_secs(10)).await;
    let interrupted = w.records("staging").await;
    let start = w.cloud.clock.now();
    let left = drain.saturating_sub(start.since(deregistered));
    assert!(!left.is_zero() && left < drain, "interrupted mid-drain: {left:?} left");
    assert_eq!(w.instances("staging").len(), 4, "the old instances are deregistered but alive");
    assert!(!w.cloud.registered(&staging_target()).iter().any(|i| old.contains(i.as_str())));

    let (report, seen) = rerun_watching(&w, "staging", &b, &old).await;
    assert_eq!(report.release_id, interrupted[0].release_id.to_string(), "it adopted the interrupted release");
    let (_, terminated_at, running) = seen.iter().find(|(s, _, _)| s == "terminated-old").expect("the re-run terminates the old instances").clone();
    assert_eq!(running, 0, "{seen:?}");
    let waited = terminated_at.since(start);
    assert!(waited >= left && waited < left + Duration::from_secs(5), "the re-run waited {waited:?} before terminating: what was left of the drain is {left:?} (not 0, not the whole {drain:?})");
    assert!(terminated_at.since(deregistered) >= drain);
    for (step, at, running) in seen.iter().filter(|(_, at, _)| at.since(deregistered) < drain) {
        assert_eq!(*running, 2, "an old instance was terminated at {step} ({at}) before the drain ended");
    }
    assert_eq!(w.commits("staging"), vec![b.to_string()]);
    let registered: BTreeSet<String> = w.cloud.registered(&staging_target()).iter().map(ToString::to_string).collect();
    assert_eq!(registered, ids(&w, "staging"));
    let r = &w.records("staging").await[0];
    assert_eq!(r.outcome, Outcome::Succeeded);
    let Action::Promote(p) = &r.action else { panic!("a promote record") };
    assert_eq!(p.retired_instances.iter().map(ToString::to_string).collect::<BTreeSet<_>>(), old);
    assert!(p.draining.is_empty(), "nothing is left draining: {:?}", p.draining);
}

/// The other half of the rule: a resumed drain never ends while the target group still reports the old
/// instances `draining` (here its deregistration delay is longer than `drain`).
#[tokio::test(start_paused = true)]
async fn a_resumed_drain_also_waits_while_the_target_group_still_reports_draining() {
    let w = World::new(2).await;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    w.deploy_prod(&a).await;
    w.deploy_prod(&b).await;
    let green = LbTarget::TargetGroup("shop-green".into());
    let old = ids(&w, "green");
    assert_eq!(old.len(), 2, "green (idle) runs a");
    let delay = Duration::from_secs(90);
    w.cloud.state().load_balancers.get_mut(&green).unwrap().1.drain = delay;
    w.cloud.clock.advance(Duration::from_secs(600));
    let deregistered = interrupted_mid_drain(&w, "prod", &c, Duration::from_secs(10)).await;
    let start = w.cloud.clock.now();
    let (report, seen) = rerun_watching(&w, "prod", &c, &old).await;
    assert_eq!(report.cluster.as_str(), "green");
    let (_, terminated_at, running) = seen.iter().find(|(s, _, _)| s == "terminated-old").expect("the re-run terminates the old instances").clone();
    assert_eq!(running, 0);
    assert!(
        terminated_at.since(deregistered) >= delay,
        "terminated {:?} after the deregistration began (re-run at {:?}): the target group reported them draining for {delay:?}",
        terminated_at.since(deregistered),
        start.since(deregistered)
    );
    for (step, at, running) in seen.iter().filter(|(_, at, _)| at.since(deregistered) < delay) {
        assert_eq!(*running, 2, "an old instance was terminated at {step} ({at}) while still draining");
    }
    let health = w.cloud.cloud().balancer.health(&green).await.unwrap();
    assert!(health.iter().all(|h| h.state == HealthState::Healthy) && health.len() == 2, "{health:?}");
    assert_eq!(w.commits("green"), vec![c.to_string()]);
}

/// Issue 25 item 14: a promote reads the load balancer's zones with its members (one describe of a classic ELB),
/// takes the cluster's instance group from its running instances (no `DescribeSecurityGroups`), and writes the
/// deregistration instants and the `draining` progress with the guard before the deregistration (no `PutItem` of
/// their own): the lock, the record and the guard before terminating are its only `PutItem`s.
#[tokio::test(start_paused = true)]
async fn a_promote_reads_and_writes_nothing_it_already_has() {
    let w = World::new(3).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.cloud.state().calls.clear();
    w.promote("staging", &a).await.unwrap();
    let first = w.cloud.state().calls.clone();
    assert_eq!(first.get("ec2:DescribeSecurityGroups"), Some(&1), "an empty cluster's group is described: {first:?}");
    w.cloud.state().calls.clear();
    let report = w.promote("staging", &b).await.unwrap();
    let calls = w.cloud.state().calls.clone();
    println!("port calls of a promote over 3 running instances: {calls:#?}");
    assert_eq!(calls.get("ec2:DescribeSecurityGroups"), None, "{calls:?}");
    assert_eq!(calls.get("elb:DescribeLoadBalancers"), Some(&1), "members and zones in one describe: {calls:?}");
    assert_eq!(calls.get("dynamodb:PutItem").copied().unwrap_or(0), 3 + u64::from(report.renewals), "{calls:?}");
    // The draining progress was in the record while the drain ran (written by the guard, not on its own).
    let record = w.records("staging").await.into_iter().next().unwrap();
    assert_eq!(record.outcome, Outcome::Succeeded);
    // Launched with the cluster's instance group, as provision made it.
    let s = w.cloud.state();
    let group = s.groups.values().find(|(_, g)| g.name == "shop-staging-instances").map(|(_, g)| g.id.clone()).unwrap();
    assert!(s.launches.iter().all(|l| l.security_groups.first() == Some(&group)), "{group}: {:?}", s.launches);
}

/// The group an instance carries is taken only from instances in the subnets' VPC: a cluster moved to another VPC
/// carries the old VPC's group of the same name, which RunInstances would refuse there.
#[tokio::test(start_paused = true)]
async fn a_group_carried_in_another_vpc_is_not_taken() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    for i in w.cloud.state().instances.iter_mut() {
        i.vpc_id = "vpc-old".into();
        for id in i.groups.values_mut() {
            *id = "sg-0fromtheoldvpc".into();
        }
    }
    w.cloud.state().calls.clear();
    w.promote("staging", &b).await.unwrap();
    assert_eq!(w.cloud.state().calls.get("ec2:DescribeSecurityGroups"), Some(&1));
    assert_eq!(w.instances("staging").len(), 2);
    let s = w.cloud.state();
    let group = s.groups.values().find(|(_, g)| g.name == "shop-staging-instances").map(|(_, g)| g.id.clone()).unwrap();
    assert_eq!(s.launches.last().map(|l| l.security_groups[0].clone()), Some(group), "the group of the subnets' VPC");
}
