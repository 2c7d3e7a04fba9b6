//! The progress a running promote writes into its ledger record (what `status` and the dashboard show on any
//! machine): every instance's state through the phases, the phase's start, and one write per poll, never one per
//! instance.

use std::time::Duration;

use release_core::model::ledger::Outcome;
use release_testkit::fixtures::World;

/// Runs an in-place promote of `count` instances whose health takes 60 s, reading the record every simulated
/// second while it runs; returns what was seen and the PutItem calls made.
async fn watched_promote(count: u32) -> (Vec<release_core::model::ledger::Progress>, release_core::model::ledger::Record, u64) {
    let w = World::new(count).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    w.cloud.clock.advance(Duration::from_secs(120));
    let puts_before = w.cloud.state().calls.get("dynamodb:PutItem").copied().unwrap_or(0);
    let (report, seen) = tokio::join!(w.promote("staging", &b), async {
        let mut seen = Vec::new();
        for _ in 0..90 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let r = w.records("staging").await.into_iter().next().unwrap();
            if r.outcome == Outcome::Started {
                if let Some(p) = r.progress {
                    seen.push(p);
                }
            }
        }
        seen
    });
    report.unwrap();
    let puts = w.cloud.state().calls.get("dynamodb:PutItem").copied().unwrap_or(0) - puts_before;
    let record = w.records("staging").await.into_iter().next().unwrap();
    (seen, record, puts)
}

#[tokio::test(start_paused = true)]
async fn a_running_promote_shows_each_instance_through_its_states_in_its_record() {
    let (seen, record, _) = watched_promote(5).await;
    let phases: Vec<String> = seen.iter().map(|p| p.phase.to_string()).collect();
    assert!(phases.iter().any(|p| p == "waiting-healthy"), "{phases:?}");
    let waiting = seen.iter().find(|p| p.phase == "waiting-healthy").unwrap();
    assert_eq!(waiting.waiting_for.as_deref(), Some("healthy 0/5"));
    assert_eq!(waiting.instances.len(), 5, "{waiting:?}");
    assert!(waiting.instances.values().all(|s| s == "registered"), "registered, not yet healthy: {waiting:?}");
    let started = waiting.phase_started.expect("the phase's start, for its elapsed time");
    assert!(seen.iter().filter(|p| p.phase == "waiting-healthy").all(|p| p.phase_started == Some(started)), "one phase, one start");
    assert!(waiting.updated.is_some());
    // Retiring: the new ones healthy, the old ones draining, in the same map.
    let draining = seen.iter().find(|p| p.phase == "draining").unwrap_or_else(|| panic!("no draining phase seen: {phases:?}"));
    let states: Vec<&str> = draining.instances.values().map(String::as_str).collect();
    assert_eq!(states.iter().filter(|s| **s == "healthy").count(), 5, "{states:?}");
    assert_eq!(states.iter().filter(|s| **s == "draining").count(), 5, "{states:?}");
    // Finished: the record is closed and carries no progress any more (status shows no operation).
    assert_eq!(record.outcome, Outcome::Succeeded);
    assert!(record.progress.is_none(), "{:?}", record.progress);
}

#[tokio::test(start_paused = true)]
async fn progress_is_one_write_per_poll_whatever_the_fleet_size() {
    let (_, _, five) = watched_promote(5).await;
    let (_, _, fifty) = watched_promote(50).await;
    println!("ledger and lock PutItem calls of a promote with 60 s of health: 5 instances {five}, 50 instances {fifty}");
    assert_eq!(five, fifty, "writes do not grow with the number of instances");
    // A minute of polls every 5 s, most of them changing nothing: far fewer writes than polls x instances.
    assert!(fifty < 30, "{fifty} writes");
}
