//! The queue in front of an environment's lock (`--wait`), in simulated time: arrival order, each command exactly
//! once, `latest` superseding older waiting promotes, a wait that runs out, a cancelled ticket, Ctrl-C while
//! waiting, and a command that does not wait not jumping the line.

use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::model::ledger::{Action, Outcome, TicketAction};
use release_core::model::pipeline::QueueMode;
use release_core::ops::promote::PromoteOptions;
use release_core::engine::queue::Wait;
use release_core::{ErrorKind, Release};
use release_testkit::fixtures::World;

fn waiting(wait: Wait) -> PromoteOptions {
    PromoteOptions { wait, ..Default::default() }
}

/// Promotes of `shas` to staging: the first without waiting (it holds the lock for a minute: health takes that
/// long), the others each a second later with `--wait`. Returns each one's result, in arrival order.
async fn rush(w: &World, shas: &[release_core::model::ids::CommitSha], release: impl Fn(usize) -> Release) -> Vec<Result<String, (ErrorKind, String)>> {
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    let mut tasks = Vec::new();
    for (i, sha) in shas.iter().enumerate() {
        let r = release(i);
        let sha = sha.clone();
        let opts = if i == 0 { PromoteOptions::default() } else { waiting(Wait::Forever) };
        tasks.push(tokio::spawn(async move { r.promote("staging", &sha, &opts, None).await }));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().map(|r| r.commit.to_string()).map_err(|e| (e.kind(), e.message().to_owned())));
    }
    out
}

