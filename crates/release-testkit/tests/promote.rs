//! The promote engine on the in-memory cloud, where time is simulated and faults and crashes are scripted:
//! the invariants of DESIGN §5 that the emulator cannot exercise.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_core::clock::Clock;
use release_core::ids::CommitSha;
use release_core::ledger::{Actor, Outcome};
use release_core::pipeline::{parse, LbTarget, Pipeline};
use release_core::ports::{tags, HealthState, ImageState};
use release_core::promote::{promote, Hooks, PromoteOptions, PromoteReport, LOCK_LEASE};
use release_core::{provision, ErrorKind, Result};
use release_testkit::memory::MemoryCloud;

fn pipeline(count: u32) -> Pipeline {
    let src = format!(
        r#"app = "shop"
[build]
command = "true"
artifact = "a.tgz"
[bake]
template = "t.pkr.hcl"
base_ami = "ami-0a1b2c3d4e5f60718"
[deploy]
health_timeout = "10m"
drain = "30s"
[env.staging]
vars = {{ APP_ENV = "staging", SECRET = "ssm:/shop/secret" }}
[env.staging.clusters.staging]
load_balancer = "shop-staging"
count = {count}
[env.prod]
dns = {{ zone = "shop.test.", record = "www.shop.test." }}
[env.prod.clusters.blue]
target_group = "shop-blue"
count = {count}
[env.prod.clusters.green]
target_group = "shop-green"
count = {count}
"#
    );
    parse(Path::new("pipelines/shop.toml"), Path::new("."), &src, false).expect("valid pipeline")
}

async fn world(count: u32) -> (MemoryCloud, Pipeline) {
    let m = MemoryCloud::new();
    let p = pipeline(count);
    let cloud = m.cloud();
    for env in &p.envs {
        let plan = provision::plan(&cloud, &p, env).await.unwrap();
        provision::apply(&cloud, &p, env, &plan).await.unwrap();
    }
    (m, p)
}

/// Registers a complete bake of `n` (a commit made of that digit).
async fn bake(m: &MemoryCloud, n: char) -> CommitSha {
    let sha = CommitSha::parse(&n.to_string().repeat(40)).unwrap();
    let ami = m.register_image(&format!("shop-{}", sha.short()), ImageState::Available);
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    m.cloud()
        .images
        .tag(&ami, &[], &[t(tags::APP, "shop"), t(tags::COMMIT, sha.as_str()), t(tags::BAKE_KEY, &format!("key{n}"))])
        .await
        .unwrap();
    sha
}

fn opts() -> PromoteOptions {
    PromoteOptions { cluster: None, plan: false, batch: None, poll: Duration::from_secs(5), region: "us-east-1".into() }
}

static ENTROPY: AtomicU32 = AtomicU32::new(1);

fn actor(name: &str) -> Actor {
    Actor { name: name.into(), caller: "arn:aws:iam::123456789012:user/test".into(), host: "test-host".into() }
}

async fn run(m: &MemoryCloud, p: &Pipeline, env: &str, sha: &CommitSha, o: &PromoteOptions, check: &(dyn Fn(&str) -> Result<()> + Send + Sync)) -> Result<PromoteReport> {
    let progress = |_: &str| {};
    let hooks = Hooks {
        actor: actor("alice"),
        progress: &progress,
        cancelled: Arc::new(AtomicBool::new(false)),
        checkpoint: check,
        entropy: ENTROPY.fetch_add(1, Ordering::SeqCst),
    };
    promote(&m.cloud(), p, p.env(env).unwrap(), sha, o, &hooks).await
}

fn no_check(_: &str) -> Result<()> {
    Ok(())
}

/// Live instances of a cluster: (id, commit).
fn cluster_instances(m: &MemoryCloud, cluster: &str) -> Vec<(String, String)> {
    m.live_instances()
        .into_iter()
        .filter(|i| i.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster))
        .map(|i| (i.id.to_string(), i.tags[tags::COMMIT].clone()))
        .collect()
}

fn healthy_registered(m: &MemoryCloud, target: &LbTarget) -> usize {
    let s = m.state();
    let running: BTreeSet<String> = s.instances.iter().filter(|i| i.state == "running").map(|i| i.id.to_string()).collect();
    let now = m.clock.now();
    s.registered
        .get(target)
        .map(|r| r.iter().filter(|(id, since)| running.contains(id.as_str()) && s.healthy_after.is_some_and(|d| now.since(**since) >= d)).count())
        .unwrap_or(0)
}

