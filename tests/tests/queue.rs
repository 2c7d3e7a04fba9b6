//! The release queue with real processes against the emulator: several `release promote --wait` at once end in
//! order of arrival, each exactly once, the last one live; with `queue = "latest"` only the running one and the
//! newest run, the ones between are superseded (exit 0, in the ledger). `release queue` shows the line. A waiter
//! killed with -9 does not hold the line for its lease; a machine whose clock is ahead does not take a live lock.

use std::time::Duration;

use release_e2e::{AwsView, Emulator, Project};

const LONG: Duration = Duration::from_secs(120);

fn set(project: &Project, from: &str, to: &str) {
    let text = project.read("pipelines/hello.toml");
    assert!(text.contains(from), "{from:?} not in the pipeline");
    project.write("pipelines/hello.toml", &text.replacen(from, to, 1));
}

/// Staging runs `a`; `b` is promoted without waiting (it holds the lock for the drain, 4 s), and then `waiters`
/// are started a second apart with `--wait`. Returns each waiter's run, in arrival order, and the `queue` output
/// seen while they waited.
fn rush(project: &Project, emu: &Emulator, a: &str, b: &str, waiters: &[String]) -> (release_e2e::Run, Vec<release_e2e::Run>, serde_json::Value) {
    set(project, "drain = \"2s\"", "drain = \"4s\"");
    project.release(emu, &["promote", a, "--env", "staging"]).assert_ok();
    let holder = project.background(&emu.url(), &[], &["promote", b, "--env", "staging"]);
    holder.wait_for("launching", LONG);
    let mut bg = Vec::new();
    for (i, sha) in waiters.iter().enumerate() {
        bg.push(project.background(&emu.url(), &[("RELEASE_ACTOR", &format!("ci{i}"))], &["promote", sha, "--env", "staging", "--wait", "--output", "json"]));
        bg.last().unwrap().wait_for("queued:", LONG);
        std::thread::sleep(Duration::from_millis(300));
    }
    let queue = project.release(emu, &["queue", "--env", "staging", "--output", "json"]);
    queue.assert_ok();
    let holder = holder.finish(LONG);
    let runs = bg.into_iter().map(|b| b.finish(LONG)).collect();
    (holder, runs, queue.json())
}

