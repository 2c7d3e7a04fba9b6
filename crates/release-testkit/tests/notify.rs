//! Deploy events in simulated time: what each sink receives for a promote, a failed promote, a switch, a rollback
//! and the queue; `on` filters; retries of a failing sink noted on the ledger record; a sink that never answers
//! costs a promote at most one timeout.

use std::sync::Arc;
use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::model::event::{EventKind};
use release_core::engine::delivery::{SINK_TIMEOUT};
use release_core::ops::promote::PromoteOptions;
use release_core::engine::queue::Wait;
use release_core::{ErrorKind, Release};
use release_testkit::fixtures::{shop, World};
use release_testkit::sinks::{Answer, RecordingNotifier};

const SINKS: &str = r#"
[notify]
link = "http://deploys.internal:8080"
[[notify.sinks]]
kind = "webhook"
url = "https://hooks.example.com/release/abc"
secret = "env:HOOK_SECRET"
[[notify.sinks]]
kind = "command"
command = "./notify.sh"
on = ["step", "failed", "queued", "superseded"]
"#;

const HOOK: &str = "webhook https://hooks.example.com/release/…";
const CMD: &str = "command `./notify.sh`";

async fn world() -> (World, RecordingNotifier) {
    let w = World::with(shop(2, SINKS)).await;
    (w, RecordingNotifier::default())
}

fn release(w: &World, n: &RecordingNotifier, actor: &str) -> Release {
    let mut r = w.release(actor);
    r.session.notifier = Arc::new(n.clone());
    r
}

fn kinds(events: &[release_core::model::event::Event]) -> Vec<String> {
    events.iter().map(|e| e.step.clone().map_or_else(|| e.event.as_str().to_owned(), |s| format!("step {s}"))).collect()
}

