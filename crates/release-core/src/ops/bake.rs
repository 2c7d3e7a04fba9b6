//! `release bake`: build -> test -> Packer -> tag -> verify, addressed by a bake key so that the same inputs are
//! never baked twice. Each step observes first: an AMI that already carries the key is reused; an AMI left by a
//! failed bake (it lacks the key, which is written last) is never taken for a good one and is cleaned up. The
//! writes run in the operation runner under the lock of the commit's bakes (`engine::lock::BakeLock`): two bakes of
//! one commit never race, and a Ctrl-C stops a bake at its next wait.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::clock::Timestamp;
use crate::model::error::{Aws, Input, Internal, Result, Stage};
use crate::model::ids::{AmiId, AppName, BakeKey, CommitSha};
use crate::model::pipeline::Pipeline;
use crate::ports::{tags, BakeRequest, Baker, Image, ImageState, Workspace};
use crate::engine::lock::BakeLock;
use crate::engine::runner::{self, Op, OpSpec};
use crate::engine::session::Session;
use crate::observe::images::find_complete;
use crate::steps::images::remove_image;

/// Variables `release` itself hands to Packer; `[bake] vars` may not redefine them.
pub const RESERVED_VARS: &[&str] = &["app", "commit", "artifact", "base_ami", "instance_type", "region", "ami_name", "ec2_endpoint"];

/// How long an AMI may take to become available before the bake is declared failed.
pub const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// Everything that decides the image (DESIGN §4), hashed. `export` is the commit's export: the template and the
/// files beside it are read from there, never from the work tree.
pub fn bake_key(pipeline: &Pipeline, export: &Path, commit: &CommitSha, base_ami: &AmiId, packer_version: &str) -> Result<BakeKey> {
    let mut text = String::from("release bake key v1\n");
    text.push_str(&format!("commit {commit}\nbase_ami {base_ami}\npacker {packer_version}\n"));
    text.push_str(&format!("build {}\nartifact {}\n", pipeline.build.command, pipeline.build.artifact));
    text.push_str(&format!("test {}\n", pipeline.test.as_ref().map_or("", |t| t.command.as_str())));
    for (k, v) in &pipeline.bake.vars {
        text.push_str(&format!("var {k}={v}\n"));
    }
    let template = export.join(&pipeline.bake.template);
    let dir = template.parent().ok_or_else(|| Internal::Invariant { what: "template has no directory".to_owned() })?;
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    for (rel, path) in files {
        let bytes = std::fs::read(&path).map_err(|e| Internal::Io { path: path.display().to_string(), error: e.to_string() })?;
        text.push_str(&format!("file {rel} {}\n", hex::encode(Sha256::digest(&bytes))));
    }
    Ok(BakeKey::from_digest(hex::encode(Sha256::digest(text.as_bytes()))))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, std::path::PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Internal::Io { path: dir.display().to_string(), error: e.to_string() })?;
    for entry in entries {
        let path = entry.map_err(|e| Internal::Io { path: dir.display().to_string(), error: e.to_string() })?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push((rel, path));
        }
    }
    Ok(())
}

/// `<app>-<sha12>-<bakekey8>` (DESIGN §4).
pub fn ami_name(app: &AppName, commit: &CommitSha, key: &BakeKey) -> String {
    format!("{app}-{}-{}", commit.short(), key.short())
}

/// How a bake is asked for.
#[derive(Clone, Debug)]
pub struct BakeOptions {
    /// Bake again even when a bake with the same key exists.
    pub force: bool,
    /// Build Packer's emulator source, pointed at this EC2 endpoint.
    pub emulator_endpoint: Option<String>,
    /// The region Packer bakes in.
    pub region: String,
}

/// What a bake did.
#[derive(Clone, Debug, Serialize)]
pub struct BakeOutcome {
    /// The app.
    pub app: AppName,
    /// The commit.
    pub commit: CommitSha,
    /// The AMI (new or reused).
    pub ami: AmiId,
    /// Its name.
    pub name: String,
    /// The bake key.
    pub bake_key: BakeKey,
    /// The resolved base image.
    pub base_ami: AmiId,
    /// Whether an existing bake with the same key was reused.
    pub reused: bool,
    /// AMIs of earlier failed bakes with this name, removed before baking.
    pub cleaned: Vec<AmiId>,
    /// Seconds per phase: key, build, test, packer, tag.
    pub seconds: BTreeMap<&'static str, f64>,
}

