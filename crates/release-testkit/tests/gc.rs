//! `gc` on the in-memory cloud with simulated time: the age rules (an hour for incomplete bakes, `--older-than`
//! for complete ones), rollback still working exactly `keep` times after `gc --keep`, a crash between deregistering
//! and deleting snapshots, and the locks of every environment.

use std::time::Duration;

use release_core::ops::gc::GcOptions;
use release_core::ports::{tags, ImageState};
use release_core::ErrorKind;
use release_testkit::fixtures::World;

const DAY: Duration = Duration::from_secs(86_400);

fn opts(keep: u32, older_than: Duration) -> GcOptions {
    GcOptions { keep, older_than, terminate_orphans: false }
}

#[tokio::test(start_paused = true)]
async fn incomplete_bakes_go_after_an_hour_and_complete_ones_only_after_older_than() {
    let w = World::new(1).await;
    for c in ['a', 'b', 'c'] {
        w.bake(c).await;
        w.cloud.clock.advance(Duration::from_secs(1));
    }
    // A bake killed before its key was written: app and commit tags, no bake key; its snapshot untagged.
    let half = w.cloud.register_image("shop-half", ImageState::Available);
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    w.cloud.cloud().images.tag(&half, &[], &[t(tags::APP, "shop"), t(tags::COMMIT, &"d".repeat(40))]).await.unwrap();
    let half_snap = w.cloud.cloud().images.describe(&half).await.unwrap().unwrap().snapshots;
    let r = w.release("ops");

    let plan = r.plan_gc(&opts(1, 14 * DAY)).await.unwrap();
    assert!(plan.images.is_empty(), "{plan:#?}");
    assert!(plan.verdict(&half).unwrap().starts_with("kept: incomplete bake younger than 1h"), "{:?}", plan.verdict(&half));

    w.cloud.clock.advance(Duration::from_secs(2 * 3600));
    let plan = r.plan_gc(&opts(1, 14 * DAY)).await.unwrap();
    assert_eq!(plan.images.iter().map(|i| &i.ami).collect::<Vec<_>>(), vec![&half], "only the incomplete bake: {plan:#?}");
    assert!(plan.images[0].incomplete && plan.images[0].reason.starts_with("incomplete bake (no bake key), 2h old"), "{:?}", plan.images[0]);
    assert_eq!(plan.kept.len(), 3, "complete bakes 2h old are younger than 14d");

    w.cloud.clock.advance(15 * DAY);
    let plan = r.plan_gc(&opts(1, 14 * DAY)).await.unwrap();
    assert_eq!(plan.images.len(), 3, "a and b (runs nowhere, older than 14d) and the incomplete bake: {plan:#?}");
    assert_eq!(plan.kept.len(), 1);
    assert_eq!(plan.kept[0].reasons, vec!["newest bake of one of the 1 commits baked last (#1)".to_owned()]);
    let report = r.gc(&opts(1, 14 * DAY), Some(&plan)).await.unwrap();
    assert_eq!(report.removed_images.len(), 3);
    {
        let s = w.cloud.state();
        assert_eq!(s.images.values().filter(|(o, _)| o == "self").count(), 1, "one image of ours left");
        assert!(half_snap.iter().all(|x| !s.snapshots.contains(x)), "the incomplete bake's snapshot went with it");
    }
    assert!(!w.locked(), "every lock released");
    let records = w.records("prod").await;
    assert_eq!(records[0].action_name(), "gc", "recorded in the first environment by name");
}