#[tokio::test]
async fn in_place_replacement_never_drops_below_full_healthy_capacity() {
    let (m, p) = world(3).await;
    let a = bake(&m, 'a').await;
    let b = bake(&m, 'b').await;
    run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
    m.state().healthy_after = Some(Duration::from_secs(60));
    m.clock.advance(Duration::from_secs(120));
    let target = LbTarget::ClassicElb("shop-staging".into());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (mm, s2, t2) = (m.clone(), seen.clone(), target.clone());
    let check = move |step: &str| {
        let healthy = healthy_registered(&mm, &t2);
        // Everything registered is running: traffic never reaches an instance that is not up.
        let s = mm.state();
        let running: BTreeSet<String> = s.instances.iter().filter(|i| i.state == "running").map(|i| i.id.to_string()).collect();
        let registered_not_running = s.registered.get(&t2).map(|r| r.keys().filter(|id| !running.contains(id.as_str())).count()).unwrap_or(0);
        s2.lock().unwrap().push((step.to_owned(), healthy, registered_not_running));
        Ok(())
    };
    let report = run(&m, &p, "staging", &b, &opts(), &check).await.unwrap();
    assert_eq!(report.outcome, "succeeded");
    assert_eq!(report.new_instances.len(), 3);
    assert_eq!(report.retired_instances.len(), 3);
    for (step, healthy, bad) in seen.lock().unwrap().iter() {
        assert!(*healthy >= 3, "capacity fell to {healthy} healthy at {step}");
        assert_eq!(*bad, 0, "a registered instance was not running at {step}");
    }
    let live = cluster_instances(&m, "staging");
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|(_, c)| c == b.as_str()), "{live:?}");
    let registered: BTreeSet<String> = m.registered(&target).iter().map(ToString::to_string).collect();
    assert_eq!(registered, live.iter().map(|(id, _)| id.clone()).collect::<BTreeSet<_>>());
    // The ledger: two promotes, newest first, both succeeded; from -> to.
    let records = m.cloud().ledger.records("release-ledger", &p.app, &p.envs[0].name, 10).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].outcome, Outcome::Succeeded);
    assert_eq!((records[0].from.as_deref(), records[0].to.as_deref()), (Some(a.as_str()), Some(b.as_str())));
    assert_eq!(records[0].new_instances.len(), 3);
    assert_eq!(records[0].retired_instances.len(), 3);
    assert!(m.state().locks.values().all(|l| l.is_empty()), "lock released");
}

#[tokio::test]
async fn health_that_never_arrives_times_out_and_rolls_back_with_old_capacity_untouched() {
    let (m, p) = world(3).await;
    let a = bake(&m, 'a').await;
    let b = bake(&m, 'b').await;
    run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
    let old: BTreeSet<String> = cluster_instances(&m, "staging").into_iter().map(|(id, _)| id).collect();
    m.state().healthy_after = None;
    let start = m.clock.now();
    let err = run(&m, &p, "staging", &b, &opts(), &no_check).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed);
    assert!(err.message().contains("only 0 of 3 new instances healthy in load balancer shop-staging after 10m"), "{err}");
    assert!(err.message().ends_with("the new instances were removed and staging serves what it served before"), "{err}");
    assert!(m.clock.now().since(start) >= Duration::from_secs(600), "waited the whole health_timeout");
    let live: BTreeSet<String> = cluster_instances(&m, "staging").into_iter().map(|(id, _)| id).collect();
    assert_eq!(live, old, "exactly the old fleet is left");
    let registered: BTreeSet<String> = m.registered(&LbTarget::ClassicElb("shop-staging".into())).iter().map(ToString::to_string).collect();
    assert_eq!(registered, old, "the old fleet is still registered");
    let records = m.cloud().ledger.records("release-ledger", &p.app, &p.envs[0].name, 1).await.unwrap();
    assert_eq!(records[0].outcome, Outcome::Failed);
    assert!(records[0].detail.as_deref().unwrap_or("").contains("healthy"), "{:?}", records[0].detail);
    assert!(m.state().locks.values().all(|l| l.is_empty()), "lock released");
}

#[tokio::test]
async fn a_call_failing_for_good_rolls_back_and_releases_the_lock() {
    let (m, p) = world(2).await;
    let a = bake(&m, 'a').await;
    let b = bake(&m, 'b').await;
    run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
    let old: BTreeSet<String> = cluster_instances(&m, "staging").into_iter().map(|(id, _)| id).collect();
    m.fail("elb:Register", -1);
    let err = run(&m, &p, "staging", &b, &opts(), &no_check).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeployFailed, "{err}");
    let live: BTreeSet<String> = cluster_instances(&m, "staging").into_iter().map(|(id, _)| id).collect();
    assert_eq!(live, old);
    let records = m.cloud().ledger.records("release-ledger", &p.app, &p.envs[0].name, 1).await.unwrap();
    assert_eq!(records[0].outcome, Outcome::Failed);
    assert!(m.state().locks.values().all(|l| l.is_empty()), "lock released");
}