#[tokio::test(start_paused = true)]
async fn a_promote_tells_each_sink_what_its_filter_takes_with_everything_a_reader_needs() {
    let (w, n) = world().await;
    let a = w.bake('a').await;
    let report = release(&w, &n, "alice").promote("staging", &a, &Default::default(), None).await.unwrap();
    assert_eq!(kinds(&n.delivered(HOOK)), ["started", "succeeded"], "the webhook takes the default events");
    assert_eq!(
        kinds(&n.delivered(CMD)),
        ["step launched", "step running", "step registered", "step healthy"],
        "the command takes steps only (a first promote retires nothing)"
    );
    let done = &n.delivered(HOOK)[1];
    assert_eq!((done.app.as_str(), done.env.as_str(), done.cluster.as_deref(), done.action.as_str()), ("shop", "staging", Some("staging"), "promote"));
    assert_eq!(done.commit.as_deref(), Some(a.as_str()));
    assert_eq!(done.commit_short.as_deref(), Some(&a.as_str()[..12]));
    assert_eq!(done.subject.as_deref(), Some("commit a"), "the subject line from the AMI's tag");
    assert_eq!(done.ami.as_deref(), Some(report.ami.as_str()));
    assert_eq!((done.actor.as_str(), done.release_id.as_str(), done.outcome.as_str()), ("alice", report.release_id.as_str(), "succeeded"));
    assert_eq!(done.instances.launched, 2);
    assert_eq!(done.link.as_deref(), Some("http://deploys.internal:8080"));
    assert!(done.seconds.contains_key("total"), "{:?}", done.seconds);
    assert_eq!(done.reason, None);
    assert!(w.records("staging").await[0].notify_failures.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_promote_sends_one_failed_event_whose_reason_is_the_error() {
    let (w, n) = world().await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    release(&w, &n, "alice").promote("staging", &a, &Default::default(), None).await.unwrap();
    w.cloud.state().healthy_after = None;
    let err = release(&w, &n, "alice").promote("staging", &b, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed);
    let failed: Vec<_> = n.delivered(HOOK).into_iter().filter(|e| e.event == EventKind::Failed).collect();
    assert_eq!(failed.len(), 1, "one failed event");
    assert_eq!(failed[0].reason.as_deref(), Some(err.message()), "its reason is the error's one line");
    assert_eq!(failed[0].rolled_back, Some(true));
    assert_eq!(failed[0].commit.as_deref(), Some(b.as_str()));
    assert_eq!(n.delivered(CMD).iter().filter(|e| e.event == EventKind::Failed).count(), 1, "the command takes failures too");
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_fails_is_retried_and_noted_and_one_that_hangs_costs_at_most_one_timeout() {
    let (w, n) = world().await;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    release(&w, &n, "alice").promote("staging", &a, &Default::default(), None).await.unwrap();
    // The baseline: how long the same kind of promote (launch, swap, drain, retire) takes with sinks that answer.
    let start = w.cloud.clock.now();
    release(&w, &n, "alice").promote("staging", &c, &Default::default(), None).await.unwrap();
    let base = w.cloud.clock.now().since(start);

    n.answers.lock().unwrap().insert(HOOK.into(), Answer::Fail);
    n.answers.lock().unwrap().insert(CMD.into(), Answer::Hang);
    n.clear();
    let start = w.cloud.clock.now();
    let r = release(&w, &n, "alice").promote("staging", &b, &Default::default(), None).await.expect("sinks never fail a deploy");
    assert_eq!(r.outcome, release_core::ops::promote::PromoteOutcome::Succeeded);
    let slower = w.cloud.clock.now().since(start).saturating_sub(base);
    println!("promote with a failing and a hanging sink: {slower:?} slower (simulated) than with answering sinks");
    assert!(slower <= SINK_TIMEOUT, "a hanging sink cost {slower:?}, more than one timeout");
    assert_eq!(n.attempts_at(HOOK), 2 * 3, "started and succeeded, three attempts each");
    let record = &w.records("staging").await[0];
    let noted: Vec<(String, String)> = record.notify_failures.iter().map(|f| (f.sink.clone(), f.event.clone())).collect();
    assert!(noted.contains(&(HOOK.to_owned(), "started".to_owned())) && noted.contains(&(HOOK.to_owned(), "succeeded".to_owned())), "{noted:?}");
    assert!(record.notify_failures.iter().all(|f| !f.error.contains("abc")), "no secret part of the URL on the record");
    let lines = w.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.starts_with(&format!("notify: {HOOK} did not take the started event after 3 attempts"))), "{lines:#?}");
}

#[tokio::test(start_paused = true)]
async fn switch_rollback_and_the_queue_are_events_too() {
    let (w, n) = world().await;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    w.cloud.clock.advance(Duration::from_secs(600));
    let blue_or_green = release(&w, &n, "alice").promote("prod", &a, &Default::default(), None).await.unwrap().cluster;
    release(&w, &n, "alice").switch(blue_or_green.as_str(), &Default::default(), None).await.unwrap();
    w.cloud.clock.advance(Duration::from_secs(600));
    let other = release(&w, &n, "alice").promote("prod", &b, &Default::default(), None).await.unwrap().cluster;
    release(&w, &n, "alice").switch(other.as_str(), &Default::default(), None).await.unwrap();
    w.cloud.clock.advance(Duration::from_secs(600));
    release(&w, &n, "alice").rollback("prod", &Default::default(), None).await.unwrap();
    let prod: Vec<_> = n.delivered(HOOK).into_iter().filter(|e| e.env == "prod").collect();
    let seen: Vec<(String, String)> = prod.iter().map(|e| (e.action.clone(), e.event.as_str().to_owned())).collect();
    let want: Vec<(String, String)> = [
        ("promote", "started"), ("promote", "succeeded"), ("switch", "started"), ("switch", "succeeded"),
        ("promote", "started"), ("promote", "succeeded"), ("switch", "started"), ("switch", "succeeded"),
        ("rollback", "started"), ("rollback", "rolled-back"),
    ]
    .iter()
    .map(|(a, k)| (a.to_string(), k.to_string()))
    .collect();
    assert_eq!(seen, want);
    let switched = &prod[3];
    assert!(switched.to.contains(&format!("{blue_or_green}=100")), "a switch says the weights: {} -> {}", switched.from, switched.to);

    // The queue: queued and superseded reach the command sink (its filter takes them).
    let mut latest = w.pipeline.clone();
    latest.envs.iter_mut().find(|e| e.name.as_str() == "staging").unwrap().queue = release_core::model::pipeline::QueueMode::Latest;
    w.cloud.state().healthy_after = Some(Duration::from_secs(60));
    let mk = |actor: &str| {
        let mut r = Release::new(w.session(actor), latest.clone());
        r.session.notifier = Arc::new(n.clone());
        r
    };
    let (r0, r1, r2) = (mk("ci0"), mk("ci1"), mk("ci2"));
    let (a0, b1, c2) = (a.clone(), b.clone(), c.clone());
    let t0 = tokio::spawn(async move { r0.promote("staging", &a0, &Default::default(), None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t1 = tokio::spawn(async move { r1.promote("staging", &b1, &PromoteOptions { wait: Wait::Forever, ..Default::default() }, None).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t2 = tokio::spawn(async move { r2.promote("staging", &c2, &PromoteOptions { wait: Wait::Forever, ..Default::default() }, None).await });
    t0.await.unwrap().unwrap();
    assert_eq!(t1.await.unwrap().unwrap_err().kind(), ErrorKind::Superseded);
    t2.await.unwrap().unwrap();
    let queue_events: Vec<(String, Option<String>)> =
        n.delivered(CMD).into_iter().filter(|e| matches!(e.event, EventKind::Queued | EventKind::Superseded)).map(|e| (e.event.as_str().to_owned(), e.commit_short)).collect();
    let short = |s: &release_core::model::ids::CommitSha| Some(s.as_str()[..12].to_owned());
    assert_eq!(
        queue_events,
        vec![("queued".to_owned(), short(&b)), ("queued".to_owned(), short(&c)), ("superseded".to_owned(), short(&b))],
        "each waiter says it queued; the superseded one says so"
    );
}

#[tokio::test(start_paused = true)]
async fn a_promote_that_fails_before_its_record_opens_still_tells_the_sinks_why() {
    let (w, n) = world().await;
    let a = w.bake('a').await;
    // A load balancer deleted by hand: the promote stops while it observes, before it writes anything.
    w.cloud.state().load_balancers.retain(|t, _| t.name() != "shop-staging");
    let err = release(&w, &n, "alice").promote("staging", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let events = n.delivered(HOOK);
    assert_eq!(kinds(&events), ["refused"], "no started (nothing started), one refused: nothing was changed");
    assert_eq!(events[0].rolled_back, Some(false), "nothing to put back");
    assert_eq!(events[0].reason.as_deref(), Some(err.message()));
    assert_eq!((events[0].action.as_str(), events[0].commit.as_deref()), ("promote", Some(a.as_str())));
    assert!(w.records("staging").await.iter().all(|r| r.action_name() != "promote"), "the ledger has no promote to close");
}

/// A sink that takes every closing kind, and prod's rollout alarm (watched by every move of traffic toward a cluster).
const EVERY: &str = r#"
[env.prod.rollout]
alarms = ["shop-5xx"]
[notify]
[[notify.sinks]]
kind = "command"
command = "./all.sh"
on = ["started", "succeeded", "failed", "rolled-back", "interrupted", "refused", "lost-lock"]
"#;

const ALL: &str = "command `./all.sh`";

async fn every_event() -> (World, RecordingNotifier) {
    let w = World::with(shop(2, EVERY)).await;
    w.cloud.set_alarm("shop-5xx", release_core::ports::AlarmState::Ok);
    (w, RecordingNotifier::default())
}

#[tokio::test(start_paused = true)]
async fn a_double_ctrl_c_past_the_point_of_no_return_is_interrupted_not_failed_and_only_the_rerun_closes_it() {
    let (w, n) = every_event().await;
    let (a, c) = (w.bake('a').await, w.bake('c').await);
    release(&w, &n, "alice").promote("staging", &a, &Default::default(), None).await.unwrap();
    // Two signals in the drain (past the point of no return): it stops at once and leaves the record open.
    let (mut r, signals) = w.release_with("alice", None);
    r.session.notifier = Arc::new(n.clone());
    let opts = PromoteOptions::default();
    let (result, ()) = tokio::join!(r.promote("staging", &c, &opts, None), async {
        tokio::time::sleep(Duration::from_secs(12)).await;
        signals.signal();
        tokio::time::sleep(Duration::from_secs(2)).await;
        signals.signal();
    });
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Interrupted);
    let open = w.records("staging").await[0].clone();
    assert_eq!(open.outcome, release_core::model::ledger::Outcome::Started, "left open for a re-run");
    release(&w, &n, "alice").promote("staging", &c, &Default::default(), None).await.expect("the re-run finishes it");
    let closed = w.records("staging").await[0].clone();
    assert_eq!((closed.release_id.as_str(), closed.outcome), (open.release_id.as_str(), release_core::model::ledger::Outcome::Succeeded));

    let events: Vec<_> = n.delivered(ALL).into_iter().filter(|e| e.release_id == open.release_id.as_str()).collect();
    assert_eq!(kinds(&events), ["started", "interrupted", "succeeded"], "never a `failed` for a run left open");
    let stopped = &events[1];
    assert_eq!(stopped.outcome, "started", "the record stays open: not a terminal event");
    assert!(stopped.reason.as_deref().is_some_and(|r| r.contains("run the same command again")), "{:?}", stopped.reason);
    assert_eq!(stopped.rolled_back, Some(false), "nothing was put back");
    let terminal: Vec<_> = events.iter().filter(|e| e.outcome != "started").collect();
    assert_eq!(terminal.len(), 1, "exactly one terminal event: {events:#?}");
    assert_eq!((terminal[0].event, terminal[0].outcome.as_str()), (EventKind::Succeeded, closed.outcome.as_str()), "it matches the ledger");
}

#[tokio::test(start_paused = true)]
async fn refusals_that_changed_nothing_are_refused_with_their_reason_and_nothing_rolled_back() {
    let (w, n) = every_event().await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    // No AMI for the commit.
    let unbaked = release_core::model::ids::CommitSha::parse(&"d".repeat(40)).unwrap();
    let no_ami = release(&w, &n, "alice").promote("staging", &unbaked, &Default::default(), None).await.unwrap_err();
    assert_eq!(no_ami.kind(), ErrorKind::NotFound, "{no_ami}");
    // An alarm firing: a switch toward the idle cluster is refused before anything changes.
    w.cloud.clock.advance(Duration::from_secs(600));
    let live = release(&w, &n, "alice").promote("prod", &a, &Default::default(), None).await.unwrap().cluster;
    release(&w, &n, "alice").switch(live.as_str(), &Default::default(), None).await.unwrap();
    w.cloud.clock.advance(Duration::from_secs(600));
    let idle = release(&w, &n, "alice").promote("prod", &b, &Default::default(), None).await.unwrap().cluster;
    w.cloud.set_alarm("shop-5xx", release_core::ports::AlarmState::Alarm);
    let weights = w.weights().await;
    let opts = release_core::ops::switch::SwitchOptions { weight: Some(100), ..Default::default() };
    let firing = release(&w, &n, "alice").switch(idle.as_str(), &opts, None).await.unwrap_err();
    assert_eq!(firing.kind(), ErrorKind::Refused, "{firing}");
    assert_eq!(w.weights().await, weights, "nothing changed");

    let all = n.delivered(ALL);
    assert!(all.iter().all(|e| e.event != EventKind::Failed), "{:?}", kinds(&all));
    let refused: Vec<_> = all.iter().filter(|e| e.event.as_str() == "refused").collect();
    assert_eq!(refused.len(), 2, "{:?}", kinds(&all));
    for (e, err, action) in [(refused[0], &no_ami, "promote"), (refused[1], &firing, "switch")] {
        assert_eq!((e.action.as_str(), e.outcome.as_str()), (action, "refused"));
        assert_eq!(e.reason.as_deref(), Some(err.message()), "the reason is the refusal");
        assert_eq!(e.rolled_back, Some(false), "nothing was changed, so nothing was put back");
        // The error (the CLI's JSON document) says the same as the event and the ledger row.
        assert_ne!(err.rolled_back(), Some(true), "{err}");
    }
    assert!(refused[1].reason.as_deref().is_some_and(|r| r.contains("alarm shop-5xx of env prod is in ALARM now")));
    let records: Vec<_> = w.records("prod").await.into_iter().chain(w.records("staging").await).collect();
    assert!(records.iter().all(|r| r.outcome != release_core::model::ledger::Outcome::Failed), "no ledger row says failed");
}

/// A sink slow to take the first event, and one whose first attempt fails (taken by a retry a second later), still
/// receive a release's events in the order they happened: the next event waits for the one before it.
#[tokio::test(start_paused = true)]
async fn a_sink_slow_or_retried_on_the_first_event_still_receives_them_in_order() {
    let w = World::with(shop(2, r#"
[notify]
[[notify.sinks]]
kind = "command"
command = "./slow.sh"
on = ["queued", "started", "step", "succeeded"]
[[notify.sinks]]
kind = "command"
command = "./flaky.sh"
on = ["queued", "started", "step", "succeeded"]
"#))
    .await;
    let (slow, flaky) = ("command `./slow.sh`", "command `./flaky.sh`");
    let n = RecordingNotifier::default();
    n.slow_first.lock().unwrap().insert(slow.into(), Duration::from_secs(3));
    n.fail_first.lock().unwrap().insert(flaky.into());
    let a = w.bake('a').await;
    let opts = PromoteOptions { wait: Wait::Forever, ..Default::default() };
    let report = release(&w, &n, "alice").promote("staging", &a, &opts, None).await.unwrap();
    let want = ["queued", "started", "step launched", "step running", "step registered", "step healthy", "succeeded"];
    for sink in [slow, flaky] {
        let events = n.delivered(sink);
        assert_eq!(kinds(&events), want, "{sink}: in the order they happened");
        assert!(events.iter().all(|e| e.release_id == report.release_id.as_str()));
    }
    assert!(w.records("staging").await[0].notify_failures.is_empty(), "nothing was lost on the way");
}

/// A sink that does not say `on` gets the closing events a person must hear of, `lost-lock` and `interrupted` too;
/// a `queued` event says `queued`, not `started`; a `promote --wait` with nothing to do closes what `queued` opened.
#[tokio::test(start_paused = true)]
async fn the_default_filter_takes_lost_lock_and_interrupted_and_queued_events_are_closed() {
    let w = World::with(shop(2, "[notify]\n[[notify.sinks]]\nkind = \"command\"\ncommand = \"./default.sh\"\n")).await;
    let sink = "command `./default.sh`";
    let on = &w.pipeline.notify.sinks[0].on;
    assert!(on.contains(&EventKind::LostLock) && on.contains(&EventKind::Interrupted), "{on:?}");
    let n = RecordingNotifier::default();
    let a = w.bake('a').await;
    // A run whose renewals keep failing stops with lost-lock: the default sink hears of it.
    w.cloud.state().healthy_after = Some(Duration::from_secs(600));
    w.cloud.state().renewal_faults = -1;
    let err = release(&w, &n, "alice").promote("staging", &a, &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert_eq!(kinds(&n.delivered(sink)), ["started", "lost-lock"]);
    w.cloud.state().renewal_faults = 0;
    w.cloud.state().healthy_after = Some(Duration::ZERO);
    release(&w, &n, "alice").promote("staging", &a, &Default::default(), None).await.unwrap();

    // Queued, with a sink that takes it: its outcome is `queued`; a promote with nothing to do closes `succeeded`.
    let mut queued = w.pipeline.clone();
    queued.notify.sinks[0].on.insert(EventKind::Queued);
    let mut r = Release::new(w.session("ci"), queued);
    r.session.notifier = Arc::new(n.clone());
    n.clear();
    let opts = PromoteOptions { wait: Wait::Forever, ..Default::default() };
    let report = r.promote("staging", &a, &opts, None).await.unwrap();
    assert_eq!(report.outcome, release_core::ops::promote::PromoteOutcome::Noop, "{report:?}");
    let events = n.delivered(sink);
    assert_eq!(kinds(&events), ["queued", "succeeded"], "what queued opened is closed");
    assert_eq!(events[0].outcome, "queued");
    assert_eq!(events[0].release_id, events[1].release_id);
}
