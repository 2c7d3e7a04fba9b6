//! `release bake`: build -> test -> Packer -> tag -> verify, addressed by a bake key so that the same inputs are
//! never baked twice. Each step observes first: an AMI that already carries the key is reused; an AMI left by a
//! failed bake (it lacks the key, which is written last) is never taken for a good one and is cleaned up.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::clock::Timestamp;
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::ids::{AmiId, AppName, BakeKey, CommitSha};
use crate::model::pipeline::Pipeline;
use crate::ports::{tags, BakeRequest, Baker, Cloud, Image, ImageState, ProgressFn, Workspace};
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
    let dir = template.parent().ok_or_else(|| Error::internal("template has no directory"))?;
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    for (rel, path) in files {
        let bytes = std::fs::read(&path).map_err(|e| Error::internal(format!("reading {}: {e}", path.display())))?;
        text.push_str(&format!("file {rel} {}\n", hex::encode(Sha256::digest(&bytes))));
    }
    Ok(BakeKey::from_digest(hex::encode(Sha256::digest(text.as_bytes()))))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, std::path::PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::internal(format!("reading {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::internal(format!("reading {}: {e}", dir.display())))?.path();
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

/// What a bake needs: the cloud, git and the stages, Packer, and where progress goes.
pub struct BakeContext<'a> {
    /// The cloud.
    pub cloud: &'a Cloud,
    /// git and the build/test stages.
    pub workspace: &'a dyn Workspace,
    /// Packer.
    pub baker: &'a dyn Baker,
    /// Progress lines.
    pub progress: &'a ProgressFn,
}

/// Bakes `commit` from its export (`export`, holding `pipeline` as read from that commit).
pub async fn bake(ctx: &BakeContext<'_>, pipeline: &Pipeline, export: &Path, commit: &CommitSha, opts: &BakeOptions) -> Result<BakeOutcome> {
    let clock = &ctx.cloud.clock;
    let mut seconds = BTreeMap::new();
    let mut phase_start = clock.now();
    let mut lap = |name: &'static str, seconds: &mut BTreeMap<&'static str, f64>, now: Timestamp| {
        seconds.insert(name, now.since(phase_start).as_secs_f64());
        phase_start = now;
    };

    if let Some(var) = pipeline.bake.vars.keys().find(|k| RESERVED_VARS.contains(&k.as_str())) {
        return Err(Error::input(format!(
            "[bake] vars sets `{var}`, which release passes to packer itself; remove it from {}",
            pipeline.file.display()
        )));
    }
    let base_ami = ctx.cloud.images.resolve_base(&pipeline.bake.base_ami, &pipeline.bake.base_owners).await?;
    let packer_version = ctx.baker.version().await?;
    let key = bake_key(pipeline, export, commit, &base_ami, &packer_version)?;
    let images = ctx.cloud.images.app_images(&pipeline.app).await?;
    lap("key", &mut seconds, clock.now());
    (ctx.progress)(&format!("bake key {} (base {base_ami}, packer {packer_version})", key.short()));

    if let Some(found) = find_complete(&images, &key).filter(|_| !opts.force) {
        (ctx.progress)(&format!("{} already baked as {} ({}); nothing to do", commit.short(), found.id, found.name));
        return Ok(BakeOutcome {
            app: pipeline.app.clone(),
            commit: commit.clone(),
            ami: found.id,
            name: found.name,
            bake_key: key,
            base_ami,
            reused: true,
            cleaned: Vec::new(),
            seconds,
        });
    }

    ctx.workspace.run_stage("build", &pipeline.build.command, export).await?;
    let artifact = export.join(&pipeline.build.artifact);
    if !artifact.is_file() {
        return Err(Error::new(
            ErrorKind::StageFailed,
            format!("the build succeeded but did not write the artifact {}; fix [build] artifact or the build", pipeline.build.artifact),
        ));
    }
    lap("build", &mut seconds, clock.now());
    if let Some(test) = &pipeline.test {
        ctx.workspace.run_stage("test", &test.command, export).await?;
    }
    lap("test", &mut seconds, clock.now());

    // The name is derived from the inputs, so a failed bake of the same inputs left its AMI under this name.
    let mut name = ami_name(&pipeline.app, commit, &key);
    let mut cleaned = Vec::new();
    if let Some(old) = ctx.cloud.images.by_name(&name).await? {
        if old.is_complete_bake() {
            // Only --force gets here: keep the good AMI (it may be deployed) and bake beside it.
            name = format!("{name}-{}", clock.now().compact().to_ascii_lowercase());
        } else {
            (ctx.progress)(&format!("removing {} left by a failed bake ({})", old.id, old.name));
            remove_image(ctx.cloud, &old).await?;
            cleaned.push(old.id);
        }
    }

    let mut vars = pipeline.bake.vars.clone();
    vars.insert("app".into(), pipeline.app.to_string());
    vars.insert("commit".into(), commit.to_string());
    vars.insert("artifact".into(), artifact.to_string_lossy().into_owned());
    vars.insert("base_ami".into(), base_ami.to_string());
    vars.insert("instance_type".into(), pipeline.bake.instance_type.clone());
    vars.insert("region".into(), opts.region.clone());
    vars.insert("ami_name".into(), name.clone());
    if let Some(endpoint) = &opts.emulator_endpoint {
        vars.insert("ec2_endpoint".into(), endpoint.clone());
    } else {
        // The aws source copies and shares the AMI; the copies carry the release tags so that each region's
        // `images` and `promote` find them by tag (this region's AMI is tagged below, the bake key last).
        vars.insert("ami_regions".into(), hcl_list(&pipeline.bake.regions));
        vars.insert("ami_users".into(), hcl_list(&pipeline.bake.accounts));
        let release_tags = [(tags::APP, pipeline.app.to_string()), (tags::COMMIT, commit.to_string()), (tags::BAKE_KEY, key.to_string())];
        vars.insert("release_tags".into(), format!("{{{}}}", release_tags.iter().map(|(k, v)| format!("\"{k}\" = \"{v}\"")).collect::<Vec<_>>().join(", ")));
    }
    let request = BakeRequest {
        template: export.join(&pipeline.bake.template),
        workdir: export.to_path_buf(),
        vars,
        emulator: opts.emulator_endpoint.is_some(),
    };
    let ami = crate::steps::images::bake(ctx.baker, &request, ctx.progress).await?;
    lap("packer", &mut seconds, clock.now());

    // Tag app and commit first, the bake key only once the AMI is available: a bake killed before that point
    // leaves an AMI that no lookup takes for a good one.
    let image = wait_available(ctx, &ami).await?;
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
    crate::steps::images::tag(ctx.cloud, &ami, &image.snapshots, &first).await?;
    crate::steps::images::tag(ctx.cloud, &ami, &image.snapshots, &[(tags::BAKE_KEY.to_owned(), key.to_string())]).await?;
    let verified = ctx.cloud.images.describe(&ami).await?.ok_or_else(|| Error::aws(format!("{ami} vanished after tagging")))?;
    if !verified.is_complete_bake() || verified.tags.get(tags::COMMIT) != Some(&commit.to_string()) {
        return Err(Error::aws(format!("{ami} does not carry the release tags after tagging")));
    }
    lap("tag", &mut seconds, clock.now());
    Ok(BakeOutcome { app: pipeline.app.clone(), commit: commit.clone(), ami, name, bake_key: key, base_ami, reused: false, cleaned, seconds })
}

/// An HCL list of strings for `-var` (`["eu-west-1", "eu-central-1"]`); the values are validated names and ids.
fn hcl_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", "))
}

async fn wait_available(ctx: &BakeContext<'_>, ami: &AmiId) -> Result<Image> {
    let clock = &ctx.cloud.clock;
    let start = clock.now();
    let mut announced = false;
    loop {
        match ctx.cloud.images.describe(ami).await? {
            Some(image) if image.state == ImageState::Available => return Ok(image),
            Some(image) if image.state == ImageState::Failed => {
                return Err(Error::new(ErrorKind::StageFailed, format!("{ami} ended in state failed; see the AMI's state reason in EC2")))
            }
            _ => {}
        }
        if clock.now().since(start) > AVAILABLE_TIMEOUT {
            return Err(Error::aws(format!("{ami} is not available after {} minutes", AVAILABLE_TIMEOUT.as_secs() / 60)));
        }
        if !announced {
            (ctx.progress)(&format!("waiting for {ami} to become available"));
            announced = true;
        }
        clock.sleep(Duration::from_secs(5)).await;
    }
}