fn promoted_in_order(records: &[release_core::model::ledger::Record]) -> Vec<String> {
    let mut done: Vec<_> = records.iter().filter(|r| r.action_name() == "promote" && r.outcome == Outcome::Succeeded && matches!(r.action, Action::Promote(_))).collect();
    done.sort_by_key(|r| r.started);
    done.iter().filter_map(|r| r.commit().map(|c| c.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn waiting_promotes_run_in_order_of_arrival_each_exactly_once() {
    let w = World::new(2).await;
    let shas = vec![w.bake('a').await, w.bake('b').await, w.bake('c').await, w.bake('d').await];
    let results = rush(&w, &shas, |i| w.release(&format!("op{i}"))).await;
    let expected: Vec<Result<String, (ErrorKind, String)>> = shas.iter().map(|s| Ok(s.to_string())).collect();
    assert_eq!(results, expected);
    let records = w.records("staging").await;
    assert_eq!(promoted_in_order(&records), shas.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "in order of arrival, each once");
    assert_eq!(w.commits("staging"), vec![shas[3].to_string()], "the last one is live");
    // Those that waited say how long in their record.
    let waited: Vec<f64> = {
        let mut r: Vec<_> = records.iter().filter(|r| r.outcome == Outcome::Succeeded && r.action_name() == "promote").collect();
        r.sort_by_key(|r| r.started);
        r.iter().map(|r| r.seconds.get("queued").copied().unwrap_or(0.0)).collect()
    };
    assert_eq!(waited[0], 0.0);
    assert!(waited[1..].iter().all(|s| *s > 50.0), "{waited:?}");
    assert!(w.cloud.state().tickets.values().all(|t| t.is_empty()), "no ticket left behind");
    let lines = w.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.starts_with("queued: 2 ahead: op0 promote aaaaaaaaaaaa to staging (running") && l.contains("op1 promote bbbbbbbbbbbb to staging (waiting)")), "{lines:#?}");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn with_latest_only_the_first_and_the_newest_run_the_others_are_superseded() {
    let mut w = World::new(2).await;
    w.pipeline.envs.iter_mut().find(|e| e.name.as_str() == "staging").unwrap().queue = QueueMode::Latest;
    let shas = vec![w.bake('a').await, w.bake('b').await, w.bake('c').await, w.bake('d').await];
    let results = rush(&w, &shas, |i| w.release(&format!("ci{i}"))).await;
    assert_eq!(results[0], Ok(shas[0].to_string()));
    for r in &results[1..3] {
        let (kind, message) = r.clone().expect_err("superseded");
        assert_eq!(kind, ErrorKind::Superseded, "{message}");
        assert!(message.contains("superseded by") && message.contains("promote dddddddddddd to staging by ci3"), "{message}");
    }
    assert_eq!(results[3], Ok(shas[3].to_string()));
    let records = w.records("staging").await;
    assert_eq!(promoted_in_order(&records), vec![shas[0].to_string(), shas[3].to_string()]);
    let superseded: Vec<_> = records.iter().filter(|r| r.outcome == Outcome::Superseded).collect();
    assert_eq!(superseded.len(), 2, "each superseded waiter is in the ledger");
    for r in superseded {
        let Action::Queued(q) = &r.action else { panic!("a queued record: {r:?}") };
        assert_eq!(q.command, TicketAction::Promote);
        assert!(q.superseded_by.is_some());
        assert_eq!(r.action_name(), "promote");
    }
    assert_eq!(w.commits("staging"), vec![shas[3].to_string()]);
    assert_eq!(ErrorKind::Superseded.exit_code(), 0, "superseded is not a failure");
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_runs_out_a_cancelled_ticket_and_ctrl_c_leave_the_queue_having_done_nothing() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.cloud.state().healthy_after = Some(Duration::from_secs(600));
    let holder = w.release("holder");
    let a2 = a.clone();
    let running = tokio::spawn(async move { holder.promote("staging", &a2, &Default::default(), None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;

    // --wait 30s: gives up after 30 s, its ticket gone.
    let err = w.release("impatient").promote("staging", &b, &waiting(Wait::For(Duration::from_secs(30))), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert!(err.message().starts_with("waited 30s in the queue of env staging"), "{err}");
    assert!(w.cloud.state().tickets.values().all(|t| t.is_empty()));

    // Cancelled by someone else: exits 5, recorded as cancelled.
    let r = w.release("patient");
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { r.promote("staging", &b2, &waiting(Wait::Forever), None).await });
    tokio::time::sleep(Duration::from_secs(12)).await;
    let queue = w.release("ops").queue(Some("staging")).await.unwrap();
    assert_eq!(queue[0].holder.as_ref().map(|h| h.holder.as_str()), Some("holder"));
    assert_eq!(queue[0].tickets.len(), 1);
    let id = queue[0].tickets[0].ticket.id.to_string();
    w.release("ops").cancel_ticket(&id).await.unwrap();
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld);
    assert!(err.message().contains("was cancelled"), "{err}");
    let records = w.records("staging").await;
    assert!(records.iter().any(|r| r.outcome == Outcome::Cancelled && r.release_id.as_str() == id), "{records:#?}");
    assert!(w.release("ops").cancel_ticket(&id).await.is_err(), "cancelled twice: not found");

    // Ctrl-C while waiting: exit 130, ticket removed, nothing done.
    let (r, signals) = w.release_with("nervous", None);
    let b3 = b.clone();
    let waiter = tokio::spawn(async move { r.promote("staging", &b3, &waiting(Wait::Forever), None).await });
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(w.cloud.state().tickets.values().map(|t| t.len()).sum::<usize>(), 1);
    signals.signal();
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(w.cloud.state().tickets.values().all(|t| t.is_empty()), "Ctrl-C removed the ticket");

    // Nobody jumps the line: with a waiter in the queue, a command that does not wait is refused even when the
    // lock is free.
    let r = w.release("queued");
    let b4 = b.clone();
    let waiter = tokio::spawn(async move { r.promote("staging", &b4, &waiting(Wait::Forever), None).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.abort();
    let _ = running.await;
    // The aborted holder is as good as dead: its lock lapses with its lease; meanwhile nobody may jump the waiter.
    let jumper = w.release("jumper").promote("staging", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(jumper.kind(), ErrorKind::LockHeld);
    let report = waiter.await.unwrap().expect("the waiter runs once the dead holder's lease is out");
    assert_eq!(report.commit, b);
    assert_eq!(w.commits("staging"), vec![b.to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_ticket_whose_waiter_died_is_skipped_once_it_missed_its_renewals() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    // A dead waiter: a ticket nobody renews.
    let staging = w.pipeline.env("staging").unwrap();
    let now = w.cloud.clock.now();
    let dead = release_core::model::ledger::Ticket {
        app: w.pipeline.app.clone(),
        env: staging.name.clone(),
        id: release_core::model::ids::ReleaseId::from_string("r-dead".into()),
        arrival: now,
        holder: "ghost".into(),
        host: "gone".into(),
        pid: None,
        action: TicketAction::Promote,
        commit: Some(a.clone()),
        doing: "promote aaaaaaaaaaaa to staging".into(),
        expires: now.add(release_core::engine::lock::LOCK_LEASE),
        renewed: None,
        started: None,
    };
    w.cloud.cloud().queue.enqueue(&w.pipeline.ledger_table, &dead).await.unwrap();
    let err = w.promote("staging", &b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld);
    assert!(err.message().contains("1 command(s) wait in its queue (first: ghost promote aaaaaaaaaaaa to staging)"), "{err}");
    // A waiter behind it gets its turn once it saw the ghost miss three renewals, before its lease ran out.
    let r = w.release("alive").promote("staging", &b, &waiting(Wait::Forever), None).await.expect("served after the lease");
    assert_eq!(r.commit, b);
    let served = w.records("staging").await.into_iter().find(|r| r.commit() == Some(&b)).expect("its record").started;
    assert!(served.since(now) >= release_core::engine::queue::DEAD_TICKET_AFTER && served < dead.expires, "{served} vs {}", dead.expires);
}

/// A user found this: with `latest`, older promotes left "superseded" at once, by a newer one that then gave up
/// waiting, and nothing was deployed. They now yield to it and leave only once it has started.
#[tokio::test(start_paused = true)]
async fn with_latest_a_newer_promote_that_gives_up_leaves_the_older_one_in_line() {
    let mut w = World::new(2).await;
    w.pipeline.envs.iter_mut().find(|e| e.name.as_str() == "staging").unwrap().queue = QueueMode::Latest;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    let holder = w.release("holder");
    let a2 = a.clone();
    let running = tokio::spawn(async move { holder.promote("staging", &a2, &Default::default(), None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let older = w.release("ci-old");
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { older.promote("staging", &b2, &waiting(Wait::Forever), None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The newer one gives up after 20 s, long before the holder is done.
    let err = w.release("ci-new").promote("staging", &c, &waiting(Wait::For(Duration::from_secs(20))), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    running.await.unwrap().unwrap();
    let r = waiter.await.unwrap().expect("the older promote was not superseded by one that never ran");
    assert_eq!(r.commit, b);
    assert_eq!(w.commits("staging"), vec![b.to_string()]);
    let records = w.records("staging").await;
    let gave_up = records.iter().find(|r| r.commit() == Some(&c)).expect("the newer one's record");
    assert_eq!(gave_up.outcome, Outcome::Cancelled);
    assert!(gave_up.detail.as_deref().unwrap_or("").starts_with("gave up after waiting 20s"), "{gave_up:?}");
    assert!(records.iter().all(|r| r.outcome != Outcome::Superseded), "nobody was superseded");
    assert!(w.cloud.state().tickets.values().all(|t| t.is_empty()), "the started tickets went with their commands");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_stopped_by_ctrl_c_is_in_the_ledger_as_interrupted() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    let holder = w.release("holder");
    let running = tokio::spawn(async move { holder.promote("staging", &a, &Default::default(), None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (r, signals) = w.release_with("nervous", None);
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { r.promote("staging", &b2, &waiting(Wait::Forever), None).await });
    tokio::time::sleep(Duration::from_secs(6)).await;
    signals.signal();
    assert_eq!(waiter.await.unwrap().unwrap_err().kind(), ErrorKind::Interrupted);
    running.await.unwrap().unwrap();
    let records = w.records("staging").await;
    let left = records.iter().find(|r| r.commit() == Some(&b)).expect("a record of the waiter");
    assert_eq!((left.outcome, left.action_name()), (Outcome::Interrupted, "promote"));
}

/// A waiter killed with -9 (its task dropped mid-wait) leaves its ticket behind, unrenewed. The waiter behind it
/// skips it once it saw it miss three renewals on its own clock, long before its 2-minute lease runs out, and
/// `release queue` shows it stale meanwhile.
#[tokio::test(start_paused = true)]
async fn a_waiter_killed_with_9_is_skipped_after_a_few_missed_renewals_and_shown_stale() {
    use release_core::engine::queue::{DEAD_TICKET_AFTER, TICKET_RENEW_EVERY};
    let w = World::new(2).await;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    let holder = w.release("holder");
    let running = tokio::spawn(async move { holder.promote("staging", &a, &Default::default(), None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = w.release("killed");
    let b2 = b.clone();
    let dead = tokio::spawn(async move { killed.promote("staging", &b2, &waiting(Wait::Forever), None).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    dead.abort();
    assert!(dead.await.unwrap_err().is_cancelled());
    let ghost = w.cloud.state().tickets.values().flat_map(|t| t.values().cloned()).find(|t| t.holder == "killed").expect("its ticket stays");
    let next = w.release("next");
    let c2 = c.clone();
    let behind = tokio::spawn(async move { next.promote("staging", &c2, &waiting(Wait::Forever), None).await });
    tokio::time::sleep(DEAD_TICKET_AFTER + TICKET_RENEW_EVERY).await;
    let view = w.release("ops").queue(Some("staging")).await.unwrap();
    let shown: Vec<(String, Option<usize>, bool, bool)> = view[0].tickets.iter().map(|t| (t.ticket.holder.clone(), t.position, t.stale, t.expired)).collect();
    assert_eq!(shown, vec![("killed".to_owned(), None, true, false), ("next".to_owned(), Some(1), false, false)], "stale, not yet expired");
    running.await.unwrap().unwrap();
    behind.await.unwrap().expect("served once the holder was done");
    let records = w.records("staging").await;
    let served = records.iter().find(|r| r.commit() == Some(&c) && r.action_name() == "promote").expect("its record");
    assert_eq!(served.outcome, Outcome::Succeeded);
    assert!(served.started < ghost.expires, "it did not wait for the dead ticket's lease: started {} < {}", served.started, ghost.expires);
    assert!(records.iter().all(|r| r.commit() != Some(&b)), "the killed waiter never ran: {records:#?}");
    assert_eq!(w.commits("staging"), vec![c.to_string()]);
}