/// What a bake needs: the session (the cloud, signals, where progress goes), git and the stages, and Packer.
pub struct BakeContext<'a> {
    /// The session.
    pub session: &'a Session,
    /// git and the build/test stages.
    pub workspace: &'a dyn Workspace,
    /// Packer.
    pub baker: &'a dyn Baker,
}

/// What decides the bake, read before anything runs.
struct Inputs {
    key: BakeKey,
    base_ami: AmiId,
}

/// Seconds per phase, each lap ending one.
struct Laps {
    start: Timestamp,
    seconds: BTreeMap<&'static str, f64>,
}

impl Laps {
    fn lap(&mut self, name: &'static str, now: Timestamp) {
        self.seconds.insert(name, now.since(self.start).as_secs_f64());
        self.start = now;
    }
}

/// Bakes `commit` from its export (`export`, holding `pipeline` as read from that commit). What only reads or runs
/// locally (the key, a reusable bake, build and test) comes first; the writes (removing a failed bake's AMI, Packer,
/// the tags) run inside the operation runner, under the lock of the commit's bakes.
pub async fn bake(ctx: &BakeContext<'_>, pipeline: &Pipeline, export: &Path, commit: &CommitSha, opts: &BakeOptions) -> Result<BakeOutcome> {
    let clock = &ctx.session.cloud.clock;
    let mut laps = Laps { start: clock.now(), seconds: BTreeMap::new() };
    if let Some(var) = pipeline.bake.vars.keys().find(|k| RESERVED_VARS.contains(&k.as_str())) {
        return Err(Input::ReservedVar { var: var.clone(), file: pipeline.file.clone() }.into());
    }
    let inputs = inputs(ctx, pipeline, export, commit).await?;
    let images = ctx.session.cloud.images.app_images(&pipeline.app).await?;
    laps.lap("key", clock.now());
    if let Some(found) = reusable(ctx, &images, commit, &inputs, opts) {
        return Ok(outcome(pipeline, commit, inputs, found, laps));
    }
    let artifact = build_and_test(ctx, pipeline, export, &mut laps).await?;
    let spec = OpSpec::new(format!("bake of {}", commit.short()));
    runner::run_bake(ctx.session, pipeline, &BakeLock::new(commit), spec, async |op: &mut Op<'_, BakeLock>| {
        // Under the lock: a bake of the same inputs may have ended while this one built.
        let images = op.cloud().images.app_images(&pipeline.app).await?;
        if let Some(found) = reusable(ctx, &images, commit, &inputs, opts) {
            return Ok(outcome(pipeline, commit, inputs, found, laps));
        }
        let (name, cleaned) = clear_name(op, pipeline, commit, &inputs.key).await?;
        let request = request(pipeline, export, commit, &inputs, &artifact, &name, opts);
        op.guard().await?;
        let reporter = ctx.session.reporter.clone();
        let progress = move |line: &str| reporter.progress(line);
        let baked = crate::steps::images::bake(ctx.baker, &request, &progress).await;
        // A Ctrl-C while Packer ran (it got the signal too, in the terminal's process group) stops the bake here.
        op.check()?;
        let ami = baked?;
        op.step(crate::model::phase::Checkpoint::Baked)?;
        laps.lap("packer", op.cloud().clock.now());
        tag_and_verify(op, ctx, pipeline, commit, &inputs.key, &ami).await?;
        laps.lap("tag", op.cloud().clock.now());
        let (key, base_ami) = (inputs.key, inputs.base_ami);
        Ok(BakeOutcome { app: pipeline.app.clone(), commit: commit.clone(), ami, name, bake_key: key, base_ami, reused: false, cleaned, seconds: laps.seconds })
    })
    .await
}

/// The resolved base image, the Packer version and the bake key they make with the commit's export.
async fn inputs(ctx: &BakeContext<'_>, pipeline: &Pipeline, export: &Path, commit: &CommitSha) -> Result<Inputs> {
    let base_ami = ctx.session.cloud.images.resolve_base(&pipeline.bake.base_ami, &pipeline.bake.base_owners).await?;
    let packer_version = ctx.baker.version().await?;
    let key = bake_key(pipeline, export, commit, &base_ami, &packer_version)?;
    ctx.session.progress(&format!("bake key {} (base {base_ami}, packer {packer_version})", key.short()));
    Ok(Inputs { key, base_ami })
}

