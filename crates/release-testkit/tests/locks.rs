//! Locks and clocks, in simulated time: a machine whose clock is ahead never takes a live lock (a taker watches a
//! lease version for a whole lease on its own clock), and a holder whose renewals keep failing stops before its
//! lease could run out, instead of working on unlocked.

use std::time::Duration;

use release_core::engine::lock::LOCK_LEASE;
use release_core::engine::queue::Wait;
use release_core::model::clock::Clock;
use release_core::model::ledger::Outcome;
use release_core::ops::promote::PromoteOptions;
use release_core::ErrorKind;
use release_testkit::fixtures::World;

fn waiting() -> PromoteOptions {
    PromoteOptions { wait: Wait::Forever, ..Default::default() }
}

/// The case: the taker's clock is 90 s ahead and one renewal of the holder failed (its lease, by its own
/// clock, still has a minute to run). Comparing the holder's `expires` with the taker's clock took the live lock;
/// the lease version did not change for a whole lease on the taker's clock, so it waits its turn.
#[tokio::test(start_paused = true)]
async fn a_machine_90s_ahead_never_takes_a_live_lock_whose_renewal_failed_once() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.cloud.state().healthy_after = Some(Duration::from_secs(150));
    let holder = w.release("holder");
    let a2 = a.clone();
    let running = tokio::spawn(async move { holder.promote("staging", &a2, &Default::default(), None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Its first renewal (at 30 s) fails, the next one (60 s) goes through.
    w.cloud.state().renewal_faults = 1;
    let fast = w.release_skewed("fast", 90_000);
    let b2 = b.clone();
    let taker = tokio::spawn(async move { fast.promote("staging", &b2, &waiting(), None).await });
    let held = running.await.unwrap();
    assert!(held.is_ok(), "the holder kept its lock: {:?}", held.err().map(|e| e.to_string()));
    let taken = taker.await.unwrap().expect("the taker ran once the holder was done");
    assert_eq!(taken.commit, b);
    let records = w.records("staging").await;
    assert!(records.iter().all(|r| r.outcome != Outcome::LostLock), "nobody lost a lock: {records:#?}");
    let first = records.iter().find(|r| r.commit() == Some(&a) && r.action_name() == "promote").expect("the holder's record");
    let second = records.iter().find(|r| r.commit() == Some(&b) && r.action_name() == "promote").expect("the taker's record");
    assert_eq!((first.outcome, second.outcome), (Outcome::Succeeded, Outcome::Succeeded));
    // The taker's record is in its own clock, 90 s ahead: it started after the holder finished.
    assert!(second.started.millis() - 90_000 > first.finished.unwrap().millis(), "{first:?} / {second:?}");
    assert_eq!(w.commits("staging"), vec![b.to_string()]);
    assert!(!w.locked());
}

/// A lock whose holder died is still taken over by a machine whose clock is off, once its lease version stayed the
/// same for a whole lease on the taker's clock (a command that does not wait watches it when it looks run out).
#[tokio::test(start_paused = true)]
async fn a_dead_holders_lock_is_taken_after_a_whole_unchanged_lease_on_the_takers_clock() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let (dead, _signals) = w.release_with("dead", Some("launched"));
    let err = dead.promote("staging", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crash);
    let lock = w.cloud.state().locks.values().flat_map(|l| l.values().cloned()).next().expect("the dead run's lock");
    // A machine 3 minutes behind sees the lease as live for 3 more minutes: refused, as a live lock is.
    let slow = w.release_skewed("slow", -180_000);
    assert_eq!(slow.promote("staging", &b, &Default::default(), None).await.unwrap_err().kind(), ErrorKind::LockHeld);
    // Once it looks run out even there, the lease is watched for a whole lease, nothing renews it: taken over.
    w.cloud.clock.advance(LOCK_LEASE + Duration::from_secs(181));
    let started = w.cloud.clock.now();
    let r = slow.promote("staging", &b, &Default::default(), None).await.expect("taken over after a whole unchanged lease");
    assert_eq!(r.commit, b);
    assert!(w.cloud.clock.now().since(started) >= LOCK_LEASE, "it watched the lease first");
    let lines = w.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.starts_with("the lock of env staging looks abandoned: dead (") && l.contains("watching it for 2m")), "{lines:#?}");
    assert_eq!(w.commits("staging"), vec![b.to_string()], "the dead run's instances were cleaned up");
    assert!(lock.lease >= 1);
}

/// A holder whose renewals keep failing does not work on past its lease: it stops a renewal period before the lease
/// it last wrote runs out on its own clock, removes what it launched, records `lost-lock` and exits 5.
#[tokio::test(start_paused = true)]
async fn renewals_that_keep_failing_stop_the_holder_before_its_lease_runs_out() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    w.cloud.state().healthy_after = Some(Duration::from_secs(600));
    w.cloud.state().renewal_faults = -1;
    let err = w.release("holder").promote("staging", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert!(err.message().contains("lost the lock of env staging: its lease could not be renewed for 1m30s"), "{err}");
    let records = w.records("staging").await;
    let r = records.iter().find(|r| r.action_name() == "promote").expect("its record");
    assert_eq!(r.outcome, Outcome::LostLock, "{r:?}");
    assert!(r.detail.as_deref().unwrap_or("").contains("could not be renewed"), "{r:?}");
    let lease_end = r.started.add(LOCK_LEASE);
    assert!(r.finished.expect("closed") < lease_end, "stopped before its lease ran out on its own clock: {r:?}");
    assert!(w.instances("staging").is_empty(), "what it launched was removed");
    assert!(!w.locked(), "its lock was released");
}
