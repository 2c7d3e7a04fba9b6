//! What a real AWS account does to a launch, on the in-memory cloud with simulated time: ids invisible right after
//! RunInstances, zones without the instance type or without capacity, a call failing half way, health that takes
//! its time, targets that drain. Each promote must end with `count` healthy instances and nothing leaked, or fail
//! having removed everything it launched.

use std::collections::BTreeSet;
use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::ports::tags;
use release_core::ErrorKind;
use release_testkit::fixtures::{shop, World};

/// Every instance of the app that is not terminated is one of the cluster's registered, healthy instances.
async fn nothing_leaked(w: &World, cluster: &str, target: &release_core::model::pipeline::LbTarget, count: usize) {
    let live = w.cloud.live_instances();
    let health = w.cloud.cloud().balancer.health(target).await.unwrap();
    let healthy: BTreeSet<String> = health.iter().filter(|h| h.state == release_core::ports::HealthState::Healthy).map(|h| h.id.to_string()).collect();
    let mine: Vec<_> = live.iter().filter(|i| i.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster)).collect();
    assert_eq!(mine.len(), count, "{cluster}: {mine:?}");
    assert!(mine.iter().all(|i| healthy.contains(i.id.as_str())), "{cluster}: every instance healthy: {health:?}");
}

fn classic(name: &str) -> release_core::model::pipeline::LbTarget {
    release_core::model::pipeline::LbTarget::ClassicElb(name.into())
}

fn zones(w: &World) -> Vec<String> {
    w.cloud.state().subnets.iter().map(|s| s.availability_zone.clone()).collect()
}