/// A complete bake with the same key, unless `--force`: reused, saying so.
fn reusable(ctx: &BakeContext<'_>, images: &[Image], commit: &CommitSha, inputs: &Inputs, opts: &BakeOptions) -> Option<Image> {
    let found = find_complete(images, &inputs.key).filter(|_| !opts.force)?;
    ctx.session.progress(&format!("{} already baked as {} ({}); nothing to do", commit.short(), found.id, found.name));
    Some(found)
}

/// The outcome of a bake that reused `found`.
fn outcome(pipeline: &Pipeline, commit: &CommitSha, inputs: Inputs, found: Image, laps: Laps) -> BakeOutcome {
    BakeOutcome {
        app: pipeline.app.clone(),
        commit: commit.clone(),
        ami: found.id,
        name: found.name,
        bake_key: inputs.key,
        base_ami: inputs.base_ami,
        reused: true,
        cleaned: Vec::new(),
        seconds: laps.seconds,
    }
}

/// The build and test stages, in the export; the artifact the build wrote.
async fn build_and_test(ctx: &BakeContext<'_>, pipeline: &Pipeline, export: &Path, laps: &mut Laps) -> Result<std::path::PathBuf> {
    let clock = &ctx.session.cloud.clock;
    ctx.workspace.run_stage("build", &pipeline.build.command, export).await?;
    let artifact = export.join(&pipeline.build.artifact);
    if !artifact.is_file() {
        return Err(Stage::NoArtifact { artifact: pipeline.build.artifact.clone() }.into());
    }
    laps.lap("build", clock.now());
    if let Some(test) = &pipeline.test {
        ctx.workspace.run_stage("test", &test.command, export).await?;
    }
    laps.lap("test", clock.now());
    Ok(artifact)
}

/// The AMI name, and the AMIs of failed bakes removed to free it. The name is derived from the inputs, so a failed
/// bake of the same inputs left its AMI under it; a complete one (only `--force` gets here) is kept, as it may be
/// deployed, and the bake goes beside it.
async fn clear_name(op: &mut Op<'_, BakeLock>, pipeline: &Pipeline, commit: &CommitSha, key: &BakeKey) -> Result<(String, Vec<AmiId>)> {
    let mut name = ami_name(&pipeline.app, commit, key);
    let mut cleaned = Vec::new();
    if let Some(old) = op.cloud().images.by_name(&name).await? {
        if old.is_complete_bake() {
            name = format!("{name}-{}", op.cloud().clock.now().compact().to_ascii_lowercase());
        } else {
            op.progress(&format!("removing {} left by a failed bake ({})", old.id, old.name));
            op.guard().await?;
            remove_image(op, &old).await?;
            cleaned.push(old.id);
        }
    }
    Ok((name, cleaned))
}

/// What Packer is given: the template in the export and its variables.
fn request(pipeline: &Pipeline, export: &Path, commit: &CommitSha, inputs: &Inputs, artifact: &Path, name: &str, opts: &BakeOptions) -> BakeRequest {
    let mut vars = pipeline.bake.vars.clone();
    vars.insert("app".into(), pipeline.app.to_string());
    vars.insert("commit".into(), commit.to_string());
    vars.insert("artifact".into(), artifact.to_string_lossy().into_owned());
    vars.insert("base_ami".into(), inputs.base_ami.to_string());
    vars.insert("instance_type".into(), pipeline.bake.instance_type.clone());
    vars.insert("region".into(), opts.region.clone());
    vars.insert("ami_name".into(), name.to_owned());
    if let Some(endpoint) = &opts.emulator_endpoint {
        vars.insert("ec2_endpoint".into(), endpoint.clone());
    } else {
        // The aws source copies and shares the AMI; the copies carry the release tags so that each region's
        // `images` and `promote` find them by tag (this region's AMI is tagged below, the bake key last).
        vars.insert("ami_regions".into(), hcl_list(&pipeline.bake.regions));
        vars.insert("ami_users".into(), hcl_list(&pipeline.bake.accounts));
        kms_vars(&mut vars, pipeline, &opts.region);
        let release_tags = [(tags::APP, pipeline.app.to_string()), (tags::COMMIT, commit.to_string()), (tags::BAKE_KEY, inputs.key.to_string())];
        vars.insert("release_tags".into(), format!("{{{}}}", release_tags.iter().map(|(k, v)| format!("\"{k}\" = \"{v}\"")).collect::<Vec<_>>().join(", ")));
    }
    BakeRequest { template: export.join(&pipeline.bake.template), workdir: export.to_path_buf(), vars, emulator: opts.emulator_endpoint.is_some() }
}

