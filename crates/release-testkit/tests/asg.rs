//! Promotes to an asg cluster (issue 22) on the in-memory cloud, where group lifecycles, ELB health, failed scaling
//! activities and time are modelled: what the emulator cannot show. Each test asserts the cloud's state (groups,
//! template versions, load balancer members, instances) and the ledger.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use release_core::model::clock::Clock;
use release_core::model::ids::{AppName, CommitSha};
use release_core::model::ledger::{Action, GroupsDetail, Outcome, RollbackPath};
use release_core::model::pipeline::{LbTarget, Pipeline};
use release_core::ports::{tags, Capacity, Group, Lifecycle, Process};
use release_core::ErrorKind;
use release_testkit::fixtures::{shop_pipeline, World};

/// One in-place environment on a target group, its cluster an asg fleet; `cluster` adds keys to the cluster.
fn pipeline(cluster: &str) -> Pipeline {
    shop(&format!("fleet = \"asg\"\nscaling = {{ min = 2, max = 6 }}\n{cluster}"))
}

/// The environment with `cluster` as the cluster's fleet keys.
fn shop(cluster: &str) -> Pipeline {
    shop_pipeline(
        "health_timeout = \"10m\"\ndrain = \"30s\"\ninstance_profile = \"shop-app\"",
        &format!("[env.staging]\nvars = {{ APP_ENV = \"staging\" }}\n[env.staging.clusters.web]\ntarget_group = \"shop-web\"\ncount = 2\n{cluster}\n"),
    )
}

fn tg() -> LbTarget {
    LbTarget::TargetGroup("shop-web".into())
}

async fn groups(w: &World) -> Vec<Group> {
    w.cloud.cloud().groups.app_groups(&AppName::parse("shop").unwrap()).await.unwrap()
}

async fn group(w: &World, name: &str) -> Option<Group> {
    groups(w).await.into_iter().find(|g| g.name == name)
}

fn in_service(g: &Group) -> BTreeSet<String> {
    g.instances.iter().filter(|i| i.lifecycle == Lifecycle::InService).map(|i| i.id.to_string()).collect()
}

fn members(w: &World) -> BTreeSet<String> {
    w.cloud.registered(&tg()).iter().map(ToString::to_string).collect()
}

async fn last_groups(w: &World) -> (Outcome, Option<bool>, Option<GroupsDetail>) {
    let r = w.records("staging").await.into_iter().find(|r| r.action_name() == "promote").expect("a promote record");
    let Action::Promote(p) = &r.action else { panic!("a promote") };
    (r.outcome, r.rolled_back, p.groups.clone())
}