#[tokio::test(start_paused = true)]
async fn after_gc_keep_2_rollback_works_exactly_twice() {
    let w = World::new(1).await;
    let shas = [w.bake('a').await, w.bake('b').await, w.bake('c').await, w.bake('d').await];
    for sha in &shas {
        w.promote("staging", sha).await.unwrap();
    }
    // Bakes of commits that never ran, baked last, so "the commits baked last" protects only them.
    for c in ['e', 'f'] {
        w.bake(c).await;
    }
    w.cloud.clock.advance(DAY);
    let r = w.release("ops");
    let plan = r.plan_gc(&opts(2, Duration::ZERO)).await.unwrap();
    let gone: Vec<String> = plan.images.iter().map(|i| i.commit.clone().unwrap()).collect();
    assert_eq!(gone, vec![shas[0].to_string()], "a, three releases back, goes: {plan:#?}");
    r.gc(&opts(2, Duration::ZERO), None).await.unwrap();
    for want in [&shas[2], &shas[1]] {
        r.rollback("staging", &Default::default(), None).await.expect("rollback after gc --keep 2");
        assert_eq!(w.commits("staging"), vec![want.to_string()]);
    }
    let third = r.rollback("staging", &Default::default(), None).await.expect_err("a third rollback needs a's AMI, removed");
    assert_eq!(third.kind(), ErrorKind::NotFound, "{third}");
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_deregistering_and_deleting_snapshots_is_finished_by_the_next_run() {
    let w = World::new(1).await;
    for c in ['a', 'b', 'c'] {
        w.bake(c).await;
        w.cloud.clock.advance(Duration::from_secs(1));
    }
    // Snapshots carry the app's tag, as bakes leave them.
    let all = w.cloud.cloud().images.app_images(&w.pipeline.app).await.unwrap();
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    for i in &all {
        w.cloud.cloud().images.tag(&i.id, &i.snapshots, &[t(tags::APP, "shop")]).await.unwrap();
    }
    w.cloud.clock.advance(DAY);
    let (crashing, _) = w.release_with("ops", Some("deregistered"));
    let err = crashing.gc(&opts(1, Duration::ZERO), None).await.expect_err("crash");
    assert_eq!(err.kind(), ErrorKind::Crash);
    let orphans = w.cloud.cloud().images.app_snapshots(&w.pipeline.app).await.unwrap().len() - (all.len() - 1);
    assert_eq!(orphans, 1, "the deregistered image's snapshot is left");
    // The dead run's locks hold until their lease runs out.
    let held = w.release("ops").gc(&opts(1, Duration::ZERO), None).await.expect_err("locks of the dead run");
    assert_eq!(held.kind(), ErrorKind::LockHeld);
    w.cloud.clock.advance(Duration::from_secs(300));
    let report = w.release("ops").gc(&opts(1, Duration::ZERO), None).await.unwrap();
    assert_eq!(report.removed_images.len(), 1, "the other old image");
    assert_eq!(report.plan.snapshots.len(), 1, "the orphan snapshot, found by tag");
    let left = w.cloud.cloud().images.app_snapshots(&w.pipeline.app).await.unwrap();
    assert_eq!(left.len(), 1, "only the kept image's snapshot: {left:?}");
    let outcomes: Vec<&str> = w.records("prod").await.iter().filter(|r| r.action_name() == "gc").map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["succeeded", "abandoned"], "the dead run's record is closed, never deleted");
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_of_any_environment_refuses_gc_and_it_leaves_no_lock_behind() {
    let w = World::new(1).await;
    w.bake('a').await;
    w.bake('b').await;
    w.cloud.clock.advance(DAY);
    // A promote of staging that died holding its lock ("prod" sorts first: gc takes it, then fails on staging).
    let (dying, _) = w.release_with("bob", Some("locked"));
    let sha = w.bake('c').await;
    dying.promote("staging", &sha, &Default::default(), None).await.expect_err("crash");
    let before = w.cloud.state().images.len();
    let err = w.release("ops").gc(&opts(1, Duration::ZERO), None).await.expect_err("staging is locked");
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert!(err.message().contains("environment staging is locked by bob"), "{err}");
    assert_eq!(w.cloud.state().images.len(), before, "nothing removed");
    let s = w.cloud.state();
    let held: Vec<&String> = s.locks.values().flat_map(|m| m.keys()).collect();
    assert_eq!(held, vec!["shop#staging"], "gc released prod's lock: {held:?}");
}

#[tokio::test(start_paused = true)]
async fn copies_in_other_regions_follow_their_source() {
    let mut pipeline = release_testkit::fixtures::shop(1, "");
    pipeline.bake.regions = vec!["eu-west-1".into()];
    let w = World::with(pipeline).await;
    let other = w.cloud.other_region("eu-west-1");
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let mut copies = std::collections::BTreeMap::new();
    for c in ['a', 'b', 'c'] {
        let sha = w.bake(c).await;
        w.cloud.clock.advance(Duration::from_secs(1));
        if c == 'b' {
            continue;
        }
        let copy = other.register_image(&format!("shop-{c}-copy"), ImageState::Available);
        let snaps = other.cloud().images.describe(&copy).await.unwrap().unwrap().snapshots;
        other.cloud().images.tag(&copy, &snaps, &[t(tags::APP, "shop"), t(tags::COMMIT, sha.as_str()), t(tags::BAKE_KEY, &format!("key{c}"))]).await.unwrap();
        copies.insert(c, (copy, snaps));
    }
    // A copy whose source was removed by hand.
    let stray = other.register_image("shop-z-copy", ImageState::Available);
    other.cloud().images.tag(&stray, &[], &[t(tags::APP, "shop"), t(tags::COMMIT, &"f".repeat(40)), t(tags::BAKE_KEY, "keyz")]).await.unwrap();
    w.cloud.clock.advance(DAY);

    let r = w.release("ops");
    let plan = r.plan_gc(&opts(1, Duration::ZERO)).await.unwrap();
    let why = |ami: &release_core::model::ids::AmiId| plan.verdict(ami).unwrap_or_default();
    assert!(why(&copies[&'c'].0).starts_with("kept: copy of ") && why(&copies[&'c'].0).ends_with("which is kept"), "{}", why(&copies[&'c'].0));
    assert!(why(&copies[&'a'].0).starts_with("collectable: copy of ") && why(&copies[&'a'].0).ends_with("which goes"), "{}", why(&copies[&'a'].0));
    assert_eq!(why(&stray), "collectable: a copy whose source is gone");
    assert_eq!(plan.images.iter().filter(|i| i.region.as_deref() == Some("eu-west-1")).count(), 2, "{plan:#?}");
    assert_eq!(plan.images.iter().position(|i| i.region.is_none()), Some(2), "copies go before their sources");

    r.gc(&opts(1, Duration::ZERO), None).await.unwrap();
    let left: Vec<_> = other.cloud().images.app_images(&w.pipeline.app).await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(left, vec![copies[&'c'].0.clone()], "only the copy of the kept source is left in eu-west-1");
    let s = other.state();
    assert!(copies[&'a'].1.iter().all(|x| !s.snapshots.contains(x)), "the removed copy's snapshots are gone");
    assert!(copies[&'c'].1.iter().all(|x| s.snapshots.contains(x)), "the kept copy's snapshots stay");
}

#[tokio::test(start_paused = true)]
async fn a_clusters_current_release_out_of_its_load_balancer_is_not_an_orphan() {
    // A load balancer deleted and provisioned again by hand comes back empty: the cluster's instances are in none,
    // but they are still what the ledger says the cluster runs, so gc must not offer to terminate them.
    let w = World::new(1).await;
    let a = w.bake('a').await;
    w.promote("staging", &a).await.unwrap();
    let env = w.pipeline.env("staging").unwrap();
    let target = env.clusters()[0].target.clone();
    let members = w.cloud.cloud().balancer.members(&target).await.unwrap();
    assert!(!members.is_empty());
    w.cloud.cloud().balancer.deregister(&target, &members).await.unwrap();
    let plan = w.release("ops").plan_gc(&opts(1, Duration::ZERO)).await.unwrap();
    assert!(plan.instances.is_empty(), "the cluster's current release is no orphan: {:#?}", plan.instances);
}

#[tokio::test(start_paused = true)]
async fn a_backup_image_of_an_instance_and_an_image_a_launch_template_uses_are_kept_however_old() {
    let w = World::new(1).await;
    for c in ['a', 'b', 'c'] {
        w.bake(c).await;
        w.cloud.clock.advance(Duration::from_secs(1));
    }
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let images = w.cloud.cloud().images.app_images(&w.pipeline.app).await.unwrap();
    let of = |c: char| images.iter().find(|i| i.tags.get(tags::COMMIT) == Some(&c.to_string().repeat(40))).unwrap().id.clone();
    // AWS Backup: an image of one of the app's instances, the instance's tags copied onto it and its snapshot.
    let backup = w.cloud.register_image("AwsBackup_i-0123_0001", ImageState::Available);
    let backup_snaps = w.cloud.cloud().images.describe(&backup).await.unwrap().unwrap().snapshots;
    let instance_tags = [t(tags::APP, "shop"), t(tags::COMMIT, &"a".repeat(40)), t(tags::ENV, "staging"), t(tags::CLUSTER, "staging"), t(tags::RELEASE_ID, "r1")];
    w.cloud.cloud().images.tag(&backup, &backup_snaps, &instance_tags).await.unwrap();
    // Another team's launch template names b's image.
    w.cloud.state().image_references.insert(of('b'), vec!["ec2:LaunchTemplate arn:aws:ec2:us-east-1:1:launch-template/lt-0abc".into()]);
    w.cloud.clock.advance(30 * DAY);

    let r = w.release("ops");
    let plan = r.plan_gc(&opts(1, DAY)).await.unwrap();
    assert!(plan.verdict(&backup).unwrap().starts_with("kept: not a bake"), "{:?}", plan.verdict(&backup));
    assert!(plan.verdict(&of('b')).unwrap().contains("used by ec2:LaunchTemplate"), "{:?}", plan.verdict(&of('b')));
    assert_eq!(plan.images.iter().map(|i| &i.ami).collect::<Vec<_>>(), vec![&of('a')], "only a goes: {plan:#?}");
    assert!(plan.snapshots.is_empty() && plan.notes.is_empty(), "{plan:#?}");
    r.gc(&opts(1, DAY), Some(&plan)).await.unwrap();
    {
        let s = w.cloud.state();
        assert!(s.images.contains_key(&backup) && backup_snaps.iter().all(|x| s.snapshots.contains(x)), "the backup is untouched");
        assert!(s.images.contains_key(&of('b')) && !s.images.contains_key(&of('a')));
    }

    // A region without DescribeImageReferences: gc cannot tell, says so, and goes on.
    w.cloud.state().references_unknown = true;
    let plan = r.plan_gc(&opts(1, DAY)).await.unwrap();
    assert_eq!(plan.images.iter().map(|i| &i.ami).collect::<Vec<_>>(), vec![&of('b')], "{plan:#?}");
    assert!(plan.notes.len() == 1 && plan.notes[0].starts_with("cannot tell whether a launch template or SSM parameter uses the images removed"), "{:?}", plan.notes);
    assert!(plan.verdict(&backup).unwrap().starts_with("kept: not a bake"));
}

/// The image of `sha` (one bake) and its snapshots.
fn image_of(w: &World, sha: &release_core::model::ids::CommitSha) -> (release_core::model::ids::AmiId, Vec<String>) {
    let s = w.cloud.state();
    let (_, img) = s.images.values().find(|(_, i)| i.tags.get(tags::COMMIT).map(String::as_str) == Some(sha.as_str())).expect("baked");
    (img.id.clone(), img.snapshots.clone())
}

#[tokio::test(start_paused = true)]
async fn the_runner_renews_every_environments_lock_while_gc_waits_and_releases_them_all() {
    let w = World::new(1).await;
    let a = w.bake('a').await;
    let b = w.bake('b').await;
    w.cloud.clock.advance(DAY);
    let (ami, snaps) = image_of(&w, &a);
    // EC2 keeps a's snapshot in use for 4.5 minutes after the image is deregistered: longer than the 2-minute lease.
    for s in &snaps {
        w.cloud.state().snapshot_busy.insert(s.clone(), 12);
    }
    let (ops, o) = (w.release("ops"), opts(1, Duration::ZERO));
    let (gc, intruder) = tokio::join!(ops.gc(&o, None), async {
        for minute in 1..=4u64 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            // staging is not the runner's own lock (prod sorts first): it is one it holds besides, renewed with it.
            let err = w.promote("staging", &b).await.expect_err("gc holds staging");
            assert_eq!(err.kind(), ErrorKind::LockHeld, "minute {minute}: {err}");
            assert!(err.message().contains("environment staging is locked by ops"), "minute {minute}: {err}");
        }
    });
    let report = gc.expect("gc finishes under its locks");
    let _ = intruder;
    assert_eq!(report.removed_images, vec![ami]);
    assert!(!w.locked(), "every lock released");
}

#[tokio::test(start_paused = true)]
async fn a_lock_gc_holds_besides_its_own_broken_midway_stops_it_lost_lock_and_the_others_are_released() {
    let w = World::new(1).await;
    let a = w.bake('a').await;
    w.bake('b').await;
    w.cloud.clock.advance(DAY);
    let (_, snaps) = image_of(&w, &a);
    for s in &snaps {
        w.cloud.state().snapshot_busy.insert(s.clone(), 9);
    }
    let (bob, ops, o) = (w.release("bob"), w.release("ops"), opts(1, Duration::ZERO));
    let (gc, broken) = tokio::join!(ops.gc(&o, None), async {
        tokio::time::sleep(Duration::from_secs(40)).await;
        bob.unlock("staging", true).await
    });
    assert!(broken.unwrap().broken);
    let err = gc.expect_err("gc lost staging's lock");
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert!(err.message().contains("lost the lock of env staging: it was broken"), "{err}");
    let r = &w.records("prod").await[0];
    assert_eq!(r.action_name(), "gc");
    assert_eq!(r.outcome, release_core::model::ledger::Outcome::LostLock, "{r:?}");
    assert!(!w.locked(), "prod's lock released too; staging's was broken");
}
