//! Promotion gates and the reconciler, driving the binary against the emulator: each gate refuses (exit 4, its
//! reason, nothing changed in AWS) and passes once open; break-glass is recorded in the ledger and history; rollback
//! is never held; `reconcile` promotes the newest eligible bake, once with two at a time, never undoing a rollback.

use std::time::{Duration, Instant};

use release_e2e::{AwsView, Emulator, Project};

fn with_gates(project: &Project, env: &str, gates: &str) {
    let text = project.read("pipelines/hello.toml");
    let header = format!("[env.{env}.clusters.");
    let at = text.find(&header).expect("the environment's first cluster");
    project.write("pipelines/hello.toml", &format!("{}{gates}\n{}", &text[..at], &text[at..]));
}

async fn commits_running(aws: &AwsView, cluster: &str) -> Vec<String> {
    let mut c: Vec<String> = aws.running("hello", cluster).await.into_iter().filter_map(|i| i.tags.get("release:commit").cloned()).collect();
    c.dedup();
    c
}

async fn weights(aws: &AwsView) -> Vec<(String, i64)> {
    aws.weighted_records("example.com.", "hello.example.com.").await.into_iter().map(|(c, w, _)| (c, w)).collect()
}

/// Polls `plan --env ENV` until `gate` is open (the soak is a short real duration here).
fn wait_open(project: &Project, emu: &Emulator, env: &str, gate: &str) {
    let start = Instant::now();
    loop {
        let plan = project.release(emu, &["plan", "--env", env, "--output", "json"]);
        plan.assert_ok();
        let doc = plan.json();
        let open = doc["envs"][0]["gates"].as_array().unwrap().iter().filter(|g| g["gate"] == gate).all(|g| g["open"] == true);
        if open {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{gate} never opened: {}", plan.stdout);
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test]
async fn each_gate_refuses_with_exit_4_changing_nothing_passes_once_open_and_break_glass_is_recorded() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    with_gates(&project, "prod", "requires = [\"staging\"]\nsoak = \"3s\"\napprovals = 1");
    project.release(&emu, &["validate"]).assert_ok();

    // requires, soak and approvals all closed: exit 4 naming each, nothing changed.
    let before = emu.state();
    let refused = project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    let line = refused.error_line();
    for part in ["requires: not promoted to staging yet", "soak: not serving in staging yet (3s needed)", "approvals: 0 of 1", "nothing was changed"] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
    before.assert_same(&emu.state(), "a promote held by its gates");

    // Staging first, one approval, the soak served: through.
    project.release(&emu, &["promote", &a, "--env", "staging", "--yes"]).assert_ok();
    let approve = project.release_env(&emu, &[("RELEASE_ACTOR", "alice")], &["approve", &a, "--env", "prod", "--note", "checked", "--output", "json"]);
    approve.assert_ok();
    assert_eq!(approve.json()["approvals"], serde_json::json!([["alice"], 1]));
    wait_open(&project, &emu, "prod", "soak");
    let plan = project.release(&emu, &["plan", "--env", "prod"]);
    plan.assert_ok();
    assert!(plan.stdout.contains("approvals: 1 of 1 (alice)"), "{}", plan.stdout);
    project.release(&emu, &["promote", &a, "--env", "prod", "--yes"]).assert_ok();
    assert_eq!(commits_running(&aws, "prod2").await, vec![a.clone()]);
    project.release(&emu, &["switch", "prod2", "--yes"]).assert_ok();

    // A freeze holds promote and switch; break-glass goes through and is recorded.
    project.release(&emu, &["promote", &b, "--env", "staging", "--yes"]).assert_ok();
    project.release_env(&emu, &[("RELEASE_ACTOR", "alice")], &["approve", &b, "--env", "prod"]).assert_ok();
    wait_open(&project, &emu, "prod", "soak");
    project.release_env(&emu, &[("RELEASE_ACTOR", "bob")], &["freeze", "--env", "prod", "--reason", "black friday"]).assert_ok();
    let before = emu.state();
    let frozen = project.release(&emu, &["promote", &b, "--env", "prod", "--yes"]);
    assert_eq!(frozen.code, 4, "{}", frozen.stderr);
    assert!(frozen.error_line().contains("is held by its gates: frozen by bob: black friday;"), "{}", frozen.error_line());
    before.assert_same(&emu.state(), "a promote held by a freeze");
    project.release(&emu, &["promote", &b, "--env", "prod", "--yes", "--override-gates", "--reason", "checkout outage"]).assert_ok();
    assert_eq!(commits_running(&aws, "prod1").await, vec![b.clone()]);
    let switch = project.release(&emu, &["switch", "prod1", "--yes"]);
    assert_eq!(switch.code, 4, "{}", switch.stderr);
    assert!(switch.error_line().contains("frozen by bob: black friday"), "{}", switch.error_line());
    assert_eq!(weights(&aws).await, vec![("prod1".to_owned(), 0), ("prod2".to_owned(), 100)], "the refused switch changed nothing");
    project.release(&emu, &["switch", "prod1", "--yes", "--override-gates", "--reason", "checkout outage"]).assert_ok();
    assert_eq!(weights(&aws).await, vec![("prod1".to_owned(), 100), ("prod2".to_owned(), 0)]);
    let history = project.release(&emu, &["history", "--env", "prod", "--output", "json"]).json();
    let overridden: Vec<&serde_json::Value> = history["records"].as_array().unwrap().iter().filter(|r| !r["gates_overridden"].is_null()).collect();
    assert_eq!(overridden.len(), 2, "the promote and the switch: {history}");
    for r in &overridden {
        assert_eq!(r["gates_overridden"], serde_json::json!({"reason": "checkout outage", "closed": ["frozen by bob: black friday"]}));
    }
    let text = project.release(&emu, &["history", "--env", "prod"]);
    assert!(text.stdout.contains("(gates overridden)") && text.stdout.contains("override: checkout outage"), "{}", text.stdout);

    // Rollback under the freeze: the way back is open.
    project.release(&emu, &["rollback", "--env", "prod", "--yes"]).assert_ok();
    assert_eq!(weights(&aws).await, vec![("prod1".to_owned(), 0), ("prod2".to_owned(), 100)]);

    // A veto holds a commit everywhere.
    project.release(&emu, &["veto", &b, "--reason", "corrupts invoices"]).assert_ok();
    project.release_env(&emu, &[("RELEASE_ACTOR", "bob")], &["unfreeze", "--env", "prod"]).assert_ok();
    let before = emu.state();
    let vetoed = project.release(&emu, &["promote", &b, "--env", "staging", "--yes"]);
    assert_eq!(vetoed.code, 4, "{}", vetoed.stderr);
    assert!(vetoed.error_line().contains("vetoed: corrupts invoices"), "{}", vetoed.error_line());
    before.assert_same(&emu.state(), "a promote of a vetoed commit");
}

#[tokio::test]
async fn reconcile_promotes_the_newest_eligible_bake_once_leaves_others_alone_and_never_undoes_a_rollback() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    with_gates(&project, "staging", "auto = true");
    project.release(&emu, &["promote", &a, "--env", "staging", "--yes"]).assert_ok();

    // Two reconcilers at once: one promote of the newest bake (b); the other skips or finds it done.
    let one = project.background(&emu.url(), &[], &["reconcile", "--once", "--output", "json"]);
    let two = project.background(&emu.url(), &[], &["reconcile", "--once", "--output", "json"]);
    let (one, two) = (one.finish(Duration::from_secs(300)), two.finish(Duration::from_secs(300)));
    one.assert_ok();
    two.assert_ok();
    let decisions: Vec<String> = [&one, &two].iter().map(|r| r.json()["decisions"][0]["decision"].as_str().unwrap().to_owned()).collect();
    assert_eq!(decisions.iter().filter(|d| *d == "promoted").count(), 1, "{decisions:?}\n{}\n{}", one.stderr, two.stderr);
    assert!(decisions.iter().any(|d| d == "skipped" || d == "up-to-date"), "{decisions:?}");
    assert!(one.stderr.contains("reconcile: staging ") || two.stderr.contains("reconcile: staging "));
    assert_eq!(commits_running(&aws, "staging").await, vec![b.clone()]);
    let history = project.release(&emu, &["history", "--env", "staging", "--output", "json"]).json();
    let promotes = history["records"].as_array().unwrap().iter().filter(|r| r["action"] == "promote" && r["commit"] == b.as_str()).count();
    assert_eq!(promotes, 1, "{history}");
    assert!(aws.running("hello", "prod1").await.is_empty() && aws.running("hello", "prod2").await.is_empty(), "prod has no auto: left alone");

    // A manual rollback is not undone.
    project.release(&emu, &["rollback", "--env", "staging", "--yes"]).assert_ok();
    let again = project.release(&emu, &["reconcile", "--once", "--output", "json"]);
    again.assert_ok();
    assert_eq!(again.json()["decisions"][0]["decision"], "up-to-date", "{}", again.stdout);
    assert_eq!(commits_running(&aws, "staging").await, vec![a.clone()]);

    // A newer bake is eligible again, unless vetoed.
    let c = project.bake_new(&emu, "v3");
    project.release(&emu, &["veto", &c, "--reason", "breaks login"]).assert_ok();
    let held = project.release(&emu, &["reconcile", "--once", "--output", "json"]);
    held.assert_ok();
    assert_eq!(held.json()["decisions"][0]["decision"], "up-to-date", "{}", held.stdout);
    assert_eq!(commits_running(&aws, "staging").await, vec![a.clone()]);
    project.release(&emu, &["unveto", &c]).assert_ok();
    let go = project.release(&emu, &["reconcile", "--once", "--output", "json"]);
    go.assert_ok();
    assert_eq!(go.json()["decisions"][0]["decision"], "promoted", "{}", go.stdout);
    assert_eq!(commits_running(&aws, "staging").await, vec![c.clone()]);

    // Long-lived: a line per decision each cycle; SIGTERM between cycles stops it at once, leaving no lock or open record.
    let looping = project.background(&emu.url(), &[], &["reconcile", "--interval", "1s"]);
    looping.wait_for("reconcile: staging up-to-date", Duration::from_secs(60));
    looping.signal("TERM");
    let stopped = looping.finish(Duration::from_secs(30));
    assert!(stopped.stderr.contains(&format!("reconcile: staging up-to-date {}", &c[..12])), "{}", stopped.stderr);
    let status = project.release(&emu, &["status", "--env", "staging", "--output", "json"]).json();
    assert!(status["environments"][0]["lock"].is_null(), "{status}");
    let history = project.release(&emu, &["history", "--env", "staging", "--output", "json"]).json();
    assert!(history["records"].as_array().unwrap().iter().all(|r| r["outcome"] != "started"), "{history}");
}

