//! `release gc`: removes what the app no longer needs (old AMIs and their snapshots, incomplete bakes, snapshots
//! whose image is gone, orphan instances), led by the ledger, and never what runs or what rollback may return to.
//!
//! *Observe -> plan -> apply.* [`plan`] reads the world in a bounded number of calls, whatever the number of images
//! (one describe of snapshots, images and instances each, per environment one ledger query, with dns one zone lookup
//! and one record listing, one member listing per cluster) and returns a [`Plan`]: each image kept with the reasons
//! it stays, each thing removed with the reason it goes. [`gc`] runs in the operation runner holding the lock of
//! **every** environment of the app (the first as the runner's own, the others through [`OpSpec::also_locking`]: in
//! name order, never waiting, so a promote holding one cannot deadlock with it), plans again under them, and applies.
//!
//! **What rollback needs** comes from the function rollback itself walks: per environment, the commit live now and
//! the `keep` releases before it, found by calling [`ledger::rollback_target`] on [`ledger::live_history`] `keep`
//! times, each target's AMI chosen by [`crate::observe::images::find_ami`] as a rollback's promote would. So gc and rollback can
//! never disagree about what the next `keep` rollbacks need.
//!
//! **Crash safety.** An image goes in two steps: its snapshots carry `release:app` (bakes tag them; gc tags the
//! untagged snapshots of incomplete bakes first), then it is deregistered, then its snapshots are deleted. A run
//! killed between the two leaves tagged snapshots of no image, which the next run finds ([`crate::ports::Images::app_snapshots`])
//! and deletes. The ledger is never deleted from: gc records what it removed as a record of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::model::clock::{format_duration, Timestamp};
use crate::model::error::{Cause, Input, Refused, Result};
use crate::model::ids::{short_sha, AmiId, AppName, ClusterName, CommitSha, EnvName, InstanceId};
use crate::model::ledger::{self, Action, GcDetails, Outcome, Record};
use crate::model::pipeline::{Environment, Pipeline};
use crate::ports::{tags, Image, ImageReferences, ImageState, Instance, Snapshot};
use crate::engine::runner::{self, Op, OpSpec};
use crate::observe::world;
use crate::engine::session::Session;

/// Incomplete bakes (no bake key) younger than this may still be baking: they are kept.
pub const INCOMPLETE_AFTER: Duration = Duration::from_secs(3600);
/// The default `--keep`: rollback targets per environment, and commits baked last.
pub const DEFAULT_KEEP: u32 = 3;
/// The default `--older-than`.
pub const DEFAULT_OLDER_THAN: Duration = Duration::from_secs(14 * 86_400);

/// What `gc` is asked to do.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Rollback targets kept per environment, and how many of the commits baked last keep their newest bake.
    pub keep: u32,
    /// Images younger than this are kept.
    pub older_than: Duration,
    /// Terminate orphan instances (the user confirmed, or `--yes`); otherwise they are only listed.
    pub terminate_orphans: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self { keep: DEFAULT_KEEP, older_than: DEFAULT_OLDER_THAN, terminate_orphans: false }
    }
}

/// `3d4h`, `2h`, `45m`: an age for people.
pub fn format_age(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 86_400 {
        let days = secs / 86_400;
        let hours = secs % 86_400 / 3600;
        if hours == 0 { format!("{days}d") } else { format!("{days}d{hours}h") }
    } else if secs >= 60 {
        format_duration(Duration::from_secs(secs - secs % 60))
    } else {
        format_duration(Duration::from_secs(secs))
    }
}

/// An image that stays, and every reason it does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeptImage {
    /// The region, for a bake's copy in another region (`[bake] regions`); none for this region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AMI.
    pub ami: AmiId,
    /// Its name.
    pub name: String,
    /// Its commit tag.
    pub commit: Option<String>,
    /// When it was created, as EC2 says.
    pub created: String,
    /// `running in prod/prod2`, `rollback target of staging (2nd previous)`, ...
    pub reasons: Vec<String>,
}

/// An image that goes, with its snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CollectImage {
    /// The region, for a bake's copy in another region (`[bake] regions`); none for this region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AMI.
    pub ami: AmiId,
    /// Its name.
    pub name: String,
    /// Its commit tag.
    pub commit: Option<String>,
    /// When it was created.
    pub created: String,
    /// Its snapshots (read from its block device mappings before it is deregistered).
    pub snapshots: Vec<String>,
    /// An incomplete bake (no bake key, or failed), rather than an old complete one.
    pub incomplete: bool,
    /// Why it goes.
    pub reason: String,
}

/// A snapshot of the app whose image is gone (a deregistration whose run died before deleting it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrphanSnapshot {
    /// The region, for a bake's copy in another region (`[bake] regions`); none for this region's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `snap-...`.
    pub id: String,
    /// Its commit tag.
    pub commit: Option<String>,
    /// Its size.
    pub size_gb: Option<u32>,
    /// Why it goes.
    pub reason: String,
}