fn launched_zones(w: &World) -> BTreeSet<String> {
    let s = w.cloud.state();
    s.launches.iter().filter_map(|l| s.subnets.iter().find(|x| x.id == l.subnet).map(|x| x.availability_zone.clone())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_promote_succeeds_through_ids_that_ec2_does_not_know_yet() {
    let w = World::new(3).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    // Fresh ids are unknown to Describe, Register and Terminate for 20 s.
    w.cloud.state().not_visible_for = Duration::from_secs(20);
    let r = w.promote("staging", &b).await.expect("promote through eventual consistency");
    assert_eq!(r.new_instances.len(), 3);
    nothing_leaked(&w, "staging", &classic("shop-staging"), 3).await;
    assert_eq!(w.commits("staging"), vec![b.to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_right_after_a_launch_terminates_what_ec2_does_not_know_yet() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let old: BTreeSet<String> = w.instances("staging").iter().map(|i| i.id.to_string()).collect();
    w.cloud.state().not_visible_for = Duration::from_secs(20);
    // The second subnet's RunInstances fails: the first subnet's instance, seconds old and unknown to
    // TerminateInstances, must still be terminated.
    w.cloud.state().fail_after.insert("ec2:RunInstances", 1);
    let terminates = w.cloud.state().calls.get("ec2:TerminateInstances").copied().unwrap_or(0);
    let err = w.promote("staging", &b).await.unwrap_err();
    assert_eq!(err.rolled_back(), Some(true), "{err}");
    assert!(err.message().contains("the 1 new instance(s) were removed"), "{err}");
    let now: BTreeSet<String> = w.instances("staging").iter().map(|i| i.id.to_string()).collect();
    assert_eq!(now, old, "the new instance was terminated even though EC2 did not know it at first");
    let tries = w.cloud.state().calls["ec2:TerminateInstances"] - terminates;
    assert!(tries > 1, "TerminateInstances was retried while the id was not visible: {tries} call(s)");
}

#[tokio::test(start_paused = true)]
async fn a_zone_without_the_instance_type_is_left_out_and_the_plan_says_so() {
    let mut w = World::new(3).await;
    let a = w.bake('a').await;
    let zs = zones(&w);
    w.cloud.state().not_offered.insert((zs[1].clone(), "t3.micro".into()));
    let plan = w.release("alice").plan_promote("staging", &a, &Default::default()).await.unwrap();
    assert_eq!(plan.place.skipped.len(), 1, "{:?}", plan.place.skipped);
    assert!(plan.place.skipped[0].contains(&format!("({}): t3.micro is not offered there", zs[1])), "{:?}", plan.place.skipped);
    assert_eq!(plan.fleet().unwrap().launches.iter().map(|l| l.count).sum::<u32>(), 3);
    assert!(plan.fleet().unwrap().launches.iter().all(|l| l.availability_zone != zs[1]));
    w.promote("staging", &a).await.expect("promote avoiding the zone");
    nothing_leaked(&w, "staging", &classic("shop-staging"), 3).await;
    assert!(!launched_zones(&w).contains(&zs[1]));
    // A zone whose offerings answer says yes but whose RunInstances says `Unsupported`: its share goes elsewhere.
    w.pipeline = shop(3, "");
    let b = w.bake('b').await;
    let launches_before = w.cloud.state().launches.len();
    w.cloud.state().not_offered.clear();
    w.cloud.state().refused_at_launch.insert((zs[2].clone(), "t3.micro".into()));
    let plan = w.release("alice").plan_promote("staging", &b, &Default::default()).await.unwrap();
    assert!(plan.fleet().unwrap().launches.iter().any(|l| l.availability_zone == zs[2]), "the plan cannot know: {:?}", plan.fleet().unwrap().launches);
    w.promote("staging", &b).await.expect("the shortfall went to the other zones");
    nothing_leaked(&w, "staging", &classic("shop-staging"), 3).await;
    let s = w.cloud.state();
    let new: Vec<String> = s.launches[launches_before..].iter().filter_map(|l| s.subnets.iter().find(|x| x.id == l.subnet)).map(|x| x.availability_zone.clone()).collect();
    assert!(!new.contains(&zs[2]) && new.len() >= 2, "{new:?}");
}

#[tokio::test(start_paused = true)]
async fn a_zone_out_of_capacity_has_its_share_launched_in_the_others() {
    let w = World::new(4).await;
    let a = w.bake('a').await;
    let zs = zones(&w);
    w.cloud.state().capacity_out.insert(zs[0].clone());
    let r = w.promote("staging", &a).await.expect("promote through a capacity error");
    assert_eq!(r.new_instances.len(), 4);
    nothing_leaked(&w, "staging", &classic("shop-staging"), 4).await;
    let lines = w.lines.lock().unwrap().join("\n");
    assert!(lines.contains(&format!("({}) cannot take", zs[0])) && lines.contains("InsufficientInstanceCapacity; launching them in other zones"), "{lines}");
    // Every zone out: the promote fails and leaves nothing.
    let b = w.bake('b').await;
    for z in &zs {
        w.cloud.state().capacity_out.insert(z.clone());
    }
    let before: BTreeSet<String> = w.instances("staging").iter().map(|i| i.id.to_string()).collect();
    let err = w.promote("staging", &b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Aws, "{err}");
    assert!(err.message().contains("no zone could launch 4 more t3.micro"), "{err}");
    let after: BTreeSet<String> = w.instances("staging").iter().map(|i| i.id.to_string()).collect();
    assert_eq!(before, after);
}

#[tokio::test(start_paused = true)]
async fn a_launch_failing_in_the_third_subnet_leaves_no_instance() {
    let w = World::new(3).await;
    let a = w.bake('a').await;
    // Two RunInstances go through, the third fails (not a capacity error).
    w.cloud.state().fail_after.insert("ec2:RunInstances", 2);
    let err = w.promote("staging", &a).await.unwrap_err();
    assert_eq!((err.kind(), err.rolled_back()), (ErrorKind::Aws, Some(true)), "{err}");
    assert!(err.message().contains("the 2 new instance(s) were removed"), "it removed what the first two calls launched: {err}");
    assert!(w.cloud.live_instances().is_empty(), "no instance left: {:?}", w.cloud.live_instances());
}

#[tokio::test(start_paused = true)]
async fn health_that_arrives_after_30s_is_waited_for_and_target_groups_drain_for_their_delay() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.deploy_prod(&a).await; // green runs a
    w.cloud.clock.advance(Duration::from_secs(600));
    w.promote("prod", &a).await.unwrap(); // blue runs a too
    w.cloud.state().healthy_after = Some(Duration::from_secs(30));
    let t0 = w.cloud.clock.now();
    // blue is idle: replacing it deregisters its old targets, which drain for 30 s (the pipeline's drain).
    let r = w.promote("prod", &b).await.expect("promote");
    assert_eq!(r.cluster.as_str(), "blue");
    let took = w.cloud.clock.now().since(t0);
    assert!(took >= Duration::from_secs(60), "waited 30 s of health and 30 s of draining: {took:?}");
    let health = w.cloud.cloud().balancer.health(&release_core::model::pipeline::LbTarget::TargetGroup("shop-blue".into())).await.unwrap();
    assert!(health.iter().all(|h| h.state == release_core::ports::HealthState::Healthy), "the drained targets are gone: {health:?}");
    let seconds = &w.records("prod").await[0].seconds;
    assert!(seconds["wait-healthy"] >= 30.0, "{seconds:?}");
    assert!(seconds["retire"] >= 30.0, "{seconds:?}");
}

#[tokio::test(start_paused = true)]
async fn instances_are_launched_with_the_pipelines_settings_and_the_clusters_group() {
    let w = World::new(1).await;
    let a = w.bake('a').await;
    w.promote("staging", &a).await.unwrap();
    let s = w.cloud.state();
    let spec = s.launches.last().unwrap();
    assert_eq!(spec.instance_profile.as_deref(), Some("shop-app"));
    assert_eq!(spec.metadata_tokens, release_core::model::pipeline::MetadataTokens::Required);
    let group = s.groups.values().find(|(_, g)| g.name == "shop-staging-instances").map(|(_, g)| g.id.clone()).expect("provision made it");
    assert_eq!(spec.security_groups, vec![group.clone()], "the cluster's instance group");
    let lb_group = s.groups.values().find(|(_, g)| g.name == "shop-staging-lb").map(|(_, g)| g.clone()).unwrap();
    let inst_group = &s.groups[&group].1;
    assert_eq!(lb_group.ingress, vec![release_core::ports::IngressRule { port: 80, source: release_core::ports::RuleSource::Cidr("0.0.0.0/0".into()) }]);
    assert_eq!(inst_group.ingress, vec![release_core::ports::IngressRule { port: 8080, source: release_core::ports::RuleSource::Group(lb_group.id.clone()) }]);
}

/// Removes `image` as a step of an operation under staging's lock (`remove_image` waits through `Op::pause`).
async fn remove_image(w: &World, image: &release_core::ports::Image) -> release_core::Result<()> {
    let session = w.session("ops");
    let staging = w.pipeline.env("staging").unwrap();
    let spec = release_core::engine::runner::OpSpec::new("removing an image".into());
    release_core::engine::runner::run(&session, &w.pipeline, staging, spec, async |op: &mut release_core::engine::runner::Op<'_>| {
        release_core::steps::images::remove_image(op, image).await
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_still_in_use_after_deregistering_is_deleted_once_ec2_lets_go() {
    let w = World::new(1).await;
    let cloud = w.cloud.cloud();
    let ami = w.cloud.register_image("shop-leftover", release_core::ports::ImageState::Available);
    let image = cloud.images.describe(&ami).await.unwrap().expect("registered");
    let snap = image.snapshots[0].clone();
    // EC2 answers InvalidSnapshot.InUse three times right after DeregisterImage.
    w.cloud.state().snapshot_busy.insert(snap.clone(), 3);
    let start = cloud.clock.now();
    remove_image(&w, &image).await.expect("removed despite InUse");
    assert!(!w.cloud.state().snapshots.contains(&snap), "the snapshot is gone");
    assert!(w.cloud.state().images.get(&ami).is_none(), "the image is gone");
    assert_eq!(w.cloud.state().calls.get("ec2:DeleteSnapshot").copied(), Some(4), "three refusals, then the delete");
    let waited = cloud.clock.now().since(start);
    assert!(waited >= Duration::from_secs(2 + 4 + 8) && waited < Duration::from_secs(15), "it backed off 2 s, 4 s, 8 s (simulated time): {waited:?}");

    // Still in use past the timeout: the error says which snapshot, and keeps its kind.
    let ami = w.cloud.register_image("shop-stuck", release_core::ports::ImageState::Available);
    let image = cloud.images.describe(&ami).await.unwrap().unwrap();
    w.cloud.state().snapshot_busy.insert(image.snapshots[0].clone(), u32::MAX);
    let err = remove_image(&w, &image).await.expect_err("stuck for good");
    assert_eq!(err.kind(), ErrorKind::Aws, "{err}");
    assert!(err.to_string().contains(&image.snapshots[0]), "{err}");
    assert!(!w.locked(), "the lock went with the operation");
}

/// Resumes, as `bob`, the promote of `sha` that died at `step` (the lease has lapsed by then).
async fn crash_then_resume(w: &World, sha: &release_core::model::ids::CommitSha, step: &'static str, opts: &release_core::ops::promote::PromoteOptions, between: impl FnOnce()) -> release_core::Result<release_core::ops::promote::PromoteReport> {
    let (release, _) = w.release_with("alice", Some(step));
    let err = release.promote("staging", sha, opts, None).await.expect_err("the crash hook fired");
    assert_eq!(err.kind(), ErrorKind::Crash, "{err}");
    between();
    w.cloud.clock.advance(release_core::engine::lock::LOCK_LEASE + Duration::from_secs(1));
    w.release("bob").promote("staging", sha, opts, None).await
}

/// The staging fleet is exactly `count` distinct running instances of `sha`, every one registered and healthy, and
/// every RunInstances token was used with one set of arguments (EC2 would have refused a second).
async fn staging_serves(w: &World, sha: &release_core::model::ids::CommitSha, count: usize) {
    nothing_leaked(w, "staging", &classic("shop-staging"), count).await;
    assert_eq!(w.commits("staging"), vec![sha.to_string()]);
    let s = w.cloud.state();
    let mut seen = std::collections::BTreeMap::new();
    for l in &s.launches {
        let mut args = l.clone();
        args.client_token.clear();
        let prev = seen.insert(l.client_token.clone(), args.clone());
        assert!(prev.is_none_or(|p| p == args), "token {} reused with other arguments", l.client_token);
    }
}

#[tokio::test(start_paused = true)]
async fn a_resumed_promote_that_launches_fewer_uses_new_client_tokens() {
    let w = World::new(4).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    // b's promote dies right after launching 4 (2 + 1 + 1 over three zones); one of them is then terminated by
    // hand, so the resumed run adopts 3 and launches 1 in the first zone: a call unlike the first one there.
    let cloud = w.cloud.clone();
    let r = crash_then_resume(&w, &b, "launched", &Default::default(), || {
        let victim = cloud.live_instances().into_iter().find(|i| i.tags.get(tags::COMMIT).map(String::as_str) == Some(b.as_str())).map(|i| i.id).unwrap();
        cloud.state().instances.iter_mut().find(|i| i.id == victim).unwrap().state = release_core::ports::InstanceState::Terminated;
    })
    .await
    .unwrap_or_else(|e| panic!("the resumed promote: {e}"));
    assert_eq!((r.adopted.len(), r.new_instances.len()), (3, 4), "{r:?}");
    staging_serves(&w, &b, 4).await;
    assert_eq!(w.cloud.state().launches.len(), 3 + 3 + 1, "a's three calls, b's three, the resumed run's one");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_promote_in_batches_never_gets_the_adopted_batch_back_as_new() {
    let w = World::new(4).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let opts = release_core::ops::promote::PromoteOptions { batch: Some(2), ..Default::default() };
    // The first batch (one instance in each of the first two zones) is launched, then the run dies; the resumed one
    // adopts it and launches the second batch with the same arguments: EC2 would answer an old token with the
    // first batch again.
    let r = crash_then_resume(&w, &b, "launched", &opts, || {}).await.unwrap_or_else(|e| panic!("the resumed promote: {e}"));
    let distinct: BTreeSet<String> = r.new_instances.iter().map(ToString::to_string).collect();
    assert_eq!(distinct.len(), 4, "four distinct new instances: {:?}", r.new_instances);
    staging_serves(&w, &b, 4).await;
}

/// How many of the cluster's live instances each zone holds.
fn zone_counts(w: &World, cluster: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for i in w.instances(cluster) {
        *out.entry(i.zone.clone()).or_default() += 1;
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_shortfall_goes_to_the_zones_that_hold_the_fewest() {
    let w = World::new(4).await;
    let a = w.bake('a').await;
    let zs = zones(&w);
    // 2 + 1 + 1 planned; the third zone has no capacity: its one goes to the second zone (1), not the first (2).
    w.cloud.state().capacity_out.insert(zs[2].clone());
    w.promote("staging", &a).await.expect("promote through a capacity error");
    nothing_leaked(&w, "staging", &classic("shop-staging"), 4).await;
    let counts = zone_counts(&w, "staging");
    assert_eq!(counts, [(zs[0].clone(), 2), (zs[1].clone(), 2)].into_iter().collect(), "as even as capacity allows");
}

#[tokio::test(start_paused = true)]
async fn batches_and_resumed_runs_keep_the_zones_even() {
    let w = World::new(3).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let one_at_a_time = release_core::ops::promote::PromoteOptions { batch: Some(1), ..Default::default() };
    w.release("alice").promote("staging", &a, &one_at_a_time, None).await.expect("promote in batches of one");
    nothing_leaked(&w, "staging", &classic("shop-staging"), 3).await;
    assert!(zone_counts(&w, "staging").values().all(|n| *n == 1), "one per zone: {:?}", zone_counts(&w, "staging"));
    // A run that dies after its first batch; the one that resumes it puts the other two in the other zones.
    crash_then_resume(&w, &b, "launched", &one_at_a_time, || {}).await.expect("the resumed promote");
    nothing_leaked(&w, "staging", &classic("shop-staging"), 3).await;
    assert_eq!(w.commits("staging"), vec![b.to_string()]);
    assert!(zone_counts(&w, "staging").values().all(|n| *n == 1), "one per zone: {:?}", zone_counts(&w, "staging"));
}

#[tokio::test(start_paused = true)]
async fn registration_waits_while_the_load_balancer_does_not_see_fresh_instances_running() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    // For 20 s after the launch the load balancer says the instances are not running, although EC2 says they are.
    w.cloud.state().elb_not_running_for = Duration::from_secs(20);
    let r = w.promote("staging", &a).await.expect("registration retried while the instances run");
    assert_eq!(r.new_instances.len(), 2);
    nothing_leaked(&w, "staging", &classic("shop-staging"), 2).await;
    assert!(w.cloud.state().calls["elb:Register"] > 1, "retried: {:?}", w.cloud.state().calls);
}

#[tokio::test(start_paused = true)]
async fn registration_stops_at_once_for_an_instance_terminated_before_it() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.unwrap();
    let serving: BTreeSet<String> = w.instances("staging").iter().map(|i| i.id.to_string()).collect();
    // The load balancer does not know fresh ids for a minute; one new instance is terminated (a spot reclaim, a
    // hand) right after it ran, before the registration.
    w.cloud.state().elb_unknown_for = Duration::from_secs(60);
    let (mut release, _) = w.release_with("alice", None);
    let (cloud, commit) = (w.cloud.clone(), b.to_string());
    release.session.checkpoint = std::sync::Arc::new(move |at: &str| {
        if at == "running" {
            let mut s = cloud.state();
            if let Some(i) = s.instances.iter_mut().find(|i| i.tags.get(tags::COMMIT) == Some(&commit) && i.state == release_core::ports::InstanceState::Running) {
                i.state = release_core::ports::InstanceState::Terminated;
            }
        }
        Ok(())
    });
    let registers = w.cloud.state().calls.get("elb:Register").copied().unwrap_or(0);
    let err = release.promote("staging", &b, &Default::default(), None).await.expect_err("an instance is gone");
    assert!(err.message().contains("is terminated instead of running"), "{err}");
    assert_eq!(err.rolled_back(), Some(true), "{err}");
    assert_eq!(w.cloud.state().calls["elb:Register"] - registers, 1, "not retried for an instance that will never run");
    let now: BTreeSet<String> = w.instances("staging").iter().map(|i| i.id.to_string()).collect();
    assert_eq!(now, serving, "the old fleet still serves, the new one is gone");
}

/// `subnets` and `lb_subnets` of `[deploy]`, by index into the memory cloud's subnets (one per zone).
fn networked(count: u32, instances: &[usize], lb: &[usize]) -> release_core::model::pipeline::Pipeline {
    let ids: Vec<String> = release_testkit::memory::MemoryCloud::new().state().subnets.iter().map(|s| format!("\"{}\"", s.id)).collect();
    let list = |ix: &[usize]| ix.iter().map(|i| ids[*i].clone()).collect::<Vec<_>>().join(", ");
    release_testkit::fixtures::shop_deploy(count, &format!("subnets = [{}]\nlb_subnets = [{}]", list(instances), list(lb)), "")
}

#[tokio::test(start_paused = true)]
async fn a_subnet_in_a_zone_the_load_balancer_does_not_serve_is_refused_before_anything_is_launched() {
    // The load balancers are made in the first two zones, and the instances go there too.
    let mut w = World::with(networked(2, &[0, 1], &[0, 1])).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.expect("instances in the load balancer's zones");
    let zs = zones(&w);
    let third = w.cloud.state().subnets[2].id.clone();
    // Then the instances are given the third zone too.
    w.pipeline = networked(2, &[0, 1, 2], &[0, 1]);
    let launches = w.cloud.state().launches.len();
    let instances = w.instances("staging");
    let err = w.promote("staging", &b).await.expect_err("a zone the load balancer does not serve");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().contains(&format!("{third} ({})", zs[2])) && err.message().contains("would never be InService"), "{err}");
    let launched = w.cloud.state().launches.len();
    assert_eq!((launched, w.instances("staging")), (launches, instances), "nothing launched, nothing retired");
    assert!(!w.locked());
    let err = w.release("ops").provision("staging").await.expect_err("provision refuses it too");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().contains(&third), "{err}");
    // A new load balancer is made in lb_subnets' zones: provision refuses instances outside them before creating it.
    let mut fresh = World::with(shop(1, "")).await;
    fresh.pipeline = networked(1, &[0, 1, 2], &[0, 1]);
    fresh.cloud.state().load_balancers.clear();
    let err = fresh.release("ops").provision("staging").await.expect_err("instances outside the new load balancer's zones");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(fresh.cloud.state().load_balancers.is_empty(), "nothing created");
}

#[tokio::test(start_paused = true)]
async fn two_load_balancer_subnets_in_one_zone_are_refused_before_the_create_call() {
    let mut w = World::new(1).await;
    let zs = zones(&w);
    let first = w.cloud.state().subnets[0].id.clone();
    w.cloud.state().subnets.push(release_core::ports::Subnet { id: "subnet-0000000000ff".into(), availability_zone: zs[0].clone() });
    w.cloud.state().load_balancers.clear();
    w.pipeline = release_testkit::fixtures::shop_deploy(1, &format!("lb_subnets = [\"{first}\", \"subnet-0000000000ff\"]"), "");
    let creates = w.cloud.state().calls.get("elb:Create").copied().unwrap_or(0);
    let err = w.release("ops").provision("staging").await.expect_err("two subnets in one zone");
    assert_eq!(err.kind(), ErrorKind::Input, "{err}");
    assert!(err.message().contains(&format!("{first}, subnet-0000000000ff are all in {}", zs[0])), "{err}");
    assert_eq!(w.cloud.state().calls.get("elb:Create").copied().unwrap_or(0), creates, "no create call");
    assert!(w.cloud.state().load_balancers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_target_in_a_zone_the_load_balancer_left_is_reported_unused_with_its_reason() {
    let w = World::new(2).await;
    let a = w.bake('a').await;
    let zs = zones(&w);
    // After the pre-flight, the load balancers stop serving the first zone (someone edits them by hand).
    let (mut release, _) = w.release_with("alice", None);
    let (cloud, zone) = (w.cloud.clone(), zs[0].clone());
    release.session.checkpoint = std::sync::Arc::new(move |at: &str| {
        if at == "registered" {
            for z in cloud.state().lb_zones.values_mut() {
                z.remove(&zone);
            }
        }
        Ok(())
    });
    w.cloud.clock.advance(Duration::from_secs(600));
    let err = release.promote("prod", &a, &Default::default(), None).await.expect_err("never healthy");
    assert!(err.message().contains("Unused (Target.NotInUse)"), "{err}");
    assert_eq!(err.rolled_back(), Some(true), "{err}");
    assert!(w.instances("blue").is_empty() && w.instances("green").is_empty(), "the new fleet was removed");
}

/// Issue 25 item 14: the subnets the pipeline names, each holding one of the app's instances, are read from the
/// instances' describe rather than described again (EC2 refuses to delete a subnet that holds an instance, and its
/// zone and VPC never change); an empty cluster's, or a subnet holding nothing yet, are described.
#[tokio::test(start_paused = true)]
async fn named_subnets_holding_instances_are_not_described_again() {
    let mut w = World::with(networked(2, &[0, 1], &[0, 1, 2])).await;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    let named = |w: &World, ix: &[usize]| -> BTreeSet<String> { ix.iter().map(|i| w.cloud.state().subnets[*i].id.clone()).collect() };
    let described = |w: &World| w.cloud.state().calls.get("ec2:DescribeSubnets").copied().unwrap_or(0);
    w.cloud.state().calls.clear();
    w.promote("staging", &a).await.unwrap();
    assert_eq!(described(&w), 1, "an empty cluster's subnets are described");
    w.cloud.state().calls.clear();
    let launched = w.cloud.state().launches.len();
    w.promote("staging", &b).await.unwrap();
    assert_eq!(described(&w), 0, "each named subnet holds an instance");
    let used: BTreeSet<String> = w.cloud.state().launches[launched..].iter().map(|l| l.subnet.clone()).collect();
    assert_eq!(used, named(&w, &[0, 1]), "one in each named subnet, as when they were described");
    w.pipeline = networked(2, &[0, 1, 2], &[0, 1, 2]);
    w.cloud.state().calls.clear();
    let launched = w.cloud.state().launches.len();
    w.promote("staging", &c).await.unwrap();
    assert_eq!(described(&w), 1, "a named subnet holding nothing yet is described");
    let used: BTreeSet<String> = w.cloud.state().launches[launched..].iter().map(|l| l.subnet.clone()).collect();
    assert_eq!(used.len(), 2);
    assert!(used.is_subset(&named(&w, &[0, 1, 2])));
}