#[tokio::test]
async fn interruption_rolls_back() {
    let (m, p) = world(2).await;
    let a = bake(&m, 'a').await;
    let b = bake(&m, 'b').await;
    run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
    let old: BTreeSet<String> = cluster_instances(&m, "staging").into_iter().map(|(id, _)| id).collect();
    m.state().healthy_after = Some(Duration::from_secs(60));
    m.clock.advance(Duration::from_secs(1));
    let cancelled = Arc::new(AtomicBool::new(false));
    let c2 = cancelled.clone();
    let check = move |step: &str| {
        if step == "registered" {
            c2.store(true, Ordering::SeqCst);
        }
        Ok(())
    };
    let progress = |_: &str| {};
    let hooks = Hooks { actor: actor("alice"), progress: &progress, cancelled, checkpoint: &check, entropy: 7 };
    let err = promote(&m.cloud(), &p, p.env("staging").unwrap(), &b, &opts(), &hooks).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    let live: BTreeSet<String> = cluster_instances(&m, "staging").into_iter().map(|(id, _)| id).collect();
    assert_eq!(live, old);
    let records = m.cloud().ledger.records("release-ledger", &p.app, &p.envs[0].name, 1).await.unwrap();
    assert_eq!(records[0].outcome, Outcome::Interrupted);
}

const STEPS: &[&str] = &["locked", "recorded", "launched", "running", "registered", "healthy", "deregistered-old", "drained", "terminated-old", "finished"];

#[tokio::test]
async fn a_crash_at_every_step_boundary_then_a_rerun_converges_with_nothing_leaked() {
    let mut table = vec![format!("{:<18} {:<28} {:<10} {:>6} {:>7} {:>6}", "crash at", "first run", "re-run", "live", "leaked", "dupes")];
    for step in STEPS.iter().copied() {
        let (m, p) = world(3).await;
        let a = bake(&m, 'a').await;
        let b = bake(&m, 'b').await;
        run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
        let crash = move |s: &str| if s == step { Err(release_core::Error::new(ErrorKind::Crash, format!("crash at {s}"))) } else { Ok(()) };
        let first = run(&m, &p, "staging", &b, &opts(), &crash).await;
        let first_text = match &first {
            Ok(r) => r.outcome.clone(),
            Err(e) => e.message().to_owned(),
        };
        // A killed process keeps its lock until the lease runs out.
        m.clock.advance(LOCK_LEASE + Duration::from_secs(1));
        let rerun = run(&m, &p, "staging", &b, &opts(), &no_check).await.unwrap_or_else(|e| panic!("re-run after a crash at {step}: {e}"));
        let live = cluster_instances(&m, "staging");
        let registered: BTreeSet<String> = m.registered(&LbTarget::ClassicElb("shop-staging".into())).iter().map(ToString::to_string).collect();
        let leaked = live.iter().filter(|(id, _)| !registered.contains(id)).count() + live.iter().filter(|(_, c)| c != b.as_str()).count();
        let releases: BTreeSet<String> =
            m.live_instances().iter().filter_map(|i| i.tags.get(tags::RELEASE_ID).cloned()).collect();
        table.push(format!("{step:<18} {first_text:<28} {:<10} {:>6} {:>7} {:>6}", rerun.outcome, live.len(), leaked, releases.len() - 1));
        assert_eq!(live.len(), 3, "crash at {step}: {live:?}");
        assert_eq!(leaked, 0, "crash at {step}: leaked {live:?} vs registered {registered:?}");
        assert_eq!(releases.len(), 1, "crash at {step}: one fleet, not several: {releases:?}");
        let records = m.cloud().ledger.records("release-ledger", &p.app, &p.envs[0].name, 10).await.unwrap();
        let of_b: Vec<_> = records.iter().filter(|r| r.commit.as_deref() == Some(b.as_str())).collect();
        assert!(of_b.iter().any(|r| r.outcome == Outcome::Succeeded), "crash at {step}: the ledger tells the story: {of_b:#?}");
        assert!(of_b.iter().all(|r| r.outcome != Outcome::Started), "crash at {step}: nothing left unfinished");
    }
    println!("promote crash points tried in memory: {}, leaks found: 0\n{}", STEPS.len(), table.join("\n"));
}