async fn two_releases(w: &World) -> (CommitSha, CommitSha) {
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.expect("first promote");
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn a_promote_makes_a_numbered_version_and_a_group_and_the_next_one_disables_it_keeping_its_instances() {
    let w = World::with(pipeline("")).await;
    let (a, b) = two_releases(&w).await;
    let first = group(&w, "shop-web-v002").await.expect("the first release's group, from version 2 (1 is the placeholder)");
    assert_eq!(first.capacity, Capacity { min: 2, desired: 2, max: 6 });
    assert_eq!(first.template.as_ref().map(|t| t.version.0), Some(2));
    assert_eq!(first.tags.get(tags::COMMIT), Some(&a.to_string()));
    assert!(first.suspended.is_empty(), "alarms resumed once it serves: {:?}", first.suspended);
    assert_eq!(members(&w), in_service(&first), "the load balancer serves the group's instances");
    assert!(w.cloud.live_instances().iter().all(|i| i.tags.get(tags::RELEASE_ID).is_some()), "instances carry the release id");

    let report = w.promote("staging", &b).await.expect("second promote");
    assert_eq!(report.from_commit.as_ref(), Some(&a));
    let second = group(&w, "shop-web-v003").await.expect("the second release's group");
    let old = group(&w, "shop-web-v002").await.expect("the first group is kept, disabled");
    assert_eq!(members(&w), in_service(&second), "only the new group serves");
    assert_eq!(second.load_balancers, vec![tg()]);
    assert!(old.load_balancers.is_empty(), "detached: {:?}", old.load_balancers);
    assert_eq!(in_service(&old).len(), 2, "its instances are kept for the rollback window");
    assert_eq!(old.capacity.min, old.capacity.desired, "min pinned to desired");
    let want: BTreeSet<Process> = [Process::AlarmNotification, Process::ScheduledActions, Process::AZRebalance, Process::InstanceRefresh].into();
    assert_eq!(old.suspended, want, "healing (Launch, Terminate, HealthCheck, ReplaceUnhealthy) and AddToLoadBalancer stay on");
    assert!(old.tags.contains_key(tags::DISABLED_AT), "tagged with when it was disabled");
    let (outcome, _, g) = last_groups(&w).await;
    assert_eq!(outcome, Outcome::Succeeded);
    let g = g.expect("the record holds the groups");
    assert_eq!((g.version, g.group.as_str(), g.replaced.as_deref(), g.replaced_min, g.desired), (3, "shop-web-v003", Some("shop-web-v002"), Some(2), 2));
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn slow_health_is_waited_for_and_the_old_group_serves_until_the_new_one_is_healthy() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    w.cloud.state().scaling.launch_delay = Duration::from_secs(40);
    w.cloud.state().healthy_after = Some(Duration::from_secs(90));
    let old = in_service(&group(&w, "shop-web-v002").await.unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (mut release, _) = w.release_with("alice", None);
    let (m, s) = (w.cloud.clone(), seen.clone());
    release.session.checkpoint = Arc::new(move |step: &str| {
        let registered: BTreeSet<String> = m.registered(&tg()).iter().map(ToString::to_string).collect();
        s.lock().unwrap().push((step.to_owned(), registered));
        Ok(())
    });
    let start = w.cloud.clock.now();
    release.promote("staging", &b, &Default::default(), None).await.expect("promote");
    assert!(w.cloud.clock.now().since(start) >= Duration::from_secs(130), "waited for InService and health");
    for (step, registered) in seen.lock().unwrap().iter().filter(|(s, _)| s == "launched" || s == "running" || s == "healthy") {
        assert!(old.is_subset(registered), "the old group still served at {step}");
    }
    assert_eq!(members(&w), in_service(&group(&w, "shop-web-v003").await.unwrap()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_scaling_activity_is_reported_at_once_with_its_reason_and_the_new_group_is_deleted() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    let serving = members(&w);
    let reason = "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested. Launching EC2 instance failed.";
    w.cloud.state().scaling.launch_failures = vec![reason.to_owned()];
    let start = w.cloud.clock.now();
    let err = w.promote("staging", &b).await.expect_err("the launch failed");
    assert!(w.cloud.clock.now().since(start) < Duration::from_secs(60), "told at once, not after health_timeout");
    assert!(err.message().contains(reason), "AWS's reason: {err}");
    assert!(err.message().contains("the new group shop-web-v003 was deleted and web serves what it served before"), "{err}");
    assert_eq!(err.rolled_back(), Some(true));
    assert!(group(&w, "shop-web-v003").await.is_none(), "deleted");
    let old = group(&w, "shop-web-v002").await.unwrap();
    assert_eq!((old.load_balancers.clone(), old.suspended.is_empty()), (vec![tg()], true), "the old group serves as before");
    assert_eq!(members(&w), serving);
    let (outcome, rolled_back, g) = last_groups(&w).await;
    assert_eq!((outcome, rolled_back), (Outcome::Failed, Some(true)));
    assert_eq!(g.map(|g| g.group), Some("shop-web-v003".into()), "the record names the group it made");
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn health_that_never_arrives_deletes_the_new_group_after_the_timeout() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    let serving = members(&w);
    w.cloud.state().healthy_after = None;
    let err = w.promote("staging", &b).await.expect_err("never healthy");
    assert_eq!(err.kind(), ErrorKind::DeployFailed, "{err}");
    assert!(err.message().contains("only 0 of 2 new instances healthy in target group shop-web after 10m"), "{err}");
    assert!(group(&w, "shop-web-v003").await.is_none(), "deleted");
    assert_eq!(members(&w), serving, "the old group serves");
    assert_eq!(w.cloud.live_instances().len(), 2, "the new group's instances are terminated");
}

#[tokio::test(start_paused = true)]
async fn targets_the_load_balancer_does_not_use_are_an_error_with_that_reason() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    let (mut release, _) = w.release_with("alice", None);
    let m = w.cloud.clone();
    // The load balancer leaves a zone after the plan checked them (someone edits it meanwhile).
    release.session.checkpoint = Arc::new(move |step: &str| {
        if step == "running" {
            let mut s = m.state();
            let keep = s.subnets[0].availability_zone.clone();
            s.lb_zones.insert(tg(), [keep].into());
        }
        Ok(())
    });
    let err = release.promote("staging", &b, &Default::default(), None).await.expect_err("unused targets");
    assert!(err.message().contains("target group shop-web takes no traffic to") && err.message().contains("Target.NotInUse"), "{err}");
    assert!(group(&w, "shop-web-v003").await.is_none(), "deleted");
    assert_eq!(group(&w, "shop-web-v002").await.unwrap().load_balancers, vec![tg()]);
}

#[tokio::test(start_paused = true)]
async fn a_serving_group_larger_than_the_new_max_is_refused_before_any_change() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    {
        let mut s = w.cloud.state();
        let g = s.scaling.groups.get_mut("shop-web-v002").unwrap();
        g.capacity = Capacity { min: 2, desired: 8, max: 10 };
    }
    let versions = w.cloud.state().scaling.templates.values().map(|t| t.latest).collect::<Vec<_>>();
    let err = w.promote("staging", &b).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().contains("group shop-web-v002 of cluster web runs 8 instances, more than scaling.max = 6"), "{err}");
    assert_eq!(groups(&w).await.len(), 1, "no group made");
    assert_eq!(w.cloud.state().scaling.templates.values().map(|t| t.latest).collect::<Vec<_>>(), versions, "no version made");
}

#[tokio::test(start_paused = true)]
async fn a_group_that_autoscaling_grew_during_the_promote_is_matched_by_the_new_one() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    let (mut release, _) = w.release_with("alice", None);
    let m = w.cloud.clone();
    release.session.checkpoint = Arc::new(move |step: &str| {
        if step == "healthy" {
            let mut s = m.state();
            let g = s.scaling.groups.get_mut("shop-web-v002").unwrap();
            if g.capacity.desired == 2 {
                g.capacity.desired = 4;
            }
        }
        Ok(())
    });
    release.promote("staging", &b, &Default::default(), None).await.expect("promote");
    let new = group(&w, "shop-web-v003").await.unwrap();
    assert_eq!(new.capacity, Capacity { min: 2, desired: 4, max: 6 }, "raised to the old group's 4, min restored");
    assert_eq!(members(&w).len(), 4);
    assert_eq!(members(&w), in_service(&new));
    assert_eq!(last_groups(&w).await.2.map(|g| g.desired), Some(4));
}