/// A deploy window on the wall clock, for real: one opening at the next minute (UTC); the promote is refused with
/// when it opens, and goes through once it has.
#[tokio::test]
async fn a_window_refuses_until_it_opens_on_the_real_clock() {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut minute = (secs % 86_400) / 60 + 1;
    if secs % 60 > 50 {
        minute += 1; // not a boundary a few seconds away: the refusal must come first
    }
    if minute + 3 >= 24 * 60 {
        eprintln!("skipped: a window opening this close to midnight UTC would wrap the day");
        return;
    }
    let hm = |m: u64| format!("{:02}:{:02}", m / 60, m % 60);
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    with_gates(&project, "staging", &format!("windows = [\"daily {}-{} UTC\"]", hm(minute), hm(minute + 3)));
    let before = emu.state();
    let refused = project.release(&emu, &["promote", &a, "--env", "staging", "--yes"]);
    if std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 60 % 1440 < minute {
        assert_eq!(refused.code, 4, "{}", refused.stderr);
        let line = refused.error_line();
        assert!(line.contains("window: closed, opens ") && line.contains(&format!(" {} UTC;", hm(minute))), "{line}");
        before.assert_same(&emu.state(), "a promote outside its window");
    }
    wait_open(&project, &emu, "staging", "window");
    project.release(&emu, &["promote", &a, "--env", "staging", "--yes"]).assert_ok();
    assert_eq!(commits_running(&aws, "staging").await, vec![a.clone()]);
}