#[tokio::test]
async fn two_concurrent_promotes_exactly_one_proceeds() {
    let (m, p) = world(2).await;
    let a = bake(&m, 'a').await;
    let b = bake(&m, 'b').await;
    m.state().healthy_after = Some(Duration::from_secs(30));
    let o = opts();
    let (first, second) = tokio::join!(run(&m, &p, "staging", &a, &o, &no_check), run(&m, &p, "staging", &b, &o, &no_check));
    let results = [first, second];
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let held: Vec<&release_core::Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(ok, 1, "{results:?}");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind(), ErrorKind::LockHeld);
    assert!(held[0].message().starts_with("environment staging is locked by alice since "), "{}", held[0]);
    assert_eq!(cluster_instances(&m, "staging").len(), 2, "one fleet");
}

#[tokio::test]
async fn blue_green_goes_to_the_idle_cluster_and_refuses_the_live_one() {
    let (m, p) = world(2).await;
    let a = bake(&m, 'a').await;
    let report = run(&m, &p, "prod", &a, &opts(), &no_check).await.unwrap();
    assert_eq!(report.cluster, "green", "blue is live after provision");
    assert!(cluster_instances(&m, "blue").is_empty(), "the live cluster is untouched");
    let o = PromoteOptions { cluster: Some("blue".into()), ..opts() };
    let err = run(&m, &p, "prod", &a, &o, &no_check).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.message().starts_with("cluster blue is live"), "{err}");
}

#[tokio::test]
async fn batches_replace_n_at_a_time_without_losing_capacity() {
    let (m, p) = world(4).await;
    let a = bake(&m, 'a').await;
    let b = bake(&m, 'b').await;
    run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
    let target = LbTarget::ClassicElb("shop-staging".into());
    let peak = Arc::new(Mutex::new((usize::MAX, 0usize)));
    let (mm, pk, t2) = (m.clone(), peak.clone(), target.clone());
    let check = move |_: &str| {
        let healthy = healthy_registered(&mm, &t2);
        let live = mm.live_instances().len();
        let mut p = pk.lock().unwrap();
        *p = (p.0.min(healthy), p.1.max(live));
        Ok(())
    };
    let o = PromoteOptions { batch: Some(2), ..opts() };
    let report = run(&m, &p, "staging", &b, &o, &check).await.unwrap();
    assert_eq!((report.new_instances.len(), report.retired_instances.len()), (4, 4));
    let (min_healthy, max_live) = *peak.lock().unwrap();
    assert!(min_healthy >= 4, "capacity fell to {min_healthy}");
    assert_eq!(max_live, 6, "at most count + batch instances at once");
    let health = m.cloud().balancer.health(&target).await.unwrap();
    assert!(health.iter().all(|h| h.state == HealthState::Healthy) && health.len() == 4);
}

#[tokio::test]
async fn calls_do_not_grow_with_the_fleet() {
    let mut counts = Vec::new();
    for n in [10u32, 200] {
        let (m, p) = world(n).await;
        let a = bake(&m, 'a').await;
        let b = bake(&m, 'b').await;
        run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
        m.state().calls.clear();
        run(&m, &p, "staging", &b, &opts(), &no_check).await.unwrap();
        let calls = m.state().calls.clone();
        counts.push((n, calls.values().sum::<u64>(), calls));
    }
    println!("port calls of a promote replacing N instances: {counts:#?}");
    assert_eq!(counts[0].1, counts[1].1, "calls grew with N: {counts:#?}");
}

#[tokio::test]
async fn no_ami_for_the_commit_is_not_found_and_changes_nothing() {
    let (m, p) = world(2).await;
    let sha = CommitSha::parse(&"c".repeat(40)).unwrap();
    let err = run(&m, &p, "staging", &sha, &opts(), &no_check).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.message(), format!("no AMI for cccccccccccc; run `release bake {sha}`"));
    assert!(m.live_instances().is_empty());
}

#[tokio::test]
async fn user_data_carries_the_variables_and_only_references_to_secrets() {
    let (m, p) = world(1).await;
    let a = bake(&m, 'a').await;
    run(&m, &p, "staging", &a, &opts(), &no_check).await.unwrap();
    let s = m.state();
    let ud = s.user_data.values().next().unwrap();
    assert!(ud.contains("APP_ENV=\"staging\""), "{ud}");
    assert!(ud.contains(&format!("RELEASE_COMMIT=\"{a}\"")), "{ud}");
    assert!(ud.contains("--name '/shop/secret'"), "the ssm reference is resolved at boot: {ud}");
    assert!(!ud.contains("ssm:/shop/secret"), "{ud}");
}