/// An instance of the app that serves nothing and belongs to no operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrphanInstance {
    /// The instance.
    pub id: InstanceId,
    /// Its image.
    pub ami: String,
    /// Its state.
    pub state: crate::ports::InstanceState,
    /// `env/cluster` from its tags, as far as known.
    pub launched_as: String,
    /// Its commit tag.
    pub commit: Option<String>,
    /// Why it goes.
    pub reason: String,
}

/// What `gc` will do: a plain value (`--plan` prints it and writes nothing).
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The app.
    pub app: AppName,
    /// `--keep`.
    pub keep: u32,
    /// `--older-than`.
    pub older_than: String,
    /// Every image kept, with why.
    pub kept: Vec<KeptImage>,
    /// Images removed (deregistered, then their snapshots deleted).
    pub images: Vec<CollectImage>,
    /// Snapshots of images already gone.
    pub snapshots: Vec<OrphanSnapshot>,
    /// Orphan instances (terminated only when confirmed or `--yes`).
    pub instances: Vec<OrphanInstance>,
    /// The environments whose locks gc holds while it deletes.
    pub envs: Vec<EnvName>,
    /// What the plan could not check (`image references not checked in ...`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// One line.
    pub summary: String,
}

impl Plan {
    /// Whether there is nothing to remove (orphan instances included).
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.snapshots.is_empty() && self.instances.is_empty()
    }

    /// The reason an image is kept, or `collectable: ...`, for `images`.
    pub fn verdict(&self, ami: &AmiId) -> Option<String> {
        if let Some(k) = self.kept.iter().find(|k| &k.ami == ami) {
            return Some(format!("kept: {}", k.reasons.join("; ")));
        }
        self.images.iter().find(|c| &c.ami == ami).map(|c| format!("collectable: {}", c.reason))
    }
}

/// What a gc run did.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The ledger record (in the first environment), if anything was removed.
    pub release_id: Option<String>,
    /// The plan carried out.
    pub plan: Plan,
    /// Images deregistered (their snapshots deleted).
    pub removed_images: Vec<AmiId>,
    /// Snapshots deleted.
    pub removed_snapshots: Vec<String>,
    /// Instances terminated.
    pub terminated: Vec<InstanceId>,
    /// Orphan instances left running because termination was not confirmed.
    pub instances_left: Vec<InstanceId>,
}

/// What gc decides from.
#[derive(Clone, Debug)]
pub struct World {
    /// The app's images (every state).
    pub images: Vec<Image>,
    /// The app's tagged snapshots.
    pub snapshots: Vec<Snapshot>,
    /// The app's instances.
    pub instances: Vec<Instance>,
    /// Each environment's records.
    pub records: Vec<(EnvName, Vec<Record>)>,
    /// Per environment, the commits live now (more than one during a gradual shift).
    pub live: BTreeMap<EnvName, Vec<CommitSha>>,
    /// Every instance registered in one of the app's load balancers.
    pub members: BTreeSet<InstanceId>,
    /// Now.
    pub now: Timestamp,
    /// The bake copies in the other regions of `[bake] regions`.
    pub copies: Vec<RegionCopies>,
    /// What else uses images gc would remove (launch templates, SSM parameters), per image, any region.
    pub used_by: BTreeMap<AmiId, Vec<String>>,
    /// Regions where that could not be asked (the endpoint has no DescribeImageReferences), with the answer.
    pub references_unknown: Vec<String>,
}

/// What one other region holds of the app: the copies bakes made there, their snapshots, instances running them.
#[derive(Clone, Debug)]
pub struct RegionCopies {
    /// The region.
    pub region: String,
    /// The app's images there.
    pub images: Vec<Image>,
    /// The app's tagged snapshots there.
    pub snapshots: Vec<Snapshot>,
    /// The app's instances there.
    pub instances: Vec<Instance>,
}