#[tokio::test(start_paused = true)]
async fn the_plan_names_the_version_and_group_and_changes_nothing() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    let before = (groups(&w).await, w.records("staging").await.len(), w.cloud.state().scaling.templates.values().map(|t| t.latest).collect::<Vec<_>>());
    let plan = w.release("alice").plan_promote("staging", &b, &Default::default()).await.expect("plan");
    let asg = plan.asg.as_ref().expect("an asg plan");
    assert_eq!((asg.version, asg.group.as_str(), asg.desired, asg.replaces.as_deref()), (3, "shop-web-v003", 2, Some("shop-web-v002")));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["asg"]["group"], "shop-web-v003", "{json}");
    assert!(plan.summary.contains("launch template shop-web version 3"), "{}", plan.summary);
    let after = (groups(&w).await, w.records("staging").await.len(), w.cloud.state().scaling.templates.values().map(|t| t.latest).collect::<Vec<_>>());
    assert_eq!(before, after, "nothing changed");
}

#[tokio::test(start_paused = true)]
async fn promoting_the_commit_a_group_already_serves_does_nothing() {
    let w = World::with(pipeline("")).await;
    let (a, _) = two_releases(&w).await;
    let report = w.promote("staging", &a).await.expect("promote again");
    assert_eq!(report.outcome.as_str(), "noop");
    assert_eq!(groups(&w).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn moving_an_instances_cluster_to_a_group_retires_the_bare_instances() {
    let src = pipeline("");
    // The same environment as an instances fleet first.
    let w = World::with(shop("")).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    w.promote("staging", &a).await.expect("bare instances");
    let bare: BTreeSet<String> = members(&w);
    assert_eq!(bare.len(), 2);
    let w = World { cloud: w.cloud.clone(), pipeline: src, lines: Default::default() };
    w.promote("staging", &b).await.expect("to a group");
    let g = group(&w, "shop-web-v002").await.expect("the group");
    assert_eq!(members(&w), in_service(&g), "the group serves");
    let live: BTreeSet<String> = w.cloud.live_instances().iter().map(|i| i.id.to_string()).collect();
    assert!(bare.is_disjoint(&live), "the bare instances are terminated");
    let r = w.records("staging").await.into_iter().find(|r| r.action_name() == "promote").unwrap();
    let Action::Promote(p) = &r.action else { panic!() };
    assert_eq!(p.retired_instances.iter().map(ToString::to_string).collect::<BTreeSet<_>>(), bare);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_inside_the_window_enables_the_disabled_group_and_launches_nothing() {
    let w = World::with(pipeline("")).await;
    let (a, b) = two_releases(&w).await;
    w.promote("staging", &b).await.expect("second promote");
    let launched = w.cloud.state().instances.len();
    w.cloud.clock.advance(Duration::from_secs(1800));
    let plan = w.release("alice").plan_rollback("staging", &Default::default()).await.expect("plan");
    assert_eq!(plan.path, RollbackPath::EnableGroup, "{}", plan.summary);
    assert!(plan.summary.contains("enabling its group shop-web-v002 again, 29m") && plan.summary.ends_with("left of its window; nothing is launched)"), "{}", plan.summary);
    let rb = w.release("alice").rollback("staging", &Default::default(), None).await.expect("rollback");
    assert_eq!(rb.plan.to_commit, a);
    assert_eq!(w.cloud.state().instances.len(), launched, "no instance launched");
    let (back, current) = (group(&w, "shop-web-v002").await.unwrap(), group(&w, "shop-web-v003").await.unwrap());
    assert_eq!(members(&w), in_service(&back), "the previous release's group serves again");
    assert_eq!(back.load_balancers, vec![tg()]);
    assert!(back.suspended.is_empty() && !back.tags.contains_key(tags::DISABLED_AT), "enabled: {:?} {:?}", back.suspended, back.tags);
    assert_eq!(back.capacity, Capacity { min: 2, desired: 2, max: 6 }, "its min restored");
    assert!(current.load_balancers.is_empty() && current.tags.contains_key(tags::DISABLED_AT), "the current group is disabled");
    assert_eq!(in_service(&current).len(), 2, "and keeps its instances");
    let r = w.records("staging").await.into_iter().find(|r| r.action_name() == "rollback").expect("a rollback record");
    let Action::Rollback(d) = &r.action else { panic!() };
    assert_eq!(r.outcome, Outcome::Succeeded);
    let g = d.groups.as_ref().expect("the record holds the groups");
    assert_eq!((g.group.as_str(), g.replaced.as_deref()), ("shop-web-v002", Some("shop-web-v003")));
    assert!(!w.locked());
}

#[tokio::test(start_paused = true)]
async fn a_rollback_outside_the_window_promotes_the_previous_commit_as_a_new_group() {
    let w = World::with(pipeline("rollback_window = \"1h\"")).await;
    let (a, b) = two_releases(&w).await;
    w.promote("staging", &b).await.expect("second promote");
    w.cloud.clock.advance(Duration::from_secs(3700));
    let plan = w.release("alice").plan_rollback("staging", &Default::default()).await.expect("plan");
    assert_eq!(plan.path, RollbackPath::InPlace, "{}", plan.summary);
    w.release("alice").rollback("staging", &Default::default(), None).await.expect("rollback");
    let new = group(&w, "shop-web-v004").await.expect("a new group from version 4");
    assert_eq!(new.tags.get(tags::COMMIT), Some(&a.to_string()));
    assert_eq!(members(&w), in_service(&new));
}

/// The cluster converged on `commit`: one group attached, running it, serving exactly its InService instances, done
/// switching; every other group disabled (none left unattached and undisabled); nothing unfinished in the ledger.
async fn converged(w: &World, commit: &CommitSha, at: &str) {
    let all = groups(w).await;
    let attached: Vec<&Group> = all.iter().filter(|g| g.load_balancers.contains(&tg())).collect();
    assert_eq!(attached.len(), 1, "crash at {at}: one enabled group: {all:#?}");
    let g = attached[0];
    assert_eq!(g.tags.get(tags::COMMIT), Some(&commit.to_string()), "crash at {at}");
    assert!(g.suspended.is_empty(), "crash at {at}: switch finished: {:?}", g.suspended);
    assert_eq!(g.capacity, Capacity { min: 2, desired: 2, max: 6 }, "crash at {at}");
    assert_eq!(members(w), in_service(g), "crash at {at}");
    for other in all.iter().filter(|o| o.name != g.name) {
        assert!(other.tags.contains_key(tags::DISABLED_AT), "crash at {at}: {} is neither enabled nor disabled", other.name);
    }
    let records = w.records("staging").await;
    assert!(records.iter().all(|r| r.outcome != Outcome::Started), "crash at {at}: nothing unfinished: {records:#?}");
    assert!(records.iter().any(|r| r.commit() == Some(commit) && r.outcome == Outcome::Succeeded), "crash at {at}");
    assert!(!w.locked(), "crash at {at}");
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_every_step_boundary_then_a_rerun_converges_on_one_enabled_group() {
    let mut table = vec![format!("{:<18} {:<10} {:>7} {:>8}", "crash at", "re-run", "groups", "versions")];
    for step in ["recorded", "launched", "running", "healthy", "deregistered-old", "finished"] {
        let w = World::with(pipeline("")).await;
        let (_, b) = two_releases(&w).await;
        let (release, _) = w.release_with("alice", Some(step));
        release.promote("staging", &b, &Default::default(), None).await.expect_err("crashed");
        // A killed process keeps its lock until the lease runs out.
        w.cloud.clock.advance(release_core::engine::lock::LOCK_LEASE + Duration::from_secs(1));
        let rerun = w.promote("staging", &b).await.unwrap_or_else(|e| panic!("re-run after a crash at {step}: {e}"));
        converged(&w, &b, step).await;
        let versions: u32 = w.cloud.state().scaling.templates.values().map(|t| t.latest).sum();
        assert_eq!(versions, 3, "crash at {step}: the re-run made no second version (client token)");
        assert_eq!(groups(&w).await.len(), 2, "crash at {step}: the first release's group and this one's, no duplicate");
        table.push(format!("{step:<18} {:<10} {:>7} {:>8}", rerun.outcome.as_str(), groups(&w).await.len(), versions));
    }
    println!("asg promote crash points tried in memory:\n{}", table.join("\n"));
}

#[tokio::test(start_paused = true)]
async fn a_group_left_by_a_dead_run_of_another_commit_is_deleted_never_left_running_unattached() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    let c = w.bake('c').await;
    let (release, _) = w.release_with("alice", Some("running"));
    release.promote("staging", &b, &Default::default(), None).await.expect_err("crashed");
    w.cloud.clock.advance(release_core::engine::lock::LOCK_LEASE + Duration::from_secs(1));
    assert!(group(&w, "shop-web-v003").await.is_some_and(|g| g.load_balancers.is_empty()), "the dead run left its group unattached");
    w.promote("staging", &c).await.expect("promote of another commit");
    assert!(group(&w, "shop-web-v003").await.is_none(), "the dead run's group is deleted");
    converged(&w, &c, "running, then another commit").await;
    let r = w.records("staging").await.into_iter().find(|r| r.commit() == Some(&b)).unwrap();
    assert_eq!(r.outcome, Outcome::Abandoned);
}

#[tokio::test(start_paused = true)]
async fn groups_disabled_longer_than_the_window_are_deleted_by_the_next_promote_the_careful_way() {
    let w = World::with(pipeline("rollback_window = \"1h\"")).await;
    let (_, b) = two_releases(&w).await;
    w.promote("staging", &b).await.expect("second promote");
    let old: BTreeSet<String> = in_service(&group(&w, "shop-web-v002").await.unwrap());
    w.cloud.clock.advance(Duration::from_secs(7200));
    let c = w.bake('c').await;
    let plan = w.release("alice").plan_promote("staging", &c, &Default::default()).await.unwrap();
    assert_eq!(plan.asg.as_ref().map(|a| a.expired.clone()), Some(vec!["shop-web-v002".to_owned()]), "{}", plan.summary);
    w.promote("staging", &c).await.expect("third promote");
    assert!(group(&w, "shop-web-v002").await.is_none(), "past its window: deleted");
    let kept = group(&w, "shop-web-v003").await.expect("inside its window: kept");
    assert!(kept.tags.contains_key(tags::DISABLED_AT) && in_service(&kept).len() == 2);
    assert_eq!(members(&w), in_service(&group(&w, "shop-web-v004").await.unwrap()));
    let live: BTreeSet<String> = w.cloud.live_instances().iter().map(|i| i.id.to_string()).collect();
    assert!(old.is_disjoint(&live), "the expired group's instances are terminated");
    assert!(w.cloud.state().calls.get("autoscaling:DeleteAutoScalingGroup").copied().unwrap_or(0) >= 1, "deleted through DeleteAutoScalingGroup");
}

#[tokio::test(start_paused = true)]
async fn status_shows_each_group_with_one_describe_of_the_groups() {
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    w.promote("staging", &b).await.expect("second promote");
    w.cloud.clock.advance(Duration::from_secs(600));
    let describes = || w.cloud.state().calls.get("autoscaling:DescribeAutoScalingGroups").copied().unwrap_or(0);
    let before = describes();
    let st = w.release("alice").status(Some("staging")).await.expect("status");
    assert_eq!(describes() - before, 1, "one DescribeAutoScalingGroups");
    let c = &st[0].clusters[0];
    assert_eq!((c.commit.as_deref(), c.total, c.healthy), (Some(b.as_str()), 2, 2), "what serves, not the disabled group's instances too");
    let g: Vec<(&str, &str, u32, usize, usize)> = c.groups.iter().map(|g| (g.name.as_str(), g.state.as_str(), g.desired, g.in_service, g.healthy)).collect();
    assert_eq!(g, vec![("shop-web-v003", "serving", 2, 2, 2), ("shop-web-v002", "disabled", 2, 2, 0)]);
    let left = c.groups[1].window_left.expect("time left");
    assert!(left <= Duration::from_secs(3000) && left > Duration::from_secs(2900), "{left:?} of the default 1h window");
}

/// The fixture's pipeline (an in-place staging on a classic ELB, a blue/green prod on two target groups), every
/// cluster an asg fleet.
fn shop_on_groups(extra: &str) -> Pipeline {
    release_testkit::fixtures::shop_deploy(2, "fleet = \"asg\"", extra)
}

fn attached_to(all: &[Group], target: &LbTarget) -> Vec<String> {
    all.iter().filter(|g| g.load_balancers.contains(target)).map(|g| g.name.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn blue_green_promotes_into_the_idle_cluster_as_a_group_and_disables_the_group_it_replaces() {
    let w = World::with(shop_on_groups("")).await;
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    let first = w.deploy_prod(&a).await;
    let second = w.deploy_prod(&b).await;
    assert_ne!(first, second, "each release goes to the idle cluster");
    let launched = w.cloud.state().instances.len();
    let third = w.deploy_prod(&c).await;
    assert_eq!(third, first);
    let (tg_first, tg_second) = (LbTarget::TargetGroup(format!("shop-{first}")), LbTarget::TargetGroup(format!("shop-{second}")));
    let all = groups(&w).await;
    assert_eq!(attached_to(&all, &tg_first), vec![format!("shop-{first}-v003")], "c's group serves the cluster it went to");
    assert_eq!(attached_to(&all, &tg_second), vec![format!("shop-{second}-v002")], "the other cluster is untouched");
    let old = all.iter().find(|g| g.name == format!("shop-{first}-v002")).expect("a's group is kept");
    assert!(old.tags.contains_key(tags::DISABLED_AT) && in_service(old).len() == 2, "disabled, instances kept");
    let new = all.iter().find(|g| g.name == format!("shop-{first}-v003")).unwrap();
    let registered: BTreeSet<String> = w.cloud.registered(&tg_first).iter().map(ToString::to_string).collect();
    assert_eq!(registered, in_service(new));
    assert_eq!(w.cloud.state().instances.len(), launched + 2, "one group of count instances");
    assert!(w.weights().await.is_live(&third));
}

#[tokio::test(start_paused = true)]
async fn blue_green_a_failing_before_traffic_deletes_the_new_group_and_enables_the_previous_one_again() {
    use release_core::model::hook::HookName;
    use release_testkit::hooks::{Script, ScriptedHooks};
    let w = World::with(shop_on_groups("[env.prod.hooks]\nbefore_traffic = \"./smoke\"\n")).await;
    let hooks = ScriptedHooks::new(Arc::new(w.cloud.clock.clone()));
    let (a, b, c) = (w.bake('a').await, w.bake('b').await, w.bake('c').await);
    hooks.script(HookName::BeforeTraffic, Script::exits(0, Duration::from_secs(5), &["ok"]));
    let with_hooks = |mut r: release_core::Release| {
        r.session.hooks = Arc::new(hooks.clone());
        r
    };
    for sha in [&a, &b] {
        w.cloud.clock.advance(Duration::from_secs(600));
        let r = with_hooks(w.release("alice")).promote("prod", sha, &Default::default(), None).await.expect("promote");
        w.release("alice").switch(r.cluster.as_str(), &Default::default(), None).await.expect("switch");
    }
    let weights = w.weights().await;
    let all = groups(&w).await;
    w.cloud.clock.advance(Duration::from_secs(600));
    hooks.script(HookName::BeforeTraffic, Script::exits(1, Duration::from_secs(5), &["smoke failed"]));
    let err = with_hooks(w.release("alice")).promote("prod", &c, &Default::default(), None).await.expect_err("the hook fails");
    assert!(err.message().contains("was deleted"), "{err}");
    let idle = all.iter().find(|g| !g.load_balancers.is_empty() && !weights.is_live(&release_core::model::ids::ClusterName::parse(g.tags[tags::CLUSTER].as_str()).unwrap())).expect("the idle cluster's group");
    let now = group(&w, &idle.name).await.expect("kept");
    assert_eq!(now.load_balancers, idle.load_balancers, "attached again");
    assert!(now.suspended.is_empty() && !now.tags.contains_key(tags::DISABLED_AT), "enabled again: {:?}", now.suspended);
    assert_eq!(groups(&w).await.len(), 2, "the new group is gone");
    assert_eq!(w.weights().await, weights, "traffic never moved");
}

#[tokio::test(start_paused = true)]
async fn scaling_settings_the_pipeline_does_not_declare_are_reported_and_not_carried_over() {
    use release_core::ports::{ScalingPolicy, ScheduledAction};
    let w = World::with(pipeline("")).await;
    let (_, b) = two_releases(&w).await;
    {
        let mut s = w.cloud.state();
        let g = s.scaling.groups.get_mut("shop-web-v002").unwrap();
        g.scheduled.push(ScheduledAction { name: "night".into(), recurrence: Some("0 22 * * *".into()), min: Some(1), desired: Some(1), max: None });
        g.policies.push(ScalingPolicy { name: "custom".into(), kind: "StepScaling".into(), cpu_target: None });
    }
    let plan = w.release("alice").plan_promote("staging", &b, &Default::default()).await.unwrap();
    assert_eq!(plan.asg.as_ref().unwrap().undeclared, vec!["policy custom (StepScaling)".to_owned(), "scheduled action night (0 22 * * *)".to_owned()]);
    w.promote("staging", &b).await.expect("promote");
    let lines = w.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("group shop-web-v002 has scaling settings the pipeline does not declare")), "{lines:#?}");
    let cloud = w.cloud.cloud();
    assert!(cloud.groups.policies("shop-web-v003").await.unwrap().is_empty() && cloud.groups.scheduled_actions("shop-web-v003").await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rollback_killed_before_the_current_group_left_converges_when_run_again_without_a_launch() {
    for step in ["recorded", "healthy"] {
        let w = World::with(pipeline("")).await;
        let (a, b) = two_releases(&w).await;
        w.promote("staging", &b).await.expect("second promote");
        let launched = w.cloud.state().instances.len();
        let (release, _) = w.release_with("alice", Some(step));
        release.rollback("staging", &Default::default(), None).await.expect_err("crashed");
        w.cloud.clock.advance(release_core::engine::lock::LOCK_LEASE + Duration::from_secs(1));
        let rb = w.release("alice").rollback("staging", &Default::default(), None).await.unwrap_or_else(|e| panic!("re-run after a crash at {step}: {e}"));
        assert_eq!((rb.plan.path, &rb.plan.to_commit), (RollbackPath::EnableGroup, &a), "crash at {step}");
        converged(&w, &a, step).await;
        assert_eq!(w.cloud.state().instances.len(), launched, "crash at {step}: nothing launched");
    }
}