/// The KMS keys of `[bake] kms_keys`, as the Amazon plugin takes them: `kms_key_id` is the key of the bake's region
/// only (the copies would get their region's default key), `region_kms_key_ids` those of the copies, which must
/// then name every region of `ami_regions` (`""`: that region's default key, refused with `snapshot_users`, which
/// `validate` sees to). `encrypt_boot` is passed only when off, so templates without it keep working.
fn kms_vars(vars: &mut BTreeMap<String, String>, pipeline: &Pipeline, region: &str) {
    let keys = &pipeline.bake.kms_keys;
    if let Some(key) = keys.get(region) {
        vars.insert("kms_key_id".into(), key.clone());
    }
    let copies: Vec<&String> = pipeline.bake.regions.iter().filter(|r| r.as_str() != region).collect();
    if copies.iter().any(|r| keys.contains_key(*r)) {
        let map: Vec<String> = copies.iter().map(|r| format!("\"{r}\" = \"{}\"", keys.get(*r).map(String::as_str).unwrap_or(""))).collect();
        vars.insert("region_kms_key_ids".into(), format!("{{{}}}", map.join(", ")));
    }
    if !pipeline.bake.encrypted {
        vars.insert("encrypt_boot".into(), "false".into());
    }
}

/// Tags app and commit first, the bake key only once the AMI is available: a bake killed before that point leaves
/// an AMI that no lookup takes for a good one. Then reads the tags back.
async fn tag_and_verify(op: &mut Op<'_, BakeLock>, ctx: &BakeContext<'_>, pipeline: &Pipeline, commit: &CommitSha, key: &BakeKey, ami: &AmiId) -> Result<()> {
    let image = wait_available(op, ami).await?;
    // `release:ami` marks the snapshots as this bake's (gc deletes no other snapshot tagged with the app).
    let mut first = vec![
        (tags::APP.to_owned(), pipeline.app.to_string()),
        (tags::COMMIT.to_owned(), commit.to_string()),
        (tags::AMI.to_owned(), ami.to_string()),
    ];
    if let Ok(subject) = ctx.workspace.subject(commit).await {
        // Tag values hold at most 256 characters.
        let subject: String = subject.chars().take(255).collect();
        if !subject.trim().is_empty() {
            first.push((tags::SUBJECT.to_owned(), subject));
        }
    }
    op.guard().await?;
    let images = op.cloud().images.clone();
    crate::steps::images::tag(&*images, ami, &image.snapshots, &first).await?;
    crate::steps::images::tag(&*images, ami, &image.snapshots, &[(tags::BAKE_KEY.to_owned(), key.to_string())]).await?;
    let verified = images.describe(ami).await?.ok_or_else(|| Aws::AmiVanished { ami: ami.to_string() })?;
    if !verified.is_complete_bake() || verified.tags.get(tags::COMMIT) != Some(&commit.to_string()) {
        return Err(Aws::AmiUntagged { ami: ami.to_string() }.into());
    }
    Ok(())
}

/// An HCL list of strings for `-var` (`["eu-west-1", "eu-central-1"]`); the values are validated names and ids.
fn hcl_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", "))
}

/// Waits (through [`Op::pause`]: a Ctrl-C stops it) until Packer's AMI is available.
async fn wait_available(op: &mut Op<'_, BakeLock>, ami: &AmiId) -> Result<Image> {
    let start = op.cloud().clock.now();
    let mut announced = false;
    loop {
        match op.cloud().images.describe(ami).await? {
            Some(image) if image.state == ImageState::Available => return Ok(image),
            Some(image) if image.state == ImageState::Failed => {
                return Err(Stage::AmiFailed { ami: ami.to_string() }.into())
            }
            _ => {}
        }
        if op.cloud().clock.now().since(start) > AVAILABLE_TIMEOUT {
            return Err(Aws::AmiNotAvailable { ami: ami.to_string(), after: AVAILABLE_TIMEOUT }.into());
        }
        if !announced {
            op.progress(&format!("waiting for {ami} to become available"));
            announced = true;
        }
        op.pause(Duration::from_secs(5)).await?;
    }
}