/// Reads what gc decides from. Snapshots are listed *before* images: a bake tags its AMI and snapshots in one call,
/// once the AMI is available, so every snapshot seen tagged has its image in the listing that follows; the other
/// order could take a concurrent bake's fresh snapshots for orphans.
pub async fn observe(session: &Session, pipeline: &Pipeline) -> Result<World> {
    let cloud = &session.cloud;
    let app = &pipeline.app;
    let snapshots = cloud.images.app_snapshots(app).await?;
    let (images, instances) = tokio::try_join!(cloud.images.app_images(app), cloud.fleet.app_instances(app))?;
    let mut records = Vec::new();
    let mut live = BTreeMap::new();
    let mut members = BTreeSet::new();
    for env in &pipeline.envs {
        let recs = match cloud.ledger.records(&pipeline.ledger_table, app, &env.name, None).await {
            Ok(r) => r,
            // No ledger table yet (nothing provisioned): no history, nothing deployed through release.
            Err(e) if e.is(Cause::Missing) => Vec::new(),
            Err(e) => return Err(e),
        };
        records.push((env.name.clone(), recs));
        live.insert(env.name.clone(), live_commits(session, env, &instances).await?);
        for c in env.clusters() {
            match cloud.balancer.members(&c.target).await {
                Ok(m) => members.extend(m),
                // Not provisioned (or deleted by hand): nothing is registered there.
                Err(e) if e.is(Cause::Missing) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut copies = Vec::new();
    for region in &pipeline.bake.regions {
        let (imgs, fleet) = (cloud.images.in_region(region).await?, cloud.fleet.in_region(region).await?);
        let snapshots = imgs.app_snapshots(app).await?;
        let (images, instances) = tokio::try_join!(imgs.app_images(app), fleet.app_instances(app))?;
        copies.push(RegionCopies { region: region.clone(), images, snapshots, instances });
    }
    Ok(World { images, snapshots, instances, records, live, members, now: cloud.clock.now(), copies, used_by: BTreeMap::new(), references_unknown: Vec::new() })
}

/// Observes, plans, then asks whether anything else uses the images the plan removes (one DescribeImageReferences per
/// region with candidates) and plans again with the answer: an image a launch template or SSM parameter names stays.
/// When a region's endpoint has no such operation gc cannot tell and goes on, saying so in the plan's notes: that
/// region offers nothing to ask (AWS launched the call in 2025; emulators lack it), and refusing there would make gc
/// unusable; any other failure (denied, throttled) stops gc before it removes anything.
async fn observe_and_plan(session: &Session, pipeline: &Pipeline, opts: &GcOptions) -> Result<(World, Plan)> {
    let mut w = observe(session, pipeline).await?;
    let first = plan_from(pipeline, &w, opts);
    let mut regions: BTreeMap<Option<String>, Vec<AmiId>> = BTreeMap::new();
    for img in &first.images {
        regions.entry(img.region.clone()).or_default().push(img.ami.clone());
    }
    for (region, amis) in regions {
        let images = match &region {
            Some(r) => session.cloud.images.in_region(r).await?,
            None => session.cloud.images.clone(),
        };
        match images.references(&amis).await? {
            ImageReferences::Known(used) => w.used_by.extend(used),
            ImageReferences::Unknown(why) => w.references_unknown.push(format!(
                "cannot tell whether a launch template or SSM parameter uses the images removed{}: {why}",
                region.map(|r| format!(" in {r}")).unwrap_or_default()
            )),
        }
    }
    let plan = plan_from(pipeline, &w, opts);
    Ok((w, plan))
}

/// The commits live in `env` now: its only cluster's, or those of the clusters with weight (the live name's).
async fn live_commits(session: &Session, env: &Environment, instances: &[Instance]) -> Result<Vec<CommitSha>> {
    let clusters: Vec<&crate::model::pipeline::Cluster> = match world::live_name(&session.cloud, env).await {
        Ok(None) => env.clusters().iter().collect(),
        Ok(Some(live)) => env.clusters().iter().filter(|c| live.weights.is_live(&c.name)).collect(),
        // An environment not provisioned yet has nothing live.
        Err(e) if e.is(Cause::Missing) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(clusters.into_iter().filter_map(|c| crate::observe::world::commit_of(env, c, instances)).collect())
}

/// The commits the next `n` rollbacks from `live` go to, in order: [`ledger::rollback_target`] applied `n` times,
/// exactly as `n` successive `release rollback` runs would walk [`ledger::live_history`].
pub fn rollback_chain(stack: &[ledger::LiveRelease], live: &CommitSha, n: u32) -> Vec<CommitSha> {
    let mut out = Vec::new();
    let mut current = live.clone();
    for _ in 0..n {
        let Some(target) = ledger::rollback_target(stack, &current) else { break };
        out.push(target.commit.clone());
        current = target.commit.clone();
    }
    out
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "previous".into(),
        2 => "2nd previous".into(),
        3 => "3rd previous".into(),
        n => format!("{n}th previous"),
    }
}

/// `2026-11-29T19:13:11.000Z` (EC2) or `2026-11-29T19:13:11Z` as a timestamp.
pub fn parse_created(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Timestamp::from_millis((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000))
}

/// Decides, from `w`, what goes and why, and what stays and why.
pub fn plan_from(pipeline: &Pipeline, w: &World, opts: &GcOptions) -> Plan {
    let complete: Vec<Image> = w.images.iter().filter(|i| i.is_complete_bake() && i.is_bake()).cloned().collect();
    let mut reasons = Reasons::default();
    reasons.outside(w);
    reasons.of_envs(w, opts, &complete);
    let newest_by_commit = newest_by_commit(&complete);
    reasons.of_newest(&newest_by_commit, opts);
    reasons.of_age(w, opts);
    let (mut kept, images) = sort_images(w, opts, reasons, &newest_by_commit);

    let mut snapshots = orphan_snapshots(w);
    let (mut kept_copies, mut images_copies) = (Vec::new(), Vec::new());
    copies_plan(w, opts, &kept, &images, &mut kept_copies, &mut images_copies, &mut snapshots);
    let instances = orphan_instances(w);

    // Copies are removed before their source (a run that dies in between leaves copies whose source still goes).
    images_copies.extend(images);
    let images = images_copies;
    kept.extend(kept_copies);
    let mut envs: Vec<EnvName> = pipeline.envs.iter().map(|e| e.name.clone()).collect();
    envs.sort();
    let gb: u32 = snapshots.iter().filter_map(|s| s.size_gb).sum();
    let summary = format!(
        "{}: remove {} image(s) ({} snapshot(s)) and {} snapshot(s) of images already gone{}, {} orphan instance(s); keep {} image(s)",
        pipeline.app,
        images.len(),
        images.iter().map(|i| i.snapshots.len()).sum::<usize>(),
        snapshots.len(),
        if gb > 0 { format!(" ({gb} GiB)") } else { String::new() },
        instances.len(),
        kept.len()
    );
    let notes = w.references_unknown.clone();
    Plan { app: pipeline.app.clone(), keep: opts.keep, older_than: format_age(opts.older_than), kept, images, snapshots, instances, envs, notes, summary }
}

/// Why each image stays, in the order the reasons were found.
#[derive(Default)]
struct Reasons(BTreeMap<AmiId, Vec<String>>);

impl Reasons {
    fn keep(&mut self, ami: &AmiId, why: String) {
        let r = self.0.entry(ami.clone()).or_default();
        if !r.contains(&why) {
            r.push(why);
        }
    }

    /// What is not gc's to judge: images that are not bakes, images something else uses, images instances run.
    fn outside(&mut self, w: &World) {
        // Images made from the app's instances by something else (a backup carrying the instance's tags): not ours.
        for i in w.images.iter().filter(|i| !i.is_bake()) {
            self.keep(&i.id, "not a bake: made from an instance of the app by something else (it carries the instance's tags)".to_owned());
        }
        // Used outside release (a launch template, an SSM parameter): removing it would break them.
        for i in &w.images {
            if let Some(used) = w.used_by.get(&i.id) {
                self.keep(&i.id, format!("used by {}", used.join(", ")));
            }
        }
        // Running anywhere (any state but terminated: a stopped instance starts from its image's snapshots no more,
        // but its owner may still want to relaunch it like it).
        for i in w.instances.iter().filter(|i| !i.state.is_gone()) {
            if let Some(img) = w.images.iter().find(|img| img.id.as_str() == i.ami) {
                let why = match (i.tags.get(tags::ENV), i.tags.get(tags::CLUSTER)) {
                    (Some(e), Some(c)) => format!("running in {e}/{c}"),
                    _ => format!("run by instance {} (of no cluster)", i.id),
                };
                self.keep(&img.id, why);
            }
        }
    }

    /// Per environment: what is live now, the targets of the next `keep` rollbacks, what unfinished runs use.
    fn of_envs(&mut self, w: &World, opts: &GcOptions, complete: &[Image]) {
        for (env, records) in &w.records {
            let stack = ledger::live_history(records);
            let mut lives: Vec<CommitSha> = w.live.get(env).cloned().unwrap_or_default();
            // What the ledger says is live, in case the world cannot tell (a cluster emptied by hand).
            if let Some(top) = stack.last() {
                if !lives.contains(&top.commit) {
                    lives.push(top.commit.clone());
                }
            }
            for live in &lives {
                if let Some(img) = crate::observe::images::find_ami(complete, live) {
                    self.keep(&img.id, format!("live in {env}"));
                }
                for (n, target) in rollback_chain(&stack, live, opts.keep).iter().enumerate() {
                    if let Some(img) = crate::observe::images::find_ami(complete, target) {
                        self.keep(&img.id, format!("rollback target of {env} ({})", ordinal(n + 1)));
                    }
                }
            }
            // Anything an unfinished operation refers to (a promote under way, or one whose process died).
            for r in records.iter().filter(|r| r.outcome == Outcome::Started && !matches!(r.action, Action::Gc(_))) {
                let why = format!("unfinished {} in {env} (release {})", r.action_name(), r.release_id);
                if let Some(p) = r.promote_details() {
                    if let Some(img) = w.images.iter().find(|i| i.id == p.ami) {
                        self.keep(&img.id, why.clone());
                    }
                }
                if let Some(c) = r.commit() {
                    for img in w.images.iter().filter(|i| i.tags.get(tags::COMMIT).map(String::as_str) == Some(c.as_str())) {
                        self.keep(&img.id, why.clone());
                    }
                }
            }
        }
    }

    /// The newest complete bake of each of the last `keep` commits baked.
    fn of_newest(&mut self, newest_by_commit: &BTreeMap<&str, &Image>, opts: &GcOptions) {
        let mut newest: Vec<&Image> = newest_by_commit.values().copied().collect();
        newest.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
        for (n, img) in newest.iter().take(opts.keep as usize).enumerate() {
            self.keep(&img.id, format!("newest bake of one of the {} commits baked last (#{})", opts.keep, n + 1));
        }
    }

    /// Young images, pending ones, and incomplete bakes that may still be baking.
    fn of_age(&mut self, w: &World, opts: &GcOptions) {
        for i in &w.images {
            match age(w, i) {
                None => self.keep(&i.id, format!("creation time unknown ({:?})", i.created)),
                Some(a) if i.is_complete_bake() && a < opts.older_than => self.keep(&i.id, format!("younger than {}", format_age(opts.older_than))),
                Some(a) if !i.is_complete_bake() && a < INCOMPLETE_AFTER && i.state != ImageState::Failed => {
                    self.keep(&i.id, "incomplete bake younger than 1h: it may still be baking".to_owned())
                }
                _ => {}
            }
            if i.state == ImageState::Pending {
                self.keep(&i.id, "pending (being created)".into());
            }
        }
    }
}

/// An image's age at `w.now`, if EC2's creation time reads.
fn age(w: &World, i: &Image) -> Option<Duration> {
    parse_created(&i.created).map(|t| w.now.since(t))
}

/// The newest complete bake of each commit.
fn newest_by_commit(complete: &[Image]) -> BTreeMap<&str, &Image> {
    let mut newest: BTreeMap<&str, &Image> = BTreeMap::new();
    for i in complete {
        let Some(c) = i.tags.get(tags::COMMIT) else { continue };
        let e = newest.entry(c.as_str()).or_insert(i);
        if (i.created.as_str(), i.name.as_str()) > (e.created.as_str(), e.name.as_str()) {
            *e = i;
        }
    }
    newest
}

/// This region's images, newest first, into those kept (with their reasons) and those removed (with why).
fn sort_images(w: &World, opts: &GcOptions, mut reasons: Reasons, newest_by_commit: &BTreeMap<&str, &Image>) -> (Vec<KeptImage>, Vec<CollectImage>) {
    let mut kept = Vec::new();
    let mut images = Vec::new();
    let mut sorted: Vec<&Image> = w.images.iter().collect();
    sorted.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    for i in sorted {
        let commit = i.tags.get(tags::COMMIT).cloned();
        if let Some(r) = reasons.0.remove(&i.id) {
            kept.push(KeptImage { region: None, ami: i.id.clone(), name: i.name.clone(), commit, created: i.created.clone(), reasons: r });
            continue;
        }
        let old = age(w, i).map(format_age).unwrap_or_default();
        let incomplete = !i.is_complete_bake();
        let reason = if incomplete {
            if i.state == ImageState::Failed {
                format!("failed bake, {old} old")
            } else {
                format!("incomplete bake (no bake key), {old} old")
            }
        } else {
            let newer = commit.as_deref().and_then(|c| newest_by_commit.get(c)).filter(|n| n.id != i.id);
            match newer {
                Some(n) => format!("an older bake of {} ({} is its newest), {old} old", short_sha(commit.as_deref().unwrap_or("")), n.id),
                None => format!(
                    "runs nowhere, no rollback target within --keep {}, not among the {} commits baked last, {old} old",
                    opts.keep, opts.keep
                ),
            }
        };
        images.push(CollectImage { region: None, ami: i.id.clone(), name: i.name.clone(), commit, created: i.created.clone(), snapshots: i.snapshots.clone(), incomplete, reason });
    }
    (kept, images)
}

/// Snapshots of the app's bakes that no image (in any state) holds any more. Only a bake's (the positive marker,
/// `Snapshot::is_of_a_bake`): a backup tool's snapshot of a launched volume carries `release:app` too.
fn orphan_snapshots(w: &World) -> Vec<OrphanSnapshot> {
    let held: BTreeSet<&str> = w.images.iter().flat_map(|i| i.snapshots.iter().map(String::as_str)).collect();
    w.snapshots
        .iter()
        .filter(|s| !held.contains(s.id.as_str()) && s.is_of_a_bake())
        .map(|s| {
            let commit = s.tags.get(tags::COMMIT).cloned();
            OrphanSnapshot {
                region: None,
                id: s.id.clone(),
                reason: format!("its image is gone (a baked image of {} deregistered earlier)", commit.as_deref().map(short_sha).unwrap_or("an unknown commit")),
                commit,
                size_gb: s.size_gb,
            }
        })
        .collect()
}

/// Orphan instances: the app's, serving nowhere, of no cluster's current release, of no unfinished operation.
fn orphan_instances(w: &World) -> Vec<OrphanInstance> {
    let current = current_releases(w);
    let mut busy: BTreeSet<String> = BTreeSet::new();
    let mut busy_ids: BTreeSet<InstanceId> = BTreeSet::new();
    for (_, records) in &w.records {
        for r in records.iter().filter(|r| r.outcome == Outcome::Started) {
            busy.insert(r.release_id.to_string());
            busy.insert(r.holder.to_string());
            if let Some(p) = r.promote_details() {
                busy_ids.extend(p.new_instances.iter().cloned());
            }
        }
    }
    w.instances
        .iter()
        .filter(|i| !i.state.is_gone())
        .filter(|i| !w.members.contains(&i.id) && !busy_ids.contains(&i.id))
        .filter(|i| {
            let rel = world::release_of(i);
            rel.is_empty() || (!current.contains(rel) && !busy.contains(rel))
        })
        .map(|i| {
            let launched_as = match (i.tags.get(tags::ENV), i.tags.get(tags::CLUSTER)) {
                (Some(e), Some(c)) => format!("{e}/{c}"),
                _ => "-".into(),
            };
            OrphanInstance {
                id: i.id.clone(),
                ami: i.ami.clone(),
                state: i.state,
                commit: i.tags.get(tags::COMMIT).cloned(),
                reason: format!(
                    "in no load balancer, of no cluster's current release{}, of no unfinished operation",
                    if world::release_of(i).is_empty() { String::new() } else { format!(" (release {})", world::release_of(i)) }
                ),
                launched_as,
            }
        })
        .collect()
}

/// Each cluster's current release: what its load balancer serves, and what the ledger says it runs (a load
/// balancer deleted and provisioned again by hand comes back empty, and the cluster's instances are then in none,
/// but they are not orphans).
fn current_releases(w: &World) -> BTreeSet<&str> {
    let mut current: BTreeSet<&str> = BTreeSet::new();
    for i in w.instances.iter().filter(|i| w.members.contains(&i.id)) {
        current.insert(world::release_of(i));
    }
    for (_, records) in &w.records {
        let mut newest: BTreeMap<&ClusterName, &Record> = BTreeMap::new();
        for r in records.iter().filter(|r| r.outcome == Outcome::Succeeded) {
            if let Some(p) = r.promote_details() {
                let slot = newest.entry(&p.cluster).or_insert(r);
                if r.started > slot.started {
                    *slot = r;
                }
            }
        }
        current.extend(newest.values().map(|r| r.release_id.as_str()));
    }
    current
}

/// Copies in other regions follow their source (same commit and bake key in this region): kept while it is,
/// removed when it goes or is gone; whatever the source, a copy that runs there, or is young, stays.
fn copies_plan(
    w: &World,
    opts: &GcOptions,
    kept: &[KeptImage],
    collected: &[CollectImage],
    kept_copies: &mut Vec<KeptImage>,
    images_copies: &mut Vec<CollectImage>,
    orphans: &mut Vec<OrphanSnapshot>,
) {
    let home_ids: BTreeSet<&AmiId> = w.images.iter().map(|i| &i.id).collect();
    let key = |i: &Image| (i.tags.get(tags::COMMIT).cloned(), i.tags.get(tags::BAKE_KEY).cloned());
    for rc in &w.copies {
        let region = &rc.region;
        let mine: Vec<&Image> = rc.images.iter().filter(|i| !home_ids.contains(&i.id)).collect();
        for img in &mine {
            let mut reasons = Vec::new();
            let running = rc.instances.iter().filter(|i| i.ami == img.id.as_str() && !i.state.is_gone()).count();
            if running > 0 {
                reasons.push(format!("running in {region} ({running} instance(s))"));
            }
            let source = w.images.iter().find(|s| key(s) == key(img) && key(s).1.is_some());
            if let Some(src) = source {
                if kept.iter().any(|k| k.ami == src.id) {
                    reasons.push(format!("copy of {}, which is kept", src.id));
                }
            }
            let age = parse_created(&img.created).map(|t| w.now.since(t));
            match age {
                None => reasons.push(format!("creation time unknown ({:?})", img.created)),
                Some(a) if a < opts.older_than => reasons.push(format!("younger than {}", format_age(opts.older_than))),
                Some(a) if !img.is_complete_bake() && a < INCOMPLETE_AFTER => reasons.push("incomplete copy younger than 1h".to_owned()),
                _ => {}
            }
            if img.state == ImageState::Pending {
                reasons.push("pending (being copied)".into());
            }
            if !img.is_bake() {
                reasons.push("not a bake: made from an instance of the app by something else (it carries the instance's tags)".into());
            }
            if let Some(used) = w.used_by.get(&img.id) {
                reasons.push(format!("used by {}", used.join(", ")));
            }
            let commit = img.tags.get(tags::COMMIT).cloned();
            if !reasons.is_empty() {
                kept_copies.push(KeptImage { region: Some(region.clone()), ami: img.id.clone(), name: img.name.clone(), commit, created: img.created.clone(), reasons });
                continue;
            }
            let reason = match source {
                Some(src) if collected.iter().any(|c| c.ami == src.id) => format!("copy of {}, which goes", src.id),
                Some(src) => format!("copy of {}", src.id),
                None => "a copy whose source is gone".to_owned(),
            };
            images_copies.push(CollectImage {
                region: Some(region.clone()),
                ami: img.id.clone(),
                name: img.name.clone(),
                commit,
                created: img.created.clone(),
                snapshots: img.snapshots.clone(),
                incomplete: !img.is_complete_bake(),
                reason,
            });
        }
        let held: BTreeSet<&str> = rc.images.iter().flat_map(|i| i.snapshots.iter().map(String::as_str)).collect();
        for sn in rc.snapshots.iter().filter(|s| !held.contains(s.id.as_str()) && s.is_of_a_bake()) {
            let commit = sn.tags.get(tags::COMMIT).cloned();
            orphans.push(OrphanSnapshot {
                region: Some(region.clone()),
                id: sn.id.clone(),
                reason: format!("its image in {region} is gone (a copy of {} deregistered earlier)", commit.as_deref().map(short_sha).unwrap_or("an unknown commit")),
                commit,
                size_gb: sn.size_gb,
            });
        }
    }
}

/// Observes and plans; writes nothing.
pub async fn plan(session: &Session, pipeline: &Pipeline, opts: &GcOptions) -> Result<Plan> {
    Ok(observe_and_plan(session, pipeline, opts).await?.1)
}

/// The environments in the order their locks are taken: by name, so two runs that each need several never hold
/// one the other waits for (and gc never waits anyway).
fn lock_order(pipeline: &Pipeline) -> Vec<&Environment> {
    let mut envs: Vec<&Environment> = pipeline.envs.iter().collect();
    envs.sort_by(|a, b| a.name.cmp(&b.name));
    envs
}

/// Removes what the plan made under the locks says. `confirmed`: the plan shown to the user; refused when the new
/// plan would remove anything that one did not list.
pub async fn gc(session: &Session, pipeline: &Pipeline, opts: &GcOptions, confirmed: Option<&Plan>) -> Result<Report> {
    let order = lock_order(pipeline);
    let Some(first) = order.first().copied() else {
        return Err(Input::NoEnvironments { app: pipeline.app.to_string() }.into());
    };
    let spec = OpSpec::new(format!("gc of {}", pipeline.app)).also_locking(order[1..].iter().map(|e| e.name.clone()));
    runner::run(session, pipeline, first, spec, async |op: &mut Op<'_>| apply(op, pipeline, opts, confirmed).await).await
}

async fn apply(op: &mut Op<'_>, pipeline: &Pipeline, opts: &GcOptions, confirmed: Option<&Plan>) -> Result<Report> {
    op.step(crate::model::phase::Checkpoint::LockedAll)?;
    let (w, plan) = observe_and_plan(op.session(), pipeline, opts).await?;
    if let Some(c) = confirmed {
        unchanged_since(c, &plan, opts)?;
    }
    let mut report = Report {
        release_id: None,
        plan: plan.clone(),
        removed_images: Vec::new(),
        removed_snapshots: Vec::new(),
        terminated: Vec::new(),
        instances_left: if opts.terminate_orphans { Vec::new() } else { plan.instances.iter().map(|i| i.id.clone()).collect() },
    };
    let terminate: Vec<InstanceId> = if opts.terminate_orphans { plan.instances.iter().map(|i| i.id.clone()).collect() } else { Vec::new() };
    if plan.images.is_empty() && plan.snapshots.is_empty() && terminate.is_empty() {
        return Ok(report);
    }
    open_record(op, &w, &plan, opts).await?;
    report.release_id = Some(op.run_id().to_string());
    op.step(crate::model::phase::Checkpoint::Recorded)?;
    op.point_of_no_return("a deregistered image cannot be brought back");
    remove_images(op, pipeline, &w, &plan, &mut report).await?;
    remove_orphan_snapshots(op, &plan, &mut report).await?;
    terminate_orphans(op, terminate, &mut report).await?;
    Ok(report)
}

/// Refuses when the plan made under the locks would remove anything the `confirmed` one (shown to the user) did not.
fn unchanged_since(confirmed: &Plan, plan: &Plan, opts: &GcOptions) -> Result<()> {
    let shown: BTreeSet<&AmiId> = confirmed.images.iter().map(|i| &i.ami).collect();
    let shown_i: BTreeSet<&InstanceId> = confirmed.instances.iter().map(|i| &i.id).collect();
    let new_images: Vec<String> = plan.images.iter().filter(|i| !shown.contains(&i.ami)).map(|i| i.ami.to_string()).collect();
    let new_inst = plan.instances.iter().any(|i| opts.terminate_orphans && !shown_i.contains(&i.id));
    if !new_images.is_empty() || new_inst {
        return Err(Refused::GcPlanGrew { images: new_images }.into());
    }
    Ok(())
}

/// Closes the records of earlier gc runs that died (this run finishes their work: their leftovers are in its plan),
/// then opens this run's.
async fn open_record(op: &mut Op<'_>, w: &World, plan: &Plan, opts: &GcOptions) -> Result<()> {
    let first_env = op.env().name.clone();
    if let Some((_, records)) = w.records.iter().find(|(e, _)| *e == first_env) {
        for r in records.iter().filter(|r| r.outcome == Outcome::Started && matches!(r.action, Action::Gc(_))) {
            let detail = format!("its process died; release {} finished what was left", op.run_id());
            crate::steps::records::close(op, r, Outcome::Abandoned, None, detail).await?;
        }
    }
    let details = GcDetails {
        keep: opts.keep,
        older_than: format_age(opts.older_than),
        envs: plan.envs.clone(),
        planned_images: plan.images.iter().map(|i| i.ami.clone()).collect(),
        ..Default::default()
    };
    let record = op.draft(Action::Gc(details));
    op.open(record).await
}

/// The images of `region` (this one when `None`).
async fn images_in(op: &Op<'_>, region: Option<&str>) -> Result<std::sync::Arc<dyn crate::ports::Images>> {
    match region {
        Some(r) => op.cloud().images.in_region(r).await,
        None => Ok(op.cloud().images.clone()),
    }
}

/// Removes the plan's images one by one, each recorded as it goes: its snapshots marked, deregistered, its
/// snapshots deleted.
async fn remove_images(op: &mut Op<'_>, pipeline: &Pipeline, w: &World, plan: &Plan, report: &mut Report) -> Result<()> {
    // Marked: findable by tag and known to be a bake's once the image is gone.
    let tagged: BTreeSet<&str> =
        w.snapshots.iter().chain(w.copies.iter().flat_map(|c| c.snapshots.iter())).filter(|s| s.is_of_a_bake()).map(|s| s.id.as_str()).collect();
    let n = plan.images.len();
    for (k, img) in plan.images.iter().enumerate() {
        op.guard().await?;
        // Snapshots must be findable, and known as this image's, after it is gone: mark those a bake did not
        // (incomplete bakes, bakes of older versions without `release:ami`).
        let images = images_in(op, img.region.as_deref()).await?;
        let untagged: Vec<String> = img.snapshots.iter().filter(|s| !tagged.contains(s.as_str())).cloned().collect();
        if !untagged.is_empty() {
            // `release:ami` is the marker that lets a re-run delete them once the image is gone.
            let mut t = vec![(tags::APP.to_owned(), pipeline.app.to_string()), (tags::AMI.to_owned(), img.ami.to_string())];
            if let Some(c) = &img.commit {
                t.push((tags::COMMIT.to_owned(), c.clone()));
            }
            crate::steps::images::tag(&*images, &img.ami, &untagged, &t).await.or_else(|e| if e.is(Cause::Missing) { Ok(()) } else { Err(e) })?;
        }
        let in_region = img.region.as_deref().map(|r| format!(" in {r}")).unwrap_or_default();
        op.progress(&format!("[{}/{n}] deregistering {}{in_region} ({}): {}", k + 1, img.ami, img.name, img.reason));
        crate::steps::images::deregister(&*images, &img.ami).await?;
        op.step(crate::model::phase::Checkpoint::Deregistered)?;
        crate::steps::images::delete_snapshots(op, &*images, &img.snapshots, None).await?;
        report.removed_images.push(img.ami.clone());
        report.removed_snapshots.extend(img.snapshots.iter().cloned());
        if let Action::Gc(d) = &mut op.record_mut()?.action {
            d.removed_images.push(img.ami.clone());
            d.removed_snapshots.extend(img.snapshots.iter().cloned());
        }
        op.save().await?;
    }
    Ok(())
}

/// Deletes the snapshots whose image is gone.
async fn remove_orphan_snapshots(op: &mut Op<'_>, plan: &Plan, report: &mut Report) -> Result<()> {
    if plan.snapshots.is_empty() {
        return Ok(());
    }
    op.guard().await?;
    let ids: Vec<String> = plan.snapshots.iter().map(|s| s.id.clone()).collect();
    op.progress(&format!("deleting {} snapshot(s) whose image is gone", ids.len()));
    for sn in &plan.snapshots {
        let images = images_in(op, sn.region.as_deref()).await?;
        crate::steps::images::delete_snapshots(op, &*images, std::slice::from_ref(&sn.id), None).await?;
    }
    report.removed_snapshots.extend(ids.iter().cloned());
    if let Action::Gc(d) = &mut op.record_mut()?.action {
        d.removed_snapshots.extend(ids);
    }
    op.save().await
}

/// Terminates the orphan instances (when confirmed).
async fn terminate_orphans(op: &mut Op<'_>, terminate: Vec<InstanceId>, report: &mut Report) -> Result<()> {
    if terminate.is_empty() {
        return Ok(());
    }
    op.guard().await?;
    op.progress(&format!("terminating {} orphan instance(s): {}", terminate.len(), terminate.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ")));
    crate::steps::fleet::terminate(op, &terminate).await?;
    report.terminated = terminate.clone();
    if let Action::Gc(d) = &mut op.record_mut()?.action {
        d.terminated = terminate;
    }
    op.save().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_times_parse_and_ages_format() {
        let t = Timestamp::from_millis(1_795_146_590_000);
        assert_eq!(parse_created(&t.to_string()), Some(t));
        assert_eq!(parse_created("2026-11-20T03:49:50.000Z"), Some(t));
        assert_eq!(parse_created("2000-02-29T00:00:00Z"), Some(Timestamp::from_millis(951_782_400_000)));
        assert_eq!(parse_created("yesterday"), None);
        assert_eq!(format_age(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)), "3d4h");
    }
}