/// Succeeded promotes of staging, oldest first, as commits.
fn promoted(ledger: &[std::collections::BTreeMap<String, String>]) -> Vec<String> {
    let mut rows: Vec<_> = ledger.iter().filter(|r| r["action"] == "promote" && r["outcome"] == "succeeded" && r["env"] == "staging").collect();
    rows.sort_by_key(|r| r["started"].parse::<i64>().unwrap_or(0));
    rows.iter().map(|r| r["commit"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_promotes_run_in_order_of_arrival_each_exactly_once_and_the_last_is_live() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    let waiters: Vec<String> = ["c", "d", "e"].iter().map(|l| project.bake_new(&emu, l)).collect();
    let (holder, runs, queue) = rush(&project, &emu, &a, &b, &waiters);
    holder.assert_ok();

    // While they waited, `release queue` showed the holder and the three tickets in order of arrival.
    let q = &queue["queues"][0];
    assert_eq!(q["holder"]["doing"], format!("promote {} to staging", &b[..12]), "{queue:#}");
    let doing: Vec<String> = q["tickets"].as_array().unwrap().iter().map(|t| t["doing"].as_str().unwrap().to_owned()).collect();
    assert_eq!(doing, waiters.iter().map(|w| format!("promote {} to staging", &w[..12])).collect::<Vec<_>>(), "{queue:#}");
    let positions: Vec<u64> = q["tickets"].as_array().unwrap().iter().map(|t| t["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [1, 2, 3]);

    for (run, sha) in runs.iter().zip(&waiters) {
        run.assert_ok();
        assert_eq!(run.json()["commit"], sha.as_str(), "{run:?}");
        assert!(run.json()["seconds"]["queued"].as_f64().unwrap_or(0.0) > 0.5, "it says how long it waited: {}", run.stdout);
    }
    let ledger = aws.ledger("release-ledger").await;
    let mut expected = vec![a.clone(), b.clone()];
    expected.extend(waiters.iter().cloned());
    assert_eq!(promoted(&ledger), expected, "in order of arrival, each exactly once");
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.tags["release:commit"].clone()).collect();
    assert_eq!(running, vec![waiters[2].clone(); 2], "the last one is live");
    let mut members = aws.elb_members("hello-staging").await;
    members.sort();
    let mut ids: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(members, ids, "the load balancer serves exactly the last fleet");
    let after = project.release(&emu, &["queue", "--env", "staging"]);
    assert_eq!(after.stdout.trim(), "no lock held and nobody waiting in staging (fifo)", "{after:?}");
    let history = project.release(&emu, &["history", "--env", "staging"]);
    assert_eq!(history.stdout.lines().filter(|l| l.contains(" promote ") && l.contains(" succeeded ")).count(), 5, "{}", history.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_latest_only_the_running_one_and_the_newest_run_the_others_are_superseded() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    set(&project, "[env.staging]\n", "[env.staging]\nqueue = \"latest\"\n");
    let waiters: Vec<String> = ["c", "d", "e"].iter().map(|l| project.bake_new(&emu, l)).collect();
    let (holder, runs, _) = rush(&project, &emu, &a, &b, &waiters);
    holder.assert_ok();
    for (i, run) in runs[..2].iter().enumerate() {
        assert_eq!(run.code, 0, "superseded is not a failure: {run:?}");
        let doc = run.json();
        assert_eq!((doc["ok"].as_bool(), doc["superseded"].as_bool()), (Some(true), Some(true)), "{doc:#}");
        // By the newest waiting promote it saw: one that arrived after it.
        let message = doc["message"].as_str().unwrap();
        let by_a_later_one = (i + 1..3).any(|j| message.contains(&format!("promote {} to staging by ci{j}", &waiters[j][..12])));
        assert!(message.starts_with("superseded by ") && by_a_later_one, "{doc:#}");
    }
    runs[2].assert_ok();
    assert_eq!(runs[2].json()["commit"], waiters[2].as_str());
    let ledger = aws.ledger("release-ledger").await;
    assert_eq!(promoted(&ledger), vec![a.clone(), b.clone(), waiters[2].clone()], "c and d never ran");
    let superseded: Vec<&String> = ledger.iter().filter(|r| r["outcome"] == "superseded").map(|r| &r["commit"]).collect();
    assert_eq!(superseded, vec![&waiters[1], &waiters[0]], "each superseded waiter is in the ledger, newest first");
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.tags["release:commit"].clone()).collect();
    assert_eq!(running, vec![waiters[2].clone(); 2]);
    let history = project.release(&emu, &["history", "--env", "staging"]);
    assert_eq!(history.stdout.lines().filter(|l| l.contains(" superseded ")).count(), 2, "{}", history.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_cancelled_from_another_shell_leaves_without_running_and_a_non_waiting_command_does_not_jump_the_line() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    set(&project, "drain = \"2s\"", "drain = \"6s\"");
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let holder = project.background(&emu.url(), &[], &["promote", &b, "--env", "staging"]);
    holder.wait_for("launching", LONG);
    let waiter = project.background(&emu.url(), &[], &["promote", &a, "--env", "staging", "--wait", "5m"]);
    waiter.wait_for("queued:", LONG);
    let queue = project.release(&emu, &["queue", "--env", "staging", "--output", "json"]);
    let id = queue.json()["queues"][0]["tickets"][0]["id"].as_str().unwrap().to_owned();
    let status = project.release(&emu, &["status", "--env", "staging"]);
    assert!(status.stdout.contains(&format!("waiting #1: ")) && status.stdout.contains(&format!("promote {} to staging (ticket {id}", &a[..12])), "status shows the queue:\n{}", status.stdout);
    // Without --wait, and with someone waiting, a promote is refused at once naming the line.
    let jumper = project.release(&emu, &["promote", &a, "--env", "staging"]);
    assert_eq!(jumper.code, 5, "{jumper:?}");
    let zero = project.release(&emu, &["promote", &a, "--env", "staging", "--wait", "0"]);
    assert_eq!(zero.code, 5, "--wait 0 is the same as no --wait: {zero:?}");
    let cancel = project.release(&emu, &["queue", "cancel", &id]);
    cancel.assert_ok();
    assert!(cancel.stdout.starts_with(&format!("cancelled ticket {id} of env staging")), "{}", cancel.stdout);
    let left = waiter.finish(LONG);
    assert_eq!(left.code, 5, "{left:?}");
    assert!(left.error_line().contains("was cancelled"), "{}", left.stderr);
    holder.finish(LONG).assert_ok();
    let ledger = aws.ledger("release-ledger").await;
    assert!(ledger.iter().any(|r| r["outcome"] == "cancelled" && r["release_id"] == id), "{ledger:#?}");
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.tags["release:commit"].clone()).collect();
    assert_eq!(running, vec![b.clone(); 2], "the cancelled promote of a never ran");
    let unknown = project.release(&emu, &["queue", "cancel", "r-nope"]);
    assert_eq!(unknown.code, 3, "{unknown:?}");
    let bad = project.release(&emu, &["promote", &a, "--env", "staging", "--wait", "soon"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.error_line().starts_with("error: --wait "), "{}", bad.stderr);
}

/// Two waiters; the first is killed with -9 while it waits. The second does not wait out the dead one's 2-minute
/// lease: it runs once it saw three renewals missed, well inside its own `--wait 100s` (which the lease would
/// outlast), and `release queue` shows the dead ticket as stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_killed_with_9_does_not_hold_the_line_for_its_lease() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    let c = project.bake_new(&emu, "c");
    set(&project, "drain = \"2s\"", "drain = \"10s\"");
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let holder = project.background(&emu.url(), &[], &["promote", &b, "--env", "staging"]);
    holder.wait_for("launching", LONG);
    let mut dead = project.background(&emu.url(), &[("RELEASE_ACTOR", "ci-dead")], &["promote", &c, "--env", "staging", "--wait"]);
    dead.wait_for("queued:", LONG);
    dead.child.kill().expect("kill -9");
    dead.child.wait().expect("reaped");
    let alive = project.background(&emu.url(), &[("RELEASE_ACTOR", "ci-alive")], &["promote", &a, "--env", "staging", "--wait", "100s", "--output", "json"]);
    alive.wait_for("queued:", LONG);
    holder.finish(LONG).assert_ok();
    let run = alive.finish(LONG);
    run.assert_ok();
    assert_eq!(run.json()["commit"], a.as_str(), "{run:?}");

    let queue = project.release(&emu, &["queue", "--env", "staging", "--output", "json"]).assert_ok().json();
    let tickets = queue["queues"][0]["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 1, "only the dead waiter's ticket is left: {queue:#}");
    assert_eq!((tickets[0]["holder"].as_str(), tickets[0]["stale"].as_bool(), tickets[0]["position"].as_u64()), (Some("ci-dead"), Some(true), None), "{queue:#}");
    let text = project.release(&emu, &["queue", "--env", "staging"]).assert_ok().stdout.clone();
    assert!(text.lines().any(|l| l.contains("stale (silent") && l.contains("ci-dead")), "{text}");
    let ledger = aws.ledger("release-ledger").await;
    assert_eq!(promoted(&ledger), vec![a.clone(), b.clone(), a.clone()], "the live waiter ran after the holder");
    assert!(ledger.iter().all(|r| r.get("commit") != Some(&c)), "the killed waiter never ran: {ledger:#?}");
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.tags["release:commit"].clone()).collect();
    assert_eq!(running, vec![a.clone(); 2]);
}

/// Two real processes, the second on a machine whose clock is 150 s ahead (`RELEASE_TEST_CLOCK_OFFSET`): by its
/// clock the holder's lease ran out long ago, but the lease version changes at the holder's next renewal while it
/// watches, so it is refused (exit 5) and the holder finishes undisturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_whose_clock_is_ahead_does_not_take_a_live_lock() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    set(&project, "drain = \"2s\"", "drain = \"45s\"");
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let holder = project.background(&emu.url(), &[], &["promote", &b, "--env", "staging"]);
    holder.wait_for("launching", LONG);
    let fast = project.release_env(&emu, &[("RELEASE_TEST_CLOCK_OFFSET", "150"), ("RELEASE_ACTOR", "fast")], &["promote", &a, "--env", "staging"]);
    assert_eq!(fast.code, 5, "the live lock was not taken: {fast:?}");
    assert!(fast.stderr.contains("looks abandoned") && fast.error_line().contains("is locked by"), "{}", fast.stderr);
    holder.finish(LONG).assert_ok();
    let ledger = aws.ledger("release-ledger").await;
    assert!(ledger.iter().all(|r| r["outcome"] != "lost-lock"), "the holder kept its lock: {ledger:#?}");
    assert_eq!(promoted(&ledger), vec![a.clone(), b.clone()], "only the holder's promote ran");
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.tags["release:commit"].clone()).collect();
    assert_eq!(running, vec![b.clone(); 2]);
}
